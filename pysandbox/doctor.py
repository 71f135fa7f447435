"""`pysandbox doctor`: what this host gives pysandbox, and what each missing piece disables.

Each check is a small function returning a Finding; none changes the host. The
last one starts a real sandbox, since only that proves the pieces fit together.
"""

from __future__ import annotations

import functools
import os
import platform
import shutil
import subprocess
import time
from typing import Callable, List, Optional

import attrs

from . import identity as ids
from . import settings
from .app import App
from .exception import Error
from .runtime import cgroups, gvisor, netplan
from .runtime.runners import RUNNERS
from .sandbox import Sandbox

Check = Callable[[], "Finding"]


@attrs.frozen
class Finding:
    name: str
    ok: bool
    detail: str
    disables: str = ""  # what does not work without it (empty when ok)
    essential: bool = False  # without it no sandbox can start

    def line(self) -> str:
        mark = "ok " if self.ok else ("ERR" if self.essential else "-- ")
        text = f"{mark} {self.name:<18} {self.detail}"
        return text if self.ok or not self.disables else f"{text}\n    {'':<18} without it: {self.disables}"


def _read(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def kernel() -> Finding:
    return Finding("kernel", True, f"Linux {platform.release()} ({platform.machine()})")


def identity() -> Finding:
    try:
        found = ids.current()
    except Error as exc:  # e.g. root's range overlaps another user's: refused, never used
        return Finding("identity", False, str(exc), "every sandbox", essential=True)
    (_, uid, _), *rest = found.uids
    if os.geteuid() == 0:
        return Finding("identity", True,
                       f"root: sandbox ids 0..{ids.RANGE - 1} are host ids {uid}..{uid + ids.RANGE - 1} "
                       f"(reserved for {ids.OWNER} in {ids.SUBUID} and {ids.SUBGID}, overlapping no one)")
    if rest:
        first, count = rest[0][1], rest[0][2]
        return Finding("identity", True, f"uid {uid}: sandbox root is you, sandbox ids 1..{count} your range "
                                         f"{first}..{first + count - 1} (newuidmap)")
    return Finding("identity", False, f"uid {uid}: sandbox root is you and no other id is mapped: no subordinate range "
                                      f"in {ids.SUBUID}/{ids.SUBGID}, or no newuidmap (the uidmap package)",
                   "su, setpriv, apt's drop to _apt and chown to other ids inside sandboxes; images whose files "
                   "belong to other users keep them as root's")


def native_helpers() -> Finding:
    try:
        for name in ("sandbox-init", "sandbox-supervisor"):
            settings.native_binary(name)
    except Error as exc:
        return Finding("native helpers", False, str(exc), "every sandbox", essential=True)
    return Finding("native helpers", True, f"in {settings.NATIVE_DIR}")


def runner(name: str) -> Finding:
    """The runner `name` (runtime/runners.py): essential if PYSANDBOX_RUNNER picks it."""
    selected = _selected(name)
    try:
        RUNNERS[name].check()
        path = RUNNERS[name].binary()
    except Error as exc:
        return Finding(f"runner: {name}", False, str(exc), "every sandbox" if selected else f"the {name} runner",
                       essential=selected)
    version = _version(path)
    chosen = "" if selected else f" (PYSANDBOX_RUNNER={name}, or per sandbox: docs/RUNNERS.md)"
    return Finding(f"runner: {name}", True, f"{version + ' at ' if version else ''}{path}{chosen}")


def _version(path: str) -> str:
    """The first line `path --version` prints, or "" if it prints none."""
    found = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=10)
    return found.stdout.strip().splitlines()[0] if found.returncode == 0 and found.stdout.strip() else ""


def gvisor_runner() -> Finding:
    """What the gvisor runner gives here: runsc's version and platform, and what it supports (docs/RUNNERS.md)."""
    try:
        gvisor.check()
        binary = gvisor.binary()
        version, platform_name = _version(binary), gvisor.platform(binary)
    except (Error, OSError, subprocess.SubprocessError) as exc:
        return Finding("gvisor", False, str(exc), "runtime='gvisor'")
    return Finding("gvisor", True, f"{version or 'runsc'} at {binary}, platform {platform_name}, "
                                   f"{gvisor.how_it_runs()}; runs {gvisor.SUPPORTED}; "
                                   f"not yet: {gvisor.UNSUPPORTED}")


