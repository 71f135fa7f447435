"""App records (apps/<name>.json): an app's id, chosen once by whichever creator links it first."""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Optional

from .. import settings
from ..exception import ExecutionError, InvalidError
from .files import ensure_dir, is_well_formed_id, new_id, read_json, write_json_atomic


def apps_dir() -> Path:
    return settings.state_dir() / "apps"


def app_path(name: str) -> Path:
    if not name or "/" in name or name.startswith(".") or "\0" in name:
        raise InvalidError(f"Invalid App name {name!r}: use letters, digits, '-', '_' and '.'.")
    return apps_dir() / f"{name}.json"


def read_app(name: str) -> Optional[dict]:
    path = app_path(name)
    try:
        data = read_json(path, "app")
    except FileNotFoundError:
        return None
    if not (is_well_formed_id(data.get("app_id"), "ap-") and data.get("name") == name):
        raise ExecutionError(f"app record {path} is corrupt (no app id, or another app's name); remove it.")
    return data


def create_app(name: str) -> dict:
    """Create the app record unless one exists; of racing creators, one id wins."""
    ensure_dir(apps_dir())
    path = app_path(name)
    record = {"app_id": new_id("ap-"), "name": name, "created_at": time.time()}
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    write_json_atomic(tmp, record)
    try:
        os.link(tmp, path)  # link() fails if it exists: first writer wins
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)
    return read_app(name)


def find_app_by_id(app_id: str) -> Optional[dict]:
    directory = apps_dir()
    if not directory.is_dir():
        return None
    for entry in directory.glob("*.json"):
        try:
            data = read_json(entry, "app")
        except (FileNotFoundError, ExecutionError):
            continue
        if data.get("app_id") == app_id:
            return data
    return None
