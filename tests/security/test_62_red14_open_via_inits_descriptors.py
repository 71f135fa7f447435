"""Red team (red14): sandbox-init opened the paths of `sb.open` and `sb.filesystem` with open(2), which follows
magic links, and pid 1 may open its own descriptors through /proc/1/fd (or /proc/self/fd) where sandbox code may
not (init is not dumpable). init's stdout and stderr are the host's `supervisor.log`. So sandbox code plants
`/tmp/out -> /proc/1/fd/2` where the caller will write (a job's input, a config file), and the caller's
`sb.filesystem.write_text(data, "/tmp/out")` truncates the host's supervisor.log and writes its data there (a
host file outside the sandbox: the log the host reads a failed start's cause and init's own lines from, which
sandbox code cannot otherwise reach, tests/security/test_56); a read of such a path reads the host's log.
Reproduced for a rootless caller, whose sandbox root is its own uid and owns the log; as root the log is root's
(0600) and init is refused. Severity: medium (a sandbox-chosen path leads a host-side write to a host file).

Fix: init opens with openat2(RESOLVE_NO_MAGICLINKS) (open(2) only where the kernel has no openat2): no
/proc/<pid>/fd, cwd, root or exe link is followed, so a planted link to one is ELOOP; an ordinary symlink still
resolves in the sandbox's root."""

import pytest

import pysandbox as modal
from pysandbox._state import paths

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]


def test_a_link_to_inits_own_descriptors_leads_the_host_nowhere(sb):
    assert sb.exec("sh", "-c", "ln -s /proc/1/fd/2 /tmp/out; ln -s /proc/self/fd/1 /tmp/in").wait() == 0
    log = paths.SandboxDir.of(sb.object_id).log
    before = log.read_bytes()
    attempts = {
        "write_text": lambda: sb.filesystem.write_text("written by the host\n", "/tmp/out"),
        "read_bytes": lambda: sb.filesystem.read_bytes("/tmp/in"),
        "open append": lambda: sb.open("/tmp/out", "a").write("appended by the host\n"),
    }
    opened = []
    for what, attempt in attempts.items():
        try:
            attempt()
        except (modal.exception.Error, OSError):
            continue
        opened.append(what)
    after = log.read_bytes()
    assert after.startswith(before) and b"by the host" not in after, after
    assert opened == [], f"{opened} reached init's own descriptors"
    assert sb.filesystem.read_text("/etc/hostname")  # ordinary paths still open
