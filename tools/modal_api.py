"""Write the expected data of the Modal conformance test from real Modal.

    python3 tools/modal_api.py --modal /path/to/venv-1.6.4/bin/python \\
        --old-modal /path/to/venv-1.5.5/bin/python > tests/conformance/modal-1.6.4.json

Each interpreter must have `modal` installed (`pip install modal==1.6.4`, `modal==1.5.5`); no account or
network access to Modal's service is needed. The script re-runs itself under each with `--dump` and merges
the two: everything comes from 1.6.4 except the old file API that 1.5.5 last shipped (OLD_API).

Only what /work/shared/reference/modal-sandbox-api.md lists is recorded (REFERENCE below), so the test
checks the API a local client can offer, not all of Modal. Entries:
  {"module": ..., "name": ..., "since": "1.6.4"|"1.5.5", "kind": "class"|"function"|"value"|"module",
   "signature": [[param, kind, default], ...] | null, "aio": bool, "members": {...}, "bases": [...],
   "enum": {...}, "value": repr}
Defaults are normalised so that pysandbox's objects compare equal to Modal's (see `default_of`).
"""

from __future__ import annotations

import argparse
import enum
import importlib
import inspect
import json
import subprocess
import sys

SANDBOX = [
    "create", "exec", "from_id", "from_name", "list", "wait", "poll", "terminate", "wait_until_ready", "detach",
    "returncode", "stdout", "stderr", "stdin", "filesystem", "logs", "get_tags", "set_tags", "tunnels",
    "create_connect_token", "snapshot_filesystem", "snapshot_directory", "mount_image", "unmount_image",
    "reload_volumes", "hydrate", "get_dashboard_url", "object_id", "client",
    # The private members published clients call (reference, section 1; issue 15).
    "_get_task_id", "_experimental_set_outbound_network_policy",
]
SANDBOX_FILESYSTEM = ["read_bytes", "read_text", "write_bytes", "write_text", "copy_from_local", "copy_to_local",
                      "list_files", "make_directory", "remove", "stat", "watch"]
IMAGE = [
    "debian_slim", "micromamba", "from_registry", "from_dockerfile", "from_scratch", "from_id", "from_name",
    "from_aws_ecr", "from_gcp_artifact_registry", "pip_install", "uv_pip_install", "pip_install_from_requirements",
    "pip_install_from_pyproject", "pip_install_private_repos", "poetry_install_from_file", "uv_sync", "apt_install",
    "micromamba_install", "run_commands", "dockerfile_commands", "env", "workdir", "cmd", "entrypoint", "shell",
    "add_local_file", "add_local_dir", "add_local_python_source", "run_function", "pipe", "imports", "build",
    "publish", "object_id", "hydrate",
]
VOLUME = ["from_name", "from_id", "ephemeral", "commit", "reload", "read_file", "read_file_into_fileobj", "listdir",
          "iterdir", "batch_upload", "remove_file", "copy_files", "with_mount_options", "read_only", "info", "rename",
          "name", "objects"]
SECRET = ["from_dict", "from_name", "from_dotenv", "from_local_environ", "update", "info", "name", "objects"]
PROBE = ["with_tcp", "with_exec"]
APP = ["lookup", "app_id", "name", "run"]
CONTAINER_PROCESS = ["stdout", "stderr", "stdin", "returncode", "poll", "wait", "attach"]
STREAM_READER = ["file_descriptor", "read"]
STREAM_WRITER = ["write", "write_eof", "drain"]
TUNNEL = ["url", "tls_socket", "tcp_socket"]
FILE_INFO = ["is_file", "is_dir", "is_symlink"]
MANAGER = {"Volume": ["create", "delete", "list"], "Secret": ["create", "delete", "list"]}
CONFIG = ["get", "override_locally", "to_dict"]

# module -> name -> the members to record (a list), or None (a function, value, enum or exception).
REFERENCE = {
    "modal": {
        "App": APP, "Image": IMAGE, "Sandbox": SANDBOX, "Secret": SECRET, "Volume": VOLUME, "Probe": PROBE,
        "Tunnel": TUNNEL, "Error": None, "enable_output": None, "SandboxSnapshot": ["from_id", "object_id", "hydrate"],
        "exception": None, "types": None,
    },
    "modal.sandbox": {"Sandbox": SANDBOX, "Probe": PROBE},
    "modal.sandbox.sandbox": {"SandboxFilesystem": SANDBOX_FILESYSTEM},
    "modal.container_process": {"ContainerProcess": CONTAINER_PROCESS},
    "modal.io_streams": {"StreamReader": STREAM_READER, "StreamWriter": STREAM_WRITER},
    "modal.stream_type": {"StreamType": None},
    "modal.exception": "classes",  # every exception class the module defines
    "modal.image": {"Image": IMAGE},
    "modal.volume": {"Volume": VOLUME},
    "modal.secret": {"Secret": SECRET},
    "modal.app": {"App": APP},
    "modal.output": {"enable_output": None},
    "modal.types": {
        "FileInfo": FILE_INFO, "FileType": None, "FileWatchEvent": [], "FileWatchEventType": None,
        "SandboxConnectCredentials": [], "FileEntry": [], "FileEntryType": None,
    },
    "modal.config": {"config": CONFIG, "config_profiles": None, "config_set_active_profile": None, "_profile": None},
}

