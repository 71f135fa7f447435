"""Build the native helpers (native/*.c) into pysandbox/_native/, and tag wheels by platform.

Everything else lives in setup.cfg. The helpers are static, stripped binaries, so they
run as pid 1 inside any image, even one without a libc, and on any glibc or musl host
of their architecture: a wheel is tagged manylinux and musllinux for the architecture
the compiler targets (CC=aarch64-linux-gnu-gcc builds the aarch64 wheel; tools/build-wheels).
Warnings are errors only where PYSANDBOX_WERROR=1 (CI, development), never at a user's install.
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
# -s strips the binaries; the prefix map keeps the build directory out of them (reproducible builds).
CFLAGS = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-D_GNU_SOURCE", "-static", "-s", f"-ffile-prefix-map={HERE}=."]
WHEEL_PLATFORMS = "manylinux_2_17_{arch}.manylinux2014_{arch}.musllinux_1_1_{arch}"
ARCHITECTURES = ("x86_64", "aarch64")  # what native/init/seccomp.c has a table for
BINARIES = {  # sources in native/; native/common/ is on the include path
    "sandbox-init": ["init/init.c", "init/init_exec.c", "init/init_fs.c", "init/init_entry.c", "init/caps.c",
                     "init/initconfig.c", "init/mkdirs.c", "init/netsync.c", "init/seccomp.c", "init/env.c",
                     "init/spawn.c", "init/proto.c", "init/watch.c", "init/init_handoff.c", "init/init_tree.c",
                     "common/handoff.c", "common/tree.c",
                     "common/opts.c", "common/fdutil.c",
                     "common/util.c"],
    "sandbox-supervisor": ["supervisor/supervisor.c", "supervisor/output.c", "supervisor/stage.c",
                           "common/userns.c", "common/rmtree.c", "supervisor/netns.c", "supervisor/dnsfilter.c",
                           "supervisor/hostaddr.c", "supervisor/cgroup.c", "supervisor/spare.c", "common/handoff.c",
                           "common/opts.c", "common/fdutil.c", "common/util.c"],
    "sandbox-probe": ["probe/probe.c", "common/opts.c", "common/util.c"],
    "sandbox-mount": ["mount/mount_main.c", "common/tree.c", "common/report.c", "common/opts.c", "common/fdutil.c",
                      "common/util.c"],
    "sandbox-untree": ["untree/untree_main.c", "common/tree.c", "common/report.c", "common/opts.c", "common/fdutil.c",
                       "common/util.c"],
    "sandbox-rmtree": ["rmtree/rmtree_main.c", "common/rmtree.c", "common/userns.c", "common/fdutil.c",
                       "common/util.c"],
}


def compiler() -> list:
    command = shlex.split(os.environ.get("CC", "cc"))
    if shutil.which(command[0]) is None:
        raise SystemExit(
            f"pysandbox needs a C compiler to build its native helpers ({command[0]!r} was not found): "
            "`apt-get install gcc libc6-dev` (Debian/Ubuntu), or set CC, then install again."
        )
    return command


def target_architecture() -> str:
    """The architecture the compiler builds for (`cc -dumpmachine`: x86_64-linux-gnu, aarch64-linux-gnu, ...)."""
    machine = subprocess.run([*compiler(), "-dumpmachine"], capture_output=True, text=True).stdout.strip()
    arch = machine.split("-")[0]
    if arch not in ARCHITECTURES:
        raise SystemExit(f"pysandbox's helpers build for {' and '.join(ARCHITECTURES)}; "
                         f"this compiler targets {machine!r}")
    return arch


def compile_native(out_dir: Path, werror: bool = os.environ.get("PYSANDBOX_WERROR") == "1") -> None:
    cc = compiler()
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, sources in BINARIES.items():
        command = [*cc, *CFLAGS, *(["-Werror"] if werror else []), f"-I{NATIVE / 'common'}", "-o", str(out_dir / name),
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


def _platform_wheel():
    try:  # setuptools >= 70.1 has it; before, the wheel package (both are in the build's isolated environment)
        from setuptools.command.bdist_wheel import bdist_wheel
    except ImportError:
        from wheel.bdist_wheel import bdist_wheel

    class PlatformWheel(bdist_wheel):
        """The wheel carries binaries: platform-tagged, for the architecture they were built for."""

        def finalize_options(self):
            self.distribution.has_ext_modules = lambda: True  # platlib: the root of the wheel
            super().finalize_options()

        def get_tag(self):
            return "py3", "none", WHEEL_PLATFORMS.format(arch=target_architecture())

    return PlatformWheel


if __name__ == "__main__":  # importable, so a checkout can build its helpers alone:
    # python3 -c 'import setup; setup.compile_native(setup.HERE / "pysandbox" / "_native", werror=True)'
    setup(cmdclass={"build_py": BuildWithNative, "bdist_wheel": _platform_wheel()})
