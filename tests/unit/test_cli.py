"""The CLI's pure parts: --tail's offset, escaping for a terminal, --memory and -v, KEY=VALUE, the
deferral of stop signals while a sandbox is being made or ended."""

import os
import signal
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pysandbox._cli import common, run, sandboxes
from pysandbox._cli.common import Interrupts, Stopped, UsageError, parse_env


@settings(max_examples=300, deadline=None)
@given(data=st.lists(st.sampled_from([b"a", b"bc", b"\n", b"\n\n", b"x" * 70000]), max_size=12).map(b"".join),
       lines=st.one_of(st.none(), st.integers(min_value=0, max_value=8)))
def test_tail_offset_starts_the_last_lines(data, lines):
    with tempfile.TemporaryFile() as f:
        f.write(data)
        f.flush()
        tail = data[sandboxes.tail_offset(f.fileno(), lines):]
    if lines is None:
        assert tail == data
    else:
        expected = data.splitlines(keepends=True)[-lines:] if lines else []
        assert tail == b"".join(expected)


def test_tail_offset_skips_released_output(tmp_path):
    """The supervisor punches old output out as a hole: --tail never reaches into it."""
    path = tmp_path / "stdout"
    with open(path, "wb") as f:
        f.truncate(1 << 20)  # a hole of 1 MiB, then two lines
        f.seek(1 << 20)
        f.write(b"one\ntwo\n")
    fd = os.open(path, os.O_RDONLY)
    try:
        start = sandboxes.tail_offset(fd, 5)
        assert os.pread(fd, 100, start) == b"one\ntwo\n"
    finally:
        os.close(fd)


@given(st.text())
def test_escape_leaves_no_control_character_but_tab_and_newline(text):
    shown = common.escape(text)
    assert not [c for c in shown if (ord(c) < 32 and c not in "\t\n") or 0x7f <= ord(c) <= 0x9f]


def test_escape_shows_what_it_replaced():
    assert common.escape("a\x1b]0;t\x07\tb\n\x9b") == "a\\x1b]0;t\\x07\tb\n\\x9b"


@pytest.mark.parametrize("value, mib", [("512", 512), ("512m", 512), ("512MB", 512), ("2g", 2048), ("1024k", 1)])
def test_memory_in_mib_or_with_docker_s_units(value, mib):
    assert run.memory_of(value) == mib


@pytest.mark.parametrize("value", ["", "lots", "-1", "1.5g", "2t", "1,2,3", "1,"])
def test_memory_refuses_what_it_cannot_read(value):
    with pytest.raises(UsageError, match="--memory"):
        run.memory_of(value)


def test_request_and_limit_as_modal_s_tuple():
    assert run.memory_of("256m,1g") == (256, 1024)
    assert (run.cpu_of("0.5"), run.cpu_of("0.5,2")) == (0.5, (0.5, 2.0))
    with pytest.raises(UsageError, match="--cpu"):
        run.cpu_of("half")


@pytest.mark.parametrize("mount", ["vol", "vol:", ":/data", "vol:/data:rx", "vol:/data:ro:x"])
def test_volume_mounts_are_refused_unless_volume_path_and_ro(mount):
    with pytest.raises(UsageError, match="VOLUME:/path"):
        run.volumes_of([mount])


def test_env_pairs():
    assert parse_env(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    for bad in ("A", "=1"):
        with pytest.raises(UsageError, match="^-e expects KEY=VALUE"):
            parse_env([bad])
        with pytest.raises(UsageError, match="^--tag expects KEY=VALUE"):  # `ls --tag` named -e
            parse_env([bad], "--tag")


def test_a_stop_signal_is_held_until_the_block_ends():
    reached = []
    with Interrupts() as interrupts:
        with pytest.raises(Stopped) as stopped:
            with interrupts.held():
                os.kill(os.getpid(), signal.SIGHUP)
                reached.append("after the signal")  # the block finishes its work
        assert stopped.value.signum == signal.SIGHUP and reached == ["after the signal"]
        with pytest.raises(Stopped):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.pause()  # not reached: delivered at once outside held()
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
