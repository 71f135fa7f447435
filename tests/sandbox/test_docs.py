"""Every Python block of docs/GUIDE.md runs, as a user would run it: each in a fresh Python process with the
session's state directory and runner, and must exit 0 (the blocks assert what they show) leaving no sandbox
running. A block preceded by `<!-- no-run: why -->` is skipped, and must say why."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox.runtime import cgroups

from ..conftest import DEBIAN_BUILD_TIMEOUT_S

ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "docs" / "GUIDE.md"
NO_RUN = re.compile(r"<!--\s*no-run:\s*(?P<why>[^>]*?)\s*-->\s*\n```python\n", re.M)
BLOCK = re.compile(r"^```python\n(?P<code>.*?)^```$", re.M | re.S)
BLOCK_TIMEOUT_S = 120
pytestmark = pytest.mark.rootless  # users run pysandbox rootless: the guide and examples must hold there too


def guide_blocks(text):
    """(section heading, code, why it does not run or None) for each ```python block, in order."""
    skipped = {m.end() - len("```python\n"): m.group("why") for m in NO_RUN.finditer(text)}
    blocks = []
    for match in BLOCK.finditer(text):
        headings = re.findall(r"^## (.+)$", text[:match.start()], re.M)
        blocks.append((headings[-1] if headings else "intro", match.group("code"), skipped.get(match.start())))
    return blocks


def _ids(blocks):
    counts = {}
    ids = []
    for heading, _, _ in blocks:
        slug = re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")
        counts[slug] = counts.get(slug, 0) + 1
        ids.append(f"{slug}-{counts[slug]}")
    return ids


BLOCKS = guide_blocks(GUIDE.read_text())
RUNNABLE = [(heading, code) for heading, code, why in BLOCKS if why is None]
# As tests/sandbox/test_limits.py: cpu=/memory= raise InvalidError where no cgroup is writable (unprivileged
# on cgroup v1), as the guide's troubleshooting section says.
needs_cgroups = pytest.mark.skipif(not cgroups.host().has("memory"), reason="no writable cgroup here (unprivileged on v1)")


def _needs_debian(code):
    return "debian_slim()" in code


@pytest.mark.timeout(DEBIAN_BUILD_TIMEOUT_S + BLOCK_TIMEOUT_S)  # the first to need debian_slim builds it
@pytest.mark.parametrize("heading,code", [
    pytest.param(heading, code, id=name, marks=[needs_cgroups] if re.search(r"\b(cpu|memory)=", code) else [])
    for (heading, code), name in zip(RUNNABLE, _ids([(h, c, None) for h, c in RUNNABLE]))])
def test_guide_block_runs(runner, state_home, request, heading, code):
    if _needs_debian(code):
        request.getfixturevalue("debian")  # built once per session (tests/conftest.py)
    env = dict(os.environ, PYSANDBOX_HOME=str(state_home),
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    done = subprocess.run([sys.executable, "-c", code], cwd=str(ROOT), env=env, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT_S)
    assert done.returncode == 0, f"the block of '{heading}' failed:\n{code}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    app = modal.App.lookup("my-app", create_if_missing=True)
    assert [sb.object_id for sb in modal.Sandbox.list(app_id=app.app_id)] == [], "the block left a sandbox running"


def test_the_guide_runs_its_blocks_and_says_why_not():
    assert len(RUNNABLE) >= 15
    assert all(why for _, _, why in BLOCKS if why is not None)
    assert len([b for b in BLOCKS if b[2] is not None]) <= 3  # a guide whose examples mostly cannot run is no guide


def test_the_block_parser():
    text = ("## One\n\n```python\nprint(1)\n```\n\n<!-- no-run: slow -->\n```python\nprint(2)\n```\n"
            "## Two\n```sh\nls\n```\n```python\nprint(3)\n```\n")
    assert guide_blocks(text) == [("One", "print(1)\n", None), ("One", "print(2)\n", "slow"), ("Two", "print(3)\n", None)]
