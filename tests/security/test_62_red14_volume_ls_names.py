"""Red team (red14): `pysandbox volume ls NAME` printed the names of a volume's files as they are, and sandboxes
choose them: a file named `\\x1b]0;pwned\\x07\\x1b[2J` retitles and clears the terminal of whoever lists the volume,
and a name with a newline forges entries of the listing (`legit\\n           9  shadow` reads as two files, the
second of 9 bytes), to a terminal or to a script reading the listing; a name that is not UTF-8 came out as its raw
bytes. `pysandbox logs` escapes what a sandbox wrote on a terminal (tests/security/test_38); this listing did
not. Severity: low (terminal injection, and a forged listing of sandbox-written storage).

Fix: the listing escapes every name (_cli.common.escape_name): control characters, tab and newline included, and
bytes that are not UTF-8 as \\xNN, to a terminal and a pipe alike, so each entry is one line of visible text."""

import os
import subprocess
import sys

import pytest

import pysandbox as modal

pytestmark = pytest.mark.rootless

WRITE_NAMES = r"""
for name in (b'\x1b]0;pwned\x07\x1b[2Jx', b'legit\n           9  shadow', b'bad\xff', b'tab\there', b'c1\xc2\x9bm'):
    open(b'/v/' + name, 'w').write('a')
"""


def test_volume_ls_shows_each_sandbox_chosen_name_as_one_escaped_line(sandboxes):
    volume = modal.Volume.from_name("red14-names", create_if_missing=True)
    sb = sandboxes("sleep", "60", volumes={"/v": volume})
    assert sb.exec("python3", "-c", WRITE_NAMES).wait() == 0
    out = subprocess.run([sys.executable, "-m", "pysandbox", "volume", "ls", "red14-names", "/"], capture_output=True,
                         env=os.environ, stdin=subprocess.DEVNULL, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.split(b"\n")[:-1]
    assert len(lines) == 5, lines  # one line per file: no name passes for another entry
    assert not [c for c in out.stdout if c < 0x20 and c != 0x0a or 0x7f <= c], out.stdout  # no control byte, all ASCII
    assert {line.split(maxsplit=1)[1] for line in lines} == {
        b"\\x1b]0;pwned\\x07\\x1b[2Jx", b"legit\\x0a           9  shadow", b"bad\\xff", b"tab\\x09here", b"c1\\x9bm"}
