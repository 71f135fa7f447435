"""Files: sb.filesystem.read_bytes of 4 KiB, and 256 MiB written then read back.

Bars (issue 5): read_bytes of a 4 KiB file median under 2 ms; write then read back
256 MiB through sb.filesystem at least 50% of the speed of `cp` of the same file
on the host. Baselines from the same run: reading the 4 KiB file on the host;
`cp` of a 256 MiB file to a new file and back.
"""

import os
import subprocess
import sys
import tempfile

from _common import app, median_ms, report, timed

import pysandbox as modal

SIZE = 256 << 20
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 500


def main():
    sb = modal.Sandbox.create(app=app())
    try:
        fs = sb.filesystem
        fs.write_bytes(os.urandom(4096), "/tmp/small")
        with tempfile.TemporaryDirectory() as tmp:
            small = os.path.join(tmp, "small")
            with open(small, "wb") as f:
                f.write(os.urandom(4096))

            def read_host():
                with open(small, "rb") as f:
                    f.read()

            ours = median_ms(lambda: fs.read_bytes("/tmp/small"), RUNS)
            report("filesystem.read_bytes(4 KiB)", ours, "open+read on the host", median_ms(read_host, RUNS))
            print(f"  (bar: < 2 ms: {'ok' if ours < 2 else 'MISSED'})")

            big = os.path.join(tmp, "big")
            with open(big, "wb") as f:
                f.write(os.urandom(SIZE))
            back = os.path.join(tmp, "back")
            host = min(timed(lambda: (subprocess.run(["cp", big, back + "1"], check=True),
                                      subprocess.run(["cp", back + "1", back + "2"], check=True)))
                       for _ in range(3))
            ours = min(timed(lambda: (fs.copy_from_local(big, "/tmp/big"), fs.copy_to_local("/tmp/big", back)))
                       for _ in range(3))
            host, ours = host / 1000, ours / 1000  # s
            ratio = host / ours
            print(f"write+read back 256 MiB (copy_from_local+copy_to_local): best {2 * SIZE / ours / 1e9:.2f} GB/s; "
                  f"cp there and back on the host: {2 * SIZE / host / 1e9:.2f} GB/s; speed ratio {ratio:.2f} "
                  f"(bar: >= 0.5: {'ok' if ratio >= 0.5 else 'MISSED'})")
    finally:
        sb.terminate(wait=True)


if __name__ == "__main__":
    main()
