"""sandbox-init's configuration, handed over in a sealed memfd (native/init/initconfig.h).

The sandbox's environment (which carries secrets, and whatever an image's ENV
says, LD_PRELOAD included) and the entrypoint's argv reach init this way, never
through the environment or command line of a host process: the supervisor and
the runner run with a fixed environment, and `ps` shows no user data.
"""

from __future__ import annotations

import fcntl
import os
from typing import Mapping, Sequence, Tuple

from ..exception import InvalidError

MAGIC = b"PSBC1"
MAX_BYTES = 8 << 20  # native/init/initconfig.h's INIT_CONFIG_MAX


def encode(env: Mapping[str, str], argv: Sequence[str], volumes: Sequence[Tuple[int, int, str]] = ()) -> bytes:
    """`volumes`: (st_dev, st_ino, sandbox path) of each volume the host opened. The
    environment may come from an image: a name or value init could misread is refused."""
    for key, value in env.items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise InvalidError(f"Environment variable {key!r} cannot be passed to a sandbox: names must be "
                               "non-empty without '=' or NUL, values without NUL (check the image's ENV).")
    records = [MAGIC]
    records += [b"E" + os.fsencode(f"{key}={value}") for key, value in env.items()]
    records += [b"A" + os.fsencode(arg) for arg in argv]
    records += [b"V" + f"{dev} {ino} ".encode() + os.fsencode(path) for dev, ino, path in volumes]
    return b"".join(record + b"\0" for record in records)


def memfd(data: bytes) -> int:
    """A read-only, sealed memfd holding `data` (close-on-exec; the launcher places it)."""
    if len(data) > MAX_BYTES:
        raise ValueError(f"init configuration of {len(data)} bytes is over {MAX_BYTES}")
    fd = os.memfd_create("pysandbox-init-config", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS,
                    fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except BaseException:
        os.close(fd)
        raise
    return fd
