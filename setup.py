"""Build the native helpers (native/*.c) into pysandbox/_native/.

Everything else lives in setup.cfg. The helpers are static binaries, so they
run as pid 1 inside any image, even one without a libc.
"""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
NATIVE = HERE / "native"
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Werror", "-D_GNU_SOURCE", "-static"]
BINARIES = {
    "sandbox-init": ["init.c", "init_exec.c", "init_fs.c", "init_entry.c", "caps.c", "initconfig.c", "mkdirs.c",
                     "netsync.c", "seccomp.c", "env.c", "spawn.c", "proto.c", "watch.c", "opts.c", "fdutil.c",
                     "util.c"],
    "sandbox-supervisor": ["supervisor.c", "output.c", "stage.c", "userns.c", "rmtree.c", "netns.c", "cgroup.c",
                           "opts.c", "fdutil.c", "util.c"],
    "sandbox-probe": ["probe.c", "opts.c", "util.c"],
    "sandbox-rmtree": ["rmtree_main.c", "rmtree.c", "userns.c", "fdutil.c", "util.c"],
}


def compile_native(out_dir: Path) -> None:
    compiler = shlex.split(os.environ.get("CC", "cc"))
    if shutil.which(compiler[0]) is None:
        raise SystemExit(
            "pysandbox needs a C compiler to build its native helpers: "
            "`apt-get install gcc libc6-dev` (Debian/Ubuntu), then install again."
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, sources in BINARIES.items():
        command = [*compiler, *CFLAGS, "-o", str(out_dir / name), *(str(NATIVE / s) for s in sources)]
        print(" ".join(command))
        result = subprocess.run(command)
        if result.returncode != 0:
            raise SystemExit(
                f"building {name} failed (see the compiler output above); static linking needs "
                "libc6-dev (`apt-get install libc6-dev`)."
            )


class BuildWithNative(build_py):
    def run(self):
        super().run()
        editable = getattr(self, "editable_mode", False)
        target = HERE / "pysandbox" if editable else Path(self.build_lib) / "pysandbox"
        compile_native(target / "_native")


if __name__ == "__main__":  # importable, so a checkout can build its helpers alone:
    # python3 -c 'import setup; setup.compile_native(setup.HERE / "pysandbox" / "_native")'
    setup(cmdclass={"build_py": BuildWithNative})
