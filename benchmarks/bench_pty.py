"""exec("true", pty=True) + wait in a running sandbox under each runner, against subprocess.run(["/bin/true"]) on a
host pty (os.openpty, the process in a session of its own): the first pty exec of a handle (a fresh
Sandbox.from_id handle each time, made before the clock starts) and a later one on the same handle. Every runner's
terminal is made inside the sandbox by init and relayed by a process of init's (docs/ARCHITECTURE.md, Terminals).
All run interleaved, each round starting one function later, so that all see the same machine load.

Usage: bench_pty.py [RUNS]   (default 300)
"""

import os
import subprocess
import sys

from _common import app, interleaved, report, runners_here

import pysandbox as modal

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 300
WARMUP = 10


def host_pty_true():
    master, terminal = os.openpty()
    try:
        subprocess.run(["/bin/true"], stdin=terminal, stdout=terminal, stderr=terminal, start_new_session=True)
    finally:
        os.close(terminal)
        os.close(master)


def first_pty_exec(sandbox_id):
    """exec(pty=True)+wait on a handle that has not exec'd before (from_id's cost is paid outside the clock)."""
    handles = iter([modal.Sandbox.from_id(sandbox_id) for _ in range(RUNS + WARMUP)])
    return lambda: next(handles).exec("true", pty=True).wait()


def main():
    runners = runners_here()
    sandboxes = {runner: modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
                 for runner in runners}
    try:
        funcs = {"host": host_pty_true}
        for runner, sb in sandboxes.items():
            funcs["first", runner] = first_pty_exec(sb.object_id)
            funcs["later", runner] = lambda sb=sb: sb.exec("true", pty=True).wait()
        medians = interleaved(funcs, RUNS, warmup=WARMUP, rotate=True)
        for runner in runners:
            for which in ("first", "later"):
                report(f"{runner}: {which} exec(true, pty=True)+wait of a handle", medians[which, runner],
                       "subprocess.run(/bin/true) on a host pty", medians["host"])
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)


if __name__ == "__main__":
    main()
