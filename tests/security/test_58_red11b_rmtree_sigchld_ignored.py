"""Red team (red11b), fixed in the same session: sandbox-rmtree run by a process that ignores SIGCHLD removes with the caller's own rights.

userns_finish (native/common/userns.c), for an attached maker (userns_enter: sandbox-rmtree), waits for the
maker and reads its status: `waitpid(m->pid, &st, 0)`, then `WIFEXITED(st)`. SIGCHLD's SIG_IGN survives exec, and
a host program may well ignore it (a server that wants no zombies): then the kernel reaps the maker itself,
waitpid fails with ECHILD after it (and its holder, which it waits for since edd80a1) exited, and st is read
uninitialized. Seen: every removal under that disposition says "the sandbox's user namespace could not be made"
and falls back to "removing with the caller's own rights" (as root: host root's rights over a tree the sandbox
wrote, every gc and volume delete), the layer of defence the namespace is for gone. The supervisor resets
SIGCHLD to SIG_DFL for this very reason (supervisor.c: "SIG_IGN would auto-reap and hide the exit code");
sandbox-rmtree does not. Not sandbox-triggered: low.

Fix: sandbox-rmtree's main (every native helper's that forks) sets SIGCHLD to SIG_DFL first, as the
supervisor does; and userns_finish initializes st and takes a waitpid failure as the maker's failure, not
as whatever was on the stack (or, the fd having come last, as its success).

Run it as root and as the unprivileged user (PYSANDBOX_ROOTLESS_TAG=x bash .ci/rootless <this file>)."""

import os
import signal
import subprocess

import pytest

from pysandbox import identity, settings

pytestmark = pytest.mark.rootless


def test_a_removal_by_a_caller_ignoring_sigchld_keeps_the_sandbox_ids_namespace(tmp_path):
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    ids = identity.current()
    # root's own removal takes no namespace: the plan an unprivileged caller's is, mapping root's own ids
    plan = ids.supervisor_args() if ids.newidmap else ["--userns-uid", "0:0:65536", "--userns-gid", "0:0:65536"]
    done = subprocess.run([settings.native_binary("sandbox-rmtree"), *plan, str(tree)], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120,  # a bound for a loaded machine
                          preexec_fn=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN))
    assert done.returncode == 0 and not os.path.lexists(tree), done.stderr
    assert "could not be made" not in done.stderr and "own rights" not in done.stderr, done.stderr
