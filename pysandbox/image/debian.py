"""debian_slim: a minimal Debian root with Python and pip, bootstrapped by mmdebstrap.

A root caller runs `mmdebstrap --mode=root` (packages unpacked and configured
in a chroot by real root: it is Debian's archive, signed, not user code); an
unprivileged caller runs `--mode=unshare`, which needs a subordinate uid range
for the user in /etc/subuid. Either way the result comes out as a tar stream
that we unpack with the caller's identity and hand to the sandbox owner uid, so
every file of the layer belongs to sandbox root. Device nodes are skipped
(bwrap gives each sandbox its own /dev).
"""

from __future__ import annotations

import getpass
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable, Optional

from .. import config
from ..exception import ImageBuildError, InvalidError

# Debian suites by the Python series they ship.
SUITES = {"3.11": "bookworm", "3.13": "trixie"}
MIRROR = "http://deb.debian.org/debian"
PACKAGES = ("python3", "python3-pip", "python3-venv", "python-is-python3", "ca-certificates")
# Slim, as Debian's own slim images: no docs, man pages or translations, now or in later apt_install steps.
DPKG_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/info/*", "/usr/share/locale/*")
# Modal images let `pip install` just work as root: no PEP 668 refusal, no root warning.
PIP_CONF = "[global]\nbreak-system-packages = true\nroot-user-action = ignore\ndisable-pip-version-check = true\n"
# Sandbox root is one uid: apt cannot drop to _apt, so it stays root (its sandbox is ours).
APT_CONF = 'APT::Sandbox::User "root";\nAPT::Install-Recommends "false";\n'


def local_python_version() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def suite_for(python_version: Optional[str]) -> str:
    version = python_version or local_python_version()
    if not isinstance(version, str) or version not in SUITES:
        choices = ", ".join(f"{v} (Debian {s})" for v, s in SUITES.items())
        raise InvalidError(
            f"Image.debian_slim(python_version={version!r}): pysandbox builds images from Debian's archive, "
            f"which provides Python {choices}; pass one of those, or use Image.from_registry with a python image."
        )
    return SUITES[version]


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
    return argv + [suite, "-", MIRROR]


def _has_subuids() -> bool:
    names = {getpass.getuser(), str(os.getuid())}
    try:
        with open("/etc/subuid") as f:
            return any(line.split(":")[0] in names for line in f)
    except OSError:
        return False


def bootstrap(python_version: Optional[str], rootfs: Path, log: Callable[[str], None]) -> None:
    """Fill the empty directory `rootfs` with a Debian root for `python_version`."""
    suite = suite_for(python_version)
    argv = mmdebstrap_command(suite)
    log(f"mmdebstrap {suite} ({', '.join(PACKAGES)})")
    bootstrap_proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    untar = subprocess.Popen(
        ["tar", "-x", "--no-same-owner", "--exclude=./dev/*", "-C", str(rootfs), "-f", "-"],
        stdin=bootstrap_proc.stdout, stderr=subprocess.PIPE,
    )
    bootstrap_proc.stdout.close()
    tail = []
    for raw in bootstrap_proc.stderr:
        line = raw.decode(errors="replace").rstrip("\n")
        tail = (tail + [line])[-40:]
        log(line)
    untar_err = untar.communicate()[1].decode(errors="replace")
    if bootstrap_proc.wait() != 0 or untar.returncode != 0:
        raise ImageBuildError("debian_slim: mmdebstrap failed:\n" + "\n".join(tail) + untar_err)
    (rootfs / "etc" / "pip.conf").write_text(PIP_CONF)
    (rootfs / "etc" / "apt" / "apt.conf.d" / "00pysandbox").write_text(APT_CONF)
    give_to_sandbox_owner(rootfs)


def give_to_sandbox_owner(path: Path) -> None:
    if os.geteuid() != 0:
        return  # unpacked by the caller, who is sandbox root already
    uid, gid = config.sandbox_owner()
    for directory, dirs, files in os.walk(path):
        os.lchown(directory, uid, gid)
        for name in dirs + files:
            os.lchown(os.path.join(directory, name), uid, gid)
