"""What a sandbox or an exec should be: frozen, validated at construction.

Everything a user can get wrong is rejected here, with Modal's exception and a
message that says what to change, before any process or file is created.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import attrs

from .. import settings
from .._validate import flag, is_object_name, object_name, positive_seconds
from ..exception import InvalidError, UnimplementedError
from ..network import check_cidrs, check_domains
from ..probe import Probe
from ..resources import Resources

ARG_MAX_BYTES = 2**16
NETWORK_MODES = ("default", "none")  # every sandbox has a network namespace of its own
OUTPUTS = ("pipe", "stdout", "devnull")  # where an exec's stdout or stderr goes (the API's StreamType)
# The one default environment: every sandbox starts from it, then the image's ENV (RootFS.env)
# or the host image's PATH (runtime/layout.default_env), then the caller's env.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "xterm",
    # Modal's images run Python unbuffered, so entrypoint output streams live.
    "PYTHONUNBUFFERED": "1",
}


def check_args(args: Sequence[Any]) -> Tuple[str, ...]:
    if not all(isinstance(arg, str) for arg in args):
        raise InvalidError("All entrypoint arguments must be strings")
    if sum(len(arg) for arg in args) > ARG_MAX_BYTES:
        raise InvalidError(
            f"Total length of arguments exceeds {ARG_MAX_BYTES} bytes; pass large data through a file or stdin."
        )
    if any("\0" in arg for arg in args):
        raise InvalidError("Arguments must not contain NUL bytes.")
    return tuple(args)


def check_workdir(workdir: Optional[str]) -> Optional[str]:
    if workdir is None:
        return None
    if not isinstance(workdir, str) or not workdir.startswith("/"):
        raise InvalidError(f"workdir must be an absolute path, got: {workdir}")
    if "\0" in workdir:
        raise InvalidError("workdir must not contain NUL bytes.")
    return workdir


def check_timeout(value: Any, what: str, allow_none: bool) -> Optional[float]:
    if value is None and not allow_none:
        raise InvalidError("`timeout=None` is only supported for experimental persistent Sandboxes.")
    return positive_seconds(value, what, allow_none=allow_none)


def valid_name(name: object) -> bool:
    """Whether a sandbox can be called `name` (then also a file name in the name registry)."""
    return is_object_name(name, id_prefix="ap-")


def check_name(name: Optional[str]) -> Optional[str]:
    if name is None:
        return None
    return object_name(name, "Sandbox", id_prefix="ap-")


def check_tags(tags: Optional[Mapping[str, str]]) -> Dict[str, str]:
    if tags is None:
        return {}
    if not isinstance(tags, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise InvalidError("tags must be a dict of str to str")
    return dict(tags)


def check_experimental_options(options: Any) -> Dict[str, str]:
    """Modal passes these on as strings; pysandbox understands two: "runner" (docs/RUNNERS.md) and
    "tether" (True: the sandbox ends when the process that created it exits, as the pytest
    plugin's do)."""
    if options is None:
        return {}
    if not isinstance(options, Mapping) or not all(isinstance(key, str) for key in options):
        raise InvalidError(f"experimental_options must be a dict with str keys, got {options!r}")
    unknown = sorted(set(options) - {"runner", "tether"})
    if unknown:  # Modal's own (enable_docker_in_gvisor, vm_runtime, ...) have no local implementation
        raise UnimplementedError(f"experimental_options {unknown} are not supported by pysandbox: it understands "
                                 f"only 'runner' (one of {', '.join(settings.RUNNERS)}) and 'tether' (a bool).")
    if "tether" in options and not isinstance(options["tether"], bool):
        raise InvalidError(f"experimental_options tether must be True or False, got {options['tether']!r}")
    return {key: str(value) for key, value in options.items()}


def check_runner(runner: Optional[str]) -> str:
    """The runner asked for per sandbox, else PYSANDBOX_RUNNER's, else bwrap."""
    if runner is None:
        return settings.runner()
    if runner not in settings.RUNNERS:
        raise InvalidError(f"experimental_options runner={runner!r} is not a runner: choose one of "
                           f"{', '.join(settings.RUNNERS)}.")
    return runner


@attrs.frozen
class Bind:
    """A host directory or file bound into the sandbox at `path`. `identity` (st_dev, st_ino)
    is set for a directory in storage sandboxes write to (a volume): the host opened it without
    following symlinks, and the runner's mount must be that very directory (checked by the
    supervisor's staging and by sandbox-init before anything runs)."""

    source: str
    path: str
    read_only: bool = False
    identity: Optional[Tuple[int, int]] = None


@attrs.frozen
class RootFS:
    """What a sandbox started from an image gets: its layers, its runtime config.

    An image root is an overlay: the image's layer directories read-only below, a
    writable directory (`upper/rootfs`, with overlayfs's `upper/work` beside it on the
    same filesystem) on top. For an ordinary sandbox `upper` is the sandbox's own upper
    directory, removed by the supervisor at terminate; for a build sandbox it is the
    temporary directory that becomes the new layer."""

    image_id: str
    lowers: Tuple[str, ...]  # layer directories, bottom first
    env: Dict[str, str] = attrs.field(factory=dict)  # BASE_ENV plus the image's ENV
    workdir: Optional[str] = None
    entrypoint: Tuple[str, ...] = ()
    cmd: Tuple[str, ...] = ()
    upper: Optional[str] = None  # a build's own upper directory (kept after teardown); None: the sandbox's

    def command(self, args: Tuple[str, ...]) -> Tuple[str, ...]:
        """Docker's rule: arguments replace CMD and follow ENTRYPOINT."""
        return (*self.entrypoint, *(args or self.cmd))


@attrs.frozen
class SandboxSpec:
    entrypoint: Tuple[str, ...] = attrs.field(converter=check_args)
    env: Dict[str, str] = attrs.field(factory=dict)
    workdir: Optional[str] = attrs.field(default=None, converter=check_workdir)
    timeout: float = attrs.field(default=300, converter=lambda v: check_timeout(v, "timeout", False))
    idle_timeout: Optional[float] = attrs.field(
        default=None, converter=lambda v: check_timeout(v, "idle_timeout", True)
    )
    name: Optional[str] = attrs.field(default=None, converter=check_name)
    tags: Dict[str, str] = attrs.field(factory=dict, converter=check_tags)
    verbose: bool = attrs.field(default=False, converter=lambda value: flag(value, "verbose"))
    pty: bool = attrs.field(default=False, converter=lambda value: flag(value, "pty"))
    volumes: Tuple[Bind, ...] = ()  # from volume.mount_plan
    # "default": outbound access through the user-mode network helper (runtime/netplan.py);
    # "none": loopback only (block_network=True).
    network: str = attrs.field(default="default", validator=attrs.validators.in_(NETWORK_MODES))
    ports: tuple = attrs.field(default=())  # (sandbox port, encrypted), from network.check_ports
    outbound_cidr_allowlist: Optional[Tuple[str, ...]] = attrs.field(default=None, converter=check_cidrs)
    outbound_domain_allowlist: Optional[Tuple[str, ...]] = attrs.field(default=None, converter=check_domains)
    readiness_probe: Optional[Probe] = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(Probe))
    )
    resources: Resources = attrs.field(factory=Resources)  # cpu, memory, pids, disk (resources.py)
    runner: str = attrs.field(default=None, converter=check_runner)  # "bwrap" or "nsjail"
    tethered: bool = False  # ends when its creator exits (experimental_options "tether")

    @ports.validator
    @outbound_cidr_allowlist.validator
    @outbound_domain_allowlist.validator
    def _needs_default_network(self, attribute, value) -> None:
        if value and self.network != "default":
            raise InvalidError(f"{attribute.name} needs the default network, not network={self.network!r}")
    # The image's layers and runtime config (RootFS); None: the host image.
    rootfs: Optional[RootFS] = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(RootFS)))


