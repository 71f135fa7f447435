"""How big each memory-backed filesystem of a sandbox may grow (pysandbox/bounds.py).

A tmpfs left unsized may take half of the host's memory, and what it holds outlives
the process that wrote it (an OOM kill frees none of it), so every one is sized:

* the writable root of a host-image sandbox: `ephemeral_disk=` if given, else
  PYSANDBOX_WRITABLE_ROOT_MAX (0: no tmpfs, the root is a directory on the state disk),
  holding /tmp too;
* /tmp of an image sandbox (whose root is its overlay): PYSANDBOX_TMP_MAX;
* /dev/shm: PYSANDBOX_DEV_SHM_MAX; /dev itself holds only nodes and is read-only.

With a memory limit, none is larger than it: tmpfs pages are charged to the sandbox's
memory cgroup, and a write past the limit is better an ENOSPC than an OOM kill.
"""

from __future__ import annotations

from typing import Dict, Optional

from .. import bounds
from ..resources import Resources


def tmpfs_sizes(resources: Resources, image: bool) -> Dict[str, Optional[int]]:
    """RunnerInputs' disk_bytes, tmp_bytes and shm_bytes."""
    limit = None if resources.memory_limit is None else resources.memory_limit << 20

    def capped(name: str) -> int:
        size = bounds.get(name)
        return size if limit is None else min(size, limit)

    if resources.ephemeral_disk is not None:
        disk: Optional[int] = resources.ephemeral_disk << 20
    elif image or bounds.get("writable_root") == 0:
        disk = None
    else:
        disk = capped("writable_root")
    return {"disk_bytes": disk, "tmp_bytes": capped("tmp"), "shm_bytes": capped("dev_shm")}
