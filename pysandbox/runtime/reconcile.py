"""Repair after a lost supervisor: the teardown a supervisor that died without a word could not do.

A supervisor killed by SIGKILL, a host crash or a disk it could not write leaves no exit
record; the registry reads such a sandbox as terminated with `lost` set (records.finished),
without touching anything. The runtime does the rest here, when a caller that may act asks
(terminate(), wait(), gc): kill what the supervisor stranded, remove the sandbox's cgroup,
upper directory and socket, and write the exit record. native/supervisor/cgroup.c and native/common/rmtree.c
do the same teardown for a supervisor that lives to do it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import List

from .._state import paths, records
from .._state.files import remove_tree, write_json_atomic
from ..exception import Error, ExecutionError
from . import cgroups, gvisor


def repair(record: records.SandboxRecord) -> List[str]:
    """Do the teardown of a sandbox whose supervisor died without its exit record: kill what
    it stranded, remove its cgroup, upper directory, mounted images and socket, then record it as terminated.
    Best effort (a full or read-only disk must not make terminate() or gc fail: the sandbox
    reads as terminated anyway); returns what could not be done, one line each."""
    sandbox = paths.SandboxDir.of(record.sandbox_id)
    if record.supervisor.alive(records.SUPERVISOR_PROGRAM):
        return []
    # Strays first, even when another repairer wrote the exit record meanwhile: its scan of
    # /proc may have passed before a stray showed up, and killing twice is harmless.
    _kill_strays(sandbox.path)
    if os.path.exists(sandbox.exit):
        return []
    problems = []
    try:
        cgroups.remove_listed(sandbox.path)
    except ExecutionError as exc:  # an invalid cgroup.json: refused, never acted on
        problems.append(str(exc))
    except OSError:
        pass  # still busy: `gc` removes it later, and keeps the directory until it can
    for tree in (sandbox.upper, sandbox.mounts):
        with contextlib.suppress(OSError):
            remove_tree(tree)
    with contextlib.suppress(OSError):
        os.unlink(sandbox.socket)
    with contextlib.suppress(Error):
        write_json_atomic(sandbox.exit,
                          {"status": "terminated", "code": 137, "finished_at": time.time()}, durable=False)
    return problems


def _kill_strays(directory: Path) -> None:
    """A supervisor killed while bwrap (or nsjail) was still setting the sandbox up can
    strand the runner's child, not yet under --die-with-parent, blocked on a runner that
    is gone. It still carries the runner's command line, which names the sandbox
    (sandbox-init's `--sandbox ID`); runsc's processes name its state directory instead."""
    name = os.fsencode(directory.name)
    runsc_root = os.fsencode(gvisor.runsc_root(str(directory)))
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            program = os.path.basename(argv[0])
            if program in (b"bwrap", b"nsjail") and any(
                    a == b"--sandbox" and b == name for a, b in zip(argv, argv[1:])) or \
                    program.startswith(b"runsc") and any(a in (runsc_root, b"--root=" + runsc_root) for a in argv):
                os.kill(int(entry.name), signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass  # gone meanwhile, or not ours to read
