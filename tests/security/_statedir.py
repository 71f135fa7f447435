"""Helpers of the state-directory fault tests (matrix items 19-23): child processes that use
the library and die where we want, what a sandbox leaves behind, stand-in processes, and a
state directory on a small disk of its own that can fill up or turn read-only."""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from pysandbox import _aio
from pysandbox._core import lifecycle
from pysandbox._state import paths, records
from pysandbox._state.files import ensure_dir
from pysandbox._state.proc import ProcessRef

ROOT = Path(__file__).resolve().parents[2]  # the tree under test, for children's PYTHONPATH


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT), **extra)
    return env


def python(script, *args, **popen):
    """A child Python running `script` (dedented) against this tree."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
                            env=child_env(), **popen)


def run_all(script, argsets, timeout=240):
    """Run `script` once per argument list, all at once; their stdouts (each must exit 0)."""
    procs = [python(script, *args, stdout=subprocess.PIPE, text=True) for args in argsets]
    outs = [p.communicate(timeout=timeout)[0] for p in procs]
    assert [p.returncode for p in procs] == [0] * len(procs), outs
    return outs


def stray_sandbox_processes(sandbox_ids):
    """Supervisors (and their runners) of these sandboxes still alive."""
    stray = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if any(sid in cmdline for sid in sandbox_ids):
            stray.append(proc)
    return stray


def holders(sandbox_id):
    """What still holds a sandbox: processes naming it, its log's lock, its files."""
    named = [(p.pid, p.info["cmdline"]) for p in psutil.process_iter(["cmdline"])
             if sandbox_id in " ".join(p.info["cmdline"] or [])]
    directory = paths.sandbox_dir(sandbox_id)
    return {"processes": named, "log held": records.held(directory),
            "files": sorted(os.listdir(directory)) if directory.exists() else None}


def assert_left_nothing(sandbox_id, record=None):
    """A finished sandbox left no process, upper directory, socket or cgroup, and its supervisor
    wrote its exit record itself (not lost, which would mean it died before tearing down)."""
    from pysandbox.runtime import cgroups

    directory = paths.sandbox_dir(sandbox_id)
    status = records.read_exit(sandbox_id)
    assert status is not None, f"{sandbox_id}: no exit record: {holders(sandbox_id)}"
    assert not (directory / "upper").exists() and not (directory / "agent.sock").exists(), holders(sandbox_id)
    cgroup = cgroups.load(directory)
    assert cgroup is None or not any(os.path.exists(p) for p in cgroup.unique_dirs()), "cgroup leaked"
    assert not stray_sandbox_processes([sandbox_id]), holders(sandbox_id)
    if record is not None:  # it exits right after its record: the wait wait() itself does, bounded
        _aio.run_sync(lifecycle.settled(record))
        assert not record.supervisor.alive()


def fake_supervisor(tmp_path):
    """A live process whose command name is sandbox-supervisor (a copy of sleep), to stand in
    for a supervisor in records the test writes itself. The caller kills it."""
    program = tmp_path / "sandbox-supervisor"
    shutil.copy("/bin/sleep", program)
    proc = subprocess.Popen([str(program), "600"])
    return proc, ProcessRef.of(proc.pid)


SIGTERM_BIT = 1 << 14  # SIGTERM is 15

# Blocks SIGTERM so that a signal sent to it stays visible as pending.
VICTIM = ("import signal, sys; signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM}); "
          "print('ready', flush=True); sys.stdin.read()")


