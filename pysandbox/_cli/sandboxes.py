"""`pysandbox ls`, `logs` and `terminate`: the sandboxes of the state directory."""

from __future__ import annotations

import datetime
import json
import os
import sys
import time
from typing import Dict, List, Optional

import attrs

from .. import bounds
from .._state import paths, records
from ..exception import Error, NotFoundError
from ..io_streams import FollowSource, StreamReader, read_kept
from ..resources import SandboxStats
from ..runtime import limits
from .common import PROG, UsageError, escape, one_line, parse_env, sandbox_of, silence, start

CHUNK = 1 << 16
LINE_MAX = 1 << 16  # a longer line is written in pieces of this size (each stamped with -t)
_STAMP_WIDTH = len("2026-01-01T00:00:00.000Z")


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
            "state": f"corrupt: {one_line(error)}", "returncode": None, "created_at": None, "image": None}


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


def _wanted(record, args, tags: Dict[str, str]) -> bool:
    """The filters: --app (name or id), --name, every --tag. A corrupt record matches none of them."""
    if args.app is None and args.name is None and not tags:
        return True
    if isinstance(record, Exception):
        return False
    return (args.app in (None, record.app_name, record.app_id) and args.name in (None, record.name)
            and tags.items() <= record.tags.items())


def _print_table(rows: List[dict]) -> None:
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


_FIELDS = ("id", "app_id", "app_name", "name", "tags", "state", "returncode", "created_at", "image",
           *(field.name for field in attrs.fields(SandboxStats)))


def _check_format(template: str) -> None:
    """--format TEMPLATE is a Python format string over the JSON fields: refused before listing if it
    names another (even when nothing is listed)."""
    try:
        template.format_map(dict.fromkeys(_FIELDS, ""))
    except (KeyError, IndexError, ValueError) as exc:
        raise UsageError(f"--format {template!r}: {one_line(exc)} is not a field "
                         f"(fields: {', '.join(_FIELDS)}; or table, json)") from None


def _print_format(rows: List[dict], template: str) -> None:
    for row in rows:
        print(template.format_map({**row, "tags": ",".join(f"{k}={v}" for k, v in sorted(row["tags"].items()))}))


def cmd_ls(args) -> int:
    tags = parse_env(args.tag, "--tag") if args.tag else {}
    fmt = "json" if args.json else args.format
    if fmt not in ("json", "table"):
        _check_format(fmt)
    rows, skipped = [], 0
    for sandbox_id, record in records.iter_records():
        if isinstance(record, NotFoundError) or not _wanted(record, args, tags):
            continue  # NotFoundError: no record yet, a create in progress (or a directory gc is removing)
        row = _row(sandbox_id, record)
        if args.all or row["state"] == "running":
            rows.append(row)
        else:
            skipped += row["state"].startswith("corrupt")
    if skipped:
        print(f"pysandbox ls: skipped {skipped} sandbox(es) whose record cannot be read "
              "(`pysandbox ls --all` shows why; `pysandbox gc` removes them once they have ended)", file=sys.stderr)
    rows.sort(key=lambda r: -(r["created_at"] or 0))  # newest first; corrupt rows last
    if args.quiet:
        _print_format(rows, "{id}")
    elif fmt == "json":
        print(json.dumps(rows, indent=2))
    elif fmt == "table":
        _print_table(rows)
    else:
        _print_format(rows, fmt)
    return 0


# logs ------------------------------------------------------------------------


class _Lines:
    """Writes what a stream produced to `out` line by line (so -t can stamp each and an escape
    sequence is never split), escaped when `out` is a terminal unless --raw."""

    def __init__(self, out, escaped: bool, stamp) -> None:
        self._out, self._escaped, self._stamp = out, escaped, stamp
        self._partial = b""
        self.stamp_now = False  # set once the backlog is written: later lines are stamped when read

    def feed(self, data: bytes) -> None:
        data = self._partial + data
        lines = data.split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._write(line + b"\n")
        while len(self._partial) >= LINE_MAX:
            self._write(self._partial[:LINE_MAX])
            self._partial = self._partial[LINE_MAX:]

    def finish(self) -> None:
        if self._partial:
            self._write(self._partial)
            self._partial = b""

    def _write(self, line: bytes) -> None:
        if self._escaped:
            line = escape(line.decode(errors="backslashreplace")).encode()
        if self._stamp is not None:
            line = self._stamp(self.stamp_now).encode() + b" " + line
        try:
            self._out.write(line)
            self._out.flush()
        except BrokenPipeError:
            silence(self._out)


