"""What confinement costs at start.

1. The seccomp filter: create + exec("true") + wait + terminate(wait=True) with
   the real sandbox-init against the same with an init built without the
   filter (compiled here from native/ with a seccomp_install() that does
   nothing, so the product has no switch to turn the filter off), and bare
   `bwrap ... /bin/true` in the same run.
   Also the same lifecycle as it was before this confinement: bwrap's
   --disable-userns, no filter, no /proc masks.
2. bwrap alone (user namespace, /bin/true): with --disable-userns, which the
   filter's CLONE_NEWUSER rule replaced, and with this kernel's /proc masks.

Runs are interleaved so that everything compared sees the same machine load.

    python3 benchmarks/bench_confinement.py [RUNS]
"""

import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pysandbox as modal
from _common import app, bare_bwrap_argv, report, spawn_and_wait
from bench_lifecycle import timed
from pysandbox import config
from pysandbox.runtime import bwrap, confinement

ROOT = Path(__file__).resolve().parent.parent
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 100
NO_FILTER_STUB = "int seccomp_install(void) { return 0; }\n"


def build_init_without_filter(directory: Path) -> str:
    """sandbox-init from this checkout's sources with the filter stubbed out."""
    sys.path.insert(0, str(ROOT))
    import setup

    stub = directory / "no_seccomp.c"
    stub.write_text(NO_FILTER_STUB)
    sources = [str(ROOT / "native" / s) for s in setup.BINARIES["sandbox-init"] if s != "seccomp.c"]
    out = directory / "sandbox-init"
    subprocess.run(["cc", *setup.CFLAGS, "-o", str(out), *sources, str(stub)], check=True)
    out.chmod(0o755)
    return str(out)


def lifecycle(the_app):
    sb = modal.Sandbox.create(app=the_app, block_network=True)  # the network has its own benchmark
    sb.exec("true").wait()
    sb.terminate(wait=True)


def with_init(path, func):
    real = config.native_binary

    def native_binary(name):
        return path if name == "sandbox-init" else real(name)

    config.native_binary = native_binary
    try:
        return func()
    finally:
        config.native_binary = real


def as_before(plain_init, func):
    """func() with the isolation as it was: --disable-userns, no filter, no /proc masks."""
    isolation, masks = bwrap.ISOLATION, bwrap.proc_mask_args
    bwrap.ISOLATION, bwrap.proc_mask_args = (*isolation, "--disable-userns"), lambda: ()
    try:
        return with_init(plain_init, func)
    finally:
        bwrap.ISOLATION, bwrap.proc_mask_args = isolation, masks


def interleaved(funcs, runs):
    """Median ms of each function, run in turn `runs` times after a warm-up."""
    samples = {name: [] for name in funcs}
    for i in range(runs + 5):
        for name, func in funcs.items():
            elapsed = timed(func)
            if i >= 5:
                samples[name].append(elapsed)
    return {name: statistics.median(values) for name, values in samples.items()}


def filter_cost(the_app):
    argv = bare_bwrap_argv()
    # World-readable, so a root caller's unprivileged sandbox user can run it.
    with tempfile.TemporaryDirectory(prefix="pysandbox-bench-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        plain_init = build_init_without_filter(Path(tmp))
        median = interleaved({
            "bare": lambda: spawn_and_wait(argv),
            "filter": lambda: lifecycle(the_app),
            "nofilter": lambda: with_init(plain_init, lambda: lifecycle(the_app)),
            "before": lambda: as_before(plain_init, lambda: lifecycle(the_app)),
        }, RUNS)
    name = "create+exec(true)+wait+terminate(wait=True), seccomp filter"
    report(name, median["filter"], "the same without the filter", median["nofilter"], bar=1.3)
    report(name, median["filter"], "bare bwrap /bin/true", median["bare"])
    report("the same before (--disable-userns, no filter, no /proc masks)", median["before"], "bare bwrap /bin/true",
           median["bare"])


def bwrap_options_cost():
    argv = bare_bwrap_argv()
    userns = argv[:2] + ["--unshare-user", "--uid", "0", "--gid", "0"] + argv[2:]
    proc = userns.index("/proc") + 1
    median = interleaved({
        "userns": lambda: spawn_and_wait(userns),
        "disable": lambda: spawn_and_wait(userns[:-1] + ["--disable-userns", userns[-1]]),
        "masks": lambda: spawn_and_wait(userns[:proc] + list(confinement.proc_mask_args()) + userns[proc:]),
    }, RUNS * 3)
    report("bare bwrap /bin/true with --disable-userns", median["disable"], "without", median["userns"])
    report(f"bare bwrap /bin/true with the /proc masks {confinement.proc_mask_args()}", median["masks"],
           "without", median["userns"])


def main():
    filter_cost(app())
    bwrap_options_cost()


if __name__ == "__main__":
    main()
