"""The image-side import cycles stay gone: what importing one module drags in.

Each check runs in a fresh interpreter with the `pysandbox` package stubbed, so
that the package's __init__ (which re-exports the whole public API) does not
hide the module's own import graph.
"""

import ast
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


def test_the_spec_takes_plain_values_not_stream_types():
    assert "pysandbox.streams" not in _loaded_by("pysandbox._core.spec")


@pytest.mark.parametrize("module", ["pysandbox.image.build", "pysandbox.image.snapshot", "pysandbox._core.oneshot"])
def test_image_builder_does_not_import_the_sandbox_facade(module):
    assert "pysandbox.sandbox" not in _loaded_by(module)


def _imports(path: Path):
    """(import node, whether it sits inside a function) for every import in `path`."""
    tree = ast.parse(path.read_text())
    nested = {id(node) for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
              for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))}
    return [(node, id(node) in nested) for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]


def test_dockerfile_parser_does_not_import_the_recipe():
    for node, _ in _imports(PACKAGE / "image" / "dockerfile.py"):
        names = [alias.name for alias in node.names] + [getattr(node, "module", None) or ""]
        assert not any("recipe" in name for name in names)


@pytest.mark.parametrize("path", sorted([*(PACKAGE / "_core").glob("*.py"), *(PACKAGE / "image").glob("*.py"),
                                         PACKAGE / "sandbox.py"]), ids=lambda p: p.name)
def test_no_function_level_imports(path):
    assert [node.lineno for node, inside in _imports(path) if inside] == []
