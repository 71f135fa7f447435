"""`python -m pysandbox.as_modal script.py [args]` (or `-m module [args]`): run a program written for
Modal as `python` would, with `import modal` resolving to pysandbox (pysandbox.install_as_modal)."""

import os
import runpy
import sys
from typing import List, Optional

from ._modal_alias import install_as_modal

USAGE = ("usage: python -m pysandbox.as_modal (script.py | -m module) [args...]\n"
         "Runs the program with `import modal` resolving to pysandbox.")


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help") or (argv[0] == "-m" and len(argv) < 2):
        print(USAGE, file=sys.stderr)
        return 2
    install_as_modal()
    if argv[0] == "-m":  # as `python -m module`: the working directory first on sys.path
        sys.argv = [argv[1]] + argv[2:]
        sys.path.insert(0, os.getcwd())
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:  # as `python script.py`: the script's directory first on sys.path
        sys.argv = argv
        sys.path.insert(0, os.path.dirname(os.path.abspath(argv[0])))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
