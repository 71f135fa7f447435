"""Host memory of idle sandboxes (supervisor + bwrap + init), and 200 of them at once.

Bar (issue 2): at most 2 MB per idle sandbox; 200 idle sandboxes at once.
Baseline: an idle bare `bwrap ... sleep` (its bwrap + sleep processes).
"""

import statistics
import subprocess
import sys
import time

import psutil

import pysandbox as modal
from _common import app, bare_bwrap_argv

COUNT = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def unique_kb(procs):
    """USS (memory only this process holds) summed, in kB."""
    total = 0
    for proc in procs:
        try:
            total += proc.memory_full_info().uss
        except psutil.Error:
            pass
    return total / 1024


def tree(pid):
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def main():
    bare = subprocess.Popen(bare_bwrap_argv(("/bin/sleep", "60")))
    time.sleep(0.3)
    baseline = unique_kb(tree(bare.pid))
    bare.kill()
    bare.wait()

    the_app = app()
    sandboxes = []
    try:
        for _ in range(COUNT):
            sandboxes.append(modal.Sandbox.create(app=the_app))
        for sb in sandboxes:  # make sure each one is up and serving
            assert sb.exec("true").wait() == 0
        per_sandbox = [unique_kb(tree(sb._record.supervisor.pid)) for sb in sandboxes]
        running = sum(1 for sb in sandboxes if sb.poll() is None)
        median = statistics.median(per_sandbox)
        print(f"idle sandbox host memory (USS of supervisor+bwrap+init): median {median:.0f} kB over {COUNT}; "
              f"bare bwrap+sleep: {baseline:.0f} kB; ratio {median / baseline:.2f}x "
              f"(bar: <= 2048 kB: {'ok' if median <= 2048 else 'MISSED'}); {running}/{COUNT} running at once")
    finally:
        for sb in sandboxes:
            sb.terminate()
        for sb in sandboxes:
            sb.wait(raise_on_termination=False)


if __name__ == "__main__":
    main()
