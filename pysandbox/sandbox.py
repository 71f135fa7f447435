"""The Sandbox handle: create, exec, wait, poll, terminate, detach, from_id.

A handle holds only the sandbox id and what the registry says about it; any
process can rebuild one with Sandbox.from_id. The sandbox itself is run by
its detached supervisor, which records the exit status when it ends.
"""

from __future__ import annotations

import functools
import logging
import sys
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncGenerator, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import attrs

from . import _aio, exception, garbage, network
from . import image as images
from ._aio import synchronized, synchronized_static
from ._core import initclient, lifecycle, mounts
from ._core.initclient import InitClient
from ._core.mounts import sandbox_path
from ._core.spec import ARG_MAX_BYTES as ARG_MAX_BYTES  # modal.sandbox.ARG_MAX_BYTES: the args of create and exec
from ._core.spec import ExecSpec, SandboxSpec, check_experimental_options, check_tags, valid_name
from ._exec_types import typed_exec
from ._lazy import LazyModule
from ._state import apps, files, names, paths, records
from ._validate import deprecated, flag, object_name, positive_seconds
from .app import App
from .container_process import ContainerProcess
from .exception import (
    ClientClosed,
    ConflictError,
    DeprecationError,
    InvalidError,
    NotFoundError,
    SandboxTerminatedError,
    SandboxTimeoutError,
    UnimplementedError,
)
from .file_io import FileIO
from .filesystem import SandboxFilesystem
from .io_streams import FollowSource, StreamReader, StreamWriter
from .probe import Probe, check_probe
from .resources import Resources, SandboxStats, default_pids_limit
from .runtime import cgroups, gvisor, limits, netplan, runners
from .secret import Secret, merge_env
from .stream_type import StreamType, output_of
from .types import FileWatchEvent, FileWatchEventType
from .volume import mount_plan
from .watch import check_watch_args, watch_events

if TYPE_CHECKING:
    from .image import snapshot
else:
    snapshot = LazyModule("pysandbox.image.snapshot")  # a build's machinery, imported on the first snapshot

verbose_logger = logging.getLogger("pysandbox.verbose")

_RUNTIMES = ["gvisor", "vm"]
TASK_ID_PREFIX = "ta-"  # Modal's container ids; _get_task_id() derives one from the sandbox id


def _require_app(app: Optional[App]) -> App:
    if app is not None and not isinstance(app, App):
        raise InvalidError(f"app must be a pysandbox.App, got {type(app).__name__}: pass "
                           '`App.lookup("my-app", create_if_missing=True)`.')
    if app is None:
        raise InvalidError(
            "Sandboxes require an App when created outside of a Modal container.\n\n"
            "Run an ephemeral App (`with app.run(): ...`), or pass an App from "
            '`App.lookup("my-app", create_if_missing=True)`.'
        )
    if app.app_id is None:
        raise ValueError(
            "App has not been initialized yet. To create an App lazily, use `App.lookup`: \n"
            'app = modal.App.lookup("my-app", create_if_missing=True)\n'
        )
    return app


# Why a Modal option has no local implementation (README: "Every parameter of create and exec").
_UNSUPPORTED_WHY = {
    "gpu": "pysandbox sandboxes have no GPUs",
    "runtime": "it runs sandboxes under Linux namespaces (bwrap or nsjail) or gVisor (runtime='gvisor'); a virtual "
               "machine per sandbox (runtime='vm') is not implemented, and a stronger boundary asked for is never "
               "silently replaced by a weaker one: leave runtime= unset or pass runtime='gvisor'",
    "_experimental_enable_snapshot": "memory snapshots (running processes and RAM) have no local implementation; "
                                     "snapshot_filesystem() keeps the files",
    "_experimental_persistent": "persistent sandboxes have no local implementation",
    "network_file_systems": "NetworkFileSystem has no local implementation; mount a Volume with volumes=",
    "i6pn": "private IPv6 networking between sandboxes has no local implementation",
    "mounts": "modal.Mount has no local implementation; use Image.add_local_dir/add_local_file",
}


def _runtime_runner(runtime: Optional[str], options: Any) -> Any:
    """runtime="gvisor" is the gvisor runner (docs/RUNNERS.md), as experimental_options={"runner": "gvisor"} is;
    another runner asked for there contradicts it."""
    if runtime != "gvisor" or (options is not None and not isinstance(options, Mapping)):
        return options  # a malformed one: check_experimental_options says so
    asked = options.get("runner") if isinstance(options, Mapping) else None
    if asked not in (None, "gvisor"):
        raise InvalidError(f"runtime='gvisor' and experimental_options runner={asked!r} contradict each other: "
                           "pass one of them.")
    return {**(options if isinstance(options, Mapping) else {}), "runner": "gvisor"}


