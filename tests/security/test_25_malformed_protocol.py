"""Item 25: malformed requests on a real sandbox's init socket (native/init/proto.c): wrong
magic, version and length fields, truncated frames, oversized datagrams, wrong fd counts,
string counts far past the body. Each gets an error reply (EPROTO or EINVAL, the
connection then closed), never a crash: pid 1 keeps serving stats and execs, and keeps
no fd of a refused request (hundreds of requests carrying fds, then it still execs)."""

import errno
import os
import socket
import struct
import time

import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pysandbox import _aio, agent
from pysandbox._state import paths

from ._inside import sh

pytestmark = pytest.mark.rootless

QUIET = 30  # seconds to wait for a reply init must send (a loaded machine can stall it for long)


def _socket_path(sb):
    return paths.sandbox_dir(sb.object_id) / "agent.sock"


def _exchange(sb, data, nfds=0, closing=True):
    """Send `data` as one datagram on a new connection, with `nfds` fds of /dev/null:
    (first reply or None, whether init then closed the connection: waited for if `closing`)."""
    fds = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) for _ in range(nfds)]
    with agent.connect(_socket_path(sb)) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * agent.MAX_MESSAGE)
        try:
            socket.send_fds(sock, [data], fds) if fds else sock.send(data)
        finally:
            for fd in fds:
                os.close(fd)
        replies = []
        try:
            replies.append(_aio.run_sync(agent.receive(sock, timeout=QUIET)))
            replies.append(_aio.run_sync(agent.receive(sock, timeout=QUIET if closing else 0.05)))
            closed = False
        except agent.AgentGone:
            closed = True
    for reply in replies:
        for fd in reply.fds if reply is not None else ():
            os.close(fd)
    return (replies[0] if replies else None), closed


def _init_fds(sb):
    """How many fds sandbox-init holds, seen from the host (None where /proc does not show it:
    init is not dumpable, so only root sees its fds)."""
    supervisor = psutil.Process(sb._record.supervisor.pid)
    for process in supervisor.children(recursive=True):
        try:
            name = process.name()
        except psutil.NoSuchProcess:
            continue  # one of the supervisor's short-lived helpers (the user namespaces' makers), gone meanwhile
        if name in ("init", "sandbox-init"):  # bwrap runs it as /__pysandbox/init
            try:
                return len(os.listdir(f"/proc/{process.pid}/fd"))
            except PermissionError:
                return None
    raise AssertionError("no sandbox-init under the supervisor")


def _error(reply):
    assert reply is not None and reply.kind == agent.REP_ERROR, reply and reply.kind
    with pytest.raises(agent.AgentError) as refused:
        reply.raise_for_error()
    return refused.value.errno, str(refused.value)


def _header(kind, body=b"", *, magic=agent.MAGIC, version=agent.VERSION, length=None):
    return agent.HEADER.pack(magic, version, kind, agent.HEADER.size + len(body) if length is None else length) + body


def _exec(argc, envc, strings=b"/\0true\0", flags=0):
    return _header(agent.REQ_EXEC, agent.EXEC.pack(flags, 0, argc, envc) + strings)


# A request with no side effect, to see that init still serves.
STAT_ROOT = agent.message(agent.REQ_FSOP, struct.pack("=II", agent.FSOP_STAT, 0) + b"/\0")


def _assert_serving(sb):
    """pid 1 is alive and serves: a stat, an exec, and the sandbox still runs."""
    _assert_stats(sb)
    assert sh(sb, "echo alive") == (0, "alive\n")


def _assert_stats(sb):
    reply, closed = _exchange(sb, STAT_ROOT, closing=False)
    assert reply is not None and reply.kind == agent.REP_OK and not closed
    assert sb.poll() is None


