"""Item 17: every thread of an exec'd process runs under the same confinement:
the seccomp filter, no_new_privs, sandbox root's capabilities and no others, the same uid/gid maps."""

import json

import psutil
import pytest

from pysandbox import identity

from ..sandbox.test_isolation import SANDBOX_ROOT_CAP_MASK
from ._inside import py_ok

pytestmark = pytest.mark.rootless

FIELDS = ("Seccomp", "Seccomp_filters", "NoNewPrivs", "CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb", "Uid", "Gid")


def test_every_thread_confined_alike(sb):
    out = py_ok(sb, f"""
        import json, threading
        ready = threading.Barrier(9)
        threads = [threading.Thread(target=ready.wait) for _ in range(8)]
        for t in threads:
            t.start()
        def posture(tid):
            base = f"/proc/self/task/{{tid}}"
            status = dict(line.split(":", 1) for line in open(base + "/status"))
            return tuple(tuple(status[f].split()) for f in {FIELDS!r}) + (open(base + "/uid_map").read(), open(base + "/gid_map").read())
        tids = os.listdir("/proc/self/task")
        postures = {{posture(tid) for tid in tids}}
        ready.wait()
        print(len(tids), len(postures))
        print(json.dumps(postures.pop()))
    """)
    counts, posture = out.splitlines()
    assert counts == "9 1"  # nine threads, one posture
    *values, uid_map, gid_map = json.loads(posture)
    fields = dict(zip(FIELDS, values))
    assert fields["Seccomp"] == ["2"] and fields["Seccomp_filters"] == ["1"] and fields["NoNewPrivs"] == ["1"]
    for cap in ("CapPrm", "CapEff", "CapBnd"):
        assert int(fields[cap][0], 16) == SANDBOX_ROOT_CAP_MASK, cap
    assert int(fields["CapAmb"][0], 16) == 0
    assert fields["Uid"] == ["0"] * 4 and fields["Gid"] == ["0"] * 4
    for id_map in (uid_map, gid_map):  # the sandbox's ids, one to one onto the outer namespace's (native/common/userns.h)
        ranges = [tuple(map(int, line.split())) for line in id_map.splitlines()]
        assert ranges[0][:2] == (0, 0) and all(inside == outside for inside, outside, _ in ranges)
        assert sum(count for _, _, count in ranges) == identity.current().size
    # ... which is an unprivileged host id: seen from the host, nothing of the sandbox runs as root
    for process in psutil.Process(sb._record.supervisor.pid).children(recursive=True):
        try:
            ids = (*process.uids(), *process.gids())
        except psutil.NoSuchProcess:
            continue  # a short-lived helper of the supervisor's, gone meanwhile
        assert 0 not in ids, process


def test_entrypoint_confined_like_exec(sandboxes):
    sb = sandboxes("sh", "-c", "grep -E '^(Seccomp|NoNewPrivs|CapEff)' /proc/self/status")
    sb.wait()
    assert sb.stdout.read().split() == ["CapEff:", f"{SANDBOX_ROOT_CAP_MASK:016x}", "NoNewPrivs:", "1", "Seccomp:", "2",
                                        "Seccomp_filters:", "1"]
