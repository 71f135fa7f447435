"""exec("true") + wait in a running sandbox under each runner, side by side, against
subprocess.run(["/bin/true"]) (exec does not go through the runner: sandbox-init starts
the process, so the baseline is the same for both), and against a bare client that makes
pysandbox's syscalls with no pysandbox object (the floor of this protocol from Python: what
lies between it and pysandbox is pysandbox's Python). All run interleaved, so that all see
the same machine load, each round starting one function later (whichever runs right after the
bare client, on bwrap's sandbox, was 1-5% slower: what ran before it lands on its time).

Bar (issue 19): median at most 1.1x subprocess.run.

Usage: bench_exec.py [RUNS]   (default 1000)
"""

import os
import select
import socket
import subprocess
import sys

from _common import RUNNERS, app, interleaved, report

import pysandbox as modal
from pysandbox import agent

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
REQUEST = agent.message(agent.REQ_EXEC, agent.exec_body(("true",), [], "", 0))


def bare_client(socket_path):
    """exec(true)+wait as pysandbox does it, syscall for syscall: three pipes (our read ends
    non-blocking; stdout grows only once a read finds it full, which `true` never fills), the
    request with the process's ends, a wait before each reply (select here, poll there), the
    pipes watched with the connection until EXITED."""
    path = os.fsencode(socket_path)

    def run():
        stdin_read, stdin_write = os.pipe2(os.O_CLOEXEC)
        out_read, out_write = os.pipe2(os.O_CLOEXEC)
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
        os.set_blocking(out_read, False)
        os.set_blocking(err_read, False)
        with socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET | socket.SOCK_CLOEXEC) as conn:
            conn.connect(path)
            socket.send_fds(conn, [REQUEST], [stdin_read, out_write, err_write])
            for fd in (stdin_read, out_write, err_write):
                os.close(fd)
            select.select([conn], [], [])
            conn.recv(64)  # STARTED
            pipes = [out_read, err_read]
            while True:
                ready, _, _ = select.select([conn, *pipes], [], [])
                for fd in [fd for fd in pipes if fd in ready]:
                    if os.read(fd, 1 << 20) == b"":
                        os.close(fd)
                        pipes.remove(fd)
                if conn in ready:
                    conn.recv(64)  # EXITED
                    break
        for fd in (stdin_write, *pipes):
            os.close(fd)
    return run


def main():
    sandboxes = {runner: modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
                 for runner in RUNNERS}
    try:
        funcs = {"subprocess": lambda: subprocess.run(["/bin/true"]),
                 "bare": bare_client(sandboxes[RUNNERS[0]]._client().socket_path)}
        funcs.update({runner: (lambda sb=sb: sb.exec("true").wait()) for runner, sb in sandboxes.items()})
        medians = interleaved(funcs, RUNS, warmup=20, rotate=True)
        for runner in RUNNERS:
            report(f"{runner}: exec(true)+wait", medians[runner], "subprocess.run(/bin/true)", medians["subprocess"],
                   bar=1.1)
        report("nsjail vs bwrap: exec(true)+wait", medians["nsjail"], "the same under bwrap", medians["bwrap"])
        report(f"bare client ({RUNNERS[0]}): the same syscalls, no pysandbox object", medians["bare"],
               "subprocess.run(/bin/true)", medians["subprocess"])
        report(f"{RUNNERS[0]}: exec(true)+wait", medians[RUNNERS[0]], "the bare client", medians["bare"])
    finally:
        for sb in sandboxes.values():
            sb.terminate(wait=True)


if __name__ == "__main__":
    main()