# (what, datagram, fds, errno, message)
FRAMING = [
    ("bad magic", _header(agent.REQ_ENTRY_STDIN, magic=0xDEADBEEF), 0, errno.EPROTO, "bad magic"),
    ("bad version", _header(agent.REQ_ENTRY_STDIN, version=99), 0, errno.EPROTO, "unsupported protocol version"),
    ("length over the datagram", _header(agent.REQ_ENTRY_STDIN, length=4096), 0, errno.EPROTO, "length does not match"),
    ("length under the datagram", _header(agent.REQ_ENTRY_STDIN, b"xx", length=12), 0, errno.EPROTO, "length does not"),
    ("length zero", _header(agent.REQ_ENTRY_STDIN, length=0), 0, errno.EPROTO, "length does not match"),
    ("length 2**32-1", _header(agent.REQ_ENTRY_STDIN, length=2**32 - 1), 0, errno.EPROTO, "length does not match"),
    ("truncated header", _header(agent.REQ_ENTRY_STDIN)[:7], 0, errno.EPROTO, "short message"),
    ("one byte", b"\x50", 0, errno.EPROTO, "short message"),
    ("longer than any request", _header(agent.REQ_ENTRY_STDIN, bytes(agent.MAX_MESSAGE)), 0, errno.EPROTO, "too long"),
    ("unknown type", _header(999), 0, errno.EPROTO, "unknown request type"),
    ("the retired signal type", _header(2, struct.pack("=I", 9)), 0, errno.EPROTO, "unknown request type"),
    ("the retired ping type", _header(5), 0, errno.EPROTO, "unknown request type"),
    ("entry stdin with a body", _header(agent.REQ_ENTRY_STDIN, b"x"), 0, errno.EPROTO, "unexpected body"),
    ("pidfd with a body", _header(agent.REQ_PIDFD, b"x"), 0, errno.EPROTO, "unexpected body"),
    ("exec body too short", _header(agent.REQ_EXEC, b"\x00" * 8), 3, errno.EPROTO, "exec body too short"),
    ("open without a NUL", _header(agent.REQ_OPEN, struct.pack("=II", 0, 0) + b"/etc/passwd"), 0,
     errno.EPROTO, "NUL-terminated path"),
    ("fsop without a path", _header(agent.REQ_FSOP, struct.pack("=II", agent.FSOP_LIST, 0)), 0,
     errno.EPROTO, "NUL-terminated path"),
    # fd counts
    ("exec with no fds", _exec(1, 0), 0, errno.EPROTO, "wrong number of file descriptors"),
    ("exec with 2 fds", _exec(1, 0), 2, errno.EPROTO, "wrong number of file descriptors"),
    ("exec with 4 fds", _exec(1, 0), 4, errno.EPROTO, "too many file descriptors"),
    ("exec with 16 fds", _exec(1, 0), 16, errno.EPROTO, "too many file descriptors"),
    ("entry stdin with 3 fds", agent.message(agent.REQ_ENTRY_STDIN), 3, errno.EPROTO, "wrong number of file descriptors"),
    ("pidfd with an fd", agent.message(agent.REQ_PIDFD), 1, errno.EPROTO, "wrong number of file descriptors"),
    # counts in the body
    ("argc 0", _exec(0, 0), 3, errno.EINVAL, "argc must be at least 1"),
    ("argc 2**32-1", _exec(2**32 - 1, 0), 3, errno.EINVAL, "more strings than bytes"),
    ("envc 2**32-1", _exec(1, 2**32 - 1), 3, errno.EINVAL, "more strings than bytes"),
    ("argc + envc overflowing 32 bits", _exec(2**31, 2**31), 3, errno.EINVAL, "more strings than bytes"),
    ("argc past the strings", _exec(3, 0, b"/\0a\0b\0c"), 3, errno.EINVAL, "unterminated string"),
    ("trailing bytes", _exec(1, 0, b"/\0true\0junk"), 3, errno.EINVAL, "trailing bytes"),
    ("unknown exec flags", _exec(1, 0, flags=0x80), 3, errno.EINVAL, "unknown exec flags"),
    ("file body too short", _header(agent.REQ_FILE, b"\x00" * 8), 0, errno.EPROTO, "file request body too short"),
]


@pytest.mark.gvisor
def test_each_malformed_request_gets_an_error_and_init_serves_on(sb):
    for what, data, nfds, code, message in FRAMING:
        reply, closed = _exchange(sb, data, nfds)
        assert _error(reply)[0] == code, what
        assert message in _error(reply)[1], what
        assert closed, f"{what}: init kept the connection of a malformed request"
    _assert_serving(sb)


