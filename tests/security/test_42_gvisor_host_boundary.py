"""Item 42 (red team, session 6): what the gvisor runner's gofer, which reads and writes the host's files as
root, must not give sandbox code that the other runners do not.

* Host files the sandbox's own (unprivileged) id could not read under bwrap or nsjail stay unreadable:
  the masks are a fixed list (layout.MASKED_FILES/MASKED_DIRS), and anything else that only root (or a
  service's own user) may read on the host, e.g. /etc/postgresql/*/main/pg_hba.conf (0640 postgres),
  /etc/default/cacerts (0600), a wireguard or NetworkManager key, is readable as gVisor's root.
* Sandbox code reaches none of init's host descriptors through /proc/1/fd (init is not dumpable, which
  the host kernel enforces and gVisor's does not): not its stdout and stderr, the host's supervisor.log
  (an unbounded write to the host's disk, and lines the host quotes in its error messages), not the
  event pipe (an 'I' there makes the supervisor record an idle timeout, exit 0, for a sandbox that was
  terminated). SIGKILL to init: under Linux pid 1 ignores it from its own namespace; under gVisor the
  whole sandbox ends (documented in docs/RUNNERS.md; both asserted).
* A disk fill of the root stops at the writable_root bound, as under the other runners (matrix item 4):
  the gvisor root is the upper directory on the state disk with no size at all.
"""

import contextlib
import json
import os
import secrets
import stat

import pytest

from pysandbox._state import paths
from pysandbox.exception import ConflictError
from pysandbox.runtime import cgroups
from pysandbox.runtime.layout import MASKED_DIRS, MASKED_FILES

from ._inside import sh

pytestmark = [pytest.mark.gvisor(only=True), pytest.mark.rootless]  # its sandboxes are the gvisor runner's


@pytest.fixture
def root_only_host_file():
    """A root-only (0600) file in the host's /etc, which the host image binds read-only; not one of the masks.
    An unprivileged caller cannot make one: it takes one the host has."""
    if os.geteuid() != 0:
        yield _a_host_file_only_root_may_read()
        return
    path = f"/etc/pysandbox-redteam-{secrets.token_hex(4)}"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, b"host-secret\n")
    finally:
        os.close(fd)
    yield path
    os.unlink(path)


def _a_host_file_only_root_may_read() -> str:
    for directory, _, names in os.walk("/etc"):
        for name in sorted(names):
            path = os.path.join(directory, name)
            info = os.lstat(path)
            masked = path.lstrip("/") in MASKED_FILES or any(path.lstrip("/").startswith(d + "/") for d in MASKED_DIRS)
            if stat.S_ISREG(info.st_mode) and info.st_uid == 0 and info.st_mode & 0o077 == 0 and not masked:
                return path
    pytest.skip("this host's /etc has no root-only file outside the masks")


def test_a_host_file_only_root_may_read_stays_unreadable(sandboxes, root_only_host_file):
    sb = sandboxes("sleep", "300")
    code, out = sh(sb, f"cat {root_only_host_file}")
    assert code != 0 and "Permission denied" in out and "host-secret" not in out, \
        f"gVisor's root read a root-only host file: {out!r}"


