"""The seed's "Parameters", "Using custom images" and "Dynamically defined environments"
sections, with `import pysandbox as modal`, each in its own process."""

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.rootless
SEED = Path(__file__).resolve().parent.parent / "seed"


def run_example(name):
    done = subprocess.run([sys.executable, str(SEED / name)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_parameters_example(debian):
    assert run_example("example_parameters.py").stdout == "/repo True pandas\n"


def test_custom_images_example_streams_its_build(debian):
    done = run_example("example_custom_images.py")
    assert done.stdout.endswith("3\n")
    assert "Successfully installed" in done.stderr  # enable_output() showed pip's log


def test_dynamically_defined_environment(debian):
    assert run_example("example_dynamic_image.py").stdout == "generated six\n"
