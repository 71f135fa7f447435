"""Red team (red14): `sb.filesystem.remove(path, recursive=True)` (and Modal 1.5's `sb.rm`) of a tree sandbox code
nested deep raised Python's RecursionError, not a Modal error, and left the tree half removed: the host walked
the tree by recursion (InitClient.remove called itself for each directory), one Python frame chain per level,
and sandbox code chooses the depth (1500 directories named `a`, a path of 3000 bytes, well within what init
resolves). Severity: low (a crash of the host-side call with a non-Modal exception on sandbox-controlled data).

Fix: InitClient.remove walks the tree depth first with a stack of its own (each directory with the entries it
has left), removing each directory once its entries are gone; a path too long for init is init's error
(ENAMETOOLONG), a Modal one."""

import pytest

pytestmark = [pytest.mark.rootless, pytest.mark.gvisor]

NEST = "import os\nos.chdir('/tmp')\nfor i in range(1500):\n    os.mkdir('a'); os.chdir('a')\nopen('f', 'w').close()"


def test_removing_a_deep_tree_the_sandbox_made_works(sb):
    assert sb.exec("python3", "-c", NEST).wait() == 0
    sb.filesystem.remove("/tmp/a", recursive=True)
    assert sb.exec("test", "-e", "/tmp/a").wait() == 1
