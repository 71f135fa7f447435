"""Python series Debian's archive lacks, from the host: add_python and debian_slim(python_version=).

Modal copies a standalone CPython build into /usr/local. This host reaches no such build
(only PyPI, Debian and npm), so pysandbox copies the host's own installation of the
series instead, found in this order:

* PYSANDBOX_PYTHON_3_12 (for 3.12; likewise for each series): that interpreter;
* pyenv: the newest $PYENV_ROOT/versions/3.12.* (PYENV_ROOT defaults to ~/.pyenv);
* `python3.12` on PATH (pyenv shims resolved as above, not run).

Only a self-contained installation qualifies (its own lib/python3.12 beside its bin/, not the
distribution's /usr): its interpreter, libpython and standard library (without tests, Tk and
site-packages) go to /usr/local; pip comes from the library's own ensurepip wheel, offline.
Shared libraries the image lacks (by ldd inside it) are copied from the host to
/usr/local/lib, never over the image's own; the C library must be the image's, as new as
the host's.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Dict, List, Optional

import attrs

from .. import settings
from .._state.files import give_to_sandbox_owner
from ..exception import InvalidError

SERIES = ("3.10", "3.11", "3.12", "3.13")
PREFIX = "/usr/local"
# The C library's own objects: they must come from the image (a second libc in one process breaks it).
LIBC = ("libc.so", "libm.so", "ld-linux", "libpthread.so", "libdl.so", "librt.so", "libutil.so", "libresolv.so",
        "libanl.so", "libnsl.so.1", "libBrokenLocale.so", "libmvec.so", "linux-vdso")
# Left out of the copy: the test suite, Tk (it needs X11) and the host's installed packages.
SKIPPED = ("test", "idlelib", "tkinter", "turtledemo", "site-packages", "lib2to3/tests")
MISSING = "PYSANDBOX-MISSING"


def variable(series: str) -> str:
    return "PYSANDBOX_PYTHON_" + series.replace(".", "_")


def check_series(version, what: str) -> str:
    """`version` if it names a series pysandbox can put into an image, else InvalidError."""
    if not isinstance(version, str) or version not in SERIES:
        raise InvalidError(f"{what}={version!r}: pass a Python series, one of {', '.join(SERIES)}.")
    return version


@attrs.frozen
class HostPython:
    """A self-contained installation of `series` on the host: `prefix`/bin/python<series>."""

    series: str
    prefix: Path
    source: str  # how it was found, for the build log

    @property
    def executable(self) -> Path:
        return self.prefix / "bin" / f"python{self.series}"

    @property
    def stdlib(self) -> Path:
        return self.prefix / "lib" / f"python{self.series}"


def _installation(executable: str, series: str, source: str) -> Optional[HostPython]:
    real = Path(os.path.realpath(executable))
    prefix = real.parent.parent
    if real.parent.name != "bin" or str(prefix) in ("/", "/usr"):
        return None  # the distribution's own Python: its library is spread over /usr
    found = HostPython(series, prefix, source)
    ok = (found.stdlib / "os.py").is_file() and os.access(found.executable, os.X_OK)
    return found if ok else None


def _pyenv(series: str) -> Optional[HostPython]:
    root = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv")
    patches = []
    for path in glob.glob(str(root / "versions" / f"{series}.*")):
        match = re.fullmatch(re.escape(series) + r"\.(\d+)", os.path.basename(path))
        if match:
            patches.append((int(match.group(1)), path))
    for _, path in sorted(patches, reverse=True):
        found = _installation(os.path.join(path, "bin", f"python{series}"), series, f"pyenv ({path})")
        if found:
            return found
    return None


def find(series: str) -> HostPython:
    """The host installation of `series` to copy, else an error naming what to install."""
    chosen = os.environ.get(variable(series))
    if chosen:
        found = _installation(chosen, series, f"{variable(series)}={chosen}")
        if found is None:
            raise InvalidError(f"{variable(series)}={chosen!r} is not the python{series} executable of a "
                               "self-contained installation (PREFIX/bin with PREFIX/lib/python"
                               f"{series}); fix or unset it.")
        return found
    found = _pyenv(series)
    on_path = shutil.which(f"python{series}")
    if found is None and on_path and os.path.basename(os.path.dirname(on_path)) != "shims":
        found = _installation(on_path, series, f"python{series} on PATH ({os.path.realpath(on_path)})")
    if found is None:
        raise InvalidError(
            f"No Python {series} for the image: Debian's archive here does not ship it and pysandbox found no "
            f"self-contained Python {series} on this host. Install one (`pyenv install {series}`, or build it "
            f"with --prefix=/opt/python{series}) and, if it is not pyenv's, set {variable(series)} to its "
            f"python{series}."
        )
    return found


def _skipped(rel: str) -> bool:
    return any(rel == part or rel.startswith(part + "/") for part in SKIPPED) or \
        rel.startswith("config-") or "_tkinter" in rel


def _copy(source: Path, dest: Path) -> None:
    """`source` (a host file or symlink) as `dest`, sandbox root's, times kept (the .pyc files stay valid)."""
    if source.is_symlink():
        os.symlink(os.readlink(source), dest)
    else:
        shutil.copy2(source, dest)
    give_to_sandbox_owner(dest)


def _make_dirs(root: Path, rel: str) -> Path:
    path = root
    for part in rel.split("/"):
        path = path / part
        if not path.is_dir():
            path.mkdir(mode=0o755)
            give_to_sandbox_owner(path)
    return path


