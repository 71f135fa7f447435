"""Red team (red11b), fixed in the same session: exec(pty=True) gives up on PATH at an entry that exec(pty=False) skips.

Since db2c65d a pty exec searches PATH in the child that took the terminal (native/init/spawn.c, search_path
with exec_file): it stops at the first execve error other than ENOENT, ENOTDIR and EACCES. The pipe exec's
search (spawn_candidate) checks each file with faccessat first and goes on past any error of it. So an entry
of the sandbox's PATH (the image's ENV, or a file the sandbox makes) whose name is too long (ENAMETOOLONG) or
a symlink loop (ELOOP) makes every pty exec of a program found later on PATH fail (127, with the
entry's error: "File name too long", "Too many levels of symbolic links"), while the same exec
without a terminal, and the shells (dash, bash: they skip such entries), run it. The sandbox can thereby make
its own interactive execs fail where its pipe execs succeed: a correctness gap between the two searches
(low), no escape. Fix: one rule for both searches, e.g. exec_file's caller going on past every error that says
the file is not there or cannot be reached (ELOOP, ENAMETOOLONG, ESTALE, ENODEV, ETIMEDOUT too), as
spawn_candidate does, keeping the first other error to report if nothing runs."""

import pytest

pytestmark = pytest.mark.rootless

LONG = "/" + "a" * 300  # a name longer than NAME_MAX: ENAMETOOLONG


@pytest.mark.gvisor
@pytest.mark.parametrize("entry", [LONG, "/tmp/loop"], ids=["too-long", "loop"])
def test_a_pty_exec_skips_the_path_entries_a_pipe_exec_skips(sb, entry):
    assert sb.exec("ln", "-s", "/tmp/loop", "/tmp/loop").wait() == 0
    env = {"PATH": f"{entry}:/usr/bin:/bin"}
    assert sb.exec("true", env=env).wait() == 0  # the pipe exec's search goes on past the entry
    p = sb.exec("true", pty=True, env=env)
    assert p.wait() == 0, p.stdout.read()
