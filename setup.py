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
BINARIES = {  # sources in native/; native/common/ is on the include path
    "sandbox-init": ["init/init.c", "init/init_exec.c", "init/init_fs.c", "init/init_entry.c", "init/caps.c",
                     "init/initconfig.c", "init/mkdirs.c", "init/netsync.c", "init/seccomp.c", "init/env.c",
                     "init/spawn.c", "init/proto.c", "init/watch.c", "common/opts.c", "common/fdutil.c",
                     "common/util.c"],
    "sandbox-supervisor": ["supervisor/supervisor.c", "supervisor/output.c", "supervisor/stage.c",
                           "common/userns.c", "common/rmtree.c", "supervisor/netns.c", "supervisor/dnsfilter.c",
                           "supervisor/cgroup.c",
                           "common/opts.c", "common/fdutil.c", "common/util.c"],
    "sandbox-probe": ["probe/probe.c", "common/opts.c", "common/util.c"],
    "sandbox-rmtree": ["rmtree/rmtree_main.c", "common/rmtree.c", "common/userns.c", "common/fdutil.c",
                       "common/util.c"],
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
        command = [*compiler, *CFLAGS, f"-I{NATIVE / 'common'}", "-o", str(out_dir / name),
                   *(str(NATIVE / s) for s in sources)]
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
