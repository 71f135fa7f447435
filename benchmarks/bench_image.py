"""Images: cold and warm debian_slim builds, resolving a built image, and sandboxes on images.

* Cold debian_slim build (mmdebstrap from Debian's archive): reported; the warm
  rebuild of the same recipe (bar: under 1 s).
* Resolving an already-built 5-step image from a fresh Image object (bar: median under 5 ms).
* create + exec("true") + wait + terminate on a 5-layer debian_slim image against the
  same on the host image (bar: at most 1.5x), runs interleaved so both see the same load.

Runs in a fresh state directory (removed afterwards) unless PYSANDBOX_HOME is set.
"""

import os
import shutil
import statistics
import sys
import tempfile

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100


def five_layers():
    import pysandbox as modal
    return (modal.Image.debian_slim().run_commands("echo 1 > /one", "echo 2 > /two", "echo 3 > /three")
            .run_commands("echo 4 > /four"))


def five_steps():
    import pysandbox as modal
    return modal.Image.debian_slim().run_commands("echo 1 > /one").env({"A": "1"}).workdir("/srv").cmd(["true"])


def lifecycle(app, image, runner):
    import pysandbox as modal
    sb = modal.Sandbox.create(app=app, image=image, experimental_options={"runner": runner})
    sb.exec("true").wait()
    sb.terminate(wait=True)


def main():
    from _common import RUNNERS, app, interleaved, report, timed

    import pysandbox as modal

    cold = timed(lambda: modal.Image.debian_slim().build()) / 1000
    print(f"cold debian_slim build: {cold:.1f} s", flush=True)
    warm = timed(lambda: modal.Image.debian_slim().build()) / 1000
    print(f"warm debian_slim rebuild: {warm * 1000:.2f} ms (bar: < 1 s: {'ok' if warm < 1 else 'MISSED'})")

    five_steps().build()
    resolve = statistics.median(timed(lambda: five_steps().build()) for _ in range(RUNS * 10))
    print(f"resolve a built 5-step image: median {resolve:.3f} ms (bar: < 5 ms: {'ok' if resolve < 5 else 'MISSED'})")

    image = five_layers().build()
    the_app = app()
    median = interleaved({(runner, root): lambda runner=runner, root=root: lifecycle(the_app, root, runner)
                          for runner in RUNNERS for root in (None, image)}, RUNS)
    for runner in RUNNERS:
        report(f"{runner}: create+exec(true)+terminate(wait=True) on a 5-layer debian_slim image",
               median[runner, image], "on the host image", median[runner, None], bar=1.5)


if __name__ == "__main__":
    own_home = "PYSANDBOX_HOME" not in os.environ
    if own_home:
        os.environ["PYSANDBOX_HOME"] = tempfile.mkdtemp(prefix="pysandbox-bench-image-")
    try:
        main()
    finally:
        if own_home:
            from pysandbox import garbage
            garbage.collect()
            shutil.rmtree(os.environ["PYSANDBOX_HOME"], ignore_errors=True)
