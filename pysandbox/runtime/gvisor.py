"""The gVisor runner: `runsc run` of an OCI bundle (docs/RUNNERS.md: what it supports, and why).

gVisor puts a second kernel between sandbox code and the host's: sandbox-init and
everything it starts make their system calls to gVisor's Sentry (in user space, itself
confined by seccomp), which reaches the host's files only through its gofer. The sandbox
is the same as under bwrap (the same root, mounts, init as pid 1, the same protocol),
with what differs:

* runsc passes the sandbox no descriptor but its stdio, and gVisor cannot accept() on a
  host listener: the supervisor hands init its fds and each connection it accepts over
  a socket that is the runner's stdin (`--handoff`, native/common/handoff.h). gVisor passes
  a host socket's SCM_RIGHTS into the sandbox but not out: init relays sb.open's file on its
  connection, the entrypoint's stdin from a pipe and watch()'s events into a socket the host
  sends in, writes snapshot_directory's tree into a socket the host sends (image/treestream.py), and refuses the
  other requests answered with a descriptor (mount_image;
  init_handoff.h, initclient.py says which call); exec(pty=True) runs on a terminal init makes
  and relays. gVisor lets sandbox code reopen init's descriptors through /proc/1/fd, but not
  a socket: its event channel and runsc's stdout and stderr are sockets (the supervisor
  copies the latter into supervisor.log within PYSANDBOX_RUNNER_LOG_MAX).
* runsc makes its own namespaces (its Sentry runs as nobody in a user namespace of its
  own), as root: for a root caller it runs as the caller, with no user namespace of the
  supervisor's (RunnerCommand.self_isolating); for an unprivileged one (runsc would take
  itself for a rootless runsc and make none) as root of the sandbox's user namespace, which
  the supervisor makes as for bwrap and leaves room below for runsc's two (NESTED_USERNS).
  The OCI configuration's user namespace maps sandbox ids to the sandbox identity's host
  range (identity.py, as the other runners map them; rootless, the namespace's own ids,
  which are already those): the gofer reads and writes the host's files as those ids, so
  host DAC holds as under bwrap (a root-only host file is unreadable, the masks are the
  other runners'), and what the sandbox writes to its root and its volumes has the owners
  it gets under bwrap.
* runsc cannot size its root: the supervisor mounts the host image's tmpfs of disk_bytes, or
  an image's overlay, at STAGED_ROOT in the runner's own mount namespace (_root_path); for an
  unprivileged caller in that namespace, at the sandbox's own stage (rootless_stage).
* OCI has no symlink mount: a symlink of the host image (the host's /bin -> usr/bin, BIN_DIR's
  python) is a read-only bind of what it points to.
* The OCI configuration is `RunnerCommand.config` (fds.RUNNER_CONFIG): the bundle is a
  directory in the state directory whose config.json is a link to /proc/self/fd/9.
* The default network: runsc's netstack serves the namespace the supervisor connected (tap0, through
  slirp4netns) with --network=sandbox; the runner child execs runsc into it once connected, and the
  egress filter sits on tap0's netdev egress hook (RunnerCommand.own_netstack; netplan._link_hook).
  With names filtered, the DNS filter has a link of its own there, which runsc adopts too
  (netplan.FILTER_LINK).
  block_network=True: --network=none, a namespace of runsc's.
* Cgroups: runsc's own are off (`--ignore-cgroups`); the supervisor's cgroup holds runsc,
  its gofer and its Sentry, whose memory is the sandbox's.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
from typing import Dict, List, Optional

from .. import identity, settings
from .._core.spec import SandboxSpec
from .._state.files import ensure_dir
from ..exception import InvalidError
from ..identity import IdMap
from . import fds
from .layout import (
    BIN_DIR,
    INIT_PATH,
    SANDBOX_ROOT_CAPS,
    STAGED_ROOT,
    Mount,
    RunnerCommand,
    RunnerInputs,
    overlay_options,
    python_links,
)

# --overlay2=none: the root's writes reach the host's upper (a newer runsc's default keeps them in a file store of
# its own), where snapshot_filesystem copies them and the disk bounds hold (image/snapshot.py).
RUNSC_FLAGS = ("--ignore-cgroups", "--host-uds=none", "--host-fifo=none", "--overlay2=none")
_ALWAYS = ("nosuid", "nodev")
STAGE_ROOT_TMP = "tmp"  # stage.h's: the sized root's /tmp, which the supervisor makes
# The user namespaces runsc makes, run in the sandbox's as its root (an unprivileged caller): its sandbox's and
# its gofer's. Sandbox code under gVisor makes none of the host's: they are the Sentry's own.
NESTED_USERNS = 2


def binary() -> str:
    """runsc: PYSANDBOX_RUNSC, or runsc on PATH (settings.py)."""
    return settings.runsc_binary()


def check() -> None:
    """Refuse, before any work, what the gVisor runner cannot do here: run without runsc, or for an unprivileged
    caller without a subordinate id range (runsc runs as root of the sandbox's user namespace, and maps its
    Sentry to that namespace's nobody: a namespace of the caller's uid alone has none)."""
    binary()
    if _rootless() and identity.current().size < identity.RANGE:
        raise InvalidError("The gVisor runner needs root here, or a subordinate id range for this user "
                           "(/etc/subuid and /etc/subgid entries, and the uidmap package): runsc runs as root of "
                           "the sandbox's user namespace and needs its nobody. Run as root, add the ranges, or "
                           "use the bwrap or nsjail runner.")


def _rootless() -> bool:
    """An unprivileged caller: runsc runs in the sandbox's user namespace, as its root (module docstring)."""
    return os.geteuid() != 0


