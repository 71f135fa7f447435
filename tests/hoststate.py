"""What tests look at on the host side of their sandboxes: the sandbox directories in the
state directory, and the host ids that sandbox ids map to."""

import os

from pysandbox._state import paths


def sandbox_dirs():
    """The names of the state directory's sandbox directories (a create refused before any work
    leaves them as they were)."""
    return set(os.listdir(paths.sandboxes_dir())) if paths.sandboxes_dir().exists() else set()


def host_id(ranges, inside: int) -> int:
    """The host id of sandbox id `inside` under the sandbox identity's map (identity.py)."""
    return next(outside + inside - first for first, outside, count in ranges if first <= inside < first + count)
