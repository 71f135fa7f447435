"""runtime/initconfig.py: the records sandbox-init parses (native/init/initconfig.c)."""

import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox.exception import InvalidError
from pysandbox.runtime import initconfig

names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True)
values = st.text(st.characters(blacklist_characters="\0", blacklist_categories=("Cs",)), max_size=40)


@given(st.dictionaries(names, values, max_size=8), st.lists(values, max_size=6))
def test_records_round_trip(env, argv):
    records = initconfig.encode(env, argv, [(5, 7, "/data")]).split(b"\0")
    assert records[0] == initconfig.MAGIC and records[-1] == b""
    decoded = [os.fsdecode(r) for r in records[1:-1]]
    assert [r[1:] for r in decoded if r[0] == "E"] == [f"{k}={v}" for k, v in env.items()]
    assert [r[1:] for r in decoded if r[0] == "A"] == argv
    assert [r[1:] for r in decoded if r[0] == "V"] == ["5 7 /data"]


@pytest.mark.parametrize("env", [{"": "x"}, {"A=B": "x"}, {"A": "x\0y"}, {"A\0": "x"}])
def test_what_init_would_misread_is_refused(env):
    with pytest.raises(InvalidError):
        initconfig.encode(env, ())


def test_memfd_is_sealed_and_holds_the_data():
    fd = initconfig.memfd(b"PSBC1\0Ehello=1\0")
    try:
        assert os.pread(fd, 100, 0) == b"PSBC1\0Ehello=1\0"
        with pytest.raises(PermissionError):
            os.write(fd, b"more")
    finally:
        os.close(fd)
