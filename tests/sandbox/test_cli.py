"""The `pysandbox` command line, run as a separate process against real sandboxes."""

import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
import uuid

import pytest

import pysandbox as modal
from pysandbox._state import paths, records
from pysandbox._state.files import ensure_dir, new_id
from pysandbox.runtime import cgroups

from ..conftest import assert_torn_down

pytestmark = pytest.mark.rootless

UNKNOWN_ID = "sb-" + "a" * 22


def cli(*args, input=None, timeout=60):
    """Run `python -m pysandbox ARGS` with the session's PYSANDBOX_HOME."""
    stdin = {} if input is not None else {"stdin": subprocess.DEVNULL}
    return subprocess.run([sys.executable, "-m", "pysandbox", *args], input=input, capture_output=True,
                          timeout=timeout, env=os.environ, **stdin)


def assert_one_error_line(result, *fragments, code=1):
    assert result.returncode == code, result
    lines = result.stderr.decode().splitlines()
    assert len(lines) == 1 and lines[0].startswith("pysandbox: error: "), lines
    assert "Traceback" not in lines[0]
    for fragment in fragments:
        assert fragment in lines[0]


# exec ----------------------------------------------------------------------


def test_exec_separates_stdout_stderr_and_exits_with_the_code(sb):
    r = cli("exec", sb.object_id, "--", "sh", "-c", "echo out; echo err >&2; exit 3")
    assert (r.returncode, r.stdout, r.stderr) == (3, b"out\n", b"err\n")


def test_exec_forwards_stdin_byte_exact(sb):
    data = bytes(range(256)) * 8192  # 2 MiB, every byte value
    r = cli("exec", sb.object_id, "--", "sh", "-c", "cat; echo done >&2", input=data)
    assert r.returncode == 0
    assert r.stdout == data
    assert r.stderr == b"done\n"


def test_exec_options_env_and_workdir(sb):
    r = cli("exec", "-e", "GREETING=hi there", "--workdir", "/tmp", sb.object_id, "--",
            "sh", "-c", 'echo "$GREETING"; pwd')
    assert (r.returncode, r.stdout) == (0, b"hi there\n/tmp\n")


def test_exec_streams_live_and_timeout_exits_124(sb):
    proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "exec", sb.object_id, "--",
                             "sh", "-c", "echo first; read line; echo got $line"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    try:
        assert proc.stdout.readline() == b"first\n"
        assert proc.poll() is None  # printed while the command still waits for its input
        proc.stdin.write(b"x\n")
        proc.stdin.close()
        assert proc.stdout.read() == b"got x\n" and proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert cli("exec", sb.object_id, "--timeout", "1", "--", "sleep", "30").returncode == 124


# run -----------------------------------------------------------------------


def test_run_end_to_end_leaves_no_sandbox_running():
    app_name = f"cli-run-{uuid.uuid4().hex[:8]}"
    r = cli("run", "--app", app_name, "-e", "X=1", "--", "sh", "-c", 'echo "out $X"; echo err >&2; exit 4')
    assert (r.returncode, r.stdout, r.stderr) == (4, b"out 1\n", b"err\n")
    found = [rec for _, rec in records.iter_records() if not isinstance(rec, Exception) and rec.app_name == app_name]
    assert len(found) == 1
    assert records.sandbox_state(found[0])[0] == "terminated"
    assert_torn_down(found[0].sandbox_id, found[0].supervisor)


def test_run_rejects_unknown_images_and_bad_env():
    assert_one_error_line(cli("run", "--image", "debian:12", "--", "true"), "Invalid image id 'debian:12'", code=1)
    assert_one_error_line(cli("run", "-e", "NOVALUE", "--", "true"), "KEY=VALUE", code=2)


# logs ----------------------------------------------------------------------


def test_logs_prints_entrypoint_output_to_matching_streams(sandboxes):
    sb = sandboxes("sh", "-c", "echo out; echo err >&2")
    sb.wait()
    r = cli("logs", sb.object_id)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"out\n", b"err\n")


def test_logs_follow_ends_when_the_sandbox_ends(sandboxes):
    sb = sandboxes("sh", "-c", "echo start; echo warn >&2; sleep 1; echo end")
    r = cli("logs", "-f", sb.object_id, timeout=30)
    assert (r.returncode, r.stdout, r.stderr) == (0, b"start\nend\n", b"warn\n")
    assert sb.poll() == 0


# terminate -----------------------------------------------------------------


def test_terminate_by_id_with_wait(sb):
    r = cli("terminate", sb.object_id, "--wait")
    assert (r.returncode, r.stdout) == (0, f"{sb.object_id} 137\n".encode())
    assert sb.poll() == 137