def how_it_runs() -> str:
    """For doctor: as root, or rootless."""
    return "rootless (runsc as root of the sandbox's user namespace)" if _rootless() else "as root"


LINK_FILTER_KERNEL = (5, 16)  # the netdev egress hook (netplan._link_hook), which AF_PACKET's frames pass


def _kernel() -> tuple:
    """The host kernel's (major, minor)."""
    found = re.match(r"(\d+)\.(\d+)", os.uname().release)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


def refuse(spec: SandboxSpec) -> None:
    """InvalidError, before any work, naming a capability of `spec` the gVisor runner does not have yet
    (docs/RUNNERS.md's table)."""
    if spec.network == "default" and _kernel() < LINK_FILTER_KERNEL:
        raise InvalidError(f"The gVisor runner's default network needs Linux {'.'.join(map(str, LINK_FILTER_KERNEL))} "
                           f"or later (its egress filter needs the netdev egress hook); this is {os.uname().release}. "
                           "Pass block_network=True, or use the bwrap or nsjail runner.")


# What the gvisor runner gives and lacks, for doctor (docs/RUNNERS.md's table says why).
SUPPORTED = "the host image and image=: exec, streams, stdin (the entrypoint's relayed), sb.open, the file API " \
            "and watch (relayed by init), create(pty=True) but its write_eof, exec(pty=True) (relayed by init), " \
            "volumes, limits, timeouts, names and tags, ephemeral_disk, block_network, the default network, " \
            "outbound_cidr_allowlist, outbound_domain_allowlist (at run time: in a sandbox created with one), " \
            "ports and tunnels, snapshot_filesystem, snapshot_directory (streamed out by init), unprivileged callers " \
            "with a subordinate id range"
UNSUPPORTED = "outbound_domain_allowlist at run time in a sandbox created without one, mount_image and " \
              "unmount_image, unprivileged callers without a subordinate id range"


