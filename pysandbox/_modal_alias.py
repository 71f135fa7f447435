"""The opt-in that runs programs written for Modal unchanged: `import modal` resolves to pysandbox.

    pysandbox.install_as_modal()            # in this process, from now on (this module)
    python -m pysandbox.as_modal app.py     # run a script (or `-m module`) with it (as_modal.py)
    pysandbox modal-run -- python app.py    # run any command; its Python children get it (cli.py, _bootstrap/)
    pytest --modal=pysandbox                # the pytest option (pytest_plugin.py)

No package named `modal` is installed, so the real one stays usable everywhere else: a finder
at the front of `sys.meta_path` answers `modal` and `modal.<x>` with the module `pysandbox.<x>`
itself (the same object, so `modal.exception.NotFoundError is pysandbox.exception.NotFoundError`).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

from .exception import InvalidError

ENV_FLAG = "PYSANDBOX_AS_MODAL"  # `pysandbox modal-run` sets it for the bootstrap's sitecustomize
_PREFIX = "modal"


class _Alias(importlib.abc.Loader):
    """Loads `modal.<x>` as the already importable `pysandbox.<x>` (same module object)."""

    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module) -> None:
        """Nothing to run: pysandbox.<x> ran when create_module imported it."""


class ModalFinder(importlib.abc.MetaPathFinder):
    pysandbox_modal_alias = True  # recognised by install_as_modal even across two copies of this module

    def find_spec(self, fullname: str, path=None, target=None):
        if fullname != _PREFIX and not fullname.startswith(_PREFIX + "."):
            return None
        own = "pysandbox" + fullname[len(_PREFIX):]
        try:
            found = importlib.util.find_spec(own)
        except ModuleNotFoundError:
            found = None
        if found is None:
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: pysandbox, standing in for modal (install_as_modal), lacks it "
                f"(it offers Modal's sandbox API; see README.md, 'Run Modal programs unchanged')",
                name=fullname,
            )
        return importlib.util.spec_from_loader(fullname, _Alias(own), is_package=found.submodule_search_locations
                                               is not None)


def _installed() -> bool:
    return any(getattr(finder, "pysandbox_modal_alias", False) for finder in sys.meta_path)


def install_as_modal() -> None:
    """Make `import modal` and `import modal.<x>` resolve to pysandbox in this process.

    Idempotent. Refuses (InvalidError) when the real `modal` is already imported, since the two
    would then be mixed in one process.
    """
    if _installed():
        return
    real = sorted(name for name in sys.modules if name == _PREFIX or name.startswith(_PREFIX + "."))
    if real:
        where = getattr(sys.modules.get(real[0]), "__file__", None) or "?"
        raise InvalidError(
            f"install_as_modal(): the real `modal` is already imported ({real[0]} from {where}); "
            "call install_as_modal() before anything imports modal, or use `python -m pysandbox.as_modal app.py`."
        )
    sys.meta_path.insert(0, ModalFinder())
