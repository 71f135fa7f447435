"""cgroup.json is not trusted: whatever it names gets killed and removed after a crash, so
it may only name the sandbox's own cgroup under pysandbox's parent (issue 12, item 12)."""

import json
from pathlib import Path

import pytest

from pysandbox._state import paths
from pysandbox.exception import ExecutionError
from pysandbox.runtime import cgroups

from .test_cgroups import HYBRID_MOUNTINFO, UNIFIED_MOUNTINFO

SID = "sb-" + "a" * 22
OTHER = "sb-" + "b" * 22
V1 = cgroups.parse_mountinfo(HYBRID_MOUNTINFO)
V2 = cgroups.parse_mountinfo(UNIFIED_MOUNTINFO)
OWN_V2 = f"/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service/pysandbox/{SID}"


def listed(fs, data):
    directory = Path("/state/sandboxes") / SID
    fs.create_file(directory / paths.CGROUP_NAME, contents=data if isinstance(data, str) else json.dumps(data))
    return directory


def test_the_sandboxes_own_cgroups_load(fs):
    v1 = {"version": 1, "dirs": {"memory": f"/sys/fs/cgroup/memory/pysandbox/{SID}",
                                  "cpu": f"/sys/fs/cgroup/cpu,cpuacct/pysandbox/{SID}"}}
    assert cgroups.load(listed(fs, v1), V1) == cgroups.SandboxCgroup(1, v1["dirs"])
    directory = Path("/state/sandboxes") / SID
    (directory / paths.CGROUP_NAME).write_text(json.dumps({"version": 2, "dirs": {"pids": OWN_V2}}))
    assert cgroups.load(directory, V2).dirs == {"pids": OWN_V2}


@pytest.mark.parametrize("version, path", [
    (1, "/sys/fs/cgroup/memory/user.slice"),  # an unrelated cgroup
    (1, f"/sys/fs/cgroup/memory/pysandbox/{OTHER}"),  # another sandbox's
    (1, f"/sys/fs/cgroup/memory/pysandbox/{SID}/.."),
    (1, f"/sys/fs/cgroup/memory/x/../pysandbox/{SID}"),
    (1, f"/sys/fs/cgroup/memory//pysandbox/{SID}"),
    (1, f"sys/fs/cgroup/memory/pysandbox/{SID}"),
    (1, f"/tmp/pysandbox/{SID}"),  # not a cgroup filesystem
    (2, f"/sys/fs/cgroup/memory/pysandbox/{SID}"),  # a v1 hierarchy listed as v2
    (1, f"/sys/fs/cgroup/memory/pysandbox/{SID}/child"),
    (1, 7),
])
def test_anything_else_is_refused_naming_the_file(fs, version, path):
    directory = listed(fs, {"version": version, "dirs": {"memory": path}})
    with pytest.raises(ExecutionError, match="refused|corrupt") as info:
        cgroups.load(directory, V1)  # the hybrid host: v1 hierarchies, cgroup2 at /sys/fs/cgroup/unified
    assert str(directory / paths.CGROUP_NAME) in str(info.value)


@pytest.mark.parametrize("data", ["{", "[]", {"version": 1}, {"version": 1, "dirs": ["x"]}, {"version": 3, "dirs": {}},
                                  {"version": 1, "dirs": {"memory": None}}])
def test_a_corrupt_list_is_refused(fs, data):
    with pytest.raises(ExecutionError, match=str(Path("/state/sandboxes") / SID / paths.CGROUP_NAME)):
        cgroups.load(listed(fs, data), V1)


def test_a_refused_cgroup_is_neither_killed_nor_removed(fs, monkeypatch):
    victim = "/sys/fs/cgroup/pids/user.slice"
    fs.create_file(f"{victim}/cgroup.procs", contents="1\n")
    fs.create_file(f"{victim}/cgroup.kill", contents="")
    monkeypatch.setattr(cgroups, "_mounts", lambda: V1)
    killed = []
    monkeypatch.setattr(cgroups.signal, "pidfd_send_signal", lambda *args: killed.append(args))
    directory = listed(fs, {"version": 1, "dirs": {"pids": victim}})
    with pytest.raises(ExecutionError, match="refused"):
        cgroups.remove_listed(directory)
    assert Path(victim).is_dir() and Path(victim, "cgroup.kill").read_text() == "" and killed == []
