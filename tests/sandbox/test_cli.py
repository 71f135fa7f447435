"""The `pysandbox` command line, run as a separate process against real sandboxes."""

import fcntl
import io
import json
import os
import pty
import select
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.request
import uuid

import pytest

import pysandbox as modal
from pysandbox._state import paths, records
from pysandbox._state.files import ensure_dir, new_id
from pysandbox.runtime import cgroups, netplan

from .. import oci
from ..conftest import assert_torn_down
from ..images.conftest import write_oci_layout

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
    assert records.sandbox_state(found[0]) == ("exited", 4)  # the command is the sandbox's entrypoint
    assert_torn_down(found[0].sandbox_id, found[0].supervisor)


def test_run_rejects_unknown_images_and_bad_options_with_125():
    assert_one_error_line(cli("run", "--image", "im-nope", "--", "true"), "im-nope", code=125)
    assert_one_error_line(cli("run", "--image", "./no/such/dir", "--", "true"), "no Dockerfile", code=125)
    assert_one_error_line(cli("run", "-e", "NOVALUE", "--", "true"), "KEY=VALUE", code=125)
    assert_one_error_line(cli("run", "-v", "novolume", "--", "true"), "VOLUME:/path", code=125)
    assert_one_error_line(cli("run", "--memory", "lots", "--", "true"), "--memory", code=125)
    assert_one_error_line(cli("run", "--no-such-flag", "--", "true"), "--no-such-flag", code=125)
    assert_one_error_line(cli("run", "-t", "--", "true"), "-t needs a terminal", code=125)
    assert_one_error_line(cli("run", "-p", "80", "--block-network", "--", "true"), "-p cannot be used", code=125)
    assert_one_error_line(cli("run", "--cpu", "lots", "--", "true"), "--cpu expects cores", code=125)
    assert_one_error_line(cli("run", "-p", "70000", "--", "true"), "-p expects a port", code=125)  # named -p


def _app_sandboxes(app_name):
    return [rec for _, rec in records.iter_records() if not isinstance(rec, Exception) and rec.app_name == app_name]


def test_run_options_reach_the_sandbox(state_home):
    modal.Secret.objects.create("cli-secret", {"TOKEN": "s3cret"})
    modal.Volume.objects.create("cli-vol")
    with modal.Volume.from_name("cli-vol").batch_upload() as batch:
        batch.put_file(io.BytesIO(b"from volume\n"), "/data.txt")
    r = cli("run", "--secret", "cli-secret", "-v", "cli-vol:/mnt/v:ro", "--workdir", "/tmp", "--block-network",
            "-e", "A=b", "--", "sh", "-c",
            'echo "$TOKEN $A"; pwd; cat /mnt/v/data.txt; touch /mnt/v/new 2>/dev/null || echo read-only; '
            'cat /proc/net/dev | grep -c : ')
    assert r.returncode == 0, r.stderr
    lines = r.stdout.decode().splitlines()
    assert lines[:4] == ["s3cret b", "/tmp", "from volume", "read-only"]
    assert lines[4] == "1"  # --block-network: the loopback device only


def test_run_cpu_and_memory_land_in_the_cgroup_or_are_refused_clearly():
    r = cli("run", "-d", "--cpu", "0.5,1.5", "--memory", "128m,256m", "--", "sleep", "100")
    if not cgroups.host().has("memory"):  # unprivileged on cgroup v1: Sandbox.create's own error, before any work
        assert_one_error_line(r, "cpu=/memory= needs a writable cgroup", code=125)
        return
    assert r.returncode == 0, r.stderr
    sandbox_id = r.stdout.decode().strip()
    try:
        cgroup = cgroups.load(paths.sandbox_dir(sandbox_id))
        files = {"memory.max": str(256 << 20), "cpu.max": "150000 100000"} if cgroup.version == 2 else \
            {"memory.limit_in_bytes": str(256 << 20), "memory.soft_limit_in_bytes": str(128 << 20),
             "cpu.cfs_quota_us": "150000"}
        for name, value in files.items():
            with open(f"{cgroup.dirs[name.split('.')[0]]}/{name}") as f:
                assert f.read().strip() == value, name
    finally:
        assert cli("terminate", "--wait", sandbox_id).returncode == 0


