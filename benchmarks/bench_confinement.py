"""The seccomp filter's cost: create + exec("true") + wait + terminate(wait=True)
with the real sandbox-init against the same with an init built without the
filter, and bare `bwrap ... /bin/true` in the same run.

The filter-less init is compiled here from native/ with a seccomp_install()
that does nothing, so the product has no switch to turn the filter off.
Runs are interleaved so all three see the same machine load.

    python3 benchmarks/bench_confinement.py [RUNS] [--keep-disable-userns]

--keep-disable-userns is for the record: it measures with bwrap's
--disable-userns added back (the filter's CLONE_NEWUSER rule replaced it).
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
from pysandbox.runtime import bwrap

ROOT = Path(__file__).resolve().parent.parent
ARGS = [a for a in sys.argv[1:] if not a.startswith("--")]
RUNS = int(ARGS[0]) if ARGS else 100
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
    sb = modal.Sandbox.create(app=the_app)
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


def main():
    if "--keep-disable-userns" in sys.argv:
        bwrap.ISOLATION = (*bwrap.ISOLATION, "--disable-userns")
    the_app = app()
    argv = bare_bwrap_argv()
    # World-readable, so a root caller's unprivileged sandbox user can run it.
    with tempfile.TemporaryDirectory(prefix="pysandbox-bench-", dir="/tmp") as tmp:
        Path(tmp).chmod(0o755)
        plain_init = build_init_without_filter(Path(tmp))
        samples = {"bare": [], "filter": [], "nofilter": []}
        for i in range(RUNS + 5):
            bare = timed(lambda: spawn_and_wait(argv))
            filtered = timed(lambda: lifecycle(the_app))
            plain = timed(lambda: with_init(plain_init, lambda: lifecycle(the_app)))
            if i >= 5:  # warm-up
                samples["bare"].append(bare)
                samples["filter"].append(filtered)
                samples["nofilter"].append(plain)
    median = {name: statistics.median(values) for name, values in samples.items()}
    report("create+exec(true)+wait+terminate(wait=True), seccomp filter", median["filter"],
           "the same without the filter", median["nofilter"], bar=1.3)
    report("create+exec(true)+wait+terminate(wait=True), seccomp filter", median["filter"],
           "bare bwrap /bin/true", median["bare"])


if __name__ == "__main__":
    main()
