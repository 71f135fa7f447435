"""_core/initclient.py and _core/fserrors.py: init's replies read, its errors translated once,
and the public modules left speaking no wire format (the requests themselves run in
tests/sandbox: test_exec, test_file_io, test_filesystem, test_watch)."""

import ast
import errno
import os
from pathlib import Path

import pytest

import pysandbox
from pysandbox import _aio, agent
from pysandbox._core import initclient
from pysandbox._core.fserrors import filesystem_error, os_error
from pysandbox._core.initclient import InitClient, parse_watches
from pysandbox.exception import (
    ConflictError,
    NotFoundError,
    ResourceExhaustedError,
    SandboxFilesystemDirectoryNotEmptyError,
    SandboxFilesystemError,
    SandboxFilesystemNotFoundError,
    SandboxFilesystemPermissionError,
)

PACKAGE = Path(pysandbox.__file__).parent
API = ("sandbox.py", "filesystem.py", "watch.py", "file_io.py")


@pytest.mark.parametrize("name", API)
def test_the_api_speaks_no_wire_format(name):
    """No API module imports agent.py or reaches into a Sandbox's private attributes from outside it."""
    tree = ast.parse((PACKAGE / name).read_text())
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "agent" not in imported and not any(module.endswith(".agent") for module in imported)
    if name != "sandbox.py":
        reached = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                   and isinstance(node.value, ast.Name) and node.value.id in ("sb", "sandbox")}
        reached |= {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)
                    and isinstance(node.value, ast.Attribute) and node.value.attr in ("sandbox", "_sandbox")}
        assert {attr for attr in reached if attr.startswith("_")} == set()


def _reply(kind, body=b"", fds=()):
    return agent.Reply(kind, body, list(fds))


def _client(monkeypatch, reply=None, error=None):
    """An InitClient whose init answers every request with `reply` (or raises `error`)."""
    sent = []

    async def call(socket_path, kind, body=b"", fds=()):
        sent.append((kind, body))
        if error is not None:
            raise error
        return reply

    monkeypatch.setattr(agent, "call", call)
    return InitClient(Path("/nonexistent/agent.sock"), "sb-" + "a" * 22), sent


def test_list_reads_typed_entries(monkeypatch):
    body = bytes([agent.DT_DIR]) + b"sub\0" + bytes([8]) + b"file\0"
    client, sent = _client(monkeypatch, _reply(agent.REP_OK, body))
    assert _aio.run_sync(client.list_dir("/d")) == [("sub", True), ("file", False)]
    assert sent == [(agent.REQ_FSOP, agent.FSOP.pack(agent.FSOP_LIST, 0) + b"/d\0")]


def test_stat_reads_a_symlink_target(monkeypatch):
    body = agent.STAT.pack(0o120777, 1, 2, 0, 5, 7) + b"/target\0"
    client, _ = _client(monkeypatch, _reply(agent.REP_OK, body))
    assert _aio.run_sync(client.stat("/l")) == initclient.Stat(0o120777, 1, 2, 5, 7, "/target")


def test_a_short_stat_reply_is_an_oserror(monkeypatch):
    client, _ = _client(monkeypatch, _reply(agent.REP_OK, b"\0" * 8))
    with pytest.raises(OSError, match="malformed stat reply") as raised:
        _aio.run_sync(client.stat("/x"))
    assert raised.value.errno == errno.EPROTO
    assert isinstance(filesystem_error(raised.value), SandboxFilesystemError)


def test_a_watch_reply_without_its_descriptor_is_an_oserror(monkeypatch):
    client, _ = _client(monkeypatch, _reply(agent.REP_OK))
    with pytest.raises(OSError, match="no file for a watch request"):
        _aio.run_sync(client.watch("/x", recursive=False))