def victim():
    proc = subprocess.Popen([sys.executable, "-c", VICTIM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    return proc


def pending_signals(pid):
    with open(f"/proc/{pid}/status") as f:
        status = dict(line.split(":\t", 1) for line in f if ":\t" in line)
    return int(status["SigPnd"], 16) | int(status["ShdPnd"], 16)


def write_record_of(sandbox_id, supervisor, app_id="ap-" + "x" * 22, **fields):
    """A sandbox directory with a record of our making (and, by default, no exit record)."""
    directory = ensure_dir(paths.sandbox_dir(sandbox_id))
    fields = {"app_name": "made-up", "name": None, "tags": {}, "created_at": 1.0, "timeout": 300, "entrypoint": (),
              "workdir": "/", "image_id": "host", **fields}
    record = records.SandboxRecord(sandbox_id=sandbox_id, app_id=app_id, supervisor=supervisor, **fields)
    records.write_record(record)
    return directory, record


# A state directory on a small disk ----------------------------------------------------

_DRIVER = r'''
import os, subprocess, sys
mount, size, uid, gid, script = sys.argv[1:6]
subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", mount], check=True)
# The scenario asks for remounts through a pipe of its own: "ro PATH" / "rw PATH", one a line.
requests_r, requests_w = os.pipe()
replies_r, replies_w = os.pipe()
inner = [] if uid == "0" else ["unshare", "--user", f"--map-user={uid}", f"--map-group={gid}"]
child = subprocess.Popen(inner + [sys.executable, "-c", script, str(requests_w), str(replies_r)],
                         pass_fds=(requests_w, replies_r))
os.close(requests_w)
os.close(replies_r)
with os.fdopen(requests_r) as requests, os.fdopen(replies_w, "w") as replies:
    for line in requests:
        mode, path = line.split()
        # A read-only bind mount over the state directory: a tmpfs with files open for writing
        # cannot be remounted read-only, but every lookup of a path under it now gets EROFS.
        commands = [["mount", "--bind", path, path], ["mount", "-o", "remount,bind,ro", path]] if mode == "ro" \
            else [["umount", path]]
        for command in commands:
            subprocess.run(command, check=True)
        replies.write("ok\n")
        replies.flush()
sys.exit(child.wait())
'''

# Prepended to every scenario: its helpers (remount, fill the disk), and the tree under test.
_PRELUDE = r'''
import json, os, sys, time
sys.path.insert(0, {root!r})
os.environ["PYTHONPATH"] = {root!r}  # for the scenario's own children (`python -m pysandbox ...`)
_requests = os.fdopen(int(sys.argv[1]), "w")
_replies = os.fdopen(int(sys.argv[2]))
HOME = os.environ["PYSANDBOX_HOME"]
os.makedirs(HOME, exist_ok=True)

def remount(mode):
    """"ro": every path under the state directory turns read-only (fds opened before keep writing); "rw": back."""
    _requests.write(f"{{mode}} {{HOME}}\n")
    _requests.flush()
    assert _replies.readline() == "ok\n"

def free_bytes():
    st = os.statvfs(HOME)
    return st.f_bavail * st.f_frsize

def fill(leave=0, name="filler"):
    """Fill the state disk from the host side (as a volume or a layer would), to `leave` bytes free."""
    path = os.path.join(HOME, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while True:
            os.write(fd, b"\0" * (1 << 16))
    except OSError:
        pass
    finally:
        os.close(fd)
    while free_bytes() < leave:
        size = os.path.getsize(path)
        os.truncate(path, max(0, size - max(leave - free_bytes(), 4096)))
    return path

def report(**results):
    print("RESULT " + json.dumps(results), flush=True)
'''


def on_small_disk(scenario, size="64m", timeout=300):
    """Run `scenario` (Python source) with PYSANDBOX_HOME on a tmpfs of `size` of its own, in a
    private mount namespace, as this user (root; or, unprivileged, through a user namespace that
    can mount it and a nested one that maps back to this uid, so the library runs as usual).
    The scenario gets remount("ro"|"rw"), fill(leave), free_bytes() and report(**results); returns
    what it reported. The disk vanishes with the namespace."""
    mount = Path(os.environ["PYSANDBOX_HOME"]).parent / f"small-disk-{os.getpid()}-{os.urandom(3).hex()}"
    mount.mkdir()
    try:
        uid, gid = os.getuid(), os.getgid()
        outer = ["unshare", "--mount", "--propagation", "private"]
        if uid != 0:
            outer = ["unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"]
        script = _PRELUDE.format(root=str(ROOT)) + textwrap.dedent(scenario)
        env = child_env(PYSANDBOX_HOME=str(mount / "state"))
        result = subprocess.run(outer + [sys.executable, "-c", _DRIVER, str(mount), size, str(uid), str(gid), script],
                                env=env, capture_output=True, text=True, timeout=timeout)
    finally:
        mount.rmdir()
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    assert result.returncode == 0 and lines, f"scenario failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    return json.loads(lines[-1][len("RESULT "):])
