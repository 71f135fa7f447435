"""`python -m pysandbox.as_modal script.py [args]` (or `-m module [args]`): run a program written for
Modal as `python` would, with `import modal` resolving to pysandbox (pysandbox.install_as_modal)."""

import importlib.machinery
import importlib.util
import os
import runpy
import sys
from typing import List, Optional

from ._modal_alias import install_as_modal

PROG = "python -m pysandbox.as_modal"
USAGE = ("usage: python -m pysandbox.as_modal (script.py | -m module) [args...]\n"
         "Runs the program with `import modal` resolving to pysandbox.")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        return 2
    install_as_modal()
    # `python -m pysandbox.as_modal` put the working directory first on sys.path, as `python -m module`
    # does; `python script.py` puts the script's directory there instead.
    # What python says, and its status 1 or 2, for a module or a script that is not there (no traceback).
    if argv[0] == "-m":
        if _spec(argv[1]) is None:
            print(f"{PROG}: No module named {argv[1]}", file=sys.stderr)
            return 1
        sys.argv = [argv[1]] + argv[2:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        if not os.path.exists(argv[0]):
            print(f"{PROG}: can't open file {os.path.abspath(argv[0])!r}: [Errno 2] No such file or directory",
                  file=sys.stderr)
            return 2
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


def _spec(name: str) -> Optional[importlib.machinery.ModuleSpec]:
    try:
        return importlib.util.find_spec(name)
    except ImportError:  # its parent package is missing
        return None


if __name__ == "__main__":
    sys.exit(main())
