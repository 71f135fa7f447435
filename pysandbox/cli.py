"""The `pysandbox` command: list, inspect, run commands in and end local sandboxes.

Every subcommand is one small function taking the parsed arguments and
returning the exit status. Errors the user can act on (pysandbox.exception.Error,
OSError) become one line on stderr, `pysandbox: error: ...`, and exit status 1
(2 for a command line that cannot work); Ctrl-C exits 130 without a traceback.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shlex
import signal
import struct
import sys
import termios
import threading
import time
import tty
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import attrs

from . import _modal_alias, doctor, garbage
from ._beneath import replacing_path
from ._state import paths, records
from ._version import __version__
from .app import App
from .container_process import EXEC_TIMEOUT_RETURNCODE
from .exception import Error, NotFoundError
from .image import Image
from .image import cli as image_cli
from .io_streams import read_kept
from .runtime import limits
from .sandbox import Sandbox
from .secret import Secret
from .volume import FileEntryType, Volume

PROG = "pysandbox"
BOOTSTRAP_DIR = str(Path(__file__).parent / "_bootstrap")  # holds the sitecustomize of `modal-run`
DEFAULT_RUN_APP = "pysandbox-cli"
DEFAULT_RUN_TIMEOUT = 300
RUN_GRACE = 10  # the sandbox outlives the command's own timeout, so that timeout reports 124
EXIT_EXEC_TIMEOUT = 124


class UsageError(Exception):
    """A command line that cannot work; reported like any other error."""


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too, pointing at --help instead of printing the usage."""

    def error(self, message: str):
        self.exit(2, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


# Streaming helpers ---------------------------------------------------------


def _pump(chunks, out, errors: List[BaseException]) -> None:
    """Write every chunk of a StreamReader to `out` as it arrives. If our own
    output is closed (`| head`), keep draining so the process is never blocked."""
    try:
        for chunk in chunks:
            try:
                out.write(chunk)
                out.flush()
            except BrokenPipeError:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, out.fileno())
                os.close(devnull)
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


def _start(target: Callable, *args) -> threading.Thread:
    """A daemon thread: after Ctrl-C we exit even if the sandboxed process still runs."""
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def _forward_stdin(writer) -> None:
    """Copy our stdin to the process's until EOF, then close it."""
    try:
        fd = sys.stdin.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            writer.write(data)
            writer.drain()
        writer.write_eof()
        writer.drain()
    except (Error, OSError, ValueError):
        pass  # the process is gone or closed its stdin: nothing left to forward to


def _stdin_is_tty() -> bool:
    try:
        return sys.stdin is not None and os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):
        return False


def _stream_process(process, forward_stdin: Optional[bool] = None) -> int:
    """Stream a bytes-mode process's stdout and stderr to ours, feed it our stdin
    (by default unless that is a terminal: then it gets EOF), and return its exit status."""
    if forward_stdin is None:
        forward_stdin = sys.stdin is not None and not _stdin_is_tty()
    errors: List[BaseException] = []
    pumps = [_start(_pump, process.stdout, sys.stdout.buffer, errors),
             _start(_pump, process.stderr, sys.stderr.buffer, errors)]
    if forward_stdin:
        _start(_forward_stdin, process.stdin)
    else:
        process.stdin.write_eof()
        process.stdin.drain()
    code = process.wait()
    for thread in pumps:
        thread.join()
    if errors:
        raise errors[0]
    return EXIT_EXEC_TIMEOUT if code == EXEC_TIMEOUT_RETURNCODE else code


def _env(pairs: Optional[Sequence[str]]) -> Dict[str, str]:
    env = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"-e expects KEY=VALUE, got {pair!r}")
        env[key] = value
    return env


def _command(words: Sequence[str]) -> List[str]:
    if not words:
        raise UsageError("no command given: put it after `--`, e.g. `-- ls -l`")
    return words


# ls ------------------------------------------------------------------------