# From 1.5.5: the file API 1.6 removed (reference, section 13), which pysandbox also offers.
OLD_API = {
    "modal.sandbox": {"Sandbox": ["open", "ls", "mkdir", "rm", "watch"], "ARG_MAX_BYTES": None},
    "modal.file_io": {"FileIO": ["create", "read", "readline", "readlines", "write", "flush", "seek", "close",
                                 "ls", "mkdir", "rm", "watch"]},
    "modal.exception": {"FilesystemExecutionError": None},
}


def default_of(value: object) -> object:
    """A parameter default as a comparable string; None for a required parameter."""
    if value is inspect.Parameter.empty:
        return None
    if isinstance(value, enum.Enum):
        return f"{type(value).__name__}.{value.name}"
    if value is None or isinstance(value, (bool, int, float, str, bytes, tuple, list, dict, frozenset)):
        return repr(value)
    return f"<{type(value).__name__.lstrip('_')}>"  # a sentinel: compared by its type's name


def signature_of(obj: object) -> list | None:
    try:
        params = list(inspect.signature(obj).parameters.values())
    except (TypeError, ValueError):
        return None
    if params and params[0].name in ("self", "cls"):
        params = params[1:]
    return [[p.name, p.kind.name, default_of(p.default)] for p in params]


def describe_member(cls: type, name: str) -> dict:
    try:
        static = inspect.getattr_static(cls, name)
    except AttributeError:
        return {"kind": "missing"}
    # A classproperty (Volume.objects) reads as a value from the class, like a plain class attribute.
    if isinstance(static, property) or type(static).__name__ == "cached_property":
        return {"kind": "property"}
    value = getattr(cls, name)
    if not callable(value):
        return {"kind": "value"}
    return {"kind": "function", "signature": signature_of(value), "aio": hasattr(value, "aio")}


def describe(obj: object, members: list | None) -> dict:
    if inspect.ismodule(obj):
        return {"kind": "module"}
    if inspect.isclass(obj):
        out: dict = {"kind": "class"}
        if issubclass(obj, BaseException):
            out["bases"] = [b.__name__ for b in obj.__mro__
                            if b.__module__ in ("builtins", obj.__module__) and not b.__name__.startswith("_")]
        elif issubclass(obj, enum.Enum):
            out["enum"] = {m.name: repr(m.value) for m in obj}
        else:
            out["signature"] = signature_of(obj)
        out["members"] = {m: describe_member(obj, m) for m in members or []}
        return out
    if callable(obj):
        return {"kind": "function", "signature": signature_of(obj), "aio": hasattr(obj, "aio")}
    if members:  # an instance whose API is its class's (modal.config.config)
        return {"kind": "value", "members": {m: describe_member(type(obj), m) for m in members}}
    return {"kind": "value", "value": repr(obj) if type(obj) is int else None}  # a constant (ARG_MAX_BYTES)


def dump(reference: dict) -> list:
    entries = []
    for modname, names in reference.items():
        module = importlib.import_module(modname)
        if names == "classes":
            names = {n: None for n, c in vars(module).items()
                     if inspect.isclass(c) and c.__module__ == modname and not n.startswith("_")}
        for name, members in names.items():
            obj = getattr(module, name)
            if name in ("Volume", "Secret") and members and "objects" in members:
                entries.append({"module": modname, "name": f"{name}.objects",
                                **describe(type(obj.objects), MANAGER[name])})
            entries.append({"module": modname, "name": name, **describe(obj, members)})
    return entries


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dump", choices=("new", "old"), help="(internal) dump with the running interpreter")
    parser.add_argument("--modal", help="python of a venv holding modal==1.6.4")
    parser.add_argument("--old-modal", help="python of a venv holding modal==1.5.5")
    args = parser.parse_args()
    if args.dump:
        import modal

        json.dump({"version": modal.__version__, "entries": dump(REFERENCE if args.dump == "new" else OLD_API)},
                  sys.stdout)
        return 0
    if not (args.modal and args.old_modal):
        parser.error("--modal and --old-modal are required")

    def run(python: str, which: str) -> dict:
        out = subprocess.run([python, __file__, "--dump", which], check=True, capture_output=True, text=True,
                             cwd="/").stdout
        return json.loads(out)

    new, old = run(args.modal, "new"), run(args.old_modal, "old")
    entries = [dict(e, since=new["version"]) for e in new["entries"]]
    for old_entry in old["entries"]:
        old_entry["since"] = old["version"]
        same = [e for e in entries if (e["module"], e["name"]) == (old_entry["module"], old_entry["name"])]
        if same and "members" in old_entry:  # Sandbox: add the removed methods, marked as 1.5.5's
            for member, spec in old_entry["members"].items():
                same[0]["members"][member] = dict(spec, since=old["version"])
        else:
            entries.append(old_entry)
    json.dump({"modal": new["version"], "old_file_api": old["version"], "entries": entries}, sys.stdout,
              indent=1, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
