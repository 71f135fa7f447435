"""Running attack code inside a sandbox: shell snippets and Python with raw syscalls."""

import platform
import textwrap
import time

from pysandbox.exception import TimeoutError as SandboxTimeoutError

# Syscall numbers the attacks use, per architecture (x86-64: asm/unistd_64.h;
# aarch64: asm-generic/unistd.h).
_NUMBERS = {
    "x86_64": dict(
        ptrace=101, mount=165, umount2=166, pivot_root=155, unshare=272, setns=308, clone=56, clone3=435,
        keyctl=250, add_key=248, request_key=249, bpf=321, userfaultfd=323, perf_event_open=298,
        open_by_handle_at=304, name_to_handle_at=303, init_module=175, finit_module=313, delete_module=176,
        kexec_load=246, kexec_file_load=320, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
        move_mount=429, open_tree=428, fsopen=430, fsconfig=431, fsmount=432, fspick=433, mount_setattr=442,
        personality=135, kill=62, mknod=133, mknodat=259, ioctl=16, getpid=39, uname=63, pidfd_open=434,
        pidfd_getfd=438, cachestat=451,
    ),
    "aarch64": dict(
        ptrace=117, mount=40, umount2=39, pivot_root=41, unshare=97, setns=268, clone=220, clone3=435,
        keyctl=219, add_key=217, request_key=218, bpf=280, userfaultfd=282, perf_event_open=241,
        open_by_handle_at=265, name_to_handle_at=264, init_module=105, finit_module=273, delete_module=106,
        kexec_load=104, kexec_file_load=294, io_uring_setup=425, io_uring_enter=426, io_uring_register=427,
        move_mount=429, open_tree=428, fsopen=430, fsconfig=431, fsmount=432, fspick=433, mount_setattr=442,
        personality=92, kill=129, mknod=None, mknodat=33, ioctl=29, getpid=172, uname=160, pidfd_open=434,
        pidfd_getfd=438, cachestat=451,
    ),
}
NR = _NUMBERS[platform.machine()]

# Prepended to every Python attack: `call(name_or_nr, *args)` returns the
# syscall's result, or the errno name it failed with; `attempt(func)` "ok", or
# the errno name of the OSError func() raised.
PRELUDE = f"""
import ctypes, errno, os, sys
NR = {NR!r}
_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
def call(nr, *args):
    nr = NR[nr] if isinstance(nr, str) else nr
    r = _libc.syscall(ctypes.c_long(nr), *[ctypes.c_ulong(a) if isinstance(a, int) else a for a in args])
    return errno.errorcode[ctypes.get_errno()] if r == -1 else r
def attempt(func):
    try:
        func()
        return "ok"
    except OSError as e:
        return errno.errorcode[e.errno]
"""


def sh(sb, script):
    """(exit code, stdout + stderr) of a shell script run in the sandbox."""
    p = sb.exec("sh", "-c", script)
    out = p.stdout.read() + p.stderr.read()
    return p.wait(), out


def py(sb, code, *args):
    """(exit code, stdout + stderr) of Python run in the sandbox, with PRELUDE; `args` are its sys.argv[1:]."""
    p = sb.exec("python3", "-c", PRELUDE + textwrap.dedent(code), *args)
    out = p.stdout.read() + p.stderr.read()
    return p.wait(), out


def py_ok(sb, code, *args):
    code_, out = py(sb, code, *args)
    assert code_ == 0, out
    return out


# Sandbox code holding every task its pids limit allows (a thread is one; RLIMIT_NPROC where there is no pids
# cgroup), until a line on its stdin; it prints "full N" once it holds them. Scripts append what follows.
HOLD_TASKS = r"""
import json, socket, sys, threading
hold = threading.Event()
threads = 0
while True:
    t = threading.Thread(target=hold.wait, daemon=True)
    try:
        t.start()
    except RuntimeError:
        break
    threads += 1
print("full", threads, flush=True)
sys.stdin.readline()
"""


def start_while(running, start, seconds=60, at_once=16):
    """Calls start() (an exec) until running() is false or `seconds` have passed, with at most `at_once` of
    them running; returns the handles of those still running. A finished one's handle is dropped as the loop
    goes, after its code is checked (0): each holds up to four of this process's descriptors (a loop that kept
    them all for a minute on a busy host ran this process out of them), and a pty exec one of init's 64 relays.
    An exec whose start init did not report within PYSANDBOX_INIT_REPLY_TIMEOUT (sandbox code stopped its child
    before the exec: init reports the start once the child exec'd) gives no handle; one frozen init would
    give none, and the test's next call would show it."""
    started, deadline = [], time.monotonic() + seconds
    while running() and time.monotonic() < deadline:
        running_now = []
        for process in started:
            code = process.poll()
            assert code in (None, 0), code
            if code is None:
                running_now.append(process)
        started = running_now
        if len(started) < at_once:
            try:
                started.append(start())
            except SandboxTimeoutError:
                pass
        else:
            time.sleep(0.01)
    return started