def _age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _row(sandbox_id: str, record) -> dict:
    """One sandbox as ls shows it; a record that cannot be read becomes a `corrupt:` row."""
    if isinstance(record, Exception):
        error = record
    else:
        try:
            state, code = records.sandbox_state(record)
        except Error as exc:  # a corrupt exit record
            error = exc
        else:
            return {
                "id": sandbox_id, "app_id": record.app_id, "app_name": record.app_name, "name": record.name,
                "tags": dict(record.tags), "state": state, "returncode": code,
                "created_at": record.created_at, "image": record.image_id,
                **attrs.asdict(limits.stats(paths.sandbox_dir(sandbox_id), lambda: records.finished(record))),
            }
    return {"id": sandbox_id, "app_id": None, "app_name": None, "name": None, "tags": {},
            "state": f"corrupt: {_one_line(error)}", "returncode": None, "created_at": None, "image": None}


def _state_text(row: dict) -> str:
    text = f"exited {row['returncode']}" if row["state"] == "exited" else row["state"]
    if row["state"] == "exited" and row["returncode"] == 137 and row.get("oom_kills"):
        text += " (out of memory)"
    return text


def _usage_cells(row: dict) -> List[str]:
    """CPU seconds, memory (current while running, else peak), processes, OOM kills."""
    memory = row["memory_current"] if row["state"] == "running" else row["memory_peak"]
    return ["-" if row["cpu_seconds"] is None else f"{row['cpu_seconds']:.1f}s",
            "-" if memory is None else f"{memory / (1 << 20):.0f}M",
            "-" if row["pids"] is None else str(row["pids"]),
            "-" if row["oom_kills"] is None else str(row["oom_kills"])]


def cmd_ls(args) -> int:
    rows, skipped = [], 0
    for sandbox_id, record in records.iter_records():
        if isinstance(record, NotFoundError):
            continue  # no record yet: a create in progress (or a directory gc is removing)
        if args.app is not None and not isinstance(record, Exception) \
                and args.app not in (record.app_name, record.app_id):
            continue
        row = _row(sandbox_id, record)
        if args.all or row["state"] == "running":
            rows.append(row)
        else:
            skipped += row["state"].startswith("corrupt")
    if skipped:
        print(f"pysandbox ls: skipped {skipped} sandbox(es) whose record cannot be read "
              "(`pysandbox ls --all` shows why; `pysandbox gc` removes them once they have ended)", file=sys.stderr)
    rows.sort(key=lambda r: -(r["created_at"] or 0))  # newest first; corrupt rows last
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    now = time.time()
    table = [["ID", "APP", "NAME", "TAGS", "STATE", "AGE", "IMAGE", "CPU", "MEM", "PIDS", "OOM"]]
    for r in rows:
        cells = [r["id"], r["app_name"] or r["app_id"] or "-", r["name"] or "-",
                 ",".join(f"{k}={v}" for k, v in sorted(r["tags"].items())) or "-", _state_text(r)]
        if r["created_at"] is not None:
            cells += [_age(now - r["created_at"]), r["image"] or "-", *_usage_cells(r)]
        table.append(cells)
    # A corrupt row ends with its (long) message: it does not widen the columns.
    columns = len(table[0])
    widths = [max(len(line[i]) for line in table if len(line) == columns) for i in range(columns)]
    for line in table:
        print("  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip())
    return 0


# exec, run, shell ----------------------------------------------------------


def cmd_exec(args) -> int:
    command = _command(args.command)
    sb = Sandbox.from_id(args.sandbox_id)
    process = sb.exec(*command, timeout=args.timeout, workdir=args.workdir, env=_env(args.env), text=False)
    return _stream_process(process)


def cmd_run(args) -> int:
    command = _command(args.command)
    env = _env(args.env)
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be a positive number of seconds, got {args.timeout:g}")
    image = None if args.image in (None, "host") else Image.from_id(args.image)
    app = App.lookup(args.app, create_if_missing=True)
    sb = Sandbox.create(app=app, image=image, timeout=args.timeout + RUN_GRACE)
    try:
        process = sb.exec(*command, timeout=args.timeout, workdir=args.workdir, env=env, text=False)
        return _stream_process(process)
    finally:
        sb.terminate(wait=True)


def cmd_modal_run(args) -> int:
    """Replace this process with the command, its Python children seeing pysandbox as `modal`:
    the bootstrap directory's sitecustomize (first on PYTHONPATH) calls install_as_modal()."""
    command = _command(args.command)
    env = dict(os.environ, **{_modal_alias.ENV_FLAG: "1"})
    env["PYTHONPATH"] = os.pathsep.join(p for p in (BOOTSTRAP_DIR, env.get("PYTHONPATH")) if p)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        raise UsageError(f"cannot run {command[0]!r}: {exc.strerror}") from None


def cmd_shell(args) -> int:
    command = shlex.split(args.cmd)
    if not command:
        raise UsageError("--cmd is empty")
    sb = Sandbox.from_id(args.sandbox_id)
    process = sb.exec(*command, pty=True, text=False)
    resize = getattr(process, "_resize", None)  # window size changes, if the API offers them
    if not _stdin_is_tty():
        return _stream_process(process)
    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    previous_winch = None
    if resize is not None:
        def on_winch(*_):  # the library call runs outside the signal handler
            _start(_resize, resize, fd)
        previous_winch = signal.signal(signal.SIGWINCH, on_winch)
        _resize(resize, fd)
    tty.setraw(fd, termios.TCSANOW)  # TCSANOW: keep what was typed ahead
    try:
        return _stream_process(process, forward_stdin=True)
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)
        if previous_winch is not None:
            signal.signal(signal.SIGWINCH, previous_winch)


