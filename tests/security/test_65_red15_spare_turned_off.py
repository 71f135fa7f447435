"""Red team (red15): PYSANDBOX_WARM_SPARE=0 did not turn off a spare that already waited.

settings.warm_spare() was read only when a spare was to be started: one started before the caller set
PYSANDBOX_WARM_SPARE=0 (to take spares out of the picture: a fault it suspects, a fresh supervisor
for each sandbox) still got the next sandbox, namespaces made before the setting and all. Turned off,
a waiting spare is let go and the create starts its own supervisor."""

import pytest

from pysandbox.runtime import spare

pytestmark = pytest.mark.rootless


def test_turning_spares_off_lets_the_waiting_one_go(sandboxes, monkeypatch):
    monkeypatch.delenv("PYSANDBOX_WARM_SPARE", raising=False)
    sandboxes()
    waiting = spare._waiting
    assert waiting is not None
    monkeypatch.setenv("PYSANDBOX_WARM_SPARE", "0")
    sb = sandboxes()
    assert sb._record.supervisor.pid != waiting.pid  # (whether the spare is let go or waits on: main's choice)
