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
    # `python -m pysandbox.as_modal` put the working directory first on sys.path, as `python -m module`
    # does; `python script.py` puts the script's directory there instead.
    if argv[0] == "-m":
        sys.argv = [argv[1]] + argv[2:]
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    else:
        sys.argv = argv
        sys.path[0] = os.path.dirname(os.path.abspath(argv[0]))
        runpy.run_path(argv[0], run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main())
