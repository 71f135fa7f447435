"""A program written for Modal (`import modal`, `from modal.container_process import ...`) runs unchanged
through each entry point of the opt-in: install_as_modal(), `python -m pysandbox.as_modal`,
`pysandbox modal-run` and `pytest --modal=pysandbox`. Each runs in its own process (the environment
carries the session's state directory and runner) with real sandboxes."""

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.rootless
ROOT = Path(__file__).resolve().parent.parent.parent

PROGRAM = textwrap.dedent("""
    import sys

    import modal
    import modal.exception
    from modal.container_process import ContainerProcess
    from modal.stream_type import StreamType

    app = modal.App.lookup("opt-in", create_if_missing=True)
    sb = modal.Sandbox.create(app=app)
    try:
        process = sb.exec("sh", "-c", "echo out; echo err >&2; exit 3", stderr=StreamType.PIPE)
        assert isinstance(process, ContainerProcess)
        out, err, code = process.stdout.read(), process.stderr.read(), process.wait()
        try:
            modal.Sandbox.from_id("sb-" + "0" * 22)
        except modal.exception.NotFoundError:
            found = "NotFoundError"
        # The opt-in is this host's: nothing of it (modal-run's variable and PYTHONPATH) enters the sandbox.
        leak = sb.exec("sh", "-c", "echo ${PYSANDBOX_AS_MODAL:-none}${PYTHONPATH:-}").stdout.read().strip()
        print(modal.__name__, out.strip(), err.strip(), code, found, leak, *sys.argv[1:])
    finally:
        sb.terminate(wait=True)
    sys.exit(5)
""")


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))


def _run(argv, cwd):
    return subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=str(cwd), timeout=120)


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "app.py"
    path.write_text(PROGRAM)
    return path


def _check(result, *args):
    assert result.returncode == 5, result.stderr  # the program's own exit status passes through
    assert result.stdout.split() == ["pysandbox", "out", "err", "3", "NotFoundError", "none", *args]


def test_install_as_modal(program):
    code = ("import runpy, sys, pysandbox; pysandbox.install_as_modal(); "
            f"sys.argv = [{str(program)!r}, 'one']; runpy.run_path(sys.argv[0], run_name='__main__')")
    _check(_run([sys.executable, "-c", code], program.parent), "one")


def test_python_m_pysandbox_as_modal(program):
    result = _run([sys.executable, "-m", "pysandbox.as_modal", "app.py", "one", "two"], program.parent)
    _check(result, "one", "two")
    assert result.stderr == ""  # as `python app.py` would run it: no runpy warning about the module


def test_python_m_pysandbox_as_modal_runs_a_module(program):
    _check(_run([sys.executable, "-m", "pysandbox.as_modal", "-m", "app", "x"], program.parent), "x")


def test_pysandbox_modal_run(program):
    result = _run([sys.executable, "-m", "pysandbox", "modal-run", "--", sys.executable, "app.py", "one"],
                  program.parent)
    _check(result, "one")


def test_pytest_option(tmp_path):
    (tmp_path / "test_app.py").write_text(textwrap.dedent("""
        import modal
        from modal.container_process import ContainerProcess
        from modal.stream_type import StreamType

        def test_exec():
            app = modal.App.lookup("opt-in", create_if_missing=True)
            sb = modal.Sandbox.create(app=app)
            try:
                process = sb.exec("echo", "hello", stdout=StreamType.PIPE)
                assert isinstance(process, ContainerProcess)
                assert process.stdout.read() == "hello\\n" and process.wait() == 0
                assert modal.__name__ == "pysandbox"
            finally:
                sb.terminate(wait=True)
    """))
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    registered = any(e.name == "pysandbox" for e in importlib.metadata.entry_points(group="pytest11"))
    plugin = [] if registered else ["-p", "pysandbox.pytest_plugin"]
    result = _run([sys.executable, "-m", "pytest", *plugin, "--modal=pysandbox", "-q", "-p", "no:cacheprovider",
                   "test_app.py"], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
