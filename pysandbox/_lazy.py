"""Modules imported on their first use, so that what only a build, a pull or a Dockerfile needs
stays out of `import pysandbox` (every CLI call and second process pays for what it imports:
benchmarks/bench_import.py)."""

from __future__ import annotations

import importlib
from typing import Any


class LazyModule:
    """Stands for the module `name`: reading an attribute imports it (once; the import system's own
    locks make that safe from any thread) and reads the module's. Type checkers see the real module:
    import it under `if TYPE_CHECKING:` beside the stand-in."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(importlib.import_module(self._name), attribute)

    def __repr__(self) -> str:
        return f"<module {self._name!r}, imported on first use>"
