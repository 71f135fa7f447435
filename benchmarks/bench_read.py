"""StreamReader.read() against iteration of the same stream, for 16/64/256/512 MiB of an
exec's stdout in text and bytes mode, with the same two ways of reading a host pipe
(`head -c N` of the same file into a 1 MiB pipe read by Python) in the same run.

read() has to build one object of N bytes: its fresh pages cost what iteration, which
reuses one chunk's memory, never pays, so the fair baseline for read() is the host's
read-everything (chunks joined once), and for iteration the host's iteration.

Bar (issue 19): at 512 MiB, read() and iteration each at least 0.9x of their host baseline,
in bytes and in text.

Usage: bench_read.py [RUNS] [RUNNER...]   (default: medians of 3 runs, at least 256 MiB in all, both runners)
Set BENCH_READ_SIZES_MIB (e.g. "512") to run only some sizes.
"""

import codecs
import fcntl
import os
import sys

from _common import HOST_TMPFS, RUNNERS, app, interleaved

import pysandbox as modal

SIZES_MIB = tuple(int(size) for size in os.environ.get("BENCH_READ_SIZES_MIB", "16 64 256 512").split())
BAR, BAR_SIZE_MIB = 0.9, 512
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 3
CHOSEN = tuple(sys.argv[2:]) or RUNNERS
HOST_FILE = f"{HOST_TMPFS}/pysandbox-bench-read"


def host_pipe(size, text, everything):
    """The host baseline: `head -c size` into a pipe, read by Python; bytes moved."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, 1 << 20)
    pid = os.posix_spawn("/usr/bin/head", ["head", "-c", str(size), HOST_FILE], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)])
    os.close(write_end)
    decode = codecs.getincrementaldecoder("utf-8")().decode if text else bytes
    chunks = iter(lambda: os.read(read_end, 1 << 20), b"")
    if everything:
        moved = len(("" if text else b"").join(decode(chunk) for chunk in chunks))
    else:
        moved = sum(len(decode(chunk)) for chunk in chunks)
    os.close(read_end)
    os.waitpid(pid, 0)
    return moved


def exec_stream(sb, size, text, everything):
    p = sb.exec("head", "-c", str(size), "/tmp/big", text=text)
    moved = len(p.stdout.read()) if everything else sum(len(chunk) for chunk in p.stdout)
    p.wait()
    return moved


def checked(func, size):
    def run():
        moved = func()
        assert moved == size, (moved, size)
    return run


def gbps(funcs, size, runs):
    """Median GB/s of each function, run in turn so that all see the same machine load."""
    medians = interleaved({key: checked(func, size) for key, func in funcs.items()}, runs, warmup=1)
    return {key: size / (ms / 1000) / 1e9 for key, ms in medians.items()}


def main():
    largest = max(SIZES_MIB) << 20
    with open(HOST_FILE, "wb") as f:
        f.write(b"pysandbox\n" * (largest // 10 + 1))
    for runner in CHOSEN:
        sb = modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
        try:
            sb.exec("sh", "-c", f"yes pysandbox | head -c {largest} > /tmp/big").wait()
            for size_mib in SIZES_MIB:
                size = size_mib << 20
                for text in (False, True):
                    mode = "text" if text else "bytes"
                    rate = gbps({
                        "read": lambda: exec_stream(sb, size, text, True),
                        "iterate": lambda: exec_stream(sb, size, text, False),
                        "host read": lambda: host_pipe(size, text, True),
                        "host iterate": lambda: host_pipe(size, text, False),
                    }, size, max(RUNS, 256 // size_mib))
                    ours_read, ours_iter, host_read, host_iter = rate.values()
                    worst = min(ours_read / host_read, ours_iter / host_iter)
                    bar = f" (bar: >= {BAR}x: {'ok' if worst >= BAR else 'MISSED'})" if size_mib == BAR_SIZE_MIB else ""
                    print(f"{runner}: {size_mib} MiB {mode}: read() {ours_read:.2f} GB/s, iteration {ours_iter:.2f} "
                          f"GB/s (read/iteration {ours_read / ours_iter:.2f}x); host pipe: read-all {host_read:.2f}"
                          f" GB/s, iteration {host_iter:.2f} GB/s; ratio read() / host read-all "
                          f"{ours_read / host_read:.2f}x, iteration / host iteration {ours_iter / host_iter:.2f}x{bar}",
                          flush=True)
        finally:
            sb.terminate(wait=True)
    os.unlink(HOST_FILE)


if __name__ == "__main__":
    main()
