"""cpu=, memory=, ephemeral_disk= and the pids limit: validated before any work."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox.exception import InvalidError
from pysandbox.resources import DEFAULT_PIDS_LIMIT, Resources, default_pids_limit


def test_a_number_is_a_request_and_a_pair_adds_a_limit():
    assert Resources.from_options(cpu=0.5, memory=256) == Resources(cpu_request=0.5, memory_request=256)
    assert Resources.from_options(cpu=(0.5, 2), memory=(128, 512), ephemeral_disk=1024) == Resources(
        cpu_request=0.5, cpu_limit=2, memory_request=128, memory_limit=512, ephemeral_disk=1024)
    assert Resources.from_options(pids_limit=100) == Resources(pids_limit=100)


@pytest.mark.parametrize("options, message", [
    ({"cpu": -1}, "cpu must be positive"),
    ({"cpu": 0}, "cpu must be positive"),
    ({"cpu": "2"}, "cpu must be a number"),
    ({"cpu": True}, "cpu must be a number"),
    ({"cpu": float("nan")}, "cpu must be a number"),
    ({"cpu": (1, 2, 3)}, "got 3 values"),
    ({"cpu": (2, 1)}, "cpu limit (1 cores) must be at least its request (2 cores)"),
    ({"cpu": (0.001, 0.001)}, "cpu limit must be at least 0.01 cores"),
    ({"memory": 1.5}, "memory is a whole number of MiB"),
    ({"memory": (512, 256)}, "memory limit (256 MiB) must be at least its request (512 MiB)"),
    ({"memory": (4, 8)}, "memory limit must be at least 16 MiB"),
    ({"memory": [1]}, "got 1 values"),
    ({"ephemeral_disk": 0}, "ephemeral_disk must be positive"),
    ({"ephemeral_disk": 1.5}, "ephemeral_disk is a whole number of MiB"),
    ({"pids_limit": 2}, "at least 3"),
])
def test_mistakes_are_invalid_errors_that_say_what_to_change(options, message):
    with pytest.raises(InvalidError) as info:
        Resources.from_options(**options)
    assert message in str(info.value)


def test_ephemeral_disk_takes_no_limit_pair():
    with pytest.raises(InvalidError, match="ephemeral_disk must be a number"):
        Resources.from_options(ephemeral_disk=(100, 200))


@given(st.floats(0.01, 64), st.floats(0.01, 64))
def test_any_ordered_cpu_pair_is_accepted_and_kept(a, b):
    low, high = sorted((a, b))
    resources = Resources.from_options(cpu=(low, high))
    assert (resources.cpu_request, resources.cpu_limit) == (low, high)


@given(st.integers(16, 1 << 20), st.integers(16, 1 << 20))
def test_memory_pairs_are_accepted_in_order_and_refused_reversed(a, b):
    low, high = sorted((a, b))
    assert Resources.from_options(memory=(low, high)).memory_limit == high
    if low != high:
        with pytest.raises(InvalidError):
            Resources.from_options(memory=(high, low))


def test_pids_limit_default_and_environment(monkeypatch):
    monkeypatch.delenv("PYSANDBOX_PIDS_LIMIT", raising=False)
    assert default_pids_limit() == DEFAULT_PIDS_LIMIT
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", "")  # set but empty is unset, as for the PYSANDBOX_..._MAX bounds
    assert default_pids_limit() == DEFAULT_PIDS_LIMIT
    monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", "64")
    assert default_pids_limit() == 64
    for bad in ("0", "2", "-5", "many"):
        monkeypatch.setenv("PYSANDBOX_PIDS_LIMIT", bad)
        with pytest.raises(InvalidError, match="PYSANDBOX_PIDS_LIMIT|at least 3"):
            default_pids_limit()
