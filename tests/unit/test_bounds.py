"""bounds.get: defaults, overrides from the environment, and refusal of nonsense."""

import pytest

from pysandbox import bounds
from pysandbox.exception import InvalidError


@pytest.fixture
def example(monkeypatch):
    monkeypatch.setitem(bounds.BOUNDS, "example", bounds.Bound("PYSANDBOX_TEST_EXAMPLE_MAX", 42, "an example"))
    return "example"


def test_default_and_override(example, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_TEST_EXAMPLE_MAX", raising=False)
    assert bounds.get(example) == 42
    monkeypatch.setenv("PYSANDBOX_TEST_EXAMPLE_MAX", "7")
    assert bounds.get(example) == 7
    assert bounds.variable(example) == "PYSANDBOX_TEST_EXAMPLE_MAX"


@pytest.mark.parametrize("raw", ["-1", "1.5", "lots", " 3"])
def test_bad_value_names_the_variable(example, monkeypatch, raw):
    monkeypatch.setenv("PYSANDBOX_TEST_EXAMPLE_MAX", raw)
    with pytest.raises(InvalidError, match="PYSANDBOX_TEST_EXAMPLE_MAX"):
        bounds.get(example)


def test_every_bound_is_documented():
    for name, bound in bounds.BOUNDS.items():
        assert bound.variable.startswith("PYSANDBOX_") and bound.meaning, name
        assert bound.default >= 0, name


def test_the_security_page_lists_every_bound_with_its_default():
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "SECURITY.md").read_text()
    rows = dict(re.findall(r"^\| `(PYSANDBOX_[A-Z_]+)` \| ([^|]+) \|", page, re.M))
    units = {"GiB": 1 << 30, "MiB": 1 << 20, "KiB": 1 << 10, "s": 1}
    for bound in bounds.BOUNDS.values():
        assert bound.variable in rows, f"{bound.variable} is missing from docs/SECURITY.md"
        number, _, unit = rows[bound.variable].strip().partition(" ")
        assert int(number.replace(",", "")) * units.get(unit, 1) == bound.default, bound.variable
    assert set(rows) == {bound.variable for bound in bounds.BOUNDS.values()}
