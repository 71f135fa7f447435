"""Issue 12, items 1-3 and 5: an exec handle releases what it holds, wait() and poll() never
deadlock on unread output, unread output is bounded, and handles are safe across fork.

Long-lived callers run exec millions of times: the soaks here (500 execs each) assert
that this process's fds, the handles alive and the processes in the sandbox stay flat, with
the cyclic garbage collector off (so nothing relies on it). benchmarks/bench_exec_soak.py is
the long version.
"""

import asyncio
import multiprocessing
import os
import time

import psutil
import pytest

from pysandbox import _fork, garbage
from pysandbox.exception import InvalidError, ResourceExhaustedError

from ..procs import eventually

pytestmark = pytest.mark.rootless

SOAK_EXECS = 500  # a leak of one fd, handle or process per exec shows at any count; the benchmark runs 10,000
# More than stderr's pipe holds (64 KiB): unread, the process blocks.
FLOOD = "head -c 200000 /dev/zero >&2; head -c 200000 /dev/zero"
BIG = "head -c 5000000 /dev/zero; head -c 3000000 /dev/zero | tr '\\0' e >&2; exit 3"


def open_fds():
    # Once a background collection a create started has finished: its lock and directory fds
    # come and go on their own.
    with garbage._running:
        return len(os.listdir("/proc/self/fd"))


def sandbox_processes(sb):
    try:
        return len(psutil.Process(sb._record.supervisor.pid).children(recursive=True))
    except psutil.Error:
        return 0


def soak(sb, use):
    sb.exec("true").wait()  # warm: whatever a first exec sets up is not a leak
    fds, handles, processes = open_fds(), len(_fork._live), sandbox_processes(sb)
    for _ in range(SOAK_EXECS):
        use(sb.exec("sh", "-c", FLOOD, text=False))
    assert open_fds() == fds
    assert len(_fork._live) == handles  # every handle went by refcount: no cycle left for the collector
    assert eventually(lambda: sandbox_processes(sb) <= processes)


def test_soak_dropped_unread(sb, no_cyclic_gc):
    soak(sb, lambda p: None)


def test_soak_wait_only(sb, no_cyclic_gc):
    soak(sb, lambda p: p.wait())


def test_dropped_handle_ends_a_process_blocked_on_its_pipes(sb):
    sb.exec("true").wait()
    idle = sandbox_processes(sb)
    p = sb.exec("sh", "-c", "head -c 2000000 /dev/zero >&2; echo unreachable")
    assert eventually(lambda: sandbox_processes(sb) == idle + 2)  # sh and head, blocked on stderr
    del p
    assert eventually(lambda: sandbox_processes(sb) == idle)  # both got SIGPIPE


def test_a_reader_outlives_its_process_handle(sb):
    out = sb.exec("sh", "-c", "head -c 300000 /dev/zero | tr '\\0' e >&2; echo done").stdout
    assert out.read() == "done\n"  # stderr was kept (drained) meanwhile, not closed under the process


def test_sandbox_end_releases_everything(sandboxes):
    sb = sandboxes()
    fds = open_fds()
    processes = [sb.exec("sh", "-c", FLOOD) for _ in range(20)]
    sb.terminate(wait=True)
    assert [p.wait() for p in processes] == [137] * 20
    assert open_fds() == fds  # connections, stdin and the pipes (at EOF) are closed, the handles still alive
    assert all(p.poll() == 137 for p in processes)


def test_wait_before_read_keeps_output(sb):
    p = sb.exec("sh", "-c", BIG, text=False)
    assert p.wait() == 3
    assert p.stdout.read() == b"\0" * 5000000
    assert p.stderr.read() == b"e" * 3000000


def test_poll_before_read_never_deadlocks(sb):
    p = sb.exec("sh", "-c", BIG)
    while p.poll() is None:
        time.sleep(0.01)
    assert p.returncode == 3
    assert len(p.stdout.read()) == 5000000 and len(p.stderr.read()) == 3000000


def test_aio_wait_before_read_keeps_output(sb):
    async def main():
        p = await sb.exec.aio("sh", "-c", BIG)
        code = await p.wait.aio()
        return code, len(await p.stdout.read.aio()), len(await p.stderr.read.aio())

    assert asyncio.run(main()) == (3, 5000000, 3000000)


def test_wait_while_another_thread_reads_one_stream(sb):
    # The pumping pattern of `pysandbox exec`: readers in threads, wait() in the caller.
    import threading

    p = sb.exec("sh", "-c", BIG, text=False)
    got = []
    reader = threading.Thread(target=lambda: got.append(sum(len(c) for c in p.stdout)))
    reader.start()
    assert p.wait() == 3
    reader.join(60)
    assert got == [5000000]
    assert len(p.stderr.read()) == 3000000


def test_output_past_the_bound_is_cut_and_said(sb, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX", str(1 << 20))
    p = sb.exec("sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' o; echo é >&2; head -c 3000000 /dev/zero >&2")
    assert p.wait() == 0
    for reader, kept in ((p.stdout, "o" * (1 << 20)), (p.stderr, "é\n" + "\0" * ((1 << 20) - 3))):
        with pytest.raises(ResourceExhaustedError, match="PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX") as cut:
            reader.read()
        assert cut.value.partial == kept
        assert reader.read() == ""  # the stream has ended


def test_reading_one_stream_while_the_other_floods_is_bounded(sb, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX", str(4 << 20))
    p = sb.exec("sh", "-c", "head -c 500000000 /dev/zero >&2; echo out", text=False)
    assert p.stdout.read() == b"out\n"
    with pytest.raises(ResourceExhaustedError) as cut:
        list(p.stderr)
    assert cut.value.partial == b""  # iteration already handed out what was kept
    assert p.wait() == 0


def test_iterating_one_stream_while_the_other_floods(sb, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_EXEC_UNREAD_OUTPUT_MAX", str(4 << 20))
    p = sb.exec("sh", "-c", "head -c 100000000 /dev/zero >&2; echo a; echo b", bufsize=1)
    assert list(p.stdout) == ["a\n", "b\n"]
    with pytest.raises(ResourceExhaustedError) as cut:
        p.stderr.read()
    assert len(cut.value.partial) == 4 << 20


def test_forked_child_cannot_steal_the_exit_report(sb):
    p = sb.exec("sh", "-c", "sleep 0.3; echo hi; exit 7")
    pid = os.fork()
    if pid == 0:  # the child: its copies are closed, using them is a clear error
        try:
            p.wait()
        except InvalidError as exc:
            os._exit(3 if "fork" in str(exc) else 4)
        os._exit(5)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 3
    assert p.wait() == 7
    assert p.stdout.read() == "hi\n"


def _identity(x):
    return x


def test_fork_pool_does_not_hold_stdin_open(sb):
    p = sb.exec("sh", "-c", "cat; echo eof")
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.map(_identity, [1, 2]) == [1, 2]  # the workers are running, forked with the handle open
        p.stdin.write("data\n")
        p.stdin.write_eof()
        p.stdin.drain()
        assert p.stdout.read() == "data\neof\n"  # cat saw EOF: no worker holds a copy of its stdin
        assert p.wait() == 0