def _check_unsupported(call: str = "Sandbox.create", **options: Any) -> None:
    """Options with no local implementation: say so instead of ignoring them."""
    for name, value in options.items():
        if value:
            why = _UNSUPPORTED_WHY.get(name, "this version of pysandbox does not implement it yet")
            raise UnimplementedError(f"{call}({name}=...) is not supported by pysandbox: {why}.")


def _check_placement(cloud: Any, region: Any, environment_name: Any) -> None:
    """Where Modal places a sandbox, and in which of an account's environments: one machine and
    one state directory here, so they have no local meaning, but they must be what Modal takes."""
    regions = [region] if isinstance(region, str) else region
    if cloud is not None and not isinstance(cloud, str):
        raise InvalidError(f"cloud must be a str such as 'aws', got {type(cloud).__name__}")
    if regions is not None and not (isinstance(regions, (list, tuple)) and all(isinstance(r, str) for r in regions)):
        raise InvalidError(f"region must be a str or a list of str, got {region!r}")
    if environment_name is not None and not isinstance(environment_name, str):
        raise InvalidError(f"environment_name must be a str, got {type(environment_name).__name__}")


def _check_snapshot_options(timeout: Any, ttl: Any) -> None:
    # Snapshots are copied to completion and kept until `pysandbox image rm`: timeout and ttl are checked, not enforced.
    positive_seconds(timeout)
    positive_seconds(ttl, "ttl", allow_none=True, at_most=None)


def _check_no_encryption_key(method: str, key: Any) -> None:
    if key is not None:
        raise UnimplementedError(f"Sandbox.{method}(_experimental_encryption_key=...): pysandbox keeps snapshots "
                                 "unencrypted in its state directory; drop the key.")


def _check_port_lists(**lists: Any) -> None:
    for name, value in lists.items():
        if not isinstance(value, (list, tuple)):
            raise InvalidError(f"{name} must be a list of port numbers, got {type(value).__name__}")


def _check_network(block_network: bool, ports: Sequence[int], allowlists: Sequence[Any]) -> None:
    if block_network and any(ports):
        raise InvalidError("Cannot specify open ports when `block_network` is enabled")
    if block_network and any(a is not None for a in allowlists):
        raise InvalidError("`outbound_cidr_allowlist`, `outbound_domain_allowlist` and `inbound_cidr_allowlist` "
                           "cannot be used when `block_network` is enabled")


# The confirm pipes of tethered sandboxes: kept open for the life of this process (its exit closes
# them, and the supervisors end their sandboxes); terminate() closes one at once.
_tethers: Dict[str, Any] = {}


def _end_started(started: lifecycle.Started) -> None:
    """Undo a create whose caller was cancelled while it ran: the sandbox ends at once."""
    Sandbox(started.record).terminate()


