"""One command in a throwaway sandbox: image build steps, layer unpacking, snapshots.

The sandbox is tethered: never confirmed, so if this process dies mid-run, the
sandbox dies with it; when the command has ended, cutting the tether ends it.
"""

from __future__ import annotations

import collections
from typing import Callable, List, Sequence

import attrs

from .. import _aio
from .._state import apps, paths
from ..exception import ConflictError, ImageBuildError, ResourceExhaustedError, SandboxTimeoutError
from . import lifecycle
from .exec import start_process
from .spec import ExecSpec, SandboxSpec

BUILDER_APP = "pysandbox-image-builder"  # the app every one-shot sandbox belongs to
TAIL_LINES = 40


@attrs.frozen
class Outcome:
    code: int
    tail: List[str]  # the last TAIL_LINES lines of its output: stdout, then stderr


def run(spec: SandboxSpec, argv: Sequence[str], what: str, on_line: Callable[[str], None]) -> Outcome:
    """Run `argv` in a new tethered sandbox made from `spec`, passing each line of its
    stdout to `on_line` as it comes; the sandbox has ended when this returns."""
    app = apps.read_app(BUILDER_APP) or apps.create_app(BUILDER_APP)
    started = lifecycle.start(spec, app["app_id"], app.get("name"), tethered=True)
    record = started.record
    sandbox = paths.SandboxDir.of(record.sandbox_id)
    tail: collections.deque = collections.deque(maxlen=TAIL_LINES)
    try:
        try:
            process = _aio.run_sync(start_process(sandbox.socket, record.sandbox_id, ExecSpec(argv, bufsize=1)))
        except ConflictError:  # it died starting: the runner's reason is in the supervisor's log
            log = sandbox.log.read_text(errors="replace")
            raise ImageBuildError(f"Build sandbox for {what} failed to start:\n{log[-2000:]}") from None
        for line in process.stdout:
            tail.append(line.rstrip("\n"))
            on_line(line.rstrip("\n"))
        try:
            stderr = process.stderr.read()
        except ResourceExhaustedError as cut:  # over the unread-output bound: its head is enough
            stderr = cut.partial
        tail.extend(stderr.splitlines())
        code = process.wait()
    finally:
        started.launched.abandon()  # the supervisor sees its tether cut and tears the sandbox down
        if _aio.run_sync(lifecycle.wait(record)).status == "timeout":
            raise SandboxTimeoutError(f"Sandbox {record.sandbox_id} exceeded its timeout.")
    return Outcome(code, list(tail))