def _selected(runner: str) -> bool:
    """Whether PYSANDBOX_RUNNER picks `runner` (a wrong value fails the sandbox check, with its reason)."""
    try:
        return settings.runner() == runner
    except Error:
        return False


def user_namespaces() -> Finding:
    limit = _read("/proc/sys/user/max_user_namespaces")
    debian = _read("/proc/sys/kernel/unprivileged_userns_clone")
    apparmor = _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns")
    if limit == "0" or debian == "0" or apparmor == "1":
        why = ("user.max_user_namespaces is 0" if limit == "0" else
               "kernel.unprivileged_userns_clone is 0" if debian == "0" else
               "AppArmor restricts unprivileged user namespaces (apparmor_restrict_unprivileged_userns=1)")
        return Finding("user namespaces", False, why, "every sandbox (enable them with sysctl)", essential=True)
    return Finding("user namespaces", True, f"enabled (max {limit or 'unknown'})")


def seccomp() -> Finding:
    status = _read("/proc/self/status") or ""
    if "Seccomp:" not in status:
        return Finding("seccomp", False, "the kernel has no seccomp filters", "the syscall filter", essential=True)
    return Finding("seccomp", True, "filters supported")


def cgroup_limits() -> Finding:
    found = cgroups.host()
    if not found.parents:
        return Finding("cgroups", False, found.problem or "no writable cgroup",
                       "cpu=/memory= limits and stats; the pids limit falls back to RLIMIT_NPROC")
    controllers = ", ".join(sorted(found.parents))
    missing = [c for c in cgroups.CONTROLLERS if not found.has(c)]
    if missing:
        return Finding(f"cgroups v{found.version}", False, f"writable for {controllers}; {found.problem}",
                       f"{'/'.join(missing)} limits")
    return Finding(f"cgroups v{found.version}", True, f"writable for {controllers}")


def network() -> Finding:
    missing = [name for name in (netplan.HELPER, netplan.NFT) if netplan.tool(name) is None]
    if missing:
        return Finding("network", False, f"{' and '.join(missing)} not found",
                       "outbound network (sandboxes get loopback only), ports and tunnels "
                       "(`apt-get install slirp4netns nftables`)")
    if not netplan.available():
        return Finding("network", False, f"{netplan.TUN} is missing or not open to you",
                       f"outbound network, ports and tunnels ({netplan.needs()})")
    return Finding("network", True, f"slirp4netns + nftables ({netplan.tool(netplan.HELPER)})")


def image_tools() -> Finding:
    if shutil.which("mmdebstrap") is None:
        return Finding("image tools", False, "mmdebstrap not found",
                       "Image.debian_slim() (`apt-get install mmdebstrap`)")
    return Finding("image tools", True, "mmdebstrap")


def sandbox_starts() -> Finding:
    start = time.perf_counter()
    try:
        sb = Sandbox.create(app=App.lookup("pysandbox-doctor", create_if_missing=True), block_network=True)
        try:
            code = sb.exec("true").wait()
        finally:
            sb.terminate(wait=True)
    except Exception as exc:  # any failure here is the finding itself
        return Finding("a sandbox", False, f"could not start: {exc}", "every sandbox", essential=True)
    elapsed = (time.perf_counter() - start) * 1000
    if code != 0:
        return Finding("a sandbox", False, f"started, but `true` exited {code}", "exec", essential=True)
    return Finding("a sandbox", True, f"created, ran `true` and terminated in {elapsed:.0f} ms")


CHECKS: List[Check] = [
    kernel, identity, native_helpers, *(functools.partial(runner, name) for name in RUNNERS), gvisor_runner,
    user_namespaces,
    seccomp, cgroup_limits, network, image_tools,
]


def run(checks: Optional[List[Check]] = None) -> List[Finding]:
    findings = [check() for check in (CHECKS if checks is None else checks)]
    if checks is None and all(f.ok for f in findings if f.essential):
        findings.append(sandbox_starts())
    return findings


def report(findings: List[Finding]) -> str:
    lines = [f.line() for f in findings]
    broken = [f.name for f in findings if not f.ok and f.essential]
    lines.append(f"\nsandboxes cannot start here: fix {', '.join(broken)}" if broken else
                 f"\nsandboxes work here ({sum(not f.ok for f in findings)} optional piece(s) missing)")
    return "\n".join(lines)


def healthy(findings: List[Finding]) -> bool:
    return all(f.ok for f in findings if f.essential)
