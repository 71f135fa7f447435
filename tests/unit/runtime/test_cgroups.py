"""Cgroup detection, delegation and limits against faked /proc and /sys/fs/cgroup trees
(pyfakefs); the real v1 hierarchies of this host are exercised in tests/sandbox/test_limits.py."""

import os
import shutil
from pathlib import Path

import pytest
from pyfakefs.helpers import set_uid

from pysandbox.exception import InvalidError
from pysandbox.resources import Resources, SandboxStats
from pysandbox.runtime import cgroups, limits
from pysandbox.runtime.cgroups import v1, v2

HYBRID_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED_MOUNTINFO = "30 23 0:27 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n"
USER_CGROUP = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-r1.scope"
DELEGATED = "/sys/fs/cgroup/user.slice/user-1000.slice/user@1000.service"
LIMITED = Resources(cpu_request=0.5, cpu_limit=1.5, memory_request=64, memory_limit=256, pids_limit=100)


def fake_proc(fs, mountinfo, proc_cgroup):
    fs.create_file("/proc/self/mountinfo", contents=mountinfo)
    fs.create_file("/proc/self/cgroup", contents=proc_cgroup)


def unified_host(fs, controllers="cpuset cpu io memory pids"):
    fake_proc(fs, UNIFIED_MOUNTINFO, f"0::{USER_CGROUP}\n")
    fs.create_file("/sys/fs/cgroup/cgroup.controllers", contents=controllers)
    fs.create_file("/sys/fs/cgroup/cgroup.subtree_control", contents="")


def delegate_to_user(fs, controllers="cpu memory pids"):
    """systemd's user@1000.service: everything from it down belongs to uid 1000."""
    unified_host(fs)
    fs.create_dir("/sys/fs/cgroup/user.slice/user-1000.slice")
    for path in (DELEGATED, DELEGATED + "/app.slice", DELEGATED + "/app.slice/run-r1.scope"):
        fs.create_dir(path)
        fs.create_file(path + "/cgroup.procs")
        fs.create_file(path + "/cgroup.subtree_control", contents="")
        for p in (path, path + "/cgroup.procs", path + "/cgroup.subtree_control"):
            os.chown(p, 1000, 1000)
    fs.create_file(DELEGATED + "/cgroup.controllers", contents=controllers)


@pytest.fixture
def become_user(monkeypatch):
    """Call once the fake tree is built: from then on we are uid 1000."""
    def become():
        monkeypatch.setattr(os, "geteuid", lambda: 1000)
        set_uid(1000)
    yield become
    set_uid(0)


def test_mountinfo_and_proc_cgroup_are_parsed():
    mounts = cgroups.parse_mountinfo(HYBRID_MOUNTINFO + r"50 31 0:40 / /sys/fs/cgroup/with\040space rw - cgroup2 x rw" + "\n")
    assert mounts == [
        cgroups.Mount("/sys/fs/cgroup/cpu,cpuacct", 1, frozenset({"cpu", "cpuacct"})),
        cgroups.Mount("/sys/fs/cgroup/memory", 1, frozenset({"memory"})),
        cgroups.Mount("/sys/fs/cgroup/pids", 1, frozenset({"pids"})),
        cgroups.Mount("/sys/fs/cgroup/systemd", 1, frozenset()),
        cgroups.Mount("/sys/fs/cgroup/unified", 2, frozenset()),
        cgroups.Mount("/sys/fs/cgroup/with space", 2, frozenset()),
    ]
    assert cgroups.parse_proc_cgroup("4:memory:/a\n2:cpu,cpuacct:/b\n0::/c\n") == {
        "memory": "/a", "cpu": "/b", "cpuacct": "/b", "": "/c"}


