"""create (host image) + exec("true") + wait + terminate, against bare `bwrap ... /bin/true`.

Bar (issue 2): median at most 2x bare bwrap.
"""

import sys

import pysandbox as modal
from _common import app, bare_bwrap_argv, median_ms, report, spawn_and_wait

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 200


def lifecycle(the_app):
    sb = modal.Sandbox.create(app=the_app)
    sb.exec("true").wait()
    sb.terminate(wait=True)


def main():
    the_app = app()
    argv = bare_bwrap_argv()
    baseline = median_ms(lambda: spawn_and_wait(argv), RUNS)
    ours = median_ms(lambda: lifecycle(the_app), RUNS)
    report("create+exec(true)+wait+terminate", ours, "bare bwrap /bin/true", baseline, bar=2.0)


if __name__ == "__main__":
    main()