def test_a_malformed_watch_reply_closes_its_descriptor(monkeypatch):
    read_end, write_end = os.pipe()
    os.close(write_end)
    body = agent.WATCH_ENTRY.pack(1) + b"no end"
    client, sent = _client(monkeypatch, _reply(agent.REP_FD, body, [read_end]))
    with pytest.raises(OSError, match="a path without its end"):
        _aio.run_sync(client.watch("/x", recursive=True))
    with pytest.raises(OSError):
        os.fstat(read_end)
    assert sent[0][1][:agent.FSOP.size] == agent.FSOP.pack(agent.FSOP_WATCH, agent.WATCH_RECURSIVE)


def test_parse_watches_joins_paths():
    body = agent.WATCH_ENTRY.pack(1) + b"\0" + agent.WATCH_ENTRY.pack(2) + b"a/b\0"
    assert parse_watches(body, "/w") == {1: "/w", 2: "/w/a/b"}


def test_an_errno_from_init_is_modal_15s_oserror(monkeypatch):
    client, _ = _client(monkeypatch, error=agent.AgentError(errno.ENOENT, "no"))
    with pytest.raises(FileNotFoundError) as raised:
        _aio.run_sync(client.make_dirs("/a/b", parents=False))
    assert raised.value.filename == "/a/b"


def test_init_gone_is_the_sandboxs_end(monkeypatch):
    client, _ = _client(monkeypatch, error=agent.AgentGone("closed"))
    with pytest.raises(ConflictError, match="already finished"):
        _aio.run_sync(client.remove("/a", recursive=False))
    assert _aio.run_sync(client.close_entry_stdin()) is None  # nothing left to close


def test_a_bad_path_is_refused_before_any_request(monkeypatch):
    client, sent = _client(monkeypatch, _reply(agent.REP_OK))
    for path in ("", "a\0b", None):
        with pytest.raises(ValueError, match="Invalid path"):
            _aio.run_sync(client.list_dir(path))
    assert sent == []


@pytest.mark.parametrize("err, modal_15, modal_16", [
    (errno.ENOENT, FileNotFoundError, SandboxFilesystemNotFoundError),
    (errno.EACCES, PermissionError, SandboxFilesystemPermissionError),
    (errno.EROFS, OSError, SandboxFilesystemPermissionError),
    (errno.ENOTEMPTY, OSError, SandboxFilesystemDirectoryNotEmptyError),
    (errno.ENOMEM, MemoryError, SandboxFilesystemError),
    (errno.ENOSPC, OSError, SandboxFilesystemError),
])
def test_one_table_for_both_apis(err, modal_15, modal_16):
    error = os_error(err, "/p")
    assert type(error) is modal_15 and error.args[:2] == (err, os.strerror(err))
    if isinstance(error, OSError):
        from_init = filesystem_error(error)
        assert type(from_init) is modal_16 and str(from_init) == str(error)
        from_io = filesystem_error(OSError(err, os.strerror(err)), "/p")
        assert type(from_io) is modal_16 and str(from_io) == f"/p: {os.strerror(err)}"


def test_a_finished_sandbox_is_not_found_for_modal_16():
    error = filesystem_error(ConflictError("Sandbox sb-x already finished"))
    assert isinstance(error, NotFoundError) and "unavailable" in str(error)


def test_descriptors_the_kernel_will_not_pass_are_a_resource_error_that_says_why(monkeypatch):
    """ETOOMANYREFS: this user's processes hold more descriptors in flight than our soft RLIMIT_NOFILE
    (rootless, a sandbox of ours can: tests/security/test_61_red13b_*). Not a bare OSError."""
    def refused(*args):
        raise OSError(errno.ETOOMANYREFS, os.strerror(errno.ETOOMANYREFS))
    monkeypatch.setattr(agent.socket, "send_fds", refused)
    ours, theirs = agent.socket.socketpair(agent.socket.AF_UNIX, agent.socket.SOCK_SEQPACKET)
    with ours, theirs, pytest.raises(ResourceExhaustedError, match=r"ETOOMANYREFS.*soft RLIMIT_NOFILE \(\d+\).*ulimit -n"):
        agent.send(ours, b"request", [0])
