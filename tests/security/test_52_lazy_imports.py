"""Issue 19: what only builds, pulls, Dockerfiles and snapshots need is imported on its first use
(pysandbox/_lazy.py), not by `import pysandbox`; the import then happens later, wherever the
process stands by then.

The attack: a process imports pysandbox, then changes into a directory others wrote (a volume's
copy, a build context, a snapshot's files) that holds a `pysandbox/` package of its own, with
modules named after every one imported late. With `''` first on sys.path (`python -c`, `-m`, a
REPL, a notebook), a late import resolved against sys.path would run them. Each leaves a file
when it runs; none may appear, and the modules used are the installed package's.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import pysandbox
from pysandbox import _lazy

pytestmark = pytest.mark.rootless

LATE = ("build", "debian", "dockerfile", "dockerfile_steps", "local", "pull", "reference", "snapshot", "steps",
        "store")
PACKAGE = Path(pysandbox.__file__).parent

# Run with cwd = the hostile directory's parent of `pysandbox/`, after importing the real package.
PROGRAM = """
import os, sys
import pysandbox as modal
os.chdir(sys.argv[1])
image = modal.Image.from_scratch().env({"A": "1"})
print(repr(image))                               # steps, build
modal.Image.from_dockerfile                      # the class's own attribute: nothing imported
from pysandbox.image import recipe
for name in ("dockerfile", "dockerfile_steps", "pull", "reference", "store", "debian", "localfiles"):
    getattr(recipe, name).__name__               # each stand-in imports its module
from pysandbox import sandbox
sandbox.snapshot.__name__
for name in %r:
    print(sys.modules["pysandbox.image." + name].__file__)
"""


def test_late_imports_come_from_the_package_not_the_working_directory(tmp_path):
    hostile = tmp_path / "hostile"
    marker = tmp_path / "ran"
    (hostile / "pysandbox" / "image").mkdir(parents=True)
    payload = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    for init in (hostile / "pysandbox" / "__init__.py", hostile / "pysandbox" / "image" / "__init__.py"):
        init.write_text(payload)
    for name in LATE:
        (hostile / "pysandbox" / "image" / f"{name}.py").write_text(payload)
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    result = subprocess.run([sys.executable, "-c", PROGRAM % (LATE,), str(hostile)], env=env, cwd=str(tmp_path),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert not marker.exists(), f"a planted module ran: {marker.read_text()}"
    files = result.stdout.splitlines()[1:]
    assert len(files) == len(LATE)
    assert all(Path(f).parent == PACKAGE / "image" for f in files), files


def test_a_stand_in_reads_the_real_module():
    steps = _lazy.LazyModule("pysandbox.image.steps")
    from pysandbox.image import steps as real
    assert steps.Scratch is real.Scratch
    with pytest.raises(AttributeError):
        steps.no_such_name
