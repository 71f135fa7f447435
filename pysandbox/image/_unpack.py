"""Unpack image layers into one root, applying OCI whiteouts. Standalone: it runs
with the host's Python *inside a sandbox* (python3 _unpack.py LIMITS TARGET LAYER...),
so a hostile layer (symlinks out of the root, '..' paths, device nodes) can at
worst write into the sandbox's own view, never onto the host.

What a layer can make it write or hold is bounded too (LIMITS: a JSON object of
the bounds named in BOUNDS, from pysandbox/bounds.py): every member is charged
before it is extracted, at the size its header declares (so a sparse file
counts at its full size, and a member larger than what is left is refused
before a byte of it is written), every member as one entry, per layer
and for all layers together; the process's address space is capped, since
tarfile reads pax and long-name headers into memory. A bound hit ends the run
with LIMIT_EXIT after a last line `MARKER name detail` on stdout."""

import errno
import json
import os
import resource
import shutil
import sys
import tarfile

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
# Containment comes from the sandbox, not from tarfile filters (absent before Python 3.11.4).
TRUSTED = {"filter": "fully_trusted"} if hasattr(tarfile, "fully_trusted_filter") else {}
BOUNDS = ("layer_unpacked_bytes", "layer_entries", "image_unpacked_bytes", "image_entries", "unpack_memory_bytes")
LIMIT_EXIT = 3
MARKER = "pysandbox-unpack-limit"


class LimitExceeded(Exception):
    def __init__(self, name, detail):
        super().__init__(detail)
        self.name = name


class Budget:
    """Bytes and entries unpacked so far, in this layer and in all of them, against the limits."""

    def __init__(self, limits):
        self.limits = limits
        self.used = dict.fromkeys(BOUNDS[:4], 0)

    def start_layer(self):
        self.used["layer_unpacked_bytes"] = self.used["layer_entries"] = 0

    def charge(self, member, layer):
        # Whatever the type: tarfile extracts an unknown type as a regular file of that size. A sparse
        # map may write past the size it declares before the file is truncated back to it.
        size = max(member.size, sum(count for _, count in member.sparse or ()))
        for name, amount in (("layer_unpacked_bytes", size), ("layer_entries", 1),
                             ("image_unpacked_bytes", size), ("image_entries", 1)):
            self.used[name] += amount
            if self.used[name] > self.limits[name]:
                what = "entries" if name.endswith("entries") else "bytes"
                scope = f"layer {layer}" if name.startswith("layer") else "the image's layers"
                raise LimitExceeded(name, f"{scope} would unpack to more than {self.limits[name]} {what} "
                                          f"(at {member.name!r}, {member.size} bytes)")


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


def apply_layer(target, layer, budget):
    budget.start_layer()
    with tarfile.open(layer, "r:*") as tar:
        while True:
            member = tar.next()
            if member is None:
                break
            tar.members.clear()  # tarfile keeps every member it read: a million would fill memory
            budget.charge(member, os.path.basename(layer))
            apply_member(tar, member, target)


def apply_member(tar, member, target):
    name = safe_name(member.name)
    if not name:
        return
    directory, base = os.path.split(name)
    if base == OPAQUE:
        parent = os.path.join(target, directory)
        if os.path.isdir(parent) and not os.path.islink(parent):
            for entry in os.listdir(parent):
                remove(os.path.join(parent, entry))
        return
    if base.startswith(WHITEOUT):
        remove(os.path.join(target, directory, base[len(WHITEOUT):]))
        return
    if member.isdev():
        return  # the sandbox gets its own /dev
    path = os.path.join(target, name)
    if not (member.isdir() and os.path.isdir(path) and not os.path.islink(path)):
        remove(path)
    if member.islnk():
        link = safe_name(member.linkname)
        if link is not None:
            os.link(os.path.join(target, link), path)
        return
    tar.extract(member, target, set_attrs=False, **TRUSTED)
    own(path, member)
    if not member.issym():
        os.chmod(path, member.mode & 0o7777)  # after chown, which clears setuid bits


def own(path, member):
    """The member's owner, as a sandbox id: kept where the sandbox maps it (a caller with a
    range), else the file stays sandbox root's (only root is mapped)."""
    try:
        os.lchown(path, member.uid, member.gid)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EPERM):
            raise


def main(argv):
    limits = json.loads(argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limits["unpack_memory_bytes"],) * 2)
    budget = Budget(limits)
    try:
        for blob in argv[3:]:
            apply_layer(argv[2], blob, budget)
    except LimitExceeded as exc:
        print(f"{MARKER} {exc.name} {exc}", flush=True)
        return LIMIT_EXIT
    except MemoryError:
        print(f"{MARKER} unpack_memory_bytes unpacking needs more than {limits['unpack_memory_bytes']} "
              "bytes of memory", flush=True)
        return LIMIT_EXIT
    return 0


if __name__ == "__main__":
    os.umask(0o022)
    sys.exit(main(sys.argv))
