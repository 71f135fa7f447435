"""Host memory of idle sandboxes (supervisor + bwrap + init), and 200 of them at once.

Bar (issue 2): at most 2 MB per idle sandbox; 200 idle sandboxes at once. Those
have block_network=True, like the baseline; the default network's slirp4netns
is reported on its own, over a few sandboxes.
Baseline: an idle bare `bwrap ... sleep` (its bwrap + sleep processes).
"""

import statistics
import subprocess
import sys
import time

import psutil
from _common import app, bare_bwrap_argv

import pysandbox as modal

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


def idle_kb(the_app, count, **options):
    """Median USS of `count` idle sandboxes' host processes, and how many ran at once."""
    sandboxes = []
    try:
        for _ in range(count):
            sandboxes.append(modal.Sandbox.create(app=the_app, **options))
        for sb in sandboxes:  # make sure each one is up and serving
            assert sb.exec("true").wait() == 0
        per_sandbox = [unique_kb(tree(sb._record.supervisor.pid)) for sb in sandboxes]
        return statistics.median(per_sandbox), sum(1 for sb in sandboxes if sb.poll() is None)
    finally:
        for sb in sandboxes:
            sb.terminate()
        for sb in sandboxes:
            sb.wait(raise_on_termination=False)


def main():
    bare = subprocess.Popen(bare_bwrap_argv(("/bin/sleep", "60")))
    time.sleep(0.3)
    baseline = unique_kb(tree(bare.pid))
    bare.kill()
    bare.wait()

    the_app = app()
    median, running = idle_kb(the_app, COUNT, block_network=True)
    print(f"idle sandbox host memory (USS of supervisor+bwrap+init): median {median:.0f} kB over {COUNT}; "
          f"bare bwrap+sleep: {baseline:.0f} kB; ratio {median / baseline:.2f}x "
          f"(bar: <= 2048 kB: {'ok' if median <= 2048 else 'MISSED'}); {running}/{COUNT} running at once")
    networked, _ = idle_kb(the_app, 10)
    print(f"with the default network (+ slirp4netns): median {networked:.0f} kB over 10; "
          f"bare bwrap+sleep: {baseline:.0f} kB; ratio {networked / baseline:.2f}x")

if __name__ == "__main__":
    main()