def _resize(resize, fd: int) -> None:
    try:
        rows, cols = struct.unpack("hh", fcntl.ioctl(fd, termios.TIOCGWINSZ, b"\0" * 4))
        if rows > 0 and cols > 0:
            resize(rows, cols)
    except (Error, OSError):
        pass  # a resize that fails leaves the old size: not worth ending the session


# logs, terminate, gc -------------------------------------------------------


def cmd_logs(args) -> int:
    sb = Sandbox.from_id(args.sandbox_id)
    if args.follow:
        errors: List[BaseException] = []
        pumps = [_start(_pump, sb.stdout, sys.stdout, errors), _start(_pump, sb.stderr, sys.stderr, errors)]
        for thread in pumps:
            thread.join()
        if errors and isinstance(errors[0], UnicodeDecodeError):
            raise Error("the output is not UTF-8 text, which -f cannot follow; run `logs` without -f")
        if errors:
            raise errors[0]
        return 0
    sandbox = paths.SandboxDir.of(sb.object_id)
    for path, out in ((sandbox.stdout, sys.stdout), (sandbox.stderr, sys.stderr)):
        out.flush()
        try:
            with open(path, "rb") as f:
                offset = 0
                while True:
                    offset, chunk = read_kept(f.fileno(), offset, 1 << 20)
                    if not chunk:
                        break
                    out.buffer.write(chunk)
                    offset += len(chunk)
        except FileNotFoundError:
            pass  # it never wrote anything, or gc removed it
        out.buffer.flush()
    return 0


def cmd_terminate(args) -> int:
    if args.target.startswith("sb-"):
        sb = Sandbox.from_id(args.target)
    elif args.app is None:
        raise UsageError(f"{args.target!r} is not a sandbox id, so it is taken as a sandbox name: "
                         "pass --app APP to say which app it belongs to")
    else:
        sb = Sandbox.from_name(args.app, args.target)
    code = sb.terminate(wait=args.wait)
    print(f"{sb.object_id} {code}" if args.wait else sb.object_id)
    return 0


def cmd_gc(args) -> int:
    found = garbage.collect()
    print(f"removed {len(found.sandboxes)} sandbox(es)")
    for count, what in ((found.claims, "name claim(s) of sandboxes that no longer run"),
                        (found.leftovers, "leftover(s) of interrupted writes"),
                        (found.layers, "unfinished image layer(s)")):
        if count:
            print(f"removed {count} {what}")
    if args.verbose:
        for sandbox_id in found.sandboxes:
            print(f"  {sandbox_id}")
    for line in found.notes + found.problems:
        print(f"pysandbox gc: {line}", file=sys.stderr)
    return 1 if found.problems else 0


