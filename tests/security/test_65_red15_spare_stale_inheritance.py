"""Red team (red15): a spare-started sandbox ran under the resource limits and umask its creator had one
create earlier.

A supervisor inherits its creator's process attributes and hands them down to the sandbox: resource limits
(a caller lowers RLIMIT_FSIZE, RLIMIT_AS or RLIMIT_NOFILE to bound the code it runs), the umask, ignored
signals, no_new_privs, a seccomp filter, the CPU affinity. A spare (runtime/spare.py) is spawned after a
create, so the next sandbox got what the creator had then: a limit the caller set in between was silently
not applied to it (a fresh supervisor, PYSANDBOX_WARM_SPARE=0, applies it). A spare started under other
attributes than the creator's now must be let go, as one for another identity is."""

import os
import resource
import time

import pytest

from pysandbox._state import paths, records
from pysandbox.exception import ConflictError
from pysandbox.runtime import spare

pytestmark = pytest.mark.rootless

SOFT_FSIZE = 1 << 30


def inside_limits(sb):
    try:
        return sb.exec("sh", "-c", "grep 'Max file size' /proc/self/limits; umask").stdout.read().split()
    except ConflictError as exc:  # what ended it (CI D, CI I: a test helper took the exec, tests/listeners.py)
        log = paths.SandboxDir.of(sb.object_id).log
        pytest.fail(f"{sb.object_id} ended before its first exec ({exc.__context__!r}; "
                    f"{records.read_exit(sb.object_id)}, created "
                    f"{time.time() - sb._record.created_at:.3f} s ago); its supervisor.log:\n{log.read_text()[-4000:]}")


def test_a_limit_set_after_a_spare_started_binds_the_next_sandbox(sandboxes, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)
    sandboxes()
    assert spare._waiting is not None  # started under the limits of now
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    if soft != resource.RLIM_INFINITY and soft <= SOFT_FSIZE:
        pytest.skip("RLIMIT_FSIZE is tight already")
    umask = os.umask(0o077)
    resource.setrlimit(resource.RLIMIT_FSIZE, (SOFT_FSIZE, hard))
    try:
        sb = sandboxes()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        os.umask(umask)
    assert inside_limits(sb) == ["Max", "file", "size", str(SOFT_FSIZE), str(hard) if hard != resource.RLIM_INFINITY
                                 else "unlimited", "bytes", "0077"]
