"""Run at startup by every Python under `pysandbox modal-run` (this directory is first on PYTHONPATH).

With PYSANDBOX_AS_MODAL=1 it makes `import modal` resolve to pysandbox (pysandbox.install_as_modal),
then runs the sitecustomize this one shadows, if any, so the interpreter starts as it otherwise would.
pysandbox itself is imported only when the program first imports `modal`: the other Python processes
the command starts (pip, build tools) start as fast as without it.
"""

import importlib.machinery
import importlib.util
import os
import sys


class _ModalOnFirstImport:
    """Stands in for pysandbox's finder until `modal` is first imported, then installs it."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "modal" and not fullname.startswith("modal."):
            return None
        sys.meta_path.remove(self)
        try:
            import pysandbox
        except ImportError as exc:
            raise ImportError(f"pysandbox modal-run: {sys.executable} cannot import pysandbox ({exc}); "
                              "install pysandbox in that Python's environment", name=fullname) from None
        pysandbox.install_as_modal()
        return importlib.util.find_spec(fullname)


def _run_shadowed() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules["sitecustomize"] = module
        spec.loader.exec_module(module)


if os.environ.get("PYSANDBOX_AS_MODAL") == "1":
    sys.meta_path.insert(0, _ModalOnFirstImport())
_run_shadowed()
