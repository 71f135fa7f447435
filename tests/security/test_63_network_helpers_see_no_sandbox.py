"""The host-side helpers that parse what sandbox code sends (slirp4netns, the DNS filter) run as the sandbox
identity: the host ids the processes of every sandbox of the caller run as, and that own their user namespaces.
docs/SECURITY.md's Known gaps had it that a memory bug in one of them, driven from sandbox A, could read the
environment and memory of sandbox B's processes (its secrets) or signal them, from the host's pid namespace.

Now they run in a pid namespace of their own with a /proc of it (native/supervisor/netns.c): no other process has
a pid there to open, trace or signal. A root caller's are cloned into one; an unprivileged caller's slirp4netns
goes into one made in the sandbox's user namespace (its DNS filter, which runs nft in that user namespace, stays
in the caller's: docs/SECURITY.md). slirp4netns also runs under its own seccomp filter (--enable-seccomp: no
ptrace, process_vm_*, pidfd_getfd, execve).

The compromised helper is played by a fake slirp4netns, first on the caller's PATH (as test_59's failing
helpers): it tries another sandbox's process, records what it reached, and execs the real one."""

import os
import shutil
import tempfile
from pathlib import Path

import psutil
import pytest

import pysandbox as modal

pytestmark = pytest.mark.skipif(shutil.which("slirp4netns") is None or shutil.which("nft") is None,
                                reason="the default network's helpers")

COMPROMISED = """#!/bin/sh
victim=$(cat {dir}/victim)
{{
  echo "environ $(tr '\\0' '\\n' < /proc/$victim/environ 2>/dev/null | grep -c RED_MARK)"
  if (exec 3</proc/$victim/mem) 2>/dev/null; then echo "mem yes"; else echo "mem no"; fi
  if kill -0 "$victim" 2>/dev/null; then echo "signal yes"; else echo "signal no"; fi
  echo "pids $(ls /proc | grep -c '^[0-9]')"
}} > {dir}/seen
exec {real} "$@"
"""


def _victim_pid(sb, name):
    """The host pid of the sandbox's process called `name` (its entrypoint: running once init serves)."""
    sb.exec("true").wait()
    for p in psutil.Process(sb._record.supervisor.pid).children(recursive=True):
        if p.name() == name:
            return p.pid
    raise AssertionError(f"no {name} in the sandbox")


@pytest.mark.rootless
def test_a_compromised_slirp4netns_reaches_no_process_of_another_sandbox(sandboxes, request, monkeypatch):
    victim = sandboxes("sleep", "300", secrets=[modal.Secret.from_dict({"RED_MARK": "hunter2"})])
    fake = Path(tempfile.mkdtemp(prefix="red-helper-"))
    request.addfinalizer(lambda: shutil.rmtree(fake))
    fake.chmod(0o777)  # the helper runs as the sandbox identity: it must read and write here
    (fake / "victim").write_text(str(_victim_pid(victim, "sleep")))
    (fake / "slirp4netns").write_text(COMPROMISED.format(dir=fake, real=shutil.which("slirp4netns")))
    (fake / "slirp4netns").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    attacker = sandboxes("sleep", "300")
    assert attacker.exec("true").wait() == 0  # the real helper took over: the sandbox runs
    seen = dict(line.split(" ", 1) for line in (fake / "seen").read_text().splitlines())
    assert seen["environ"] == "0" and seen["mem"] == "no" and seen["signal"] == "no", seen
    assert int(seen["pids"]) < 10, seen  # itself and the few it forked (the shell's pipes): none of the host's
    assert victim.poll() is None


@pytest.mark.rootless
def test_slirp4netns_runs_under_its_seccomp_filter(sandboxes):
    sb = sandboxes("sleep", "300")
    sb.exec("true").wait()
    helpers = [p for p in psutil.Process(sb._record.supervisor.pid).children(recursive=True)
               if p.name() == "slirp4netns"]
    assert len(helpers) == 1, helpers
    status = Path(f"/proc/{helpers[0].pid}/status").read_text()
    assert "\nSeccomp:\t2\n" in status and "\nNoNewPrivs:\t1\n" in status, status


def test_the_dns_filter_sees_only_its_own_processes(sandboxes):
    sb = sandboxes("sleep", "300", outbound_domain_allowlist=["example.com"])
    sb.exec("true").wait()
    supervisor = psutil.Process(sb._record.supervisor.pid)
    filters = [p for p in supervisor.children() if p.name() == "sandbox-supervisor"]
    assert len(filters) == 1, filters
    pid = filters[0].pid
    nspid = [line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("NSpid:")]
    assert nspid == [f"NSpid:\t{pid}\t1"], nspid  # pid 1 of a pid namespace of its own
    seen = [name for name in os.listdir(f"/proc/{pid}/root/proc") if name.isdigit()]
    assert len(seen) <= 3, seen  # itself and an nft it may be running: no process of a sandbox's