def test_run_detached_keeps_running_until_terminated_by_name():
    app_name = f"cli-detach-{uuid.uuid4().hex[:8]}"
    r = cli("run", "-d", "--app", app_name, "--name", "web", "--", "sh", "-c", "echo started; sleep 100")
    assert r.returncode == 0, r.stderr
    sandbox_id = r.stdout.decode().strip()
    assert sandbox_id.startswith("sb-") and r.stdout.decode() == sandbox_id + "\n"
    sb = modal.Sandbox.from_id(sandbox_id)
    assert sb.poll() is None
    assert cli("exec", "web", "--app", app_name, "--", "echo", "by name").stdout == b"by name\n"
    deadline = time.monotonic() + 20
    while cli("logs", "web", "--app", app_name).stdout != b"started\n" and time.monotonic() < deadline:
        time.sleep(0.1)
    assert cli("logs", "web", "--app", app_name).stdout == b"started\n"
    r = cli("terminate", "web", "--app", app_name, "--wait")
    assert (r.returncode, r.stdout) == (0, f"{sandbox_id} 137\n".encode())
    assert_torn_down(sandbox_id, sb._record.supervisor)


def test_run_detached_without_a_command_idles_for_exec():
    """As run's help and docs/CLI.md say: `run -d` with no command leaves an idle sandbox."""
    app_name = f"cli-idle-{uuid.uuid4().hex[:8]}"
    r = cli("run", "-d", "--app", app_name, "--timeout", "60")
    assert r.returncode == 0, r.stderr
    sandbox_id = r.stdout.decode().strip()
    assert sandbox_id.startswith("sb-")
    sb = modal.Sandbox.from_id(sandbox_id)
    try:
        assert sb.poll() is None
        assert cli("exec", sandbox_id, "--", "echo", "idle").stdout == b"idle\n"
    finally:
        assert cli("terminate", "--wait", sandbox_id).returncode == 0
    assert_torn_down(sandbox_id, sb._record.supervisor)


def test_ls_quiet_into_terminate_ends_everything_listed():
    app_name = f"cli-xargs-{uuid.uuid4().hex[:8]}"
    ids = [cli("run", "-d", "--app", app_name, "--", "sleep", "100").stdout.decode().strip() for _ in range(3)]
    listed = cli("ls", "-q", "--app", app_name).stdout.decode().split()
    assert sorted(listed) == sorted(ids)
    done = subprocess.run(f"{shlex.quote(sys.executable)} -m pysandbox ls -q --app {app_name} | "
                          f"xargs -r {shlex.quote(sys.executable)} -m pysandbox terminate --wait",
                          shell=True, capture_output=True, timeout=120, env=os.environ)
    assert done.returncode == 0, done.stderr
    assert sorted(line.split()[0] for line in done.stdout.decode().splitlines()) == sorted(ids)
    assert cli("ls", "-q", "--app", app_name).stdout == b""
    for rec in _app_sandboxes(app_name):
        assert_torn_down(rec.sandbox_id, rec.supervisor)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stop_signal_to_run_ends_its_sandbox(signum):
    """`timeout 2 pysandbox run -- sleep 100` leaves nothing running: SIGTERM and SIGHUP as Ctrl-C."""
    app_name = f"cli-signal-{uuid.uuid4().hex[:8]}"
    proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "run", "--app", app_name, "--",
                             "sh", "-c", "echo up; exec sleep 100"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=os.environ)
    try:
        assert proc.stdout.readline() == b"up\n"
        proc.send_signal(signum)
        assert proc.wait(timeout=60) == 128 + signum
        assert b"Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    (rec,) = _app_sandboxes(app_name)
    assert records.sandbox_state(rec)[0] == "terminated"
    assert_torn_down(rec.sandbox_id, rec.supervisor)