@pytest.mark.gvisor  # under every runner
def test_the_roots_disk_fill_stops_at_the_writable_root_bound(sandboxes, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", str(64 << 20))
    sb = sandboxes("sleep", "300")
    code, out = sh(sb, "dd if=/dev/zero of=/fill bs=1M count=256 2>&1; code=$?; sync; exit $code")  # dd's status
    upper = paths.sandbox_dir(sb.object_id) / "upper"
    on_host = sum(os.lstat(os.path.join(d, name)).st_size for d, _, names in os.walk(upper) for name in names)
    assert code != 0 and on_host <= 64 << 20, f"the root took {on_host} bytes of the host's disk: {out!r}"


def test_a_tmp_fill_stops_at_its_bound_in_a_sized_root(sandboxes, monkeypatch):
    # runsc mounts an unsized tmpfs at /tmp unless the configuration has one: in a sized root /tmp is the root's
    # own (one budget, as under bwrap), so the root and /tmp together stop at the root's size.
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", str(16 << 20))
    sb = sandboxes("sleep", "300")
    code, out = sh(sb, "dd if=/dev/zero of=/tmp/fill bs=1M count=64 2>&1")
    assert code != 0 and "No space left on device" in out, out
    code, out = sh(sb, "dd if=/dev/zero of=/fill bs=1M count=64 2>&1")
    assert code != 0 and "No space left on device" in out, out
    code, out = sh(sb, "du -sk /fill /tmp/fill | cut -f1")
    assert code == 0 and sum(int(kib) for kib in out.split()) <= 16 << 10, out


@pytest.mark.gvisor  # under every runner
def test_inits_host_descriptors_are_out_of_reach(sandboxes):
    sb = sandboxes("sleep", "300")
    directory = paths.SandboxDir.of(sb.object_id)
    code, out = sh(sb, "for fd in 1 2 6; do printf 'Ispoofed\\n' > /proc/1/fd/$fd && echo wrote $fd; done")
    assert "wrote" not in out, out
    assert b"spoofed" not in directory.log.read_bytes()
    sb.terminate()
    sb.wait(raise_on_termination=False)
    with open(directory.exit) as f:
        assert json.load(f)["status"] == "terminated"


@pytest.mark.gvisor  # under every runner
def test_sigkill_to_init_from_inside(sandboxes, runner):
    """Linux ignores it (pid 1 from its own namespace); gVisor does not, and the sandbox ends as if init were
    killed, 137 (docs/RUNNERS.md): code that could already end every process of its own sandbox ends it, and
    nothing of it is left."""
    sb = sandboxes("sleep", "300")
    if runner != "gvisor":
        sh(sb, "kill -KILL 1; sleep 0.5")  # SIGKILL: SIGTERM is init's to handle (a shutdown)
        assert sb.exec("true").wait() == 0
        return
    with contextlib.suppress(ConflictError):  # the sandbox may end before init reports the exec started
        sh(sb, "kill -KILL 1; sleep 0.5")
    assert sb.wait(raise_on_termination=False) is None and sb.returncode == 137
    with open(paths.SandboxDir.of(sb.object_id).exit) as f:
        assert json.load(f)["code"] == 137


FILL = "dd if=/dev/zero of={path} bs=1M count={mib} 2>&1; code=$?; rm -f {path}; exit $code"


@pytest.mark.gvisor  # under every runner
def test_every_writable_place_but_volumes_is_bounded(sandboxes, monkeypatch, runner):
    """Red team round 2: the root, /tmp and /dev/shm are sized, and each place a sandbox can write must stop
    below 128 MiB here. Under gVisor runsc mounts /dev itself as a writable tmpfs whose size this runsc
    ignores (a read-only one breaks writes to /dev/null): the documented gap, bounded by the memory limit
    only (the next test)."""
    for name, value in (("WRITABLE_ROOT", 64 << 20), ("TMP", 16 << 20), ("DEV_SHM", 16 << 20)):
        monkeypatch.setenv(f"PYSANDBOX_{name}_MAX", str(value))
    sb = sandboxes("sleep", "300")
    places = ["/", "/root", "/tmp", "/dev/shm", "/run", "/var/tmp"] + ([] if runner == "gvisor" else ["/dev"])
    held = {}
    for place in places:
        code, out = sh(sb, FILL.format(path=f"{place.rstrip('/')}/rt2-fill", mib=128))
        if code == 0:
            held[place] = out.strip().splitlines()[-1]
    assert not held, f"128 MiB written past every bound: {held}"


@pytest.mark.skipif(not cgroups.host().has("memory"), reason="no writable cgroup here (unprivileged on v1)")
def test_under_gvisor_dev_is_bounded_by_the_memory_limit(sandboxes):
    """/dev under gVisor (above): its pages are the Sentry's memory, in the supervisor's cgroup, so a memory
    limit stops a fill of it."""
    sb = sandboxes("sleep", "300", memory=(128, 128))
    code, _ = sh(sb, FILL.format(path="/dev/rt2-fill", mib=512))
    assert code != 0
