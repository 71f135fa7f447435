"""cpu=, memory= and the pids limit on real sandboxes: the cgroup they land in, sb.stats(),
what a crash leaves, and the errors where no cgroup is writable."""

import json
import os
import signal
import time

import psutil
import pytest

import pysandbox as modal
from pysandbox import garbage
from pysandbox._state import files, paths
from pysandbox.exception import InvalidError
from pysandbox.resources import DEFAULT_PIDS_LIMIT, Resources, SandboxStats
from pysandbox.runtime import cgroups, launch, netplan
from pysandbox.runtime.cgroups._common import read_number

HOST = cgroups.host()
needs_cgroups = pytest.mark.skipif(not HOST.has("memory"), reason="no writable cgroup here (unprivileged on v1)")


def wait_for(predicate, what, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def cgroup_of(sb):
    cgroup = cgroups.load(paths.sandbox_dir(sb.object_id))
    assert cgroup is not None
    return cgroup


def read(path):
    with open(path) as f:
        return f.read().strip()


@needs_cgroups
def test_limits_are_in_the_sandbox_cgroup_and_every_process_runs_inside(sandboxes):
    sb = sandboxes("sleep", "300", cpu=(0.5, 1.5), memory=(64, 128))
    cgroup = cgroup_of(sb)
    assert all(os.path.basename(path) == sb.object_id for path in cgroup.unique_dirs())
    if cgroup.version == 1:
        assert read(cgroup.dirs["cpu"] + "/cpu.shares") == "512"
        assert read(cgroup.dirs["cpu"] + "/cpu.cfs_quota_us") == "150000"
        assert read(cgroup.dirs["memory"] + "/memory.limit_in_bytes") == str(128 << 20)
        assert read(cgroup.dirs["memory"] + "/memory.soft_limit_in_bytes") == str(64 << 20)
    else:
        assert read(cgroup.dirs["cpu"] + "/cpu.max") == "150000 100000"
        assert read(cgroup.dirs["memory"] + "/memory.max") == str(128 << 20)
    assert read(cgroup.dirs["pids"] + "/pids.max") == str(DEFAULT_PIDS_LIMIT)
    sb.exec("sh", "-c", "sleep 100 & wait")
    # slirp4netns counts against the sandbox too; the DNS filter (a supervisor child, the supervisor's binary)
    # does not: sandbox code holding the sandbox's pids must not stop its updates (tests/security/test_47)
    helpers = 1 if netplan.available() else 0
    wait_for(lambda: sb.stats().pids == 5 + helpers,
             "bwrap, init, the entrypoint, sh, its sleep and slirp4netns in the pids cgroup")
    supervisor = psutil.Process(sb._record.supervisor.pid)
    dns_filter = {child.pid for child in supervisor.children() if child.exe() == supervisor.exe()}
    assert len(dns_filter) == helpers
    sandbox_tree = {child.pid for child in supervisor.children(recursive=True)} - dns_filter
    for path in cgroup.unique_dirs():  # every process of the sandbox, in every hierarchy
        assert {int(pid) for pid in read(path + "/cgroup.procs").split()} == sandbox_tree
    own = sb.exec("cat", "/proc/self/cgroup")  # and it sees its cgroup as the root (cgroup namespace)
    assert all(line.endswith(":/") for line in own.stdout.read().splitlines())
    sb.terminate(wait=True)
    assert not any(os.path.exists(path) for path in cgroup.unique_dirs())


@needs_cgroups
def test_stats_while_running_and_after_the_end(sandboxes):
    sb = sandboxes("sleep", "300")
    p = sb.exec("python3", "-c", "x = bytearray(32 << 20); sum(range(3_000_000))")
    assert p.wait() == 0
    running = sb.stats()
    assert running.cpu_seconds > 0 and running.oom_kills == 0
    assert running.memory_peak >= 32 << 20 and 0 < running.memory_current <= running.memory_peak
    assert running.pids >= 2  # init and the entrypoint
    sb.terminate(wait=True)
    final = sb.stats()
    assert final == SandboxStats(final.cpu_seconds, 0, final.memory_peak, 0, 0)
    assert final.cpu_seconds >= running.cpu_seconds and final.memory_peak >= running.memory_peak
    exit_record = json.loads((paths.sandbox_dir(sb.object_id) / "exit").read_text())
    assert exit_record["oom_kills"] == 0 and exit_record["memory_peak"] == final.memory_peak


@needs_cgroups
def test_stats_aio(sandboxes):
    import asyncio

    sb = sandboxes("sleep", "300")
    assert asyncio.run(sb.stats.aio()).oom_kills == 0


@needs_cgroups
def test_a_cpu_limit_throttles(sandboxes):
    sb = sandboxes("sleep", "300", cpu=(0.1, 0.1))
    cpu = cgroup_of(sb).dirs["cpu"]
    p = sb.exec("python3", "-c", "import time\nend = time.time() + 1\nwhile time.time() < end: pass")
    assert p.wait() == 0
    assert read_number(cpu + "/cpu.stat", "nr_throttled") > 0


@needs_cgroups
def test_a_killed_supervisor_leaves_no_cgroup(sandboxes):
    sb = sandboxes("sleep", "300", memory=(64, 128))
    cgroup = cgroup_of(sb)
    os.kill(sb._record.supervisor.pid, signal.SIGKILL)
    wait_for(lambda: not sb._record.supervisor.alive(), "the supervisor to die")
    launch.reap_finished()
    assert sb.poll() == 137  # reading never acts...
    sb.wait(raise_on_termination=False)  # ...whoever waits for (or ends, or collects) it repairs: the cgroup goes
    assert not any(os.path.exists(path) for path in cgroup.unique_dirs())


@needs_cgroups
def test_a_failed_spawn_removes_the_cgroup(app, monkeypatch):
    monkeypatch.setattr(files, "new_id", lambda prefix: prefix + "LimitsSpawnFails0000000")

    def fail(*args):
        raise OSError("spawn failed")

    monkeypatch.setattr(launch, "_spawn", fail)
    with pytest.raises(OSError, match="spawn failed"):
        modal.Sandbox.create(app=app, memory=(64, 128))
    assert not any(os.path.exists(f"{parent}/sb-LimitsSpawnFails0000000") for parent in HOST.parents.values())
    assert not paths.sandbox_dir("sb-LimitsSpawnFails0000000").exists()


@pytest.mark.rootless
@pytest.mark.parametrize("options", [{"cpu": 1}, {"memory": 64}, {"cpu": (0.5, 1), "memory": (64, 128)}])
def test_limits_need_a_writable_cgroup_or_say_why(sandboxes, options):
    asked = [name for name in ("cpu", "memory") if name in options]
    if all(HOST.has(name) for name in asked):
        assert sandboxes(**options).poll() is None
        return
    before = set(os.listdir(paths.sandboxes_dir())) if paths.sandboxes_dir().exists() else set()
    with pytest.raises(InvalidError) as info:
        sandboxes(**options)
    assert "needs a writable cgroup" in str(info.value) and "Delegate=yes" in str(info.value)
    assert HOST.problem in str(info.value)
    after = set(os.listdir(paths.sandboxes_dir())) if paths.sandboxes_dir().exists() else set()
    assert after == before  # refused before any work


@pytest.mark.rootless
def test_stats_without_a_cgroup_are_none_and_with_one_are_numbers(sb):
    stats = sb.stats()
    if HOST.has("memory"):
        assert stats.oom_kills == 0
    else:
        assert stats == SandboxStats(None, None, None, None, None)


@pytest.mark.rootless
@pytest.mark.parametrize("options, message", [
    ({"cpu": -1}, "cpu must be positive"),
    ({"memory": (256, 128)}, "memory limit (128 MiB) must be at least its request (256 MiB)"),
    ({"cpu": (1, 2, 3)}, "got 3 values"),
    ({"memory": (8, 8)}, "at least 16 MiB"),
    ({"ephemeral_disk": -5}, "ephemeral_disk must be positive"),
])
def test_bad_resource_options_are_refused_before_any_work(app, options, message):
    before = set(os.listdir(paths.sandboxes_dir())) if paths.sandboxes_dir().exists() else set()
    with pytest.raises(InvalidError) as info:
        modal.Sandbox.create(app=app, **options)
    assert message in str(info.value)
    after = set(os.listdir(paths.sandboxes_dir())) if paths.sandboxes_dir().exists() else set()
    assert after == before


@needs_cgroups
def test_gc_removes_the_cgroup_of_an_abandoned_create(state_home):
    """A creator killed between making the cgroup and starting the supervisor leaves
    a directory with no record and no live creator: gc removes it and its cgroup."""
    sandbox_id = files.new_id("sb-")
    directory = paths.sandbox_dir(sandbox_id)
    directory.mkdir(parents=True)
    cgroup = cgroups.create(sandbox_id, Resources(memory_limit=64, pids_limit=10))
    cgroups.save(cgroup, directory)
    assert all(os.path.isdir(path) for path in cgroup.unique_dirs())
    assert sandbox_id in garbage.collect().sandboxes
    assert not directory.exists()
    assert not any(os.path.exists(path) for path in cgroup.unique_dirs())


def _unified_mount():
    mounts = cgroups.parse_mountinfo(open("/proc/self/mountinfo").read())
    return next((m.path for m in mounts if m.version == 2 and os.access(m.path, os.W_OK)), None)


@pytest.mark.skipif(_unified_mount() is None, reason="no writable cgroup2 mount here")
def test_the_supervisor_starts_its_runner_inside_a_v2_cgroup_and_removes_it(tmp_path):
    """The v2 path of native/supervisor/cgroup.c for real (clone3 into the cgroup, cgroup.kill, rmdir),
    on whatever cgroup2 mount this host has (here the hybrid layout's controller-less one)."""
    import subprocess

    from pysandbox import settings

    cgroup = os.path.join(_unified_mount(), f"pysandbox-test-{os.getpid()}")
    os.mkdir(cgroup)
    try:
        result = subprocess.run(  # fds 3-5 and 8 (native/common/fds.h) as the supervisor expects
            ["sh", "-c", 'exec "$@" 3</dev/null 4>/dev/null 5>/dev/null 8</dev/null', "sh",
             settings.native_binary("sandbox-supervisor"), "--dir", str(tmp_path), "--timeout-ms", "20000",
             "--output-max", "65536",
             "--cgroup", cgroup, "--", "/bin/sh", "-c", f"cat /proc/self/cgroup > {tmp_path}/seen"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        assert f"0::/{os.path.basename(cgroup)}" in (tmp_path / "seen").read_text().splitlines()
        exit_record = json.loads((tmp_path / "exit").read_text())
        assert (exit_record["status"], exit_record["code"]) == ("exited", 0)
        assert exit_record["cpu_seconds"] >= 0  # cpu.stat is always there on v2
        assert not os.path.exists(cgroup)
    finally:
        if os.path.exists(cgroup):
            os.rmdir(cgroup)