@attrs.frozen
class ExecSpec:
    args: Tuple[str, ...] = attrs.field(converter=check_args)
    env: Dict[str, str] = attrs.field(factory=dict)
    workdir: Optional[str] = attrs.field(default=None, converter=check_workdir)
    timeout: Optional[float] = attrs.field(default=None, converter=lambda v: check_timeout(v, "timeout", True))
    stdout: str = attrs.field(default="pipe")  # one of OUTPUTS
    stderr: str = attrs.field(default="pipe")
    text: bool = attrs.field(default=True, converter=lambda value: flag(value, "text"))
    bufsize: int = attrs.field(default=-1)

    @args.validator
    def _not_empty(self, _attribute, value) -> None:
        if not value:
            raise InvalidError("exec() needs a command: pass at least one argument.")

    @stdout.validator
    @stderr.validator
    def _output(self, attribute, value) -> None:
        if value not in OUTPUTS:
            raise InvalidError(f"{attribute.name} must be one of {', '.join(OUTPUTS)}, got {value!r}")

    @bufsize.validator
    def _bufsize(self, _attribute, value) -> None:
        if value not in (-1, 1):
            raise InvalidError(f"bufsize must be -1 (unbuffered) or 1 (line-buffered), got {value!r}")
        if value == 1 and not self.text:  # Modal raises it once the process runs; before any work is kinder
            raise ValueError("line-buffering is only supported when text=True")
