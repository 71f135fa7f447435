"""Shared fixtures: a private state directory per session, an app, sandboxes that never leak;
and a check, at the end of the session, that no process the suite started outlives it."""

import gc
import os
import time
from pathlib import Path

import psutil
import pytest

import pysandbox as modal
from pysandbox._state import paths
from pysandbox._state.files import remove_tree
from pysandbox._state.proc import ProcessRef
from pysandbox.exception import InvalidError
from pysandbox.runtime import cgroups, gvisor
from pysandbox.settings import RUNNERS

from .procs import alive

# Everything under these talks to real sandboxes, and runs once per runner (docs/RUNNERS.md).
BEHAVIOUR_DIRS = ("sandbox", "security", "seed", "images")


# Every process the suite starts inherits this (children get a copy of os.environ), so the
# end-of-session check can tell ours from everyone else's; supervisors, which run with the
# sandbox's own environment, are told by their --dir under the session's temporary directory.
SESSION_MARK = "PYSANDBOX_TEST_SESSION"
LEFTOVER_PATIENCE_S = 30  # supervisors of sandboxes terminated without wait=True may still be tearing down
_session_temp = []  # the session's base temporary directory, once known
_state_homes = []  # the session's state directories, removed at its end


def pytest_configure(config):
    os.environ[SESSION_MARK] = f"{os.getpid()}.{time.time_ns()}"


def pytest_sessionfinish(session, exitstatus):
    """Fail the run if a process it started is still running (after a grace for teardowns), and end them;
    then remove the session's state directories."""
    deadline = time.monotonic() + LEFTOVER_PATIENCE_S
    leftovers = _suite_processes()
    while leftovers and time.monotonic() < deadline:
        time.sleep(0.2)
        leftovers = _suite_processes()
    _remove_state_homes()
    if not leftovers:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    lines = [f"  {p.pid}: {' '.join(p.info['cmdline'] or [])[:300]}" for p in leftovers]
    reporter.write_sep("=", "processes the test suite started outlived it (now killed)", red=True)
    reporter.write_line("\n".join(lines))
    for proc in leftovers:
        try:
            proc.kill()
        except psutil.Error:
            pass
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _remove_state_homes():
    """pytest's own clean-up of old temporary directories cannot remove what a rootless caller's
    other sandbox ids own (image layers, volumes): _state.files.remove_tree can (in their namespace).
    What pytest failed to remove of earlier runs it renamed garbage-*: that goes too."""
    garbage = [path for temp in _session_temp for path in Path(temp).parent.glob("garbage-*")]
    for home in _state_homes + garbage:
        try:
            remove_tree(home)
        except OSError as exc:
            print(f"could not remove the session's state directory {home}: {exc}")


def _suite_processes():
    ours = []
    for proc in psutil.process_iter(["cmdline", "environ", "status"], ad_value=None):
        if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        marked = (proc.info["environ"] or {}).get(SESSION_MARK) == os.environ[SESSION_MARK]
        cmdline = " ".join(proc.info["cmdline"] or [])
        if marked or any(temp in cmdline for temp in _session_temp):
            ours.append(proc)
    return ours


def pytest_addoption(parser):
    parser.addoption("--runner", action="append", choices=RUNNERS,
                     help="run the behaviour suite under this runner only (repeatable; default: each runner)")


# Runners that run only the behaviour tests marked for them (pytest.mark.gvisor, docs/RUNNERS.md): CI's time
# budget, and what the runner does not support yet. `--runner gvisor` runs exactly those; a test marked
# pytest.mark.gvisor(only=True) runs under it alone.
OPT_IN_RUNNERS = ("gvisor",)


def _gvisor_runs() -> bool:
    """Whether the gvisor runner runs for this caller: root (without runsc its tests fail, naming it), or an
    unprivileged caller it does not refuse (gvisor.check: one with a subordinate id range)."""
    if os.geteuid() == 0:
        return True
    try:
        gvisor.check()
    except InvalidError:
        return False
    return True


GVISOR_RUNS = _gvisor_runs()


def _deselected(item) -> bool:
    runner = item.callspec.params.get("runner") if hasattr(item, "callspec") else None
    if not GVISOR_RUNS and (runner in OPT_IN_RUNNERS or item.get_closest_marker("needs_gvisor") is not None):
        return True  # gVisor needs root or a subordinate id range here: its refusal is test_identity_single.py's
    if runner is None:
        return False
    only = [name for name in OPT_IN_RUNNERS if getattr(item.get_closest_marker(name), "kwargs", {}).get("only")]
    if only:
        return runner not in only
    return runner in OPT_IN_RUNNERS and item.get_closest_marker(runner) is None


