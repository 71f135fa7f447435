"""Image fixtures: debian_slim is built once per session (the cold build takes ~35 s on a
quiet machine, minutes on a loaded one)."""

import pytest

import pysandbox as modal
from pysandbox._core import oneshot
from pysandbox.image import store

DEBIAN_BUILD_TIMEOUT_S = 900  # the whole test, whichever first needs the image and so builds it


def pytest_collection_modifyitems(items):
    for item in items:
        if "debian" in getattr(item, "fixturenames", ()) and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(DEBIAN_BUILD_TIMEOUT_S))


@pytest.fixture(scope="session")
def debian(state_home):
    return modal.Image.debian_slim().build()


def builder_sandbox_count():
    """How many build sandboxes were ever started (each build step that runs code starts one)."""
    from pysandbox._state import records
    return sum(1 for _, record in records.iter_records()
               if not isinstance(record, Exception) and record.app_name == oneshot.BUILDER_APP)


def temp_dirs():
    return sorted((store.root() / "tmp").iterdir()) if (store.root() / "tmp").exists() else []