def _stamp(now: bool) -> str:
    """The time a line was read (-f -t), or a placeholder for one written before `logs` started:
    the state directory keeps no time per line."""
    if not now:
        return "-".ljust(_STAMP_WIDTH)
    moment = datetime.datetime.now(datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def tail_offset(fd: int, lines: Optional[int]) -> int:
    """Where the last `lines` lines of an entrypoint output file start (all: None), within what is kept."""
    first, _ = read_kept(fd, 0, 0)
    end = os.fstat(fd).st_size
    if lines is None or end <= first:
        return first
    if lines == 0:
        return end
    limit = end - 1 if os.pread(fd, 1, end - 1) == b"\n" else end  # a final newline starts no line
    position, found = limit, 0
    while position > first:
        size = min(CHUNK, position - first)
        chunk = os.pread(fd, size, position - size)
        index = len(chunk)
        while found < lines:
            index = chunk.rfind(b"\n", 0, index)
            if index < 0:
                break
            found += 1
        if found == lines:
            return position - size + index + 1
        position -= size
    return first


def _copy_kept(fd: int, offset: int, lines: _Lines) -> int:
    """Write what the file holds from `offset` up to its size now; return where that ended."""
    end = os.fstat(fd).st_size
    while offset < end:
        offset, chunk = read_kept(fd, offset, min(CHUNK, end - offset))
        if not chunk:
            break
        lines.feed(chunk)
        offset += len(chunk)
    return offset


def _open_output(path) -> Optional[int]:
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None  # it never wrote anything, or gc removed it


def _show_stream(path, lines: _Lines, tail: Optional[int], follow, errors: List[BaseException]) -> None:
    """The kept output of one stream (its last `tail` lines), then with `follow` what it writes until
    the sandbox ends."""
    try:
        fd = _open_output(path)
        offset = 0
        if fd is not None:
            try:
                offset = _copy_kept(fd, tail_offset(fd, tail), lines)
            finally:
                os.close(fd)
        lines.stamp_now = True
        if follow is not None:
            for chunk in StreamReader(FollowSource(path, follow, offset), 1, text=False):
                lines.feed(chunk)
        lines.finish()
    except BaseException as exc:  # reported by the main thread
        errors.append(exc)


def supervisor_log(sandbox_id: str) -> str:
    """The end of a sandbox's supervisor.log, escaped: init inside the sandbox writes there too, so
    it is read bounded (PYSANDBOX_CLI_LOG_MAX) and shown without its control characters."""
    limit = bounds.get("cli_supervisor_log")
    try:
        fd = os.open(paths.SandboxDir.of(sandbox_id).log, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return ""
    try:
        size = os.fstat(fd).st_size
        data = os.pread(fd, limit, max(0, size - limit))
    finally:
        os.close(fd)
    text = escape(data.decode(errors="backslashreplace"))
    if size > limit:
        text = f"[the last {limit} bytes of {size}; {bounds.variable('cli_supervisor_log')} shows more]\n" + text
    return text


def cmd_logs(args) -> int:
    if args.timestamps and not args.follow:
        raise UsageError("--timestamps needs -f: the state directory keeps no time for each line, "
                         "so only the lines read while following get one")
    if args.tail is not None and args.tail < 0:
        raise UsageError(f"--tail expects a number of lines, got {args.tail}")
    sb = sandbox_of(args.target, args.app, include_terminated=True)  # as `docker logs` of a stopped one
    sandbox = paths.SandboxDir.of(sb.object_id)
    follow = (lambda: sb.returncode is not None) if args.follow else None
    errors: List[BaseException] = []
    threads = []
    for path, out in ((sandbox.stdout, sys.stdout.buffer), (sandbox.stderr, sys.stderr.buffer)):
        lines = _Lines(out, not args.raw and out.isatty(), _stamp if args.timestamps else None)
        threads.append(start(_show_stream, path, lines, args.tail, follow, errors))
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    state = records.sandbox_state(records.read_record(sb.object_id))[0]
    if args.supervisor_log or state == "failed":
        text = supervisor_log(sb.object_id)
        sys.stderr.write(f"pysandbox: supervisor log of {sb.object_id} ({state}):\n{text}")
        sys.stderr.write("" if text.endswith("\n") or not text else "\n")
    return 0


# terminate -------------------------------------------------------------------


def cmd_terminate(args) -> int:
    """Each sandbox named (`pysandbox ls -q | xargs pysandbox terminate`); one that fails is reported
    and the others are still ended."""
    status = 0
    for target in args.targets:
        try:
            sb = sandbox_of(target, args.app)
            code = sb.terminate(wait=args.wait)
        except Error as exc:
            print(f"{PROG}: error: {one_line(exc)}", file=sys.stderr)
            status = 1
            continue
        print(f"{sb.object_id} {code}" if args.wait else sb.object_id, flush=True)
    return status

