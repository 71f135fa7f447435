"""The image-side import cycles stay gone: what importing one module drags in.

Each check runs in a fresh interpreter with the `pysandbox` package stubbed, so
that the package's __init__ (which re-exports the whole public API) does not
hide the module's own import graph.
"""

import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "pysandbox"


def _loaded_by(module: str) -> set:
    script = (
        "import sys, types\n"
        "package = types.ModuleType('pysandbox')\n"
        f"package.__path__ = [{str(PACKAGE)!r}]\n"
        "sys.modules['pysandbox'] = package\n"
        f"import {module}\n"
        "print('\\n'.join(m for m in sys.modules if m.startswith('pysandbox.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("module", ["pysandbox.runtime.launch", "pysandbox.runtime.netplan", "pysandbox._core.spec"])
def test_runtime_and_spec_do_not_import_the_image_builder_or_the_api(module):
    loaded = _loaded_by(module)
    assert not {m for m in loaded if m.startswith("pysandbox.image")}
    assert not loaded & {"pysandbox.sandbox", "pysandbox.secret", "pysandbox.app"}