@pytest.mark.gvisor
def test_semantic_errors_keep_the_connection(sb):
    """Well-framed requests init cannot honour: an error, and the connection stays usable."""
    for op, path, code in ((99, b"/", errno.EINVAL), (agent.FSOP_STAT, b"/no/such/path", errno.ENOENT)):
        with agent.connect(_socket_path(sb)) as sock:
            agent.send(sock, agent.message(agent.REQ_FSOP, struct.pack("=II", op, 0) + path + b"\0"))
            assert _error(_aio.run_sync(agent.receive(sock, timeout=QUIET)))[0] == code
            agent.send(sock, STAT_ROOT)
            assert _aio.run_sync(agent.receive(sock, timeout=QUIET)).kind == agent.REP_OK
    _assert_serving(sb)


@pytest.mark.gvisor
def test_a_terminal_init_makes_with_no_pipe_or_socket_to_relay(sb):
    """An exec that asks init for a terminal (agent.EXEC_FLAG_PTY, exec(pty=True)) with /dev/null for its pipes
    and its size socket: the size stays 24x80, the relay ends with the process, whose exit is reported. The
    retired flag bit 1 (a terminal of the host's, which the sandbox could not name), alone or with the
    terminal's, is refused as any unknown flag, before anything starts."""
    reply, closed = _exchange(sb, _exec(1, 0, flags=agent.EXEC_FLAG_PTY), 3, closing=False)
    assert reply.kind == agent.REP_STARTED and not closed
    for retired in (1, 1 | agent.EXEC_FLAG_PTY):
        reply, closed = _exchange(sb, _exec(1, 0, flags=retired), 3)
        assert _error(reply) == (errno.EINVAL, "unknown exec flags") and closed
    _assert_serving(sb)
    assert sh(sb, "ps -e -o comm= | grep -c init")[1] == "1\n"  # the relay went with its process


def _file(op, arg=0, whence=0, data=b""):
    return agent.message(agent.REQ_FILE, agent.FILE.pack(op, whence, arg) + data)


@pytest.mark.gvisor
def test_file_requests_init_cannot_honour_keep_the_connection(sb, runner):
    """FILE requests on a connection that holds no file (EBADF) and, under gVisor where OPEN holds
    one, with a read past a chunk, a write past a chunk, a bad whence or an unknown op (EINVAL):
    an error each, and the file still reads."""
    with agent.connect(_socket_path(sb)) as sock:
        agent.send(sock, _file(agent.FILE_READ, 1))
        assert _error(_aio.run_sync(agent.receive(sock, timeout=QUIET)))[0] == errno.EBADF
    if runner != "gvisor":
        return  # the other runners pass the descriptor: no connection holds a file
    sh(sb, "echo relayed > /tmp/f")
    with agent.connect(_socket_path(sb)) as sock:
        opened = _aio.run_sync(agent.request(sock, agent.REQ_OPEN, agent.OPEN.pack(os.O_RDWR, 0) + b"/tmp/f\0"))
        assert opened.kind == agent.REP_OK and not opened.fds
        for bad in (_file(agent.FILE_READ, agent.FILE_CHUNK + 1), _file(agent.FILE_READ, -1),
                    _file(agent.FILE_PEEK, 1, data=b"x"), _file(agent.FILE_WRITE, data=bytes(agent.FILE_CHUNK + 1)),
                    _file(agent.FILE_SEEK, 0, 7), _file(99)):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2 * agent.MAX_MESSAGE)
            agent.send(sock, bad)
            assert _error(_aio.run_sync(agent.receive(sock, timeout=QUIET)))[0] == errno.EINVAL
        agent.send(sock, agent.message(agent.REQ_OPEN, agent.OPEN.pack(os.O_RDONLY, 0) + b"/tmp/f\0"))
        assert _error(_aio.run_sync(agent.receive(sock, timeout=QUIET)))[0] == errno.EBUSY  # one file a connection
        assert _aio.run_sync(agent.request(sock, agent.REQ_FILE, agent.FILE.pack(agent.FILE_READ, 0, 64))).body == \
            b"relayed\n"
    _assert_serving(sb)