def copy_into(python: HostPython, rootfs: Path) -> List[Path]:
    """The installation's interpreter, libpython and library under `rootfs`/usr/local; returns
    the host files whose shared libraries the image must provide."""
    local = _make_dirs(rootfs, PREFIX.strip("/"))
    bin_dir, lib_dir = _make_dirs(local, "bin"), _make_dirs(local, "lib")
    _copy(python.executable.resolve(), bin_dir / f"python{python.series}")
    for name in ("python3", "python"):
        os.symlink(f"python{python.series}", bin_dir / name)
        give_to_sandbox_owner(bin_dir / name)
    linked = [python.executable.resolve()]
    for library in sorted(glob.glob(str(python.prefix / "lib" / f"libpython{python.series}*.so*"))):
        _copy(Path(library), lib_dir / os.path.basename(library))
        linked.append(Path(library))
    stdlib = _make_dirs(lib_dir, f"python{python.series}")
    for top, dirs, names in os.walk(python.stdlib):
        rel_top = os.path.relpath(top, python.stdlib)
        dirs[:] = sorted(d for d in dirs if not _skipped(os.path.normpath(os.path.join(rel_top, d))))
        for name in dirs:
            rel = os.path.normpath(os.path.join(rel_top, name))
            if os.path.islink(os.path.join(top, name)):  # kept a link (os.walk does not enter it)
                _copy(Path(top) / name, stdlib / rel)
            else:
                _make_dirs(stdlib, rel)
        for name in sorted(names):
            rel = os.path.normpath(os.path.join(rel_top, name))
            if not _skipped(rel):
                _copy(Path(top) / name, stdlib / rel)
                if rel.startswith("lib-dynload/") and name.endswith(".so"):
                    linked.append(Path(top) / name)
    include = python.prefix / "include" / f"python{python.series}"
    if include.is_dir():  # headers: pip builds C extensions against them
        shutil.copytree(include, _make_dirs(local, "include") / include.name, symlinks=True)
        for top, dirs, names in os.walk(_make_dirs(local, "include")):
            for name in dirs + names:
                give_to_sandbox_owner(os.path.join(top, name))
    return linked


def host_libraries(linked: List[Path]) -> Dict[str, str]:
    """soname -> host path of each shared library the copied files load, but the C library's."""
    result = subprocess.run(["ldd", *map(str, linked)], capture_output=True, text=True, env=settings.HOST_ENV)
    libraries = {}
    for line in result.stdout.splitlines():
        name, arrow, rest = line.strip().partition(" => ")
        path = rest.split(" (")[0].strip()
        if arrow and path.startswith("/") and not name.startswith(LIBC):
            libraries[name] = path
    return libraries


def missing_script(series: str) -> str:
    """Lists, inside the image, the shared libraries its copy of Python lacks."""
    return (f"ldconfig {PREFIX}/lib 2>/dev/null; command -v ldd >/dev/null || exit 0; "
            f"for f in {PREFIX}/bin/python{series} {PREFIX}/lib/python{series}/lib-dynload/*.so; do "
            f"ldd \"$f\"; done 2>/dev/null | sed -n 's/^[[:space:]]*\\([^ ]*\\) => not found$/{MISSING} \\1/p' "
            "| sort -u")


def finish_script(series: str) -> str:
    """Inside the image, after the copy: the linker cache, pip from ensurepip, and a check."""
    python = f"{PREFIX}/bin/python{series}"
    return ("command -v ldconfig >/dev/null || { echo 'pysandbox: add_python needs a glibc-based image "
            "(Debian, Ubuntu, ...): this one has no ldconfig'; exit 3; }\n"
            f"ldconfig {PREFIX}/lib\n"
            f"if ! {python} -c pass; then echo 'pysandbox: the host Python {series} cannot run in this image: "
            "it needs a glibc (Debian, Ubuntu, ...) at least as new as the host'\"'\"'s'; exit 3; fi\n"
            f"{python} -m ensurepip --default-pip >/dev/null 2>&1 || {python} -m ensurepip --default-pip || exit 4\n"
            f"{python} -m pip --version")


def bundle(missing: List[str], libraries: Dict[str, str], rootfs: Path) -> List[str]:
    """Copy each missing soname the host has into the layer's /usr/local/lib; returns those it has not."""
    lib_dir = rootfs / PREFIX.strip("/") / "lib"
    unknown = []
    for name in missing:
        if name in libraries:
            dest = lib_dir / name
            if not dest.exists():
                shutil.copyfile(os.path.realpath(libraries[name]), dest)
                os.chmod(dest, 0o644)
                give_to_sandbox_owner(dest)
        else:
            unknown.append(name)
    return unknown


def add_python(series: str, ctx, python: Optional[HostPython] = None) -> None:
    """Build step: `series` from the host into the image under construction (`ctx`, image/build.py)."""
    python = python or find(series)
    ctx.log(f"Python {series}: not in the base image's distribution; copying the host's installation, "
            f"{python.source}, into {PREFIX}")
    linked = copy_into(python, ctx.rootfs)
    missing: List[str] = []
    ctx.run(missing_script(series), {}, on_line=lambda line: _collect(line, missing))
    if missing:
        unknown = bundle(missing, host_libraries(linked), ctx.rootfs)
        ctx.log(f"Python {series}: the image lacks {', '.join(missing)}: copied from the host"
                + (f" (not {', '.join(unknown)}: the image's C library must provide them)" if unknown else ""))
    ctx.run(finish_script(series), {})


def _collect(line: str, missing: List[str]) -> None:
    words = line.split()
    # What a hostile image prints can only name sonames, looked up in the host's own table.
    if len(words) == 2 and words[0] == MISSING and len(missing) < 256:
        missing.append(words[1])

