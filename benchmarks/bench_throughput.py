"""stdout throughput of exec("cat", bigfile) in bytes mode, against `cat` into a pipe on the host.

Bar (issue 2): at least 2 GB/s.
"""

import statistics
import subprocess
import sys
import time

import pysandbox as modal
from _common import app

SIZE = 512 << 20
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 7


def drain(reader_chunks):
    total = 0
    for chunk in reader_chunks:
        total += len(chunk)
    return total


def gbps(func):
    samples = []
    for _ in range(RUNS):
        start = time.perf_counter()
        moved = func()
        samples.append(moved / (time.perf_counter() - start) / 1e9)
        assert moved == SIZE, moved
    return statistics.median(samples)


def main():
    sb = modal.Sandbox.create(app=app())
    try:
        sb.exec("sh", "-c", f"head -c {SIZE} /dev/zero > /tmp/big").wait()
        sb.exec("cat", "/tmp/big", stdout=modal.StreamType.DEVNULL).wait()  # warm the page cache
        with open("/tmp/pysandbox-bench-big", "wb") as f:
            f.truncate(SIZE)

        def host():
            proc = subprocess.Popen(["cat", "/tmp/pysandbox-bench-big"], stdout=subprocess.PIPE, bufsize=0)
            moved = drain(iter(lambda: proc.stdout.read(1 << 20), b""))
            proc.wait()
            return moved

        def ours():
            p = sb.exec("cat", "/tmp/big", text=False)
            moved = drain(p.stdout)
            p.wait()
            return moved

        baseline, measured = gbps(host), gbps(ours)
        print(f"exec cat 512 MiB (bytes mode): median {measured:.2f} GB/s; host cat into a pipe: "
              f"{baseline:.2f} GB/s; ratio {measured / baseline:.2f}x (bar: >= 2 GB/s: "
              f"{'ok' if measured >= 2 else 'MISSED'})")
    finally:
        sb.terminate(wait=True)


if __name__ == "__main__":
    main()
