"""What every runner of runtime/runners.RUNNERS gives launch (docs/RUNNERS.md, "Adding a runner"):
check() refuses before any work, command() builds the runner's command line from RunnerInputs,
its binary first and sandbox-init's command line last, with every mount of the inputs in it.
A new runner in the table is held to this at once; its own command line has a test of its own
(test_nsjail_command.py, test_runner_mount_points.py)."""

import json
import re

import pytest
from hypothesis import given
from hypothesis import settings as examples
from hypothesis import strategies as st

from pysandbox import settings
from pysandbox.exception import InvalidError
from pysandbox.runtime import runners
from pysandbox.runtime.layout import INIT_PATH, Mount, OverlayRoot, RunnerCommand, RunnerInputs
from pysandbox.runtime.ptys import devpts_options
from pysandbox.runtime.runners import RUNNERS

BINARY = "/opt/runner/bin/runner"
RUNNER_NAMES = sorted(RUNNERS)


def inputs(**overrides):
    options = dict(upper="/state/sb/upper", mounts=(), init="/native/sandbox-init", workdir="/repo")
    return RunnerInputs(**{**options, **overrides})


def staged(path):
    return "/staged" + path


def in_image(path):
    return "/image" + path


def appears(path, command):
    """`path` is a whole path in the command line or in the runner's configuration."""
    text = "\0".join(command.argv) + "\0" + (command.config or b"").decode()
    return re.search(r"(?<![\w/.-])" + re.escape(path) + r"(?![\w/.-])", text) is not None


def test_the_table_names_what_the_leaf_layer_validates():
    assert tuple(RUNNERS) == settings.RUNNERS  # the same names, the default (bwrap) first


@pytest.mark.parametrize("name", RUNNER_NAMES)
def test_check_runs_here_and_refuses_without_the_binary(name, monkeypatch):
    module = RUNNERS[name]
    assert module.check() is None and runners.check(name) is None  # CI hosts have every runner
    assert module.binary().startswith("/")

    def missing():
        raise InvalidError(f"No {name} found")

    monkeypatch.setattr(module, "binary", missing)
    with pytest.raises(InvalidError, match=f"No {name} found"):
        runners.check(name)


# Every kind of Mount, at paths that name their kind (so that one cannot match another's).
MOUNTS = st.lists(st.sampled_from([
    Mount("ro-bind", "/host/ro", "/data/ro"), Mount("bind", "/host/rw", "/data/rw"),
    Mount("symlink", "usr/lib", "/lib-link"), Mount("mask-file", "/dev/null", "/etc/masked-file"),
    Mount("mask-dir", "/dev/null", "/etc/masked-dir"), Mount("ro-bind", "/host/resolv.conf", "/etc/resolv.conf"),
]), unique=True, max_size=6)
ROOTS = st.sampled_from([
    {}, {"disk_bytes": 1 << 30}, {"overlay": OverlayRoot(("/layers/a", "/layers/b"), "/state/sb/upper")},
    {"overlay": OverlayRoot((), "/state/sb/upper")},
])


@pytest.mark.parametrize("name", RUNNER_NAMES)
@examples(max_examples=40, deadline=None)
@given(mounts=MOUNTS, root=ROOTS, network=st.sampled_from(["default", "none"]), pty=st.booleans(),
       idle_timeout_ms=st.sampled_from([None, 5000]))
def test_command_runs_init_with_every_mount(name, mounts, root, network, pty, idle_timeout_ms):
    given_inputs = inputs(mounts=mounts, network=network, pty=pty, idle_timeout_ms=idle_timeout_ms,
                          source=staged, dest=in_image, sandbox_id="sb-contract", **root)
    command = RUNNERS[name].command(given_inputs, BINARY)
    assert isinstance(command, RunnerCommand)
    assert command.config is None or isinstance(command.config, bytes)
    # bwrap's init bounds the devpts bwrap mounts without options (runtime/ptys.py)
    ptys = ["--devpts-options", devpts_options(given_inputs.ptys_max)] if name == "bwrap" else []
    init = given_inputs.init_argv([*ptys, *given_inputs.init_dirs()])
    assert command.argv[0] == BINARY
    assert list(command.argv[-len(init):]) == init or init_in_config(command, given_inputs)
    assert appears(staged("/native/sandbox-init"), command) and appears(in_image(INIT_PATH), command)
    for mount in mounts:  # every mount point through dest, every bound host path through source
        assert appears(in_image(mount.dest), command), mount
        if mount.kind in ("bind", "ro-bind"):
            assert appears(staged(mount.source), command), mount
    assert command == RUNNERS[name].command(given_inputs, BINARY)  # nothing but its inputs decides it


def init_in_config(command, given_inputs):
    """A runner started from a configuration (an OCI bundle's) has init's command line there, with --handoff
    (native/init/init_handoff.h) when init gets its fds and connections over stdin."""
    if command.config is None or not command.self_isolating:
        return False
    process = json.loads(command.config)["process"]
    return process["args"] == given_inputs.init_argv(["--handoff", *given_inputs.init_dirs()])


def test_init_makes_the_directories_inside_the_sandbox():
    assert inputs(workdir="/usr/lib").init_dirs() == [  # under a system directory: mounted
        "--dir", "0700", "/root", "--chmod", "0700", "/root", "--chdir", "/usr/lib"]
    assert inputs(workdir="/usr/lib", disk_bytes=1 << 20).init_dirs() == [
        "--dir", "0700", "/root", "--chmod", "0700", "/root", "--dir", "1777", "/tmp",
        "--dir", "0755", "/usr/lib", "--chdir", "/usr/lib"]
    assert inputs(workdir="/", overlay=OverlayRoot((), "/up")).init_dirs() == [  # an image's /root keeps its mode
        "--dir", "0700", "/root", "--dir", "0755", "/", "--chdir", "/"]


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="workdir must be an absolute path"):
        inputs(workdir="repo")
    with pytest.raises(ValueError, match="'network' must be in"):
        inputs(network="host")  # no runner shares the host's network