class Sandbox:
    """A handle to a sandbox: run commands in it, read its output, end it."""

    def __init__(self, record: records.SandboxRecord, sandboxes: Optional[Path] = None) -> None:
        self._record = record
        # The state directory as of now: one lookup for all the handles Sandbox.list() makes.
        self._sandboxes = paths.sandboxes_dir() if sandboxes is None else sandboxes
        self._exit: Optional[records.ExitStatus] = None
        self._detached = False
        self._stdout: Optional[StreamReader[str]] = None
        self._stderr: Optional[StreamReader[str]] = None
        self._stdin: Optional[StreamWriter] = None
        self._entry_sources: List[FollowSource] = []  # of stdout and stderr, closed by detach()
        self._filesystem: Optional[SandboxFilesystem] = None

    @functools.cached_property
    def _dir(self) -> Path:
        return self._sandboxes / self._record.sandbox_id

    @functools.cached_property
    def _init(self) -> InitClient:
        """Made on first use: Sandbox.list() makes a handle per running sandbox, most never used."""
        return InitClient(paths.SandboxDir(self._dir).socket, self._record.sandbox_id)

    # Identity ------------------------------------------------------------

    @property
    def object_id(self) -> str:
        return self._record.sandbox_id

    # Modal's private members that published clients call (README: "What works today").

    @synchronized
    async def _get_task_id(self, raise_if_task_complete: bool = False, timeout: Optional[float] = None,
                           retry_transient: bool = False) -> str:
        """Modal's id of the container that runs the sandbox ("ta-..."). A sandbox here has one from
        create() on, so there is nothing to wait for (timeout, retry_transient) and the id is derived
        from the sandbox's: the same in every process and handle."""
        self._ensure_attached()
        if raise_if_task_complete and self._refresh() is not None:
            raise ConflictError("Sandbox already finished")
        return TASK_ID_PREFIX + self.object_id[len("sb-"):]

    @synchronized_static
    async def _experimental_create(*args: str, i6pn: bool = False, mounts: Sequence[Any] = (),
                                   **options: Any) -> "Sandbox":
        """Modal's V2 backend: create() here, which has one backend. i6pn (private IPv6 between
        sandboxes) and mounts (modal.Mount objects) have no local implementation."""
        _check_unsupported("Sandbox._experimental_create", i6pn=i6pn, mounts=mounts)
        return await Sandbox.create._core(args, options)

    @synchronized_static
    async def _experimental_from_name(app_name: str, name: str, *, environment_name: Optional[str] = None,
                                      include_terminated: bool = False, client: Any = None) -> "Sandbox":
        """Modal's lookup of a V2 sandbox by name: from_name() here."""
        options = {"environment_name": environment_name, "include_terminated": include_terminated, "client": client}
        return await Sandbox.from_name._core((app_name, name), options)

    @synchronized
    async def _experimental_set_name(self, name: str) -> None:
        """Name a running sandbox created without one (once; its own name again is no change)."""
        self._ensure_attached()
        self._record = names.set_name(self.object_id, object_name(name, "Sandbox", id_prefix="ap-"))

    @synchronized
    async def _experimental_snapshot(self) -> Any:
        raise UnimplementedError("Sandbox._experimental_snapshot(): memory snapshots (running processes and RAM) "
                                 "are not supported by pysandbox; snapshot_filesystem() keeps the files.")

    @synchronized_static
    async def _experimental_from_snapshot(snapshot: Any, client: Any = None, *, name: Optional[str] = None) -> Any:
        raise UnimplementedError("Sandbox._experimental_from_snapshot(): memory snapshots are not supported by "
                                 "pysandbox; create a sandbox from the image snapshot_filesystem() returns.")

    def __repr__(self) -> str:
        return f"Sandbox({self.object_id})"

    def _ensure_attached(self) -> None:
        if self._detached:
            raise ClientClosed("Unable to perform operation on a detached sandbox")

    def _client(self) -> InitClient:
        """The client of the sandbox's init, while this handle is attached."""
        self._ensure_attached()
        return self._init

    # Creation ------------------------------------------------------------

    @synchronized_static
    async def create(
        *args: str,
        app: Optional[App] = None,
        name: Optional[str] = None,
        tags: Optional[Dict[str, str]] = None,
        image: Optional[images.Image] = None,
        env: Optional[Mapping[str, Optional[str]]] = None,
        secrets: Optional[Sequence[Secret]] = None,
        network_file_systems: dict = {},
        timeout: Optional[int] = 300,
        idle_timeout: Optional[int] = None,
        workdir: Optional[str] = None,
        gpu: Optional[str] = None,
        cloud: Optional[str] = None,
        region: Union[str, Sequence[str], None] = None,
        cpu: Union[float, Tuple[float, float], None] = None,
        memory: Union[int, Tuple[int, int], None] = None,
        ephemeral_disk: Optional[int] = None,
        runtime: Optional[str] = None,
        block_network: bool = False,
        outbound_cidr_allowlist: Optional[Sequence[str]] = None,
        outbound_domain_allowlist: Optional[Sequence[str]] = None,
        _experimental_outbound_policy: Any = None,
        inbound_cidr_allowlist: Optional[Sequence[str]] = None,
        volumes: dict = {},
        pty: bool = False,
        encrypted_ports: Sequence[int] = [],
        h2_ports: Sequence[int] = [],
        unencrypted_ports: Sequence[int] = [],
        custom_domain: Optional[str] = None,
        proxy: Any = None,
        include_oidc_identity_token: bool = False,
        readiness_probe: Optional[Probe] = None,
        verbose: bool = False,
        experimental_options: Optional[dict] = None,
        _experimental_enable_snapshot: bool = False,
        _experimental_persistent: bool = False,
        client: Any = None,
        environment_name: Optional[str] = None,
        pty_info: Any = None,
        cidr_allowlist: Optional[Sequence[str]] = None,
    ) -> "Sandbox":
        """Create a sandbox running `args` (or nothing) and return its handle at once."""
        if environment_name is not None:
            deprecated("2025-07-16", "Passing `environment_name` to `Sandbox.create` is deprecated and will be removed "
                       "in a future release. A sandbox's environment is determined by the app it is associated with.")
        if pty_info is not None:
            deprecated("2025-09-12", "The `pty_info` parameter is deprecated and will be removed in a future release. "
                       "Set the `pty` parameter to `True` instead.")
        if cidr_allowlist is not None and outbound_cidr_allowlist is not None:
            raise InvalidError("Cannot specify both `cidr_allowlist` and `outbound_cidr_allowlist`; use the latter.")
        if cidr_allowlist is not None:
            deprecated("2026-05-11", "The `cidr_allowlist` parameter has been renamed to `outbound_cidr_allowlist`. "
                       "`cidr_allowlist` will be removed in a future release.")
        outbound_cidr_allowlist = outbound_cidr_allowlist if cidr_allowlist is None else cidr_allowlist
        if runtime is not None and runtime not in _RUNTIMES:
            raise InvalidError(f"runtime must be one of {_RUNTIMES}, got {runtime!r}")
        experimental_options = _runtime_runner(runtime, experimental_options)
        if isinstance(gpu, (list, tuple)):
            raise InvalidError("Sandboxes support a single GPU configuration; pass a string, not a list.")
        _check_unsupported(gpu=gpu, runtime=runtime == "vm", _experimental_persistent=_experimental_persistent,
                           _experimental_enable_snapshot=_experimental_enable_snapshot)
        _check_placement(cloud=cloud, region=region, environment_name=environment_name)
        _check_port_lists(encrypted_ports=encrypted_ports, h2_ports=h2_ports, unencrypted_ports=unencrypted_ports)
        _check_network(block_network, [*encrypted_ports, *h2_ports, *unencrypted_ports],
                       [outbound_cidr_allowlist, outbound_domain_allowlist, inbound_cidr_allowlist])
        options = check_experimental_options(experimental_options)
        flag(block_network, "block_network")
        spec = SandboxSpec(
            args, env=merge_env(env, secrets), workdir=workdir, timeout=timeout, idle_timeout=idle_timeout,
            name=name, tags=tags, verbose=verbose, pty=flag(pty, "pty") or pty_info is not None,
            network="none" if block_network else "default",
            ports=network.check_ports(encrypted_ports, unencrypted_ports),
            outbound_cidr_allowlist=outbound_cidr_allowlist, outbound_domain_allowlist=outbound_domain_allowlist,
            readiness_probe=check_probe(readiness_probe),
            resources=Resources.from_options(cpu, memory, ephemeral_disk, default_pids_limit()),
            runner=options.get("runner"), tethered=options.get("tether") == "True",
        )
        if spec.ports and not netplan.available():
            raise InvalidError(f"Port tunnels need the default network, which this host cannot give: "
                               f"{netplan.needs()}.")
        cgroups.check(spec.resources)
        runners.check(spec.runner)
        _check_unsupported(
            network_file_systems=network_file_systems,
            h2_ports=h2_ports,
            inbound_cidr_allowlist=inbound_cidr_allowlist,
            custom_domain=custom_domain, proxy=proxy,
            _experimental_outbound_policy=_experimental_outbound_policy,
            include_oidc_identity_token=include_oidc_identity_token,
        )
        app = _require_app(app)
        binds = mount_plan(volumes, host_image=image is None)  # resolve (or fail) here
        if binds:  # (evolve validates the whole spec again: only when there is something to add)
            spec = attrs.evolve(spec, volumes=binds)
        runners.refuse(spec)
        garbage.collect_soon()  # before any work: a bad setting of it is an error first
        # Built here if it is not yet; both steps block, so `.aio` runs them off the loop.
        spec = await _aio.offload(images.apply, spec, image)
        started = await _aio.offload(lifecycle.start, spec, app.app_id, app.name, spec.tethered, undo=_end_started)
        if spec.tethered:  # never confirmed: held open, the tether is this process's until it exits
            _tethers[started.record.sandbox_id] = started.launched
        if spec.verbose:
            _enable_verbose_output()
            verbose_logger.info("Sandbox created: %s", started.record.sandbox_id)
        return Sandbox(started.record)

    @synchronized_static
    async def from_id(sandbox_id: str, client: Any = None) -> "Sandbox":
        """A handle to an existing sandbox, from any process."""
        if not isinstance(sandbox_id, str) or not files.is_well_formed_id(sandbox_id, "sb-"):
            raise InvalidError(f"Invalid sandbox id {sandbox_id!r}: expected 'sb-' followed by 22 letters or digits.")
        # Its state is read when asked for (_refresh), not here: from_id + exec, the way a second process
        # reaches a sandbox, costs one read of the record.
        return Sandbox(records.read_record(sandbox_id))

    @synchronized_static
    async def from_name(
        app_name: str, name: str, *, environment_name: Optional[str] = None, include_terminated: bool = False,
        client: Any = None,
    ) -> "Sandbox":
        """The running sandbox called `name` in the app `app_name` (or, with
        include_terminated=True and none running, the most recent finished one)."""
        if not isinstance(app_name, str):
            raise InvalidError(f"app_name must be the str name of an App, got {type(app_name).__name__}")
        flag(include_terminated, "include_terminated")
        app_record = apps.read_app(app_name)
        if app_record is None:
            raise NotFoundError(f"App {app_name!r} not found")
        if not isinstance(name, str):
            raise InvalidError(f"name must be the str a sandbox was created with, got {type(name).__name__}")
        claimed = names.claimed_sandbox(app_record["app_id"], name) if valid_name(name) else None
        if claimed is not None:
            try:
                sandbox = Sandbox(records.read_record(claimed))
            except NotFoundError:
                sandbox = None
            if sandbox is not None and sandbox._refresh() is None and not records.terminating(claimed):
                return sandbox
        if include_terminated:
            finished = [
                record for _, record in records.iter_records()
                if not isinstance(record, Exception) and record.app_id == app_record["app_id"] and record.name == name
            ]
            if finished:
                sandbox = Sandbox(max(finished, key=lambda r: r.created_at))
                sandbox._refresh()
                return sandbox
        raise NotFoundError(f"No running sandbox named {name!r} in app {app_name!r}")

    @synchronized_static
    async def list(*, app_id: Optional[str] = None, tags: Optional[Dict[str, str]] = None,
                   client: Any = None) -> AsyncGenerator["Sandbox", None]:
        """Running sandboxes (of one app, carrying all the given tags), newest first."""
        wanted = check_tags(tags)
        if app_id is not None and (not isinstance(app_id, str) or not files.is_well_formed_id(app_id, "ap-")):
            raise InvalidError(f"Invalid app_id {app_id!r}: pass an App's app_id ('ap-' and 22 letters or digits).")
        if app_id is None:
            warnings.warn("Sandbox.list() without app_id lists the sandboxes of every app; pass app_id=.",
                          DeprecationError, stacklevel=3)
        sandboxes = paths.sandboxes_dir()
        for record in records.running_records(app_id):
            if wanted.items() <= record.tags.items():
                yield Sandbox(record, sandboxes)

    @synchronized
    async def get_tags(self) -> Dict[str, str]:
        """The sandbox's current tags."""
        self._ensure_attached()
        self._record = records.read_record(self.object_id)
        return dict(self._record.tags)

    @synchronized
    async def set_tags(self, tags: Dict[str, str], *, client: Any = None) -> None:
        """Replace the sandbox's whole tag set ({} clears it)."""
        self._ensure_attached()
        if tags is None:
            raise InvalidError("tags must be a dict of str to str ({} clears them), got None")
        self._record = names.update_tags(self.object_id, check_tags(tags))

    # Lifecycle -----------------------------------------------------------

    def _refresh(self) -> Optional[records.ExitStatus]:
        """The exit status if the sandbox has finished, else None."""
        if self._exit is None:
            self._exit = lifecycle.finished(self._record)
        return self._exit

    @property
    def returncode(self) -> Optional[int]:
        status = self._refresh()
        return None if status is None else records.returncode(status)

    @synchronized
    async def poll(self) -> Optional[int]:
        """None while the sandbox runs, else its return code. Never raises for timeout or termination."""
        self._ensure_attached()
        return self.returncode

    async def _finished(self) -> records.ExitStatus:
        if self._refresh() is None:
            self._exit = await lifecycle.wait(self._record)
        elif self._exit.lost:
            lifecycle.repair(self._record)
        else:
            await lifecycle.settled(self._record)  # its record may have been read before it exited
        return self._exit

    @synchronized
    async def wait(self, raise_on_termination: bool = True) -> None:
        """Block until the sandbox finishes; then `returncode` is set."""
        flag(raise_on_termination, "raise_on_termination")
        await self._wait(raise_on_termination)

    async def _wait(self, raise_on_termination: bool) -> None:
        status = await self._finished()
        if status.status == "timeout":
            raise SandboxTimeoutError(f"Sandbox {self.object_id} exceeded its timeout.")
        if status.status == "terminated" and raise_on_termination:
            raise SandboxTerminatedError(f"Sandbox {self.object_id} was terminated.")

    @synchronized
    async def terminate(self, *, wait: bool = False) -> Optional[int]:
        """End the sandbox (a no-op if it already finished). With wait=True, return its code."""
        self._ensure_attached()
        flag(wait, "wait")
        # Signal first, then mark: a caller killed in between leaves a sandbox that ends
        # anyway, never a running one that list() and from_name pass over.
        signalled = self._exit is None and lifecycle.signal_running(self._record)
        if signalled:
            records.mark_terminating(self.object_id)
        tether = _tethers.pop(self.object_id, None)
        if tether is not None:
            tether.abandon()
        # (A supervisor just signalled was alive: it writes the exit record itself, nothing to read again here.)
        if not signalled and self._refresh() is not None and self._exit.lost:
            lifecycle.repair(self._record)  # its supervisor died without a word: do its teardown
        if not wait:
            return None
        await self._wait(raise_on_termination=False)
        return self.returncode

    @synchronized
    async def stats(self) -> SandboxStats:
        """cpu seconds, memory (current and peak, bytes), processes and out-of-memory kills,
        from the sandbox's cgroup; after it ended, the totals its supervisor recorded."""
        return limits.stats(self._dir, self._refresh)

    @synchronized
    async def detach(self) -> None:
        """Release this handle; the sandbox keeps running. Use from_id for a new handle."""
        self._detached = True
        for source in self._entry_sources:
            source.close()

    # Network -------------------------------------------------------------

    @synchronized
    async def tunnels(self, timeout: int = 50) -> Dict[int, network.Tunnel]:
        """{sandbox port: Tunnel} for the create's encrypted_ports and unencrypted_ports,
        each forwarded from a port on the host's 127.0.0.1 (listening once this returns)."""
        self._ensure_attached()
        positive_seconds(timeout)
        host_ports = [host for _, host, _ in self._record.tunnels]
        deadline = time.monotonic() + timeout
        while not netplan.listening(host_ports) and self._refresh() is None:
            if time.monotonic() >= deadline:
                raise SandboxTimeoutError(f"Tunnels of sandbox {self.object_id} were not ready within {timeout}s.")
            await _aio.sleep(0.005)
        return {guest: network.tunnel(host, encrypted) for guest, host, encrypted in self._record.tunnels}

    @synchronized
    async def _experimental_set_outbound_network_policy(
        self,
        *,
        outbound_cidr_allowlist: Optional[Sequence[str]] = None,
        outbound_domain_allowlist: Optional[Sequence[str]] = None,
    ) -> None:
        """Replace the outbound policy of the running sandbox (both None: every destination), as
        Sandbox.create's arguments of the same names; connections the new policy refuses are cut."""
        self._ensure_attached()
        cidrs = network.check_cidrs(outbound_cidr_allowlist)
        domains = network.check_domains(outbound_domain_allowlist)
        net_dir = paths.SandboxDir(self._dir).net
        if self._refresh() is not None:
            raise await records.finished_error(self.object_id)
        if not net_dir.is_dir():
            raise InvalidError(f"Sandbox {self.object_id} has no outbound network (block_network=True, or no "
                               "slirp4netns on this host): there is no policy to change.")
        try:
            netplan.change_policy(net_dir, cidrs, domains, [guest for guest, _, _ in self._record.tunnels],
                                  own_stack=gvisor.runs(str(self._dir)))  # its filter sits on the link
        except OSError as exc:
            if self._refresh() is not None:
                raise await records.finished_error(self.object_id) from None
            raise exception.ExecutionError(f"Could not change the network policy of {self.object_id}: {exc}") from exc

    @synchronized
    async def wait_until_ready(self, *, timeout: int = 300) -> None:
        """Block until the create's readiness_probe succeeds (checked every interval_ms)."""
        self._ensure_attached()
        positive_seconds(timeout)
        if self._record.readiness_probe is None:
            raise InvalidError("wait_until_ready() needs a sandbox created with readiness_probe="
                               "modal.Probe.with_tcp(...) or modal.Probe.with_exec(...).")
        probe = Probe.from_json(self._record.readiness_probe)
        deadline = time.monotonic() + timeout
        while not await self._probe_passes(probe):
            if time.monotonic() >= deadline:
                raise exception.TimeoutError(f"Sandbox {self.object_id} was not ready within {timeout}s.")
            await _aio.sleep(probe.interval_ms / 1000)

    async def _probe_passes(self, probe: Probe) -> bool:
        if self._refresh() is not None:
            raise await records.finished_error(self.object_id)
        return await self._init.passes(probe.argv())

    # Entrypoint stdio ----------------------------------------------------

    def _entry_reader(self, path: Path, fd: int) -> StreamReader[str]:
        source = FollowSource(path, lambda: self._refresh() is not None)
        self._entry_sources.append(source)
        return StreamReader(source, fd, text=True, by_line=True)

    @property
    def stdout(self) -> StreamReader[str]:
        self._ensure_attached()  # as Modal's three stdio properties and filesystem: ClientClosed once detached
        if self._stdout is None:
            self._stdout = self._entry_reader(paths.SandboxDir(self._dir).stdout, 1)
        return self._stdout

    @property
    def stderr(self) -> StreamReader[str]:
        self._ensure_attached()
        if self._stderr is None:
            self._stderr = self._entry_reader(paths.SandboxDir(self._dir).stderr, 2)
        return self._stderr

    @property
    def stdin(self) -> StreamWriter:
        self._ensure_attached()
        if self._stdin is None:
            self._stdin = StreamWriter(open_fd=self._entry_stdin, close_remote=self._init.close_entry_stdin)
        return self._stdin

    async def _entry_stdin(self) -> int:
        return await self._client().entry_stdin()

    # Files ---------------------------------------------------------------

    @property
    def filesystem(self) -> SandboxFilesystem:
        """Modal 1.6's file API: read_bytes, write_text, copy_to_local, list_files, ..."""
        self._ensure_attached()
        if self._filesystem is None:
            self._filesystem = SandboxFilesystem(self._client)
        return self._filesystem

    @synchronized
    async def open(self, path: str, mode: str = "r") -> FileIO:
        """Open a file in the sandbox (Modal 1.5's API): modes r w a x, with b and +.
        A relative path is relative to the sandbox's working directory."""
        deprecated("2026-03-09", "`Sandbox.open()` is deprecated. Use the `Sandbox.filesystem` APIs instead for "
                   "improved reliability.")
        return await FileIO._open(self._client(), path, mode, self._record.verbose)

    @synchronized
    async def snapshot_filesystem(self, timeout: int = 55, *, ttl: Any = 2592000) -> "images.Image":
        """The sandbox's filesystem now, as an Image a new sandbox can start from (image sandboxes only)."""
        self._ensure_attached()
        _check_snapshot_options(timeout, ttl)
        return await _aio.offload(snapshot.snapshot_filesystem, self.object_id, self._record.image_id,
                                  self.returncode is None, timeout)

    @synchronized
    async def snapshot_directory(self, path: Any, *, timeout: int = 55, ttl: Optional[int] = 30 * 24 * 3600,
                                 _experimental_encryption_key: Optional[bytes] = None) -> "images.Image":
        """One directory of the running sandbox, as an Image (mount it with mount_image)."""
        self._ensure_attached()
        path = sandbox_path(path, "Snapshot")
        _check_snapshot_options(timeout, ttl)
        _check_no_encryption_key("snapshot_directory", _experimental_encryption_key)
        return await snapshot.snapshot_directory(self._client(), path, timeout)

    @synchronized
    async def mount_image(self, path: Any, image: Any, *, _experimental_encryption_key: Optional[bytes] = None) -> None:
        """Mount a built image (or from_scratch()) at `path`, with a writable layer of its own;
        the path is made if missing, what it held is hidden until unmount_image(path)."""
        self._ensure_attached()
        _check_no_encryption_key("mount_image", _experimental_encryption_key)
        path = sandbox_path(path, "Mount")
        if path == "/":
            raise InvalidError("mount_image() cannot mount over the sandbox's root `/`: pass a directory.")
        images.check_mountable(image, "Sandbox.mount_image")
        self._check_mounts_served()
        await mounts.mount(self._client(), path, images.mountable_layers(image))

    @synchronized
    async def unmount_image(self, path: Any) -> None:
        """Unmount the image mount_image() put at exactly `path`; what was there shows again."""
        self._ensure_attached()
        path = sandbox_path(path, "Unmount")
        self._check_mounts_served()
        await mounts.unmount(self._client(), path)

    def _check_mounts_served(self) -> None:
        """Before any work (a layer made, an image resolved): the gVisor runner cannot mount."""
        if self._record.runner == "gvisor":
            raise initclient.mounts_refused(self.object_id)

    @synchronized
    async def reload_volumes(self, *, timeout: int = 55) -> None:
        """Mounted volumes are live bind mounts: every sandbox already sees the latest state."""
        self._ensure_attached()
        positive_seconds(timeout)

    @synchronized
    async def ls(self, path: str) -> List[str]:
        """Names of the entries of a directory in the sandbox."""
        deprecated("2026-04-15", "`Sandbox.ls()` is deprecated. Use `Sandbox.filesystem.list_files()` instead for "
                   "improved reliability.")
        return [name for name, _ in await self._client().list_dir(path)]

    @synchronized
    async def mkdir(self, path: str, parents: bool = False) -> None:
        """Create a directory in the sandbox; parents=True behaves like `mkdir -p`."""
        deprecated("2026-04-15", "`Sandbox.mkdir()` is deprecated. Use `Sandbox.filesystem.make_directory()` instead "
                   "for improved reliability.")
        await self._client().make_dirs(path, parents)

    @synchronized
    async def rm(self, path: str, recursive: bool = False) -> None:
        """Remove a file or an empty directory (a whole tree with recursive=True)."""
        deprecated("2026-04-15", "`Sandbox.rm()` is deprecated. Use `Sandbox.filesystem.remove()` instead for "
                   "improved reliability.")
        await self._client().remove(path, recursive)

    @synchronized
    async def watch(self, path: str, filter: Optional[List[FileWatchEventType]] = None,
                    recursive: Optional[bool] = None,
                    timeout: Optional[int] = None) -> AsyncGenerator[FileWatchEvent, None]:
        """Events on `path` in the sandbox (Modal 1.5's API); `filter` keeps only those types."""
        deprecated("2026-05-08", "`Sandbox.watch()` is deprecated. Use `Sandbox.filesystem.watch()` instead for "
                   "improved reliability.")
        client = self._client()
        check_watch_args(filter, timeout)
        async for event in watch_events(client, path, filter, bool(recursive), timeout):
            yield event

    # Exec ----------------------------------------------------------------

    @typed_exec  # exec's overloads: ContainerProcess[str] or [bytes] by text=
    @synchronized
    async def exec(
        self,
        *args: str,
        stdout: StreamType = StreamType.PIPE,
        stderr: StreamType = StreamType.PIPE,
        timeout: Optional[int] = None,
        workdir: Optional[str] = None,
        env: Optional[Mapping[str, Optional[str]]] = None,
        secrets: Optional[Sequence[Secret]] = None,
        text: bool = True,
        bufsize: int = -1,
        pty: bool = False,
        _pty_info: Any = None,
        pty_info: Any = None,
    ) -> ContainerProcess[Any]:
        """Run a command in the sandbox; returns as soon as it has started."""
        if pty_info is not None or _pty_info is not None:
            deprecated("2025-09-12", "The `_pty_info` and `pty_info` parameters are deprecated and will be removed "
                       "in a future release. Set the `pty` parameter to `True` instead.")
        client = self._client()
        spec = ExecSpec(args, merge_env(env, secrets), workdir, timeout, output_of(stdout, "stdout"),
                        output_of(stderr, "stderr"), text, bufsize)
        if self._record.verbose:
            verbose_logger.info("Sandbox exec started: %s", " ".join(spec.args))
        return await client.exec(spec, pty=flag(pty, "pty") or pty_info is not None or _pty_info is not None)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time, as print() does (the caller may redirect it)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def _enable_verbose_output() -> None:
    if not verbose_logger.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        verbose_logger.addHandler(handler)
        verbose_logger.setLevel(logging.INFO)
        verbose_logger.propagate = False