def test_hybrid_host_uses_v1_and_root_writes_every_limit(fs):
    fake_proc(fs, HYBRID_MOUNTINFO, "4:memory:/\n0::/\n")
    for name in ("cpu,cpuacct", "memory", "pids"):
        fs.create_dir(f"/sys/fs/cgroup/{name}")
    host = cgroups.probe()
    assert host.version == 1 and host.problem == ""
    cgroup = cgroups.create("sb-1", LIMITED, host)
    cpu = "/sys/fs/cgroup/cpu,cpuacct/pysandbox/sb-1"
    assert cgroup.dirs == {"cpu": cpu, "cpuacct": cpu, "memory": "/sys/fs/cgroup/memory/pysandbox/sb-1",
                           "pids": "/sys/fs/cgroup/pids/pysandbox/sb-1"}
    assert cgroup.unique_dirs() == sorted({cpu, cgroup.dirs["memory"], cgroup.dirs["pids"]})
    written = {name: open(f"{cpu}/{name}").read() for name in ("cpu.shares", "cpu.cfs_period_us", "cpu.cfs_quota_us")}
    assert written == {"cpu.shares": "512", "cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "150000"}
    memory = cgroup.dirs["memory"]
    assert open(f"{memory}/memory.soft_limit_in_bytes").read() == str(64 << 20)
    assert open(f"{memory}/memory.limit_in_bytes").read() == str(256 << 20)
    assert not os.path.exists(f"{memory}/memory.memsw.limit_in_bytes")  # the kernel makes it only with swap accounting
    assert open("/sys/fs/cgroup/pids/pysandbox/sb-1/pids.max").read() == "100"


def test_v1_sets_memory_plus_swap_to_the_limit_so_swap_adds_nothing():
    assert ("memory", "memory.memsw.limit_in_bytes", str(64 << 20)) in v1.limit_writes(Resources(memory_limit=64))
    assert ("memory", "memory.swap.max", "0") in v2.limit_writes(Resources(memory_limit=64))


def test_v1_is_not_writable_for_a_user_and_limits_say_what_to_do(fs, become_user):
    fake_proc(fs, HYBRID_MOUNTINFO, "0::/\n")
    for name in ("cpu,cpuacct", "memory", "pids"):
        fs.create_dir(f"/sys/fs/cgroup/{name}", perm_bits=0o555)  # pyfakefs checks only the owner's bits
    become_user()
    host = cgroups.probe()
    assert host.version == 0 and "writable only by root" in host.problem
    assert cgroups.create("sb-3", Resources(pids_limit=10), host) is None  # pids fall back to RLIMIT_NPROC
    cgroups.check(Resources(pids_limit=10), host)  # no error: nothing needs a cgroup
    with pytest.raises(InvalidError) as info:
        cgroups.check(Resources(memory_limit=64, cpu_limit=1), host)
    message = str(info.value)
    assert message.startswith("cpu=/memory= needs a writable cgroup")
    assert "writable only by root" in message and "systemd-run --user --scope -p Delegate=yes" in message


def test_v2_root_makes_a_pysandbox_parent_and_enables_controllers(fs):
    unified_host(fs)
    host = cgroups.probe()
    assert host.version == 2 and host.parents == dict.fromkeys(("cpu", "memory", "pids"), "/sys/fs/cgroup/pysandbox")
    cgroup = cgroups.create("sb-4", LIMITED, host)
    leaf = "/sys/fs/cgroup/pysandbox/sb-4"
    assert cgroup.to_json() == {"version": 2, "dirs": dict.fromkeys(("cpu", "memory", "pids"), leaf)}
    assert open("/sys/fs/cgroup/cgroup.subtree_control").read() == "+cpu +memory +pids"
    assert open("/sys/fs/cgroup/pysandbox/cgroup.subtree_control").read() == "+cpu +memory +pids"
    files = {name: open(f"{leaf}/{name}").read() for name in os.listdir(leaf)}
    assert files == {"cpu.weight": "50", "cpu.max": "150000 100000", "memory.low": str(64 << 20),
                     "memory.max": str(256 << 20), "pids.max": "100"}  # memory.swap.max absent: no swap


def test_v2_controllers_already_enabled_are_not_written_again(fs):
    unified_host(fs)
    fs.get_object("/sys/fs/cgroup/cgroup.subtree_control").set_contents("cpu memory pids")
    os.chmod("/sys/fs/cgroup/cgroup.subtree_control", 0o444)  # a write would now fail
    cgroups.create("sb-5", Resources(pids_limit=10), cgroups.probe())
    assert os.path.isdir("/sys/fs/cgroup/pysandbox/sb-5")


def test_v2_rootless_finds_the_systemd_delegation(fs, become_user):
    delegate_to_user(fs)
    become_user()
    host = cgroups.probe()
    assert host.version == 2 and set(host.parents.values()) == {DELEGATED + "/pysandbox"}
    cgroup = cgroups.create("sb-6", Resources(memory_limit=64, pids_limit=50), host)
    assert cgroup.unique_dirs() == [DELEGATED + "/pysandbox/sb-6"]
    assert open(DELEGATED + "/cgroup.subtree_control").read() == "+cpu +memory +pids"
    assert open(DELEGATED + "/pysandbox/sb-6/memory.max").read() == str(64 << 20)


def test_v2_without_delegation_is_refused_with_the_reason(fs, become_user):
    unified_host(fs)
    fs.create_dir("/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope")  # systemd's, owned by root
    fs.get_object("/proc/self/cgroup").set_contents("0::/user.slice/user-1000.slice/session-2.scope\n")
    become_user()
    host = cgroups.probe()
    assert host.version == 0
    assert host.problem == "your cgroup /user.slice/user-1000.slice/session-2.scope is not delegated to uid 1000 (it is not owned by you)"
    with pytest.raises(InvalidError, match="memory= needs a writable cgroup.*not delegated.*Delegate=yes"):
        cgroups.check(Resources(memory_request=64), host)


def test_v2_delegation_without_the_cpu_controller_refuses_only_cpu(fs, become_user):
    delegate_to_user(fs, controllers="memory pids")
    become_user()
    host = cgroups.probe()
    assert sorted(host.parents) == ["memory", "pids"]
    cgroups.check(Resources(memory_limit=64), host)
    with pytest.raises(InvalidError, match="cpu= needs a writable cgroup with the cpu controller.*"
                                           "the cpu controller is not delegated to " + DELEGATED):
        cgroups.check(Resources(cpu_limit=1), host)


def test_v2_subtree_control_that_cannot_be_written_is_an_error_naming_it(fs, become_user):
    delegate_to_user(fs)
    os.chmod(DELEGATED + "/cgroup.subtree_control", 0o444)
    become_user()
    with pytest.raises(InvalidError, match=f"cannot enable the cpu, memory, pids controller in {DELEGATED}"):
        cgroups.create("sb-7", Resources(pids_limit=10), cgroups.probe())


def test_no_cgroup_filesystem(fs):
    fake_proc(fs, "22 1 0:21 / /proc rw - proc proc rw\n", "0::/\n")
    host = cgroups.probe()
    assert (host.version, host.problem) == (0, "no cgroup filesystem is mounted")


def test_stats_are_read_from_each_version_and_absent_controllers_are_none(fs):
    fs.create_file("/cg2/cpu.stat", contents="usage_usec 1500000\nuser_usec 1000000\n")
    fs.create_file("/cg2/memory.current", contents="4096\n")
    fs.create_file("/cg2/memory.peak", contents="8192\n")
    fs.create_file("/cg2/pids.current", contents="3\n")
    fs.create_file("/cg2/memory.events", contents="low 0\nhigh 0\nmax 4\noom 2\noom_kill 2\n")
    both = dict.fromkeys(("cpu", "memory", "pids"), "/cg2")
    assert cgroups.read_stats(cgroups.SandboxCgroup(2, both)) == SandboxStats(1.5, 4096, 8192, 3, 2)
    fs.create_file("/cpuacct/cpuacct.usage", contents="2500000000\n")
    fs.create_file("/mem/memory.oom_control", contents="oom_kill_disable 0\nunder_oom 0\noom_kill 1\n")
    fs.create_file("/mem/memory.usage_in_bytes", contents="100\n")
    fs.create_file("/mem/memory.max_usage_in_bytes", contents="200\n")
    v1 = cgroups.SandboxCgroup(1, {"cpuacct": "/cpuacct", "memory": "/mem"})
    assert cgroups.read_stats(v1) == SandboxStats(2.5, 100, 200, None, 1)


def test_the_cgroup_list_survives_a_round_trip_and_a_missing_one_is_none(fs):
    fs.create_dir("/state/sb-8")
    cgroup = cgroups.SandboxCgroup(1, {"memory": "/sys/fs/cgroup/memory/pysandbox/sb-8",
                                       "pids": "/sys/fs/cgroup/pids/pysandbox/sb-8"})
    cgroups.save(cgroup, Path("/state/sb-8"))
    assert cgroups.load(Path("/state/sb-8"), cgroups.parse_mountinfo(HYBRID_MOUNTINFO)) == cgroup
    assert cgroups.load(Path("/state/none")) is None


def test_a_tree_refusing_controllers_fails_limits_but_not_the_default_pids_limit(fs, become_user, monkeypatch):
    delegate_to_user(fs)
    os.chmod(DELEGATED + "/cgroup.subtree_control", 0o444)
    fs.create_dir("/state/sb-9")
    os.chown("/state/sb-9", 1000, 1000)
    become_user()
    monkeypatch.setattr(cgroups, "host", cgroups.probe)
    monkeypatch.setattr(limits, "processes_of", lambda uid: 40)
    options, cgroup = limits.supervisor_options(Path("/state/sb-9"), Resources(pids_limit=100), 1000)
    assert (options, cgroup) == (["--nproc", "140"], None)  # the limit on top of the uid's 40 processes
    with pytest.raises(InvalidError, match="cannot enable"):
        limits.supervisor_options(Path("/state/sb-9"), Resources(memory_limit=64, pids_limit=100), 1000)
    assert os.listdir("/state/sb-9") == []  # the cgroup list went with the failure


def test_supervisor_options_name_every_hierarchy_once(fs, monkeypatch):
    fake_proc(fs, HYBRID_MOUNTINFO, "0::/\n")
    for name in ("cpu,cpuacct", "memory", "pids"):
        fs.create_dir(f"/sys/fs/cgroup/{name}")
    fs.create_dir("/state/sb-10")
    monkeypatch.setattr(cgroups, "host", cgroups.probe)
    options, cgroup = limits.supervisor_options(Path("/state/sb-10"), Resources(pids_limit=100), 0)
    assert options == ["--cgroup", "/sys/fs/cgroup/cpu,cpuacct/pysandbox/sb-10",
                       "--cgroup", "/sys/fs/cgroup/memory/pysandbox/sb-10", "--cgroup", "/sys/fs/cgroup/pids/pysandbox/sb-10"]
    assert cgroups.load(Path("/state/sb-10"), cgroups.parse_mountinfo(HYBRID_MOUNTINFO)) == cgroup


def test_the_cgroup_is_listed_before_it_is_made(fs, monkeypatch):
    """So a creator SIGKILLed in between leaves a cgroup that gc finds through the list."""
    fake_proc(fs, HYBRID_MOUNTINFO, "0::/\n")
    fs.create_dir("/sys/fs/cgroup/pids")
    fs.create_dir("/state/sb-11")
    listed_first = []
    prepare = v1.prepare_parents

    def spy(host):
        listed_first.append(cgroups.load(Path("/state/sb-11"), cgroups.parse_mountinfo(HYBRID_MOUNTINFO)))
        prepare(host)

    monkeypatch.setattr(v1, "prepare_parents", spy)
    cgroup = cgroups.create("sb-11", Resources(pids_limit=10), cgroups.probe(), listed_in=Path("/state/sb-11"))
    assert listed_first == [cgroup] and os.path.isdir("/sys/fs/cgroup/pids/pysandbox/sb-11")


def test_the_parents_are_made_once_per_process_and_again_once_removed(fs, monkeypatch):
    """Each create used to make sure of `pysandbox/` in every hierarchy (twelve system calls on v1);
    now once per process, and again when making the sandbox's cgroup finds its parent gone."""
    fake_proc(fs, HYBRID_MOUNTINFO, "0::/\n")
    fs.create_dir("/sys/fs/cgroup/pids")
    monkeypatch.setattr(cgroups, "_prepared", set())
    prepared = []
    prepare = v1.prepare_parents
    monkeypatch.setattr(v1, "prepare_parents", lambda host: prepared.append(host) or prepare(host))
    found = cgroups.probe()
    for sandbox_id in ("sb-20", "sb-21"):
        cgroups.create(sandbox_id, Resources(pids_limit=10), found)
    assert len(prepared) == 1
    shutil.rmtree("/sys/fs/cgroup/pids/pysandbox")  # by hand, after this process made it (a fake tree)
    cgroup = cgroups.create("sb-22", Resources(pids_limit=10), found)
    assert len(prepared) == 2 and cgroup.dirs == {"pids": "/sys/fs/cgroup/pids/pysandbox/sb-22"}
    assert Path("/sys/fs/cgroup/pids/pysandbox/sb-22/pids.max").read_text() == "10"