def test_a_stop_signal_during_create_leaves_nothing_running():
    """Whenever it lands, a SIGTERM leaves no sandbox running: one being made is ended once it exists."""
    app_name = f"cli-early-{uuid.uuid4().hex[:8]}"
    for delay in (0.2, 0.5, 1.0, 1.5, 2.0, 3.0):
        proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "run", "--app", app_name, "--", "sleep", "100"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                env=os.environ)
        time.sleep(delay)
        proc.terminate()
        assert proc.wait(timeout=60) in (-signal.SIGTERM, 128 + signal.SIGTERM)
        assert b"Traceback" not in proc.stderr.read()
        proc.stderr.close()
    for rec in _app_sandboxes(app_name):
        assert records.sandbox_state(rec)[0] != "running"
        assert_torn_down(rec.sandbox_id, rec.supervisor)


def test_exit_codes_pass_through_and_125_to_127_are_docker_s():
    assert cli("run", "--", "sh", "-c", "exit 42").returncode == 42
    assert cli("run", "--", "no-such-command-anywhere").returncode == 127
    assert cli("run", "--", "/etc/passwd").returncode == 126
    assert cli("run", "--timeout", "1", "--", "sleep", "30").returncode == 124
    assert cli("run", "--image", "im-" + "a" * 22, "--", "true").returncode == 125


def test_run_on_a_terminal_with_it(tmp_path):
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "run", "-it", "--", "sh", "-c",
                             "test -t 0 && echo on-a-tty; read x; echo got $x"],
                            stdin=slave, stdout=slave, stderr=slave, env=os.environ)
    try:
        seen = _read_until(master, b"on-a-tty")
        os.write(master, b"hello\n")
        seen += _read_until(master, b"got hello")
        assert b"got hello" in seen
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()
        os.close(master)
        os.close(slave)


def _read_until(master, wanted, patience=30):
    seen, deadline = b"", time.monotonic() + patience
    while wanted not in seen and time.monotonic() < deadline:
        if select.select([master], [], [], 0.5)[0]:
            seen += os.read(master, 4096)
    assert wanted in seen, seen
    return seen


def test_run_prints_the_tunnel_of_a_port():
    if not netplan.available():
        pytest.skip("this host has no slirp4netns/nft/tun: tunnels are refused (test_network covers that)")
    app_name = f"cli-port-{uuid.uuid4().hex[:8]}"
    r = cli("run", "-d", "--app", app_name, "-p", "8000", "--", "python3", "-m", "http.server", "8000")
    assert r.returncode == 0, r.stderr
    sandbox_id = r.stdout.decode().strip()
    try:
        (line,) = r.stderr.decode().splitlines()
        assert line.startswith("port 8000: http://127.0.0.1:")
        url = line.split(": ", 1)[1]
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert time.monotonic() < deadline
                time.sleep(0.2)
    finally:
        assert cli("terminate", sandbox_id, "--wait").returncode == 0


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """host:port of a registry on loopback holding test/tiny:1 (tests/images/test_registry.py's image)."""
    root = tmp_path_factory.mktemp("registry")
    with oci.docker_registry(root) as host:
        write_oci_layout(root / "layout")
        oci.push(root / "layout", "tiny", host, "test/tiny:1")
        yield host


def test_run_image_from_a_registry_reference_or_a_dockerfile(registry, tmp_path):
    r = cli("run", "--image", f"{registry}/test/tiny:1", "--", "/bin/sh", "-c", "read b < /etc/b; echo $b $FOO",
            timeout=300)
    assert (r.returncode, r.stdout) == (0, b"bee from-config\n"), r.stderr
    (tmp_path / "hello.txt").write_text("hello from the context\n")
    (tmp_path / "Dockerfile").write_text(f"FROM {registry}/test/tiny:1\nENV GREETING=hi\nCOPY hello.txt /etc/hello\n")
    for image in (str(tmp_path / "Dockerfile"), str(tmp_path)):
        r = cli("run", "--image", image, "--", "/bin/sh", "-c", "read h < /etc/hello; echo $GREETING $h", timeout=300)
        assert (r.returncode, r.stdout) == (0, b"hi hello from the context\n"), r.stderr


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