def test_refused_requests_leave_no_fd_in_init(sb):
    """400 refused requests carrying 3 or 4 fds each: init holds no more fds after them (seen
    from the host where /proc shows them; else init's limit of 1024 fds would have stopped it
    serving). A count can be off by the connection or two init has not yet seen closed; the
    fds of 400 refused requests would be 1400."""
    _assert_serving(sb)
    before = _init_fds(sb)
    for number in range(400):
        reply, closed = _exchange(sb, _exec(0, 0) if number % 2 else _exec(1, 0), 3 if number % 2 else 4)
        assert reply is not None and reply.kind == agent.REP_ERROR and closed
    _assert_serving(sb)
    after = _init_fds(sb)
    assert before is None or after <= before + 2


@pytest.mark.gvisor
def test_many_idle_connections_then_serving(sb):
    """Connections that never send: init holds them, serves others, and drops them at close."""
    idle = [agent.connect(_socket_path(sb)) for _ in range(200)]
    try:
        _assert_serving(sb)
    finally:
        for sock in idle:
            sock.close()
    _assert_serving(sb)


def _exec_on(sock, argv=("true",)):
    """Send an exec of `argv` on `sock` with fresh pipes (closed here): init's replies."""
    ends = [os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC) for _ in range(3)]
    try:
        agent.send(sock, agent.message(agent.REQ_EXEC, agent.exec_body(argv, [], "", 0)), ends)
    finally:
        for fd in ends:
            os.close(fd)
    return [_aio.run_sync(agent.receive(sock, timeout=QUIET)) for _ in range(2)]


@pytest.mark.gvisor
def test_exited_is_the_last_message_and_a_late_request_is_served(sb, runner):
    """init serves a request as it accepts its connection, or on a later poll if it came late
    (here 0.2 s after the connect); EXITED is the connection's last message: init closes it, so
    a second exec on it is never served, and its fds are not kept (counted where the host sees
    them: gVisor's init lives in the Sentry's process table)."""
    _assert_serving(sb)
    before = None if runner == "gvisor" else _init_fds(sb)
    for delay in [0.2] + [0] * 49:
        with agent.connect(_socket_path(sb)) as sock:
            time.sleep(delay)
            started, exited = _exec_on(sock)
            assert (started.kind, exited.kind) == (agent.REP_STARTED, agent.REP_EXITED)
            with pytest.raises(agent.AgentGone):
                _exec_on(sock, ("sh", "-c", "echo served > /tmp/second"))
    assert sh(sb, "test -e /tmp/second; echo $?") == (0, "1\n")
    assert before is None or _init_fds(sb) <= before + 2


_KINDS = st.sampled_from([0, agent.REQ_EXEC, 2, agent.REQ_ENTRY_STDIN, agent.REQ_OPEN, agent.REQ_FSOP, 5, 999,
                          2**16 - 1])
_MALFORMED = st.one_of(
    st.binary(min_size=1, max_size=64).filter(lambda b: b[:4] != struct.pack("=I", agent.MAGIC)),
    st.builds(lambda kind, body, length: _header(kind, body, length=length), _KINDS, st.binary(max_size=64),
              st.integers(0, 2**32 - 1).filter(lambda n: n > 76 or n < 12)),
    st.builds(lambda kind, body, cut: _header(kind, body)[:cut], _KINDS, st.binary(max_size=8),
              st.integers(1, agent.HEADER.size - 1)),
    st.builds(lambda argc, envc, strings: _exec(argc, envc, strings), st.integers(0, 2**32 - 1),
              st.integers(0, 2**32 - 1), st.binary(max_size=24).filter(lambda b: not b.endswith(b"\0"))),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=_MALFORMED, nfds=st.sampled_from([0, 1, 3, 5]))
@pytest.mark.gvisor
def test_fuzzed_requests(sb, data, nfds):
    """Datagrams that are malformed by construction: each is refused with an error, its
    connection closed, and pid 1 answers the next stat."""
    reply, closed = _exchange(sb, data, nfds)
    assert _error(reply)[0] in (errno.EPROTO, errno.EINVAL)
    assert closed
    _assert_stats(sb)
