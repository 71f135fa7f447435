"""`pysandbox secret` and `pysandbox volume`: named secrets and volumes; `-` for a local file is
stdin (put) or stdout (get)."""

from __future__ import annotations

import itertools
import os
import sys

from .._beneath import replacing_path
from ..exception import NotFoundError
from ..secret import Secret, store
from ..volume import FileEntryType, Volume
from .common import UsageError, escape_name, parse_env

STDIO = "-"


def cmd_secret_create(args) -> int:
    store(args.name, parse_env(args.pairs, "secret create"), existing="replace" if args.force else "raise")
    print(args.name)
    return 0


def cmd_secret_ls(args) -> int:
    for secret in Secret.objects.list():
        info = secret.info()
        print(f"{info.name}\t{','.join(info.keys)}")  # key names only, never values
    return 0


def cmd_secret_rm(args) -> int:
    Secret.objects.delete(args.name)
    return 0


def cmd_volume_ls(args) -> int:
    if args.name is None:
        for volume in Volume.objects.list():
            print(volume.name)
        return 0
    for entry in Volume.from_name(args.name).listdir(args.path, recursive=args.recursive):
        suffix = "/" if entry.type == FileEntryType.DIRECTORY else ""
        print(f"{entry.size:>12}  {escape_name(entry.path)}{suffix}")  # sandboxes name the files
    return 0


def cmd_volume_create(args) -> int:
    Volume.objects.create(args.name)
    return 0


def cmd_volume_rm(args) -> int:
    Volume.objects.delete(args.name)
    return 0


def cmd_volume_put(args) -> int:
    volume = Volume.from_name(args.name)
    with volume.batch_upload(force=args.force) as batch:
        if args.local == STDIO:
            batch.put_file(sys.stdin.buffer, args.remote)
        elif os.path.isdir(args.local):
            batch.put_directory(args.local, args.remote)
        else:
            batch.put_file(args.local, args.remote)
    return 0


def cmd_volume_get(args) -> int:
    chunks = iter(Volume.from_name(args.name).read_file(args.remote))
    try:
        chunks = itertools.chain([next(chunks, b"")], chunks)  # opened here: its errors before any output
    except IsADirectoryError:
        raise UsageError(f"{args.remote} is a directory of volume {args.name!r}: `volume get` copies one file "
                         f"(`pysandbox volume ls -r {args.name} {args.remote}` lists its files)") from None
    except FileNotFoundError:
        raise NotFoundError(f"Volume {args.name!r} has no file {args.remote} "
                            f"(`pysandbox volume ls -r {args.name}` lists its files)") from None
    if args.local == STDIO:
        for chunk in chunks:
            sys.stdout.buffer.write(chunk)
        sys.stdout.buffer.flush()
        return 0
    with replacing_path(os.path.abspath(args.local)) as fd, open(fd, "wb", closefd=False) as out:
        for chunk in chunks:  # a failed or killed copy leaves no file
            out.write(chunk)
    return 0
