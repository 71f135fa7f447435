"""The cause of a failed start comes from the sandbox's supervisor log, which sandbox-init (inside
the sandbox) writes too: sandbox code cannot write there, and what the host reads of it for an
error message is bounded and shown with its control characters escaped."""

import pytest

from pysandbox._state import paths, records
from pysandbox.exception import ConflictError

pytestmark = pytest.mark.rootless


def test_sandbox_code_cannot_write_into_inits_log(sandboxes):
    sb = sandboxes("sleep", "30")
    log = paths.SandboxDir.of(sb.object_id).log
    p = sb.exec("sh", "-c", "for fd in 1 2; do printf 'sandbox-init: spoofed\\n' > /proc/1/fd/$fd && echo wrote; done")
    assert p.stdout.read() == "" and p.wait() != 0
    assert "Permission denied" in p.stderr.read()
    assert b"spoofed" not in log.read_bytes()


def test_a_hostile_log_gives_a_bounded_escaped_message(sandboxes):
    # As if init had been made to write a flood with terminal escapes before failing.
    sb = sandboxes("sleep", "30")
    log = paths.SandboxDir.of(sb.object_id).log
    with open(log, "wb") as f:
        f.write(b"\x1b[2J\x1b]0;owned\x07sandbox-init: " + b"A" * (1 << 20) + b"\n" + b"more\n" * 200_000)
    sb.terminate(wait=True)
    with pytest.raises(ConflictError) as raised:
        sb.exec("true")
    message = str(raised.value)
    assert "\x1b" not in message and "\x07" not in message and "\\x1b[2J" in message
    assert len(message) < records.LOG_LINE_MAX + 200
