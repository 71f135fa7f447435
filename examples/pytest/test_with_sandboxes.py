"""Testing code that runs in sandboxes, with pysandbox's pytest plugin (installed with the package).

    pytest examples/pytest                                  # under the default runner
    pytest examples/pytest --sandbox-runner nsjail -n 4     # another runner, with pytest-xdist

Every sandbox below is terminated when its test ends and tied to the test process, so a run
that is interrupted or killed leaves none behind.
"""

import pytest


def test_a_fresh_sandbox_per_test(sandbox):
    p = sandbox.exec("sh", "-c", "echo hello from $(hostname) && touch /tmp/mine")
    assert p.stdout.read().startswith("hello from ") and p.wait() == 0


def test_nothing_leaks_from_the_previous_test(sandbox):
    assert sandbox.exec("test", "-e", "/tmp/mine").wait() == 1


@pytest.mark.sandbox("sleep", "60", block_network=True, env={"GREETING": "hi"})
def test_create_options_from_the_marker(sandbox):
    assert sandbox.exec("sh", "-c", "echo $GREETING").stdout.read() == "hi\n"
    assert sandbox.poll() is None


def test_many_sandboxes_with_the_factory(sandbox_factory):
    sandboxes = [sandbox_factory("sh", "-c", f"exit {code}") for code in range(3)]
    for code, sb in enumerate(sandboxes):
        sb.wait(raise_on_termination=False)
        assert sb.returncode == code