def cmd_doctor(args) -> int:
    findings = doctor.run()
    print(doctor.report(findings))
    return 0 if doctor.healthy(findings) else 1


def cmd_secret_create(args) -> int:
    Secret.objects.create(args.name, _env(args.pairs), allow_existing=args.force)
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
        print(f"{entry.size:>12}  {entry.path}{suffix}")
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
        if os.path.isdir(args.local):
            batch.put_directory(args.local, args.remote)
        else:
            batch.put_file(args.local, args.remote)
    return 0


def cmd_volume_get(args) -> int:
    with replacing_path(os.path.abspath(args.local)) as fd, open(fd, "wb", closefd=False) as out:
        for chunk in Volume.from_name(args.name).read_file(args.remote):  # a failed or killed copy leaves no file
            out.write(chunk)
    return 0


# The parser and main -------------------------------------------------------


def _exec_options(parser: argparse.ArgumentParser, timeout_help: str, timeout_default=None) -> None:
    parser.add_argument("--timeout", type=float, default=timeout_default, metavar="SECONDS", help=timeout_help)
    parser.add_argument("--workdir", metavar="DIR", help="working directory of the command")
    parser.add_argument("-e", "--env", action="append", metavar="KEY=VALUE", help="set a variable (repeatable)")
    parser.add_argument("command", nargs="*", metavar="CMD", help="the command and its arguments, after `--`")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run and manage local pysandbox sandboxes.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = sub.add_parser("ls", help="list sandboxes (running ones unless --all)",
                       description="List sandboxes, newest first.")
    p.add_argument("--all", "-a", action="store_true", help="also show finished (and unreadable) sandboxes")
    p.add_argument("--app", metavar="NAME", help="only the sandboxes of this app (name or ap- id)")
    p.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    p.set_defaults(func=cmd_ls)

    p = sub.add_parser("exec", help="run a command in a sandbox",
                       usage=f"{PROG} exec [options] ID -- CMD [ARG ...]", description=(
        "Run a command in a running sandbox, streaming its output; exit with its status (124 on --timeout). "
        "Example: pysandbox exec sb-... -- ls -l /"))
    p.add_argument("sandbox_id", metavar="ID")
    _exec_options(p, "stop the command after SECONDS (exit status 124)")
    p.set_defaults(func=cmd_exec)

    p = sub.add_parser("run", help="run a command in a new sandbox, then end it",
                       usage=f"{PROG} run [options] -- CMD [ARG ...]", description=(
        "Create a sandbox, run a command in it streaming its output, terminate it; exit with the command's status. "
        "Example: pysandbox run -- python3 -c 'print(1)'"))
    p.add_argument("--app", default=DEFAULT_RUN_APP, help=f"app to create the sandbox in (default {DEFAULT_RUN_APP})")
    p.add_argument("--image", metavar="IMAGE_ID",
                   help="an image id (im-..., see `pysandbox image ls`); default: the host image")
    _exec_options(p, f"stop the command after SECONDS (default {DEFAULT_RUN_TIMEOUT}; exit status 124)",
                  DEFAULT_RUN_TIMEOUT)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("modal-run", help="run a Python program written for Modal, `import modal` giving pysandbox",
                       usage=f"{PROG} modal-run -- CMD [ARG ...]", description=(
        "Run a command (on this host, not in a sandbox) whose Python processes resolve `import modal` and "
        "`modal.<x>` to pysandbox; exit with its status. Example: pysandbox modal-run -- python app.py"))
    p.add_argument("command", nargs="*", metavar="CMD", help="the command and its arguments, after `--`")
    p.set_defaults(func=cmd_modal_run)

    p = sub.add_parser("shell", help="interactive shell in a sandbox", description=(
        "Open an interactive terminal session (a pty) in a running sandbox."))
    p.add_argument("sandbox_id", metavar="ID")
    p.add_argument("--cmd", default="bash", help="the program to run (default bash)")
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("logs", help="print a sandbox's entrypoint output", description=(
        "Print the entrypoint's stdout (to stdout) and stderr (to stderr) so far."))
    p.add_argument("sandbox_id", metavar="ID")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the sandbox finishes")
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("terminate", help="end a sandbox", description=(
        "End a sandbox given its id, or its name and --app. Prints the id (and, with --wait, the return code)."))
    p.add_argument("target", metavar="ID|NAME")
    p.add_argument("--app", help="the app of a sandbox given by name")
    p.add_argument("--wait", action="store_true", help="wait until it is gone and print its return code")
    p.set_defaults(func=cmd_terminate)

    p = sub.add_parser("gc", help="remove the state of finished sandboxes and other litter", description=(
        "Remove the directories of finished sandboxes (at once; the automatic collection keeps them "
        "$PYSANDBOX_FINISHED_RETENTION seconds), of abandoned creates and of sandboxes with a corrupt record "
        "once they have ended, name claims of sandboxes that no longer run, and what interrupted writes and "
        "image builds left. Reports corrupt state on stderr; exits 1 if something could not be removed."))
    p.add_argument("-v", "--verbose", action="store_true", help="list the ids of the sandboxes removed")
    p.set_defaults(func=cmd_gc)

    p = sub.add_parser("doctor", help="check what this host supports", description=(
        "Check the runners, user namespaces, seccomp, cgroups, network helpers and image tools "
        "this host has, what each missing piece disables, and start one sandbox."))
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("secret", help="manage named secrets", description="Named secrets (Secret.from_name).")
    secrets = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = secrets.add_parser("create", help="create a secret from KEY=VALUE pairs")
    q.add_argument("name")
    q.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    q.add_argument("--force", action="store_true", help="replace an existing secret")
    q.set_defaults(func=cmd_secret_create)
    q = secrets.add_parser("ls", help="list secrets and their key names")
    q.set_defaults(func=cmd_secret_ls)
    q = secrets.add_parser("rm", help="delete a secret")
    q.add_argument("name")
    q.set_defaults(func=cmd_secret_rm)

    p = sub.add_parser("volume", help="manage volumes", description="Volumes (Volume.from_name).")
    volumes = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = volumes.add_parser("ls", help="list volumes, or the files of one")
    q.add_argument("name", nargs="?")
    q.add_argument("path", nargs="?", default="/")
    q.add_argument("-r", "--recursive", action="store_true")
    q.set_defaults(func=cmd_volume_ls)
    q = volumes.add_parser("create", help="create a volume")
    q.add_argument("name")
    q.set_defaults(func=cmd_volume_create)
    q = volumes.add_parser("rm", help="delete a volume and its data")
    q.add_argument("name")
    q.set_defaults(func=cmd_volume_rm)
    q = volumes.add_parser("put", help="upload a local file or directory")
    q.add_argument("name")
    q.add_argument("local")
    q.add_argument("remote")
    q.add_argument("--force", action="store_true", help="overwrite existing files")
    q.set_defaults(func=cmd_volume_put)
    q = volumes.add_parser("get", help="download a file")
    q.add_argument("name")
    q.add_argument("remote")
    q.add_argument("local")
    q.set_defaults(func=cmd_volume_get)

    image_cli.add_parser(sub)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
    return text or type(exc).__name__


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Everything after the first `--` is the command of exec/run, options included."""
    argv, tail = list(argv), None
    if "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args = parser.parse_args(argv)
    if tail is not None:
        if not hasattr(args, "command"):
            parser.error(f"`{args.subcommand}` takes no command after `--`")
        args.command = [*args.command, *tail]
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # our reader went away (`pysandbox ls | head -1`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (Error, UsageError, OSError) as exc:
        sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
        return 2 if isinstance(exc, UsageError) else 1


if __name__ == "__main__":
    sys.exit(main())
