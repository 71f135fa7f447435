"""debian_slim: a minimal Debian root with Python and pip, bootstrapped by mmdebstrap.

The suite is PYSANDBOX_DEBIAN_SUITE (default bookworm, as Modal's images), fetched from
PYSANDBOX_DEBIAN_MIRROR (default http://deb.debian.org/debian). The suite's own Python
serves the series it ships (bookworm: 3.11); any other series is copied from the host on
top (hostpython.py), with the suite's python3 kept for the libraries it brings.

A root caller runs `mmdebstrap --mode=root` (packages unpacked and configured
in a chroot by real root: it is Debian's archive, signed, not user code); an
unprivileged caller runs `--mode=unshare`, which needs a subordinate uid range
for the user in /etc/subuid. Either way the result comes out as a tar file that
is unpacked like a registry layer, in a sandbox (image/_unpack.py), so its files
keep their owners (root, _apt, ...) as sandbox ids. Device nodes are skipped
(each sandbox gets its own /dev).
"""

from __future__ import annotations

import getpass
import os
import re
import shutil
import subprocess
import sys

from .._state.files import give_to_sandbox_owner
from ..exception import ImageBuildError, InvalidError

DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# The Python series each Debian suite ships as python3.
SUITE_PYTHON = {"bullseye": "3.9", "bookworm": "3.11", "trixie": "3.13"}
PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates")
# Slim, as Debian's own slim images: no docs, man pages or translations, now or in later apt_install steps.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
# Modal images let `pip install` just work as root: no PEP 668 refusal, no root warning.
PIP_CONF = "[global]\nbreak-system-packages = true\nroot-user-action = ignore\ndisable-pip-version-check = true\n"
APT_CONF = 'APT::Install-Recommends "false";\n'


def local_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def suite() -> str:
    chosen = os.environ.get("PYSANDBOX_DEBIAN_SUITE") or DEFAULT_SUITE
    if not re.fullmatch(r"[a-z][a-z0-9.-]*", chosen):
        raise InvalidError(f"PYSANDBOX_DEBIAN_SUITE={chosen!r} is not a Debian suite name (e.g. bookworm).")
    return chosen


def mirror() -> str:
    chosen = os.environ.get("PYSANDBOX_DEBIAN_MIRROR") or DEFAULT_MIRROR
    if not re.fullmatch(r"(https?|file)://[^\s]+", chosen):
        raise InvalidError(f"PYSANDBOX_DEBIAN_MIRROR={chosen!r} must be a URL like {DEFAULT_MIRROR}.")
    return chosen


def mmdebstrap_command(suite: str) -> list:
    binary = shutil.which("mmdebstrap")
    if binary is None:
        raise InvalidError("Image.debian_slim() needs mmdebstrap: `apt-get install mmdebstrap`.")
    if os.geteuid() == 0:
        mode = "root"
    elif _has_subuids():
        mode = "unshare"
    else:
        raise InvalidError(
            f"Image.debian_slim() as the unprivileged user {getpass.getuser()!r} needs a subordinate uid range "
            f"(`usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {getpass.getuser()}`), or run as root."
        )
    argv = [binary, f"--mode={mode}", "--variant=minbase", "--format=tar", f"--include={','.join(PACKAGES)}"]
    argv += [f"--dpkgopt=path-exclude={pattern}" for pattern in DPKG_EXCLUDES]
    argv += ["--aptopt=" + line for line in APT_CONF.strip().splitlines()]
    return argv + [suite, "-", mirror()]


def _has_subuids() -> bool:
    names = {getpass.getuser(), str(os.getuid())}
    try:
        with open("/etc/subuid") as f:
            return any(line.split(":")[0] in names for line in f)
    except OSError:
        return False


def bootstrap(suite: str, ctx) -> None:
    """Fill the build's empty root (`ctx.rootfs`) with Debian `suite`."""
    argv = mmdebstrap_command(suite)
    ctx.log(f"mmdebstrap {suite} from {argv[-1]} ({', '.join(PACKAGES)}): "
            f"Python {SUITE_PYTHON.get(suite, 'of the suite')} from Debian's archive")
    blobs = ctx.temp / "blobs"
    blobs.mkdir(mode=0o755)
    tar = blobs / "debian.tar"
    with open(tar, "wb") as out:
        bootstrap_proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.PIPE)
    tail = []
    for raw in bootstrap_proc.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        tail = (tail + [line])[-40:]
        ctx.log(line)
    if bootstrap_proc.wait() != 0:
        raise ImageBuildError("debian_slim: mmdebstrap failed:\n" + "\n".join(tail))
    os.chmod(tar, 0o644)
    ctx.unpack([tar])
    tar.unlink()
    blobs.rmdir()
    for path, text in ((ctx.rootfs / "etc" / "pip.conf", PIP_CONF),
                       (ctx.rootfs / "etc" / "apt" / "apt.conf.d" / "00pysandbox", APT_CONF)):
        path.write_text(text)
        give_to_sandbox_owner(path)  # sandbox root's, as the rest of /etc
