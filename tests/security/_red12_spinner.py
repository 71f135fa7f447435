"""Red team (red12): sandbox code that stops a child of init in the first microseconds after its fork.

Pids in the sandbox's pid namespace come in order: a process that sends SIGSTOP, over and over, to the next
few pids stops each new process within a few microseconds of its fork. It lets go (SIGCONT) of every one but
the kind it waits for, prints that one's pid and exits, leaving it stopped. TARGET "pty": a pty exec's child
(init's program, in init's session: before its setsid), forked right after that exec's relay (also init's
program and session, the pid before it); "pipe": a pipe exec's child (init's program, before its exec).

catch_stopped_child() runs it beside execs whose child searches a long PATH before its exec: a window it cannot
miss."""

from ._inside import start_while

# A child's long search of PATH: a wide window. Under the kernel's bound on one string of an execve's environment
# (MAX_ARG_STRLEN, 128 KiB), so that the search ends in `true` once the child is let go.
LONG_PATH = ":".join(["/nonexistent"] * 9000 + ["/usr/bin", "/bin"])

SPINNER = r"""
import os, signal, sys
TARGET = sys.argv[1]

def stat(pid):
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    rest = text[text.rindex(")") + 2:].split()
    return text[text.index("(") + 1:text.rindex(")")], int(rest[1]), int(rest[3])  # comm, ppid, session

def newest():
    return max(int(name) for name in os.listdir("/proc") if name.isdigit())

base, misses = newest(), 0
while True:
    misses += 1
    if misses % 2000 == 0 and newest() > base + 3:
        base = newest() - 1  # descheduled while more than three came and went: catch up
    for pid in range(base + 1, base + 4):
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            continue
        found = stat(pid)
        if (found is not None and found[:2] == ("init", 1) and TARGET == "pipe"
                or found == ("init", 1, 1) and stat(pid - 1) == ("init", 1, 1)):
            print(pid, flush=True)
            sys.exit(0)
        try:
            os.kill(pid, signal.SIGCONT)
        except ProcessLookupError:
            pass  # it ended meanwhile: init's timer killed it, or it was reaped
        base, misses = pid, 0
        break
"""


def catch_stopped_child(sb, kind, **exec_kwargs):
    """Execs of `true` (a pty one for `kind` "pty") searching LONG_PATH, until the spinner stopped the child of
    one before its exec: the handles of those still running, and the pids it caught."""
    spinner = sb.exec("python3", "-S", "-c", SPINNER, kind)
    started = start_while(lambda: spinner.poll() is None,
                          lambda: sb.exec("true", env={"PATH": LONG_PATH}, pty=kind == "pty", **exec_kwargs))
    assert spinner.poll() == 0, f"the spinner never caught a {kind} exec's child before its exec"
    return started, spinner.stdout.read().split()
