"""What confinement costs at start.

1. The seccomp filter: create + exec("true") + wait + terminate(wait=True) with
   the real sandbox-init against the same with an init built without the
   filter (compiled here from native/ with a seccomp_install() that does
   nothing, so the product has no switch to turn the filter off), and the bare
   runner running /bin/true in the same run, under each runner side by side.
   Also the same lifecycle as it was before this confinement: bwrap's
   --disable-userns, no filter, no /proc masks.
2. bwrap alone (user namespace, /bin/true): with --disable-userns, which the
   filter's CLONE_NEWUSER rule doubles, and with this kernel's /proc masks.

Runs are interleaved so that everything compared sees the same machine load.

    python3 benchmarks/bench_confinement.py [RUNS]
"""

import subprocess
import sys
import tempfile
from pathlib import Path

from _common import RUNNERS, app, bare_bwrap_argv, bare_nsjail_argv, interleaved, report, spawn_and_wait

import pysandbox as modal
from pysandbox import settings
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


def lifecycle(the_app, runner):
    sb = modal.Sandbox.create(app=the_app, block_network=True,  # the network has its own benchmark
                              experimental_options={"runner": runner})
    sb.exec("true").wait()
    sb.terminate(wait=True)


def with_init(path, func):
    real = settings.native_binary

    def native_binary(name):
        return path if name == "sandbox-init" else real(name)

    settings.native_binary = native_binary
    try:
        return func()
    finally:
        settings.native_binary = real


def as_before(plain_init, func):
    """func() with the isolation as it was: --disable-userns (kept since), no filter, no /proc masks."""
    masks = bwrap.proc_mask_args
    bwrap.proc_mask_args = lambda: ()
    try:
        return with_init(plain_init, func)
    finally:
        bwrap.proc_mask_args = masks


def filter_cost(the_app):
    bare = {"bwrap": bare_bwrap_argv(), "nsjail": bare_nsjail_argv()}
    # World-readable, so a root caller's unprivileged sandbox user can run it.
    with tempfile.TemporaryDirectory(prefix="pysandbox-bench-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        plain_init = build_init_without_filter(Path(tmp))
        funcs = {"before": lambda: as_before(plain_init, lambda: lifecycle(the_app, "bwrap"))}
        for runner in RUNNERS:
            funcs[runner, "bare"] = lambda runner=runner: spawn_and_wait(bare[runner])
            funcs[runner, "filter"] = lambda runner=runner: lifecycle(the_app, runner)
            funcs[runner, "nofilter"] = lambda runner=runner: with_init(plain_init, lambda: lifecycle(the_app, runner))
        median = interleaved(funcs, RUNS)
    for runner in RUNNERS:
        name = f"{runner}: create+exec(true)+wait+terminate(wait=True), seccomp filter"
        report(name, median[runner, "filter"], "the same without the filter", median[runner, "nofilter"], bar=1.3)
        report(name, median[runner, "filter"], f"bare {runner} /bin/true", median[runner, "bare"])
    report("bwrap: the same before (--disable-userns, no filter, no /proc masks)", median["before"],
           "bare bwrap /bin/true", median["bwrap", "bare"])


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
