"""`pysandbox image ls | inspect | rm | prune`."""

from __future__ import annotations

import json
import time

from ..exception import NotFoundError
from . import store


def _size(nbytes: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if nbytes < 1024 or unit == "GB":
            return f"{nbytes:.0f}{unit}" if unit == "B" else f"{nbytes:.1f}{unit}"
        nbytes /= 1024
    return ""


def _image_row(ref: dict) -> dict:
    """One image as ls shows it; a damaged one (a layer's metadata edited or truncated) says which file."""
    try:
        meta = store.read_meta(store.layer_of(ref["image_id"]))
        if meta is None:
            return {**ref, "layers": 0, "size": 0, "missing": True}
        sizes = [(store.read_meta(layer) or {}).get("size", 0) for layer in meta["chain"]]
    except NotFoundError as exc:
        return {**ref, "layers": 0, "size": 0, "missing": True, "corrupt": str(exc)}
    return {**ref, "layers": len(meta["chain"]), "size": sum(sizes)}


def cmd_ls(args) -> int:
    rows = [_image_row(ref) for ref in store.refs()]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'IMAGE':<35} {'LAYERS':>6} {'SIZE':>9} {'AGE':>6}  RECIPE")
    for row in rows:
        age = f"{(time.time() - row['created_at']) / 60:.0f}m"
        size = ("corrupt" if row.get("corrupt") else "missing") if row.get("missing") else _size(row["size"])
        print(f"{row['image_id']:<35} {row['layers']:>6} {size:>9} {age:>6}  {row['recipe']}")
    return 0


def cmd_inspect(args) -> int:
    meta = store.read_meta(store.layer_of(args.image))
    if meta is None:
        raise NotFoundError(f"Image {args.image} not found")
    layers = [store.read_meta(layer) or {"id": layer, "missing": True} for layer in meta["chain"]]
    print(json.dumps({
        "image_id": args.image,
        "config": meta["config"],
        "size": sum(layer.get("size", 0) for layer in layers),
        "layers": [{key: layer.get(key) for key in ("id", "description", "size", "build_seconds")} for layer in layers],
    }, indent=2))
    return 0


def cmd_rm(args) -> int:
    store.forget(args.image)
    removed = store.prune()
    print(f"removed {args.image} ({len(removed)} layer(s) freed)")
    return 0


def cmd_prune(args) -> int:
    removed = store.prune(everything=args.all)
    print(f"removed {len(removed)} layer(s)")
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("image", help="manage built images", description="Images built from Image recipes.")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = actions.add_parser("ls", help="list images: id, layers, disk usage, recipe")
    q.add_argument("--json", action="store_true")
    q.set_defaults(func=cmd_ls)
    q = actions.add_parser("inspect", help="an image's config and layers")
    q.add_argument("image")
    q.set_defaults(func=cmd_inspect)
    q = actions.add_parser("rm", help="forget an image and free the layers no other image uses")
    q.add_argument("image")
    q.set_defaults(func=cmd_rm)
    q = actions.add_parser("prune", help="remove layers no image uses and leftovers of failed builds")
    q.add_argument("--all", action="store_true", help="remove every image and layer")
    q.set_defaults(func=cmd_prune)
