"""A create(pty=True) whose entrypoint init found no terminal for (ENOSPC) is a ResourceExhaustedError at the
next call: the client knows it by init's line first in the supervisor's log (records.ENTRY_TERMINAL_ENOSPC) and
exit 1. The attack: sandbox code says init's words itself, to pass its own end off as the host's terminals used
up. It cannot: its output goes to the sandbox's own files, and pid 1's stderr, the log, is out of its reach
(init is not dumpable: /proc/1/fd refuses it)."""

import pytest

from pysandbox._state import records
from pysandbox.exception import ConflictError, ResourceExhaustedError

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
@pytest.mark.parametrize("pty", [True, False])
def test_an_entrypoint_saying_inits_words_is_not_taken_for_init(sandboxes, pty):
    line = records.ENTRY_TERMINAL_ENOSPC
    sb = sandboxes("sh", "-c", f"echo '{line}'; echo '{line}' >&2; echo '{line}' 2>/dev/null >/proc/1/fd/2; exit 1",
                   pty=pty)
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 1
    assert line in sb.stdout.read()
    assert line not in records.log_lines(sb.object_id)
    with pytest.raises(ConflictError, match="already finished") as info:
        sb.exec("true")
    assert not isinstance(info.value, ResourceExhaustedError)