def test_logs_tail_and_a_stopped_sandbox_by_name(sandboxes, app):
    name = f"cli-tail-{uuid.uuid4().hex[:8]}"
    sb = sandboxes("sh", "-c", "for i in 1 2 3 4 5; do echo out$i; echo err$i >&2; done; printf partial",
                   name=name)
    sb.wait()
    r = cli("logs", "--tail", "2", name, "--app", app.name)  # finished: the latest of that name
    assert (r.returncode, r.stdout, r.stderr) == (0, b"out5\npartial", b"err4\nerr5\n")
    assert cli("logs", "-n", "0", sb.object_id).stdout == b""
    assert cli("logs", "-n", "100", sb.object_id).stdout == b"".join(b"out%d\n" % i for i in range(1, 6)) + b"partial"


def test_logs_follow_with_timestamps(sandboxes):
    """Lines written before `logs -f -t` started get `-` (no time is kept), later ones the time read.
    The sandbox writes its later lines only once logs has printed the earlier ones (/tmp/go)."""
    sb = sandboxes("sh", "-c", "echo before; echo early >&2; while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                               "echo after; echo late >&2")
    # Both earlier lines written before logs starts (on a busy host the sandbox may not have run yet).
    files = paths.SandboxDir.of(sb.object_id)
    deadline = time.monotonic() + 60
    while (files.stdout.read_bytes(), files.stderr.read_bytes()) != (b"before\n", b"early\n"):
        assert time.monotonic() < deadline, "the sandbox never wrote its first lines"
        time.sleep(0.01)
    proc = subprocess.Popen([sys.executable, "-m", "pysandbox", "logs", "-f", "-t", sb.object_id],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=os.environ)
    try:
        assert proc.stdout.readline().split() == [b"-", b"before"]
        assert proc.stderr.readline().split() == [b"-", b"early"]
        # 137: the entrypoint saw the file and ended the sandbox before init could report touch's exit (CI).
        assert sb.exec("touch", "/tmp/go").wait() in (0, 137)
        (stamp, after), (stamp_err, late) = proc.stdout.read().split(), proc.stderr.read().split()
        assert proc.wait(timeout=60) == 0
    finally:
        proc.kill()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
    assert (after, late) == (b"after", b"late")
    for moment in (stamp, stamp_err):
        assert time.strptime(moment.decode(), "%Y-%m-%dT%H:%M:%S.%fZ")


def test_logs_of_a_failed_sandbox_show_its_supervisor_log(app, tmp_path, monkeypatch):
    broken = tmp_path / "runner"
    broken.write_text("#!/nonexistent/interpreter\n")
    broken.chmod(0o755)
    for variable in ("PYSANDBOX_BWRAP", "PYSANDBOX_NSJAIL"):  # whichever runner this run uses
        monkeypatch.setenv(variable, str(broken))
    sb = modal.Sandbox.create("true", app=app)
    sb.wait(raise_on_termination=False)
    monkeypatch.undo()
    r = cli("logs", sb.object_id)
    assert r.returncode == 0 and r.stdout == b""
    lines = r.stderr.decode().splitlines()
    assert lines[0] == f"pysandbox: supervisor log of {sb.object_id} (failed):"
    assert any("runner" in line for line in lines[1:])


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
    (["exec", "sb-nope", "--", "true"], "Invalid sandbox id", 125),
    (["exec", UNKNOWN_ID, "--", "true"], "not found", 125),
    (["exec", "some-name", "--", "true"], "--app", 125),
    (["shell", UNKNOWN_ID], "not found", 125),
    (["logs", UNKNOWN_ID], "not found", 1),
    (["logs", "some-name"], "--app", 2),
    (["logs", UNKNOWN_ID, "--timestamps"], "--timestamps needs -f", 2),
    (["terminate", "some-name"], "--app", 2),
    (["terminate", "some-name", "--app", "no-such-app-for-cli"], "not found", 1),
    (["exec", UNKNOWN_ID], "no command given", 125),
    (["ls", "--format", "{nosuchfield}"], "nosuchfield", 2),
    (["ls", "--bogus"], "unrecognized arguments: --bogus", 2),
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


def test_ls_filters_format_and_quiet(sandboxes, app):
    name = f"cli-ls-{uuid.uuid4().hex[:8]}"
    tagged = sandboxes(tags={"team": "cli", "env": "test"}, name=name)
    other = sandboxes(tags={"team": "other"})
    ids = cli("ls", "-q", "--tag", "team=cli").stdout.decode().split()
    assert ids == [tagged.object_id]
    assert cli("ls", "-q", "--tag", "team=cli", "--tag", "env=prod").stdout == b""
    assert cli("ls", "-q", "--name", name).stdout.decode().split() == [tagged.object_id]
    both = cli("ls", "-q", "--app", app.name).stdout.decode().split()
    assert {tagged.object_id, other.object_id} <= set(both)
    r = cli("ls", "--format", "{id}|{name}|{state}|{tags}", "--name", name)
    assert r.stdout.decode() == f"{tagged.object_id}|{name}|running|env=test,team=cli\n"
    listed = json.loads(cli("ls", "--format", "json", "--tag", "team=other").stdout)
    assert [entry["id"] for entry in listed] == [other.object_id]


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


def test_shell_ends_at_the_end_of_its_input(sb):
    """`pysandbox shell ID < /dev/null` ends at once, and a script on stdin runs to its end."""
    r = cli("shell", sb.object_id, timeout=30)  # cli() gives /dev/null as stdin
    assert r.returncode == 0, r.stderr
    r = cli("shell", sb.object_id, "--cmd", "sh", input=b"echo one\nexit 7\n", timeout=30)
    assert (r.returncode, r.stdout) == (7, b"one\n")


# volumes and completion --------------------------------------------------------


def test_volume_put_from_stdin_and_get_to_stdout():
    data = bytes(range(256)) * 4096  # 1 MiB, every byte value
    assert cli("volume", "create", "cli-pipe").returncode == 0
    r = cli("volume", "put", "cli-pipe", "-", "/dir/blob", input=data)
    assert r.returncode == 0, r.stderr
    r = cli("volume", "get", "cli-pipe", "/dir/blob", "-")
    assert (r.returncode, r.stdout) == (0, data)
    assert cli("volume", "put", "cli-pipe", "-", "/dir/blob", input=b"x").returncode == 1  # exists: --force
    assert cli("volume", "put", "--force", "cli-pipe", "-", "/dir/blob", input=b"x").returncode == 0
    assert cli("volume", "get", "cli-pipe", "/dir/blob", "-").stdout == b"x"


def test_volume_and_secret_errors_say_what_to_run():
    assert_one_error_line(cli("volume", "ls", "cli-absent"), "`pysandbox volume create cli-absent`")
    assert cli("volume", "create", "cli-errors").returncode == 0
    assert cli("volume", "put", "cli-errors", "-", "/dir/file", input=b"x").returncode == 0
    assert_one_error_line(cli("volume", "get", "cli-errors", "/dir", "-"), "/dir is a directory", "ls -r", code=2)
    assert_one_error_line(cli("volume", "get", "cli-errors", "/nothing", "-"), "has no file /nothing")
    assert_one_error_line(cli("volume", "put", "cli-errors", "-", "/dir/file", input=b"y"), "exists", "--force")
    assert cli("secret", "create", "cli-errors", "K=V").returncode == 0
    assert_one_error_line(cli("secret", "create", "cli-errors", "K=W"), "already exists", "--force")
    assert cli("secret", "create", "--force", "cli-errors", "K=W").returncode == 0
    assert cli("secret", "rm", "cli-errors").returncode == 0


def test_bash_completion_names_the_commands_and_options():
    r = cli("completion", "bash")
    assert r.returncode == 0
    script = r.stdout.decode()
    assert subprocess.run(["bash", "-n"], input=r.stdout).returncode == 0
    completed = subprocess.run(
        ["bash", "-c", script + '\nCOMP_WORDS=(pysandbox run --de); COMP_CWORD=2; _pysandbox; echo "${COMPREPLY[@]}"'
         '\nCOMP_WORDS=(pysandbox vol); COMP_CWORD=1; _pysandbox; echo "${COMPREPLY[@]}"'
         '\nCOMP_WORDS=(pysandbox volume g); COMP_CWORD=2; _pysandbox; echo "${COMPREPLY[@]}"'],
        capture_output=True, check=True)
    assert completed.stdout.decode().splitlines() == ["--detach", "volume", "get"]