def test_terminate_by_name(sandboxes, app):
    sb = sandboxes("sleep", "100", name=f"cli-{uuid.uuid4().hex[:8]}")
    r = cli("terminate", sb._record.name, "--app", app.name)
    assert (r.returncode, r.stdout) == (0, f"{sb.object_id}\n".encode())
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 137


@pytest.mark.parametrize("args, fragment, code", [
    (["exec", "sb-nope", "--", "true"], "Invalid sandbox id", 1),
    (["exec", UNKNOWN_ID, "--", "true"], "not found", 1),
    (["logs", UNKNOWN_ID], "not found", 1),
    (["terminate", "some-name"], "--app", 2),
    (["terminate", "some-name", "--app", "no-such-app-for-cli"], "not found", 1),
    (["exec", UNKNOWN_ID], "no command given", 2),
    (["frobnicate"], "invalid choice", 2),
])
def test_errors_are_one_line(args, fragment, code):
    assert_one_error_line(cli(*args), fragment, code=code)


# ls and gc -------------------------------------------------------------------


def test_ls_lists_running_sandboxes_and_all_with_all(sandboxes, app):
    sb = sandboxes(tags={"team": "cli"})
    table = cli("ls").stdout.decode()
    assert table.splitlines()[0].split() == ["ID", "APP", "NAME", "TAGS", "STATE", "AGE", "IMAGE", "CPU", "MEM", "PIDS", "OOM"]
    row = next(line for line in table.splitlines() if line.startswith(sb.object_id))
    assert row.split()[1:5] == [app.name, "-", "team=cli", "running"]
    listed = json.loads(cli("ls", "--json", "--app", app.name).stdout)
    entry = next(e for e in listed if e["id"] == sb.object_id)
    assert entry == {"id": sb.object_id, "app_id": app.app_id, "app_name": app.name, "name": None,
                     "tags": {"team": "cli"}, "state": "running", "returncode": None,
                     "created_at": entry["created_at"], "image": "host",
                     **{key: entry[key] for key in ("cpu_seconds", "memory_current", "memory_peak", "pids", "oom_kills")}}
    assert entry["oom_kills"] == (0 if cgroups.host().has("memory") else None)  # none without a cgroup
    sb.terminate(wait=True)
    assert sb.object_id not in cli("ls").stdout.decode()
    assert f"{sb.object_id}" in cli("ls", "--all").stdout.decode()
    finished = json.loads(cli("ls", "--all", "--json").stdout)
    assert {"state": "terminated", "returncode": 137}.items() <= next(
        e for e in finished if e["id"] == sb.object_id).items()


def test_ls_shows_a_corrupt_record_only_with_all():
    bad_id = new_id("sb-")
    directory = ensure_dir(paths.sandbox_dir(bad_id))
    try:
        (directory / "record.json").write_text("{not json")
        assert bad_id not in cli("ls").stdout.decode()
        row = next(line for line in cli("ls", "--all").stdout.decode().splitlines() if line.startswith(bad_id))
        assert "corrupt: " in row and "record.json" in row
    finally:
        shutil.rmtree(directory)


def test_gc_removes_finished_sandboxes(app):
    sb = modal.Sandbox.create("true", app=app)  # not the fixture: gc removes its directory
    sb.wait()
    r = cli("gc", "--verbose")
    lines = r.stdout.decode().splitlines()
    words = lines[0].split()
    assert r.returncode == 0 and words[0] == "removed" and int(words[1]) >= 1 and words[2:] == ["sandbox(es)"]
    assert f"  {sb.object_id}" in lines  # --verbose names what it removed
    assert not paths.sandbox_dir(sb.object_id).exists()


# shell -----------------------------------------------------------------------


def test_shell_runs_a_command_without_a_local_terminal(sb):
    r = cli("shell", sb.object_id, "--cmd", "sh -c 'echo hi'")
    assert r.returncode == 0 and b"hi" in r.stdout


def test_shell_is_interactive_on_a_terminal(sb):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    before = termios.tcgetattr(slave)
    proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "shell", sb.object_id, "--cmd", "sh"],
                            stdin=slave, stdout=slave, stderr=slave, env=os.environ)
    try:
        os.write(master, b"echo $((6 * 7))\n")
        seen, deadline = b"", time.monotonic() + 20
        while b"42" not in seen and time.monotonic() < deadline:
            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096)
        assert b"42" in seen
        os.write(master, b"exit 5\n")
        assert proc.wait(timeout=20) == 5
        assert termios.tcgetattr(slave) == before  # the local terminal is restored
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)
