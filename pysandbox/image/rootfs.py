"""What a sandbox started from an image gets: its layers, its runtime config.

An image root is an overlay: the image's layer directories read-only below,
a writable directory (`upper/rootfs`, with overlayfs's `upper/work` beside
it on the same filesystem) on top. For an ordinary sandbox `upper` is the
sandbox's own upper directory, removed by the supervisor at terminate; for a
build sandbox it is the temporary directory that becomes the new layer.
"""

from __future__ import annotations

from typing import Dict, Optional, Tuple

import attrs

# The environment every image sandbox starts from; the image's ENV goes on top.
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "HOME": "/root",
    "LANG": "C.UTF-8",
    "TERM": "xterm",
    "PYTHONUNBUFFERED": "1",
}


@attrs.frozen
class RootFS:
    image_id: str
    lowers: Tuple[str, ...]  # layer directories, bottom first
    env: Dict[str, str] = attrs.field(factory=dict)  # BASE_ENV plus the image's ENV
    workdir: Optional[str] = None
    entrypoint: Tuple[str, ...] = ()
    cmd: Tuple[str, ...] = ()
    upper: Optional[str] = None  # a build's own upper directory (kept after teardown); None: the sandbox's

    def command(self, args: Tuple[str, ...]) -> Tuple[str, ...]:
        """Docker's rule: arguments replace CMD and follow ENTRYPOINT."""
        return (*self.entrypoint, *(args or self.cmd))