def platform(binary: str) -> str:
    """The platform runsc runs the Sentry on (its default: this runner does not choose one), from `runsc flags`."""
    listed = subprocess.run([binary, "flags"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            timeout=10).stdout  # runsc prints them on stderr
    found = re.search(r'-platform string\n.*\(default "(\w+)"\)', listed)
    return found.group(1) if found else "unknown"


@functools.lru_cache(maxsize=None)
def _bundle() -> str:
    """The shared bundle directory: its config.json is whatever runsc has open as fds.RUNNER_CONFIG."""
    bundle = settings.state_dir() / "gvisor-bundle"
    ensure_dir(bundle, 0o755)
    link = bundle / "config.json"
    target = f"/proc/self/fd/{fds.RUNNER_CONFIG}"
    if not os.path.islink(link) or os.readlink(link) != target:
        tmp = bundle / f"config.json.{os.getpid()}"
        os.symlink(target, tmp)
        os.replace(tmp, link)
    return str(bundle)


def _mount(mount: Mount, source: str, dest: str) -> Dict[str, object]:
    if mount.kind in ("ro-bind", "bind"):
        mode = "ro" if mount.kind == "ro-bind" else "rw"
        return {"destination": dest, "type": "bind", "source": source, "options": ["rbind", mode, *_ALWAYS]}
    if mount.kind == "mask-file":  # opening it fails, as under bwrap: an empty read-only file
        return {"destination": dest, "type": "bind", "source": "/dev/null", "options": ["bind", "ro", *_ALWAYS]}
    if mount.kind == "mask-dir":
        return {"destination": dest, "type": "tmpfs", "source": "tmpfs", "options": ["ro", "mode=755", *_ALWAYS]}
    raise ValueError(f"unknown mount kind {mount.kind!r}")


def _listed_mounts(inputs: RunnerInputs) -> List[Mount]:
    """The inputs' mounts (a symlink bound from its target: the host image's system directories are the host's,
    at the same paths); for the host image, BIN_DIR's python. The inputs' masks are those the sandbox identity
    could read, as under the other runners: the gofer reads as that identity (_id_mappings)."""
    mounts = [Mount("ro-bind", os.path.normpath(os.path.join(os.path.dirname(mount.dest), mount.source)), mount.dest)
              if mount.kind == "symlink" else mount for mount in inputs.mounts]
    if inputs.overlay is not None:
        return mounts
    return mounts + [Mount("ro-bind", target, f"{BIN_DIR}/{name}") for name, target in python_links()]


def runs(sandbox_dir: str) -> bool:
    """Whether the sandbox in `sandbox_dir` runs (or ran) under gVisor: it has runsc's state."""
    return os.path.isdir(runsc_root(sandbox_dir))


def runsc_root(sandbox_dir: str) -> str:
    """runsc's state directory (--root) for the sandbox in `sandbox_dir`; its processes name it on their
    command lines (runtime/reconcile._kill_strays)."""
    return os.path.join(sandbox_dir, "runsc")


def rootless_stage(sandbox_dir: str) -> str:
    """Where the supervisor mounts the root for an unprivileged caller, who has no STAGE_DIR of root's: a
    directory of the sandbox's, made and removed by the supervisor."""
    return os.path.join(sandbox_dir, "stage")


def _stage(inputs: RunnerInputs) -> Optional[str]:
    return rootless_stage(os.path.dirname(inputs.upper)) if _rootless() else None


def _staged_root(inputs: RunnerInputs) -> str:
    stage = _stage(inputs)
    return STAGED_ROOT if stage is None else os.path.join(stage, os.path.basename(STAGED_ROOT))


def _root_path(inputs: RunnerInputs) -> str:
    """The OCI root: STAGED_ROOT, what the supervisor mounts there in the runner's own mount namespace (an
    image's overlay: RunnerCommand.stage_overlay; the host image's tmpfs of disk_bytes: stage_tmpfs); the upper
    directory (the host image with PYSANDBOX_WRITABLE_ROOT_MAX=0); an empty image's upper."""
    overlay = inputs.overlay
    if overlay is None:
        return inputs.source(inputs.upper) if inputs.disk_bytes is None else _staged_root(inputs)
    return _staged_root(inputs) if overlay.lowers else f"{inputs.source(overlay.upper)}/rootfs"


def _stage_tmpfs(inputs: RunnerInputs) -> Optional[str]:
    """The host image's root as bwrap and nsjail make it: a tmpfs of disk_bytes owned by sandbox root
    (runtime/sizes.py); mounted by the supervisor, as the OCI root's size is not runsc's to give."""
    if inputs.overlay is not None or inputs.disk_bytes is None:
        return None
    uid, gid = (0, 0) if _rootless() else identity.current().owner  # ids of the namespace it is mounted in
    return f"size={inputs.disk_bytes},mode=755,uid={uid},gid={gid}"


def _tmp(inputs: RunnerInputs) -> Dict[str, object]:
    """/tmp, mounted explicitly: without a mount there runsc mounts an unsized tmpfs. In the host image's sized
    root it is the root's own /tmp (made by the supervisor), one budget as under bwrap; else a sized tmpfs."""
    if _stage_tmpfs(inputs) is not None:
        return {"destination": "/tmp", "type": "bind", "source": os.path.join(_staged_root(inputs), STAGE_ROOT_TMP),
                "options": ["rbind", "rw", *_ALWAYS]}
    return {"destination": inputs.dest("/tmp"), "type": "tmpfs", "source": "tmpfs",
            "options": [f"size={inputs.tmp_bytes}", "mode=1777", *_ALWAYS]}


def configuration(inputs: RunnerInputs) -> dict:
    """The OCI runtime configuration: the root (_root_path), the mounts in order (their mount points in an image
    resolved inside it: inputs.dest), init as the process."""
    source, dest = inputs.source, inputs.dest
    caps = [f"CAP_{cap}" for cap in SANDBOX_ROOT_CAPS]
    mounts: List[Dict[str, object]] = [
        {"destination": dest("/proc"), "type": "proc", "source": "proc"},
        _tmp(inputs),
        {"destination": f"{dest('/dev')}/shm", "type": "tmpfs", "source": "shm",
         "options": [f"size={inputs.shm_bytes}", "mode=1777", *_ALWAYS]},
    ]
    mounts += [_mount(mount, source(mount.source), dest(mount.dest)) for mount in _listed_mounts(inputs)]
    mounts.append({"destination": dest(INIT_PATH), "type": "bind", "source": source(inputs.init),
                   "options": ["bind", "ro", *_ALWAYS]})
    return {
        "ociVersion": "1.0.0",
        "root": {"path": _root_path(inputs), "readonly": False},
        "hostname": "sandbox",
        "process": {
            "args": inputs.init_argv(["--handoff", *inputs.init_dirs()]), "env": [], "cwd": "/",
            "user": {"uid": 0, "gid": 0}, "noNewPrivileges": True,
            "capabilities": {kind: caps for kind in ("bounding", "effective", "permitted")},
        },
        "mounts": mounts,
        "linux": {"namespaces": [*({"type": kind} for kind in ("pid", "ipc", "uts", "mount", "user")),
                                 _network(inputs)],
                  "uidMappings": _id_mappings(identity.current().uids),
                  "gidMappings": _id_mappings(identity.current().gids)},
    }


def _network(inputs: RunnerInputs) -> Dict[str, str]:
    """The default network: the namespace the supervisor made and connected, which runsc is started in
    (native/supervisor/netns.h: net_own_stack_ready), its netstack serving tap0. Else one of runsc's."""
    return {"type": "network", "path": "/proc/self/ns/net"} if inputs.network == "default" else {"type": "network"}


def _id_mappings(ranges: IdMap) -> List[Dict[str, int]]:
    """The sandbox identity's ranges (identity.py, as the other runners map them): the gofer reads and writes the
    host's files as these host ids, so sandbox root is no more than the sandbox identity's root on the host. An
    unprivileged caller's runsc runs in the sandbox's user namespace, where those ids are the sandbox's own."""
    return [{"containerID": inside, "hostID": inside if _rootless() else outside, "size": count}
            for inside, outside, count in ranges]


def command(inputs: RunnerInputs, binary: str) -> RunnerCommand:
    """`runsc run` of the shared bundle, its state (--root) beside the sandbox's upper directory, the container
    named after the sandbox. Its root (_root_path): the host image's a tmpfs of disk_bytes, or the upper
    directory with PYSANDBOX_WRITABLE_ROOT_MAX=0; an image's its overlay; both mounted by the supervisor."""
    overlay = inputs.overlay
    network = "--network=sandbox" if inputs.network == "default" else "--network=none"
    argv = [binary, "--root", runsc_root(os.path.dirname(inputs.upper)), network, *RUNSC_FLAGS, "run",
            "--bundle", _bundle(), inputs.sandbox_id]
    stage_overlay = overlay_options(overlay, inputs.source, "gvisor") if overlay is not None and overlay.lowers \
        else None
    stage_tmpfs = _stage_tmpfs(inputs)
    return RunnerCommand(argv, json.dumps(configuration(inputs)).encode(), self_isolating=True,
                         own_netstack=inputs.network == "default", stage_overlay=stage_overlay,
                         stage_tmpfs=stage_tmpfs, nested_userns=NESTED_USERNS if _rootless() else None,
                         stage=_stage(inputs) if stage_overlay or stage_tmpfs else None)
