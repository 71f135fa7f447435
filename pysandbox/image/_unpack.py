"""Unpack image layers into one root, applying OCI whiteouts. Standalone: it runs
with the host's Python *inside a sandbox* (python3 _unpack.py TARGET LAYER...),
so a hostile layer (symlinks out of the root, '..' paths, device nodes) can at
worst write into the sandbox's own view, never onto the host."""

import os
import shutil
import sys
import tarfile

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# Containment comes from the sandbox, not from tarfile filters (absent before Python 3.11.4).
TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}


def remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.lexists(path):
        os.unlink(path)


def safe_name(name):
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        return None
    return "/".join(parts)


def apply_layer(target, layer):
    with tarfile.open(layer, "r:*") as tar:
        for member in tar:
            name = safe_name(member.name)
            if not name:
                continue
            directory, base = os.path.split(name)
            if base == OPAQUE:
                parent = os.path.join(target, directory)
                if os.path.isdir(parent) and not os.path.islink(parent):
                    for entry in os.listdir(parent):
                        remove(os.path.join(parent, entry))
                continue
            if base.startswith(WHITEOUT):
                remove(os.path.join(target, directory, base[len(WHITEOUT):]))
                continue
            if member.isdev():
                continue  # the sandbox gets its own /dev
            path = os.path.join(target, name)
            if not (member.isdir() and os.path.isdir(path) and not os.path.islink(path)):
                remove(path)
            if member.islnk():
                link = safe_name(member.linkname)
                if link is not None:
                    os.link(os.path.join(target, link), path)
                continue
            tar.extract(member, target, set_attrs=False, **TRUSTED)
            if not member.issym():
                os.chmod(path, member.mode & 0o7777)


if __name__ == "__main__":
    os.umask(0o022)
    for blob in sys.argv[2:]:
        apply_layer(sys.argv[1], blob)