# debian_slim is built once per session (the cold build takes ~35 s on a quiet machine, minutes on a loaded
# one): the whole test that first needs it, whichever that is, may take this long.
DEBIAN_BUILD_TIMEOUT_S = 900


def pytest_collection_modifyitems(config, items):
    kept, dropped = [], []
    for item in items:
        (dropped if _deselected(item) else kept).append(item)
        if "debian" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEBIAN_BUILD_TIMEOUT_S))
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


def pytest_generate_tests(metafunc):
    relative = metafunc.definition.path.relative_to(Path(__file__).parent)
    if relative.parts[0] in BEHAVIOUR_DIRS:
        # Session scope: pytest runs every test under one runner, then under the next.
        metafunc.parametrize("runner", metafunc.config.getoption("runner") or RUNNERS, indirect=True,
                             scope="session")


@pytest.fixture(scope="session", autouse=True)
def runner(request):
    """The runner (PYSANDBOX_RUNNER) of a behaviour test; None, and no change, for the others."""
    chosen = getattr(request, "param", None)
    previous = os.environ.get("PYSANDBOX_RUNNER")
    if chosen is not None:
        os.environ["PYSANDBOX_RUNNER"] = chosen
    yield chosen
    if chosen is not None:
        _restore("PYSANDBOX_RUNNER", previous)


@pytest.fixture(autouse=True)
def forget_named_objects(runner):
    """Named volumes and secrets outlive a test in the session's state directory, and each
    behaviour test runs once per runner: each run starts without the other's."""
    yield
    if runner is not None:
        for volume in modal.Volume.objects.list():
            modal.Volume.objects.delete(volume.name)
        for secret in modal.Secret.objects.list():
            modal.Secret.objects.delete(secret.name)


def _restore(variable, previous):
    if previous is None:
        os.environ.pop(variable, None)
    else:
        os.environ[variable] = previous


# The network tests serve "the internet" from the host's own address: they let sandboxes reach it
# (settings.network_reaches_host). tests/security/test_12 checks the default, which refuses it.
os.environ["PYSANDBOX_NETWORK_REACHES_HOST"] = "1"


@pytest.fixture(scope="session", autouse=True)
def state_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("pysandbox-home")
    _session_temp.append(str(tmp_path_factory.getbasetemp()) + "/")
    _state_homes.append(home)
    previous = os.environ.get("PYSANDBOX_HOME")
    os.environ["PYSANDBOX_HOME"] = str(home)
    yield home
    _restore("PYSANDBOX_HOME", previous)


@pytest.fixture(scope="session")
def debian(state_home):
    """debian_slim, built once per session in the session's state directory."""
    return modal.Image.debian_slim().build()


@pytest.fixture(scope="session")
def app(state_home):
    return modal.App.lookup("pysandbox-tests", create_if_missing=True)


def assert_torn_down(sandbox_id: str, supervisor: ProcessRef) -> None:
    """Nothing of the sandbox is left: no process, no upper dir, no socket."""
    directory = paths.sandbox_dir(sandbox_id)
    assert not supervisor.alive()
    assert not (directory / "upper").exists()
    assert not (directory / "agent.sock").exists()
    assert (directory / "exit").exists()
    cgroup = cgroups.load(directory)
    assert cgroup is None or not any(os.path.exists(path) for path in cgroup.unique_dirs()), "cgroup leaked"


@pytest.fixture
def sandboxes(app, runner):
    """Create sandboxes through this; each is terminated and checked for leaks afterwards."""
    created = []

    def create(*args, **kwargs):
        sb = modal.Sandbox.create(*args, app=app, **kwargs)
        created.append(sb)
        return sb

    yield create
    for sb in created:
        descendants = _descendants(sb._record.supervisor.pid)
        sb = modal.Sandbox.from_id(sb.object_id)  # the test may have detached its handle
        sb.terminate()
        try:
            sb.wait(raise_on_termination=False)
        except modal.exception.SandboxTimeoutError:
            pass
        assert_torn_down(sb.object_id, sb._record.supervisor)
        assert not [p for p in descendants if alive(p)], "sandbox processes survived terminate()"


@pytest.fixture
def sb(sandboxes):
    return sandboxes()


def _descendants(pid):
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


@pytest.fixture
def no_cyclic_gc():
    """Reference counting only: what a test drops is released at once, or leaks for it to see."""
    gc.collect()
    gc.disable()
    yield
    gc.enable()
