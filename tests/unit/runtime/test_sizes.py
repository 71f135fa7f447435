"""runtime/sizes.py: every memory-backed filesystem of a sandbox gets a size."""

import pytest

from pysandbox.resources import Resources
from pysandbox.runtime.sizes import tmpfs_sizes

MiB, GiB = 1 << 20, 1 << 30


@pytest.fixture(autouse=True)
def defaults(monkeypatch):
    for variable in ("PYSANDBOX_WRITABLE_ROOT_MAX", "PYSANDBOX_TMP_MAX", "PYSANDBOX_DEV_SHM_MAX"):
        monkeypatch.delenv(variable, raising=False)


def test_defaults():
    assert tmpfs_sizes(Resources(), image=False) == {"disk_bytes": 4 * GiB, "tmp_bytes": GiB, "shm_bytes": 256 * MiB}
    assert tmpfs_sizes(Resources(), image=True)["disk_bytes"] is None  # the image's overlay is the root


def test_no_tmpfs_is_larger_than_the_memory_limit():
    sizes = tmpfs_sizes(Resources(memory_request=64, memory_limit=128), image=False)
    assert sizes == {"disk_bytes": 128 * MiB, "tmp_bytes": 128 * MiB, "shm_bytes": 128 * MiB}


def test_ephemeral_disk_is_what_was_asked_for():
    assert tmpfs_sizes(Resources(ephemeral_disk=10 * 1024, memory_limit=128), image=False)["disk_bytes"] == 10 * GiB


def test_zero_keeps_the_root_on_disk(monkeypatch):
    monkeypatch.setenv("PYSANDBOX_WRITABLE_ROOT_MAX", "0")
    assert tmpfs_sizes(Resources(), image=False)["disk_bytes"] is None
