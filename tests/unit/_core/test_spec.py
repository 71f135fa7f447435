"""Validation of sandbox and exec specs, before any work is done."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox._core.spec import ExecSpec, SandboxSpec, check_name
from pysandbox.exception import InvalidError
from pysandbox.secret import Secret, merge_env
from pysandbox.stream_type import StreamType, output_of


@given(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True).filter(lambda n: not n.startswith("ap-") and n not in (".", "..")))
def test_valid_names_accepted(name):
    assert check_name(name) == name


@given(st.text(min_size=1).filter(lambda n: not all(c.isascii() and (c.isalnum() or c in "._-") for c in n)))
def test_names_with_other_characters_rejected(name):
    with pytest.raises(InvalidError):
        check_name(name)


def test_env_merge_order_and_none():
    env = merge_env({"A": "env", "B": None}, [Secret.from_dict({"A": "secret", "C": "c"})])
    assert env == {"A": "env", "C": "c"}


@given(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]*", fullmatch=True), st.text().filter(lambda v: "\0" not in v))
def test_good_env_accepted(key, value):
    assert merge_env({key: value}, None) == {key: value}


@pytest.mark.parametrize("key", ["", "1A", "A-B", "A B", "A=B"])
def test_bad_env_keys(key):
    with pytest.raises(InvalidError):
        merge_env({key: "v"}, None)


def test_sandbox_spec_defaults_and_errors():
    spec = SandboxSpec(())
    assert spec.timeout == 300 and spec.workdir is None and spec.idle_timeout is None
    with pytest.raises(InvalidError, match="persistent"):
        SandboxSpec((), timeout=None)
    with pytest.raises(InvalidError, match="absolute"):
        SandboxSpec((), workdir="x")
    with pytest.raises(InvalidError, match="strings"):
        SandboxSpec((b"x",))
    SandboxSpec(("x" * 65536,))
    with pytest.raises(InvalidError):
        SandboxSpec(("x" * 65537,))


def test_exec_spec_errors():
    with pytest.raises(InvalidError):
        ExecSpec(())
    with pytest.raises(InvalidError):
        ExecSpec(("true",), stdout="file")
    with pytest.raises(InvalidError):
        ExecSpec(("true",), bufsize=0)
    with pytest.raises(InvalidError):
        ExecSpec(("true",), timeout=True)
    with pytest.raises(ValueError, match="line-buffering is only supported when text=True"):
        ExecSpec(("true",), text=False, bufsize=1)
    assert ExecSpec(("true",), text=False).bufsize == -1


@pytest.mark.parametrize("bad", ["name\n", "ok\n"])
def test_a_trailing_newline_is_not_a_valid_name_or_key(bad):
    with pytest.raises(InvalidError):
        check_name(bad)
    with pytest.raises(InvalidError):
        merge_env({bad: "x"}, None)


def test_exec_outputs_are_plain_values_named_from_stream_types():
    assert [output_of(kind, "stdout") for kind in StreamType] == ["pipe", "stdout", "devnull"]
    assert all(ExecSpec(("true",), stdout=output_of(kind, "stdout")) for kind in StreamType)
    with pytest.raises(InvalidError, match="stderr must be a StreamType"):
        output_of("pipe", "stderr")
    with pytest.raises(InvalidError, match="stdout must be one of pipe, stdout, devnull"):
        ExecSpec(("true",), stdout=StreamType.PIPE)  # the core takes the plain name
