"""stdout throughput of exec("cat", bigfile) in bytes mode under each runner, against `cat`
into a pipe on the host.

Bar (issue 19): at least 90% of the host pipe, measured in turn with it in the same run.
"""

import fcntl
import os
import statistics
import sys
import time

from _common import HOST_TMPFS, RUNNERS, app

import pysandbox as modal

SIZE = 512 << 20
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 7
HOST_FILE = f"{HOST_TMPFS}/pysandbox-bench-big"


def drain(reader_chunks):
    total = 0
    for chunk in reader_chunks:
        total += len(chunk)
    return total


def interleaved_gbps(funcs):
    """Median GB/s of each function, run in turn so that all see the same machine load."""
    samples = {key: [] for key in funcs}
    for _ in range(RUNS):
        for key, func in funcs.items():
            start = time.perf_counter()
            moved = func()
            samples[key].append(moved / (time.perf_counter() - start) / 1e9)
            assert moved == SIZE, moved
    return {key: statistics.median(values) for key, values in samples.items()}


def host_cat():
    """The same plumbing on the host: cat of the same bytes, on the same kind of filesystem, writing
    into a 1 MiB pipe we read."""
    read_end, write_end = os.pipe()
    fcntl.fcntl(read_end, fcntl.F_SETPIPE_SZ, 1 << 20)
    pid = os.posix_spawn("/bin/cat", ["cat", HOST_FILE], os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, write_end, 1)])
    os.close(write_end)
    moved = drain(iter(lambda: os.read(read_end, 1 << 20), b""))
    os.close(read_end)
    os.waitpid(pid, 0)
    return moved


def sandbox_cat(sb):
    p = sb.exec("cat", "/tmp/big", text=False)
    moved = drain(p.stdout)
    p.wait()
    return moved


def main():
    with open(HOST_FILE, "wb") as f:
        for _ in range(SIZE >> 20):
            f.write(bytes(1 << 20))  # written out, as head -c /dev/zero does in the sandbox: no holes
    for runner in RUNNERS:
        sb = modal.Sandbox.create(app=app(), experimental_options={"runner": runner})
        try:
            sb.exec("sh", "-c", f"head -c {SIZE} /dev/zero > /tmp/big").wait()
            sb.exec("cat", "/tmp/big", stdout=modal.StreamType.DEVNULL).wait()  # warm the page cache
            rates = interleaved_gbps({"host": host_cat, "ours": lambda: sandbox_cat(sb)})
            baseline, measured = rates["host"], rates["ours"]
            ratio = measured / baseline
            print(f"{runner}: exec cat 512 MiB (bytes mode): median {measured:.2f} GB/s; host cat into a pipe: "
                  f"{baseline:.2f} GB/s; ratio {ratio:.2f}x (bar: >= 0.9x: {'ok' if ratio >= 0.9 else 'MISSED'})",
                  flush=True)
        finally:
            sb.terminate(wait=True)
    os.unlink(HOST_FILE)


if __name__ == "__main__":
    main()
