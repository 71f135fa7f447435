"""The shared validators (pysandbox/_validate.py) and the public data types' one home (types.py)."""

import ast
import math
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import pysandbox
from pysandbox import _validate, file_io, filesystem, resources, secret, types, volume, watch
from pysandbox.exception import InvalidError


@given(st.floats(min_value=0.001, max_value=_validate.MAX_SECONDS) | st.integers(1, _validate.MAX_SECONDS))
def test_positive_seconds_kept(value):
    assert _validate.positive_seconds(value) == value


@pytest.mark.parametrize("value", [0, -1, True, "1", math.nan, math.inf, _validate.MAX_SECONDS + 1, None])
def test_positive_seconds_refused_naming_the_argument(value):
    with pytest.raises(InvalidError, match="^idle_timeout must be a positive number of seconds"):
        _validate.positive_seconds(value, "idle_timeout")


def test_positive_seconds_none_and_unbounded():
    assert _validate.positive_seconds(None, allow_none=True) is None
    assert _validate.positive_seconds(10**9, "ttl", at_most=None) == 10**9
    with pytest.raises(InvalidError, match="or None"):
        _validate.positive_seconds(math.nan, "ttl", allow_none=True, at_most=None)


@pytest.mark.parametrize("value, message", [
    (0, "port must be a whole number between 1 and 65535, got 0"),
    (65536, "between 1 and 65535"),
    (True, "got True"),
    (1.0, "got 1.0"),
])
def test_whole_number(value, message):
    assert _validate.whole_number(80, "port", maximum=65535) == 80
    with pytest.raises(InvalidError, match=message):
        _validate.whole_number(value, "port", minimum=1, maximum=65535)


@given(st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True).filter(lambda n: n not in (".", "..")))
def test_object_names_accepted(name):
    assert _validate.object_name(name, "Secret") == name


@pytest.mark.parametrize("name", [".", "..", "", "a" * 65, "a b", "a/b", "name\n", 5, None])
def test_object_names_refused(name):
    with pytest.raises(InvalidError, match="^Invalid Volume name"):
        _validate.object_name(name, "Volume")


def test_object_name_kind_rules_are_said():
    with pytest.raises(InvalidError, match=r"not look like a Volume ID \(vo-\.\.\.\)"):
        _validate.object_name("vo-1", "Volume", id_prefix="vo-")
    with pytest.raises(InvalidError, match="not start with '.'"):
        _validate.object_name(".x", "App", leading_dot=False)
    assert _validate.object_name(".x", "Sandbox", id_prefix="ap-") == ".x"


def test_env_mapping():
    assert _validate.env_mapping({"A": "1", "B": None, "_c9": ""}) == {"A": "1", "_c9": ""}
    for env, message in [(["A=1"], "env must be a dict"), ({"1A": "x"}, "'1A'"), ({"A": 1}, "must be a string"),
                         ({"A": "\0"}, "NUL"), ({1: "x"}, "1")]:
        with pytest.raises(InvalidError, match=message):
            _validate.env_mapping(env)


def test_types_is_a_leaf():
    """types.py imports nothing of the package, so any module can import it."""
    tree = ast.parse(Path(types.__file__).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0 and not node.module.startswith("pysandbox"), ast.dump(node)
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("pysandbox") for alias in node.names)


@pytest.mark.parametrize("module, name", [
    (pysandbox, "FileInfo"), (pysandbox, "FileType"), (filesystem, "FileInfo"), (filesystem, "FileType"),
    (pysandbox, "FileWatchEvent"), (watch, "FileWatchEventType"), (file_io, "FileWatchEvent"),
    (file_io, "FileWatchEventType"), (volume, "FileEntry"), (volume, "FileEntryType"), (volume, "VolumeInfo"),
    (secret, "SecretInfo"), (resources, "SandboxStats"),
])
def test_each_type_is_the_one_in_types(module, name):
    assert getattr(module, name) is getattr(types, name)
