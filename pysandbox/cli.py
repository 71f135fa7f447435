"""The `pysandbox` command: run commands in local sandboxes, list, inspect and end them.

The parser and main live here; the subcommands in pysandbox/_cli/, one module per group.
Every subcommand is one small function taking the parsed arguments and returning the exit
status. Exit statuses (docs/CLI.md), as docker's:

    run, exec, shell   the command's own status; 124 when --timeout stopped it; 125 when
                       pysandbox itself failed (a bad command line included), 126 when the
                       command cannot be invoked, 127 when it is not found
    other commands     0, or 1 on an error (2 for a command line that cannot work)
    any command        130, 143, 129 after SIGINT, SIGTERM, SIGHUP (what `run` made is ended first)

Errors become one line on stderr, `pysandbox: error: ...`, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Optional, Sequence

from . import doctor, garbage
from ._cli import completion, run, sandboxes, storage
from ._cli.common import PROG, Stopped, UsageError, one_line
from ._version import __version__
from .exception import Error
from .image import cli as image_cli
from .runtime import spare

EXIT_PYSANDBOX_FAILED = 125  # of the commands that pass a command's status through


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line too, pointing at --help instead of printing the usage; with the
    status of the subcommand (125 for those passing a command's status through)."""

    def __init__(self, *args, error_status: int = 2, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.error_status = error_status

    def error(self, message: str):
        self.exit(self.error_status, f"{PROG}: error: {message} (see `{self.prog} --help`)\n")


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



def cmd_completion(args) -> int:
    sys.stdout.write(completion.script(build_parser()))
    return 0


# The parser and main -------------------------------------------------------

# run, exec, shell: docker's 125 for our own errors (given to their parser, and kept in the parsed arguments)
PASSES_STATUS = {"error_status": EXIT_PYSANDBOX_FAILED}


def _exec_options(parser: argparse.ArgumentParser, timeout_help: str, timeout_default=None) -> None:
    parser.add_argument("--timeout", type=float, default=timeout_default, metavar="SECONDS", help=timeout_help)
    parser.add_argument("--workdir", metavar="DIR", help="working directory of the command")
    parser.add_argument("-e", "--env", action="append", metavar="KEY=VALUE", help="set a variable (repeatable)")
    parser.add_argument("command", nargs="*", metavar="CMD", help="the command and its arguments, after `--`")


def _target(parser: argparse.ArgumentParser) -> None:
    """ID|NAME: a sandbox id, or the name of a running sandbox of --app."""
    parser.add_argument("target", metavar="ID|NAME", help="a sandbox id (sb-...), or a sandbox name with --app")
    parser.add_argument("--app", help="the app of a sandbox given by name")


def _run_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-d", "--detach", action="store_true", help="print the sandbox's id and leave it running")
    parser.add_argument("--app", default=run.DEFAULT_RUN_APP,
                        help=f"app to create the sandbox in (default {run.DEFAULT_RUN_APP})")
    parser.add_argument("--name", help="name the sandbox (unique among the app's running sandboxes)")
    parser.add_argument("--image", metavar="IMAGE", help=(
        "an image id (im-..., see `pysandbox image ls`), a registry reference (python:3.12-slim), or a "
        "Dockerfile or a directory holding one (its directory is the build context); default: the host image"))
    parser.add_argument("--cpu", metavar="CORES[,LIMIT]",
                        help="CPU cores reserved, and the most it may use (Modal's cpu= and its (request, limit))")
    parser.add_argument("--memory", metavar="MIB[,LIMIT]", help=(
        "memory reserved, and the most it may use (Modal's memory=, in MiB; with a unit: 512m, 2g); a sandbox "
        "over its limit is killed"))
    parser.add_argument("-v", "--volume", action="append", metavar="VOLUME:/PATH[:ro]",
                        help="mount a volume (see `pysandbox volume`), read-only with :ro (repeatable)")
    parser.add_argument("--secret", action="append", metavar="NAME",
                        help="a named secret's variables (see `pysandbox secret`; repeatable)")
    parser.add_argument("--block-network", action="store_true", help="no network at all")
    parser.add_argument("-p", "--port", type=int, action="append", metavar="PORT",
                        help="forward a sandbox port to 127.0.0.1 and print its tunnel URL on stderr (repeatable)")
    parser.add_argument("-i", "--interactive", action="store_true", help="forward stdin even when it is a terminal")
    parser.add_argument("-t", "--tty", action="store_true", help="run the command on a terminal (needs one on stdin)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Run and manage local pysandbox sandboxes.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND", required=True)

    p = sub.add_parser("ls", help="list sandboxes (running ones unless --all)",
                       description="List sandboxes, newest first.")
    p.add_argument("--all", "-a", action="store_true", help="also show finished (and unreadable) sandboxes")
    p.add_argument("--app", metavar="NAME", help="only the sandboxes of this app (name or ap- id)")
    p.add_argument("--name", help="only the sandboxes of this name")
    p.add_argument("--tag", action="append", metavar="KEY=VALUE", help="only the sandboxes with this tag (repeatable)")
    p.add_argument("--format", default="table", metavar="FORMAT",
                   help="table (default), json, or a template over the JSON fields, e.g. '{id} {state}'")
    p.add_argument("--json", action="store_true", help="the same as --format json")
    p.add_argument("-q", "--quiet", action="store_true", help="print the ids only (for `xargs pysandbox terminate`)")
    p.set_defaults(func=sandboxes.cmd_ls)

    p = sub.add_parser("exec", help="run a command in a sandbox", **PASSES_STATUS,
                       usage=f"{PROG} exec [options] ID|NAME -- CMD [ARG ...]", description=(
        "Run a command in a running sandbox, streaming its output; exit with its status (124 on --timeout). "
        "Example: pysandbox exec sb-... -- ls -l /"))
    _target(p)
    _exec_options(p, "stop the command after SECONDS (exit status 124)")
    p.set_defaults(func=run.cmd_exec, **PASSES_STATUS)

    p = sub.add_parser("run", help="run a command in a new sandbox, then end it", **PASSES_STATUS,
                       usage=f"{PROG} run [options] -- CMD [ARG ...]", description=(
        "Create a sandbox running the command (after the image's ENTRYPOINT; none given: the image's CMD) and "
        "stream its output; exit with its status. Ctrl-C, SIGTERM and SIGHUP end the sandbox. With -d, print "
        "the sandbox's id and leave it running (no command: it idles until its timeout). "
        "Example: pysandbox run --image python:3.12-slim -- python3 -c 'print(1)'"))
    _run_options(p)
    _exec_options(p, f"end the sandbox after SECONDS (default {run.DEFAULT_RUN_TIMEOUT}; exit status 124)",
                  run.DEFAULT_RUN_TIMEOUT)
    p.set_defaults(func=run.cmd_run, **PASSES_STATUS)

    p = sub.add_parser("modal-run", help="run a Python program written for Modal, `import modal` giving pysandbox",
                       usage=f"{PROG} modal-run -- CMD [ARG ...]", description=(
        "Run a command (on this host, not in a sandbox) whose Python processes resolve `import modal` and "
        "`modal.<x>` to pysandbox; exit with its status. Example: pysandbox modal-run -- python app.py"))
    p.add_argument("command", nargs="*", metavar="CMD", help="the command and its arguments, after `--`")
    p.set_defaults(func=run.cmd_modal_run)

    p = sub.add_parser("shell", help="interactive shell in a sandbox", **PASSES_STATUS, description=(
        "Open an interactive terminal session (a pty) in a running sandbox. If stdin is not a terminal, "
        "the program reads it as a pipe and ends at its end (`pysandbox shell ID < script.sh`)."))
    _target(p)
    p.add_argument("--cmd", default="bash", help="the program to run (default bash)")
    p.set_defaults(func=run.cmd_shell, **PASSES_STATUS)

    p = sub.add_parser("logs", help="print a sandbox's entrypoint output", description=(
        "Print the entrypoint's stdout (to stdout) and stderr (to stderr). The state directory keeps the two "
        "apart, so their order across each other is not known: with -f each is printed as it is written. "
        "On a terminal, control characters are shown escaped (\\x1b) unless --raw. A failed sandbox's "
        "supervisor log follows on stderr, escaped."))
    _target(p)
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the sandbox finishes")
    p.add_argument("-n", "--tail", type=int, metavar="N", help="only the last N lines of each stream")
    p.add_argument("-t", "--timestamps", action="store_true",
                   help="with -f, prefix each line with the time it was read (UTC)")
    p.add_argument("--raw", action="store_true", help="write the output byte for byte, even to a terminal")
    p.add_argument("--supervisor-log", action="store_true", help="show the supervisor log of any sandbox")
    p.set_defaults(func=sandboxes.cmd_logs)

    p = sub.add_parser("terminate", help="end a sandbox", description=(
        "End sandboxes given their ids, or their names and --app. Prints each id (and, with --wait, its return "
        "code); exits 1 if one could not be ended, after ending the others."))
    p.add_argument("targets", nargs="+", metavar="ID|NAME", help="sandbox ids (sb-...), or sandbox names with --app")
    p.add_argument("--app", help="the app of sandboxes given by name")
    p.add_argument("--wait", action="store_true", help="wait until it is gone and print its return code")
    p.set_defaults(func=sandboxes.cmd_terminate)

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
    q.set_defaults(func=storage.cmd_secret_create)
    q = secrets.add_parser("ls", help="list secrets and their key names")
    q.set_defaults(func=storage.cmd_secret_ls)
    q = secrets.add_parser("rm", help="delete a secret")
    q.add_argument("name")
    q.set_defaults(func=storage.cmd_secret_rm)

    p = sub.add_parser("volume", help="manage volumes", description="Volumes (Volume.from_name).")
    volumes = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    q = volumes.add_parser("ls", help="list volumes, or the files of one")
    q.add_argument("name", nargs="?", help="a volume: list its files (none: list the volumes)")
    q.add_argument("path", nargs="?", default="/", help="a directory in the volume (default /)")
    q.add_argument("-r", "--recursive", action="store_true", help="the files of subdirectories too")
    q.set_defaults(func=storage.cmd_volume_ls)
    q = volumes.add_parser("create", help="create a volume")
    q.add_argument("name")
    q.set_defaults(func=storage.cmd_volume_create)
    q = volumes.add_parser("rm", help="delete a volume and its data")
    q.add_argument("name")
    q.set_defaults(func=storage.cmd_volume_rm)
    q = volumes.add_parser("put", help="upload a local file or directory")
    q.add_argument("name")
    q.add_argument("local", help="a local file or directory, or - for stdin")
    q.add_argument("remote", help="its path in the volume")
    q.add_argument("--force", action="store_true", help="overwrite existing files")
    q.set_defaults(func=storage.cmd_volume_put)
    q = volumes.add_parser("get", help="download a file")
    q.add_argument("name")
    q.add_argument("remote", help="a file's path in the volume")
    q.add_argument("local", help="the local file to write, or - for stdout")
    q.set_defaults(func=storage.cmd_volume_get)

    p = sub.add_parser("completion", help="print a shell completion script", description=(
        "Print a completion script: `pysandbox completion bash > "
        "~/.local/share/bash-completion/completions/pysandbox`, or `source <(pysandbox completion bash)`."))
    p.add_argument("shell", choices=completion.SHELLS)
    p.set_defaults(func=cmd_completion)

    image_cli.add_parser(sub)
    return parser


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Everything after the first `--` is the command of exec/run, options included."""
    argv, tail = list(argv), None
    if "--" in argv:
        cut = argv.index("--")
        argv, tail = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    parser.error_status = _error_status(args, 2)  # an error below is the subcommand's
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if tail is not None:
        if not hasattr(args, "command"):
            parser.error(f"`{args.subcommand}` takes no command after `--`")
        args.command = [*args.command, *tail]
    return args


def _error_status(args: argparse.Namespace, usage: int) -> int:
    """125 for the commands passing a command's status through (docker's), else `usage` (2) or 1."""
    return getattr(args, "error_status", usage)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with spare.one_shot():  # each command makes at most one sandbox: a spare would go unused
            return args.func(args)
    except KeyboardInterrupt:
        return 130
    except Stopped as stop:  # SIGINT, SIGTERM or SIGHUP, after what `run` made was ended
        return 128 + stop.signum
    except BrokenPipeError:  # our reader went away (`pysandbox ls | head -1`)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except (Error, UsageError, OSError) as exc:
        sys.stderr.write(f"{PROG}: error: {one_line(exc)}\n")
        return _error_status(args, 2 if isinstance(exc, UsageError) else 1)


if __name__ == "__main__":
    sys.exit(main())
