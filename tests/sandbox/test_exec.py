"""exec(): streams, exit codes, timeouts, stdin, stream types, as Modal defines them."""

import asyncio

import pytest

import pysandbox as modal
from pysandbox import agent
from pysandbox.exception import InvalidError

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_exec_echo(sb):
    p = sb.exec("echo", "hello")
    assert p.stdout.read() == "hello\n"
    assert p.wait() == 0
    assert p.returncode == 0


@pytest.mark.gvisor
def test_exec_returns_while_process_runs(sb):
    p = sb.exec("sh", "-c", "read line; echo got $line")
    assert p.poll() is None
    p.stdin.write("x\n")
    p.stdin.drain()
    assert p.stdout.read() == "got x\n"
    assert p.wait() == 0


@pytest.mark.gvisor
def test_returncode_raises_until_known(sb):
    p = sb.exec("sh", "-c", "exit 3")
    with pytest.raises(InvalidError, match="wait"):
        p.returncode
    assert p.wait() == 3
    assert p.returncode == 3
    assert p.poll() == 3


@pytest.mark.parametrize("signo", [9, 15])
@pytest.mark.gvisor
def test_signal_exit_is_128_plus_n(sb, signo):
    assert sb.exec("sh", "-c", f"kill -{signo} $$").wait() == 128 + signo


@pytest.mark.gvisor
def test_exec_timeout_returns_minus_one(sb):
    p = sb.exec("sleep", "30", timeout=1)
    assert p.wait() == -1
    assert p.poll() == -1
    assert p.stdout.read() == ""


@pytest.mark.gvisor
def test_sigpipe_default_inside(sb):
    # Python ignores SIGPIPE; the sandbox must not inherit that.
    p = sb.exec("bash", "-c", "yes | head -n 1 >/dev/null; echo ${PIPESTATUS[0]}")
    assert p.stdout.read() == "141\n"


@pytest.mark.gvisor
def test_missing_command_is_127_with_message(sb):
    p = sb.exec("definitely-not-a-command")
    assert p.wait() == 127
    assert "definitely-not-a-command" in p.stderr.read()


@pytest.mark.gvisor
def test_text_false_gives_bytes(sb):
    p = sb.exec("printf", "\\x00\\xff", text=False)
    assert p.stdout.read() == b"\x00\xff"


@pytest.mark.gvisor
def test_line_mode(sb):
    p = sb.exec("printf", "a\\nbb\\nccc", bufsize=1)
    assert list(p.stdout) == ["a\n", "bb\n", "ccc"]


@pytest.mark.gvisor
def test_line_mode_needs_text(sb, monkeypatch):
    """Refused by ExecSpec, before any work: no connection to init, so no process started."""
    connections = []
    connect = agent.connect
    monkeypatch.setattr(agent, "connect", lambda path: connections.append(path) or connect(path))
    with pytest.raises(ValueError, match="line-buffering"):
        sb.exec("touch", "/tmp/started", text=False, bufsize=1)
    assert connections == []
    assert sb.exec("test", "-e", "/tmp/started").wait() == 1
    assert len(connections) == 1  # the counter sees execs


@pytest.mark.gvisor
def test_iteration_and_read_share_position(sb):
    p = sb.exec("printf", "one\\ntwo\\nthree\\n", bufsize=1)
    it = iter(p.stdout)
    assert next(it) == "one\n"
    assert p.stdout.read() == "two\nthree\n"
    assert p.stdout.read() == ""


@pytest.mark.gvisor
def test_a_reader_is_its_own_iterator_as_modals(sb):
    """Modal's StreamReader has __next__ and __anext__ (deprecated there, still there): next(p.stdout)
    takes one item at the position read() and iteration share, and StopIteration at EOF."""
    p = sb.exec("printf", "one\\ntwo\\nthree", bufsize=1)
    assert next(p.stdout) == "one\n"
    assert list(p.stdout) == ["two\n", "three"]
    with pytest.raises(StopIteration):
        next(p.stdout)

    async def main():
        q = await sb.exec.aio("printf", "x\\ny\\n", bufsize=1)
        first = await q.stdout.__anext__()
        return first, [line async for line in q.stdout]

    assert asyncio.run(main()) == ("x\n", ["y\n"])
    closing = sb.exec("echo", "z")
    asyncio.run(closing.stdout.aclose.aio())  # Modal's (hidden) aclose, blocking or .aio, as close
    closing.stderr.aclose()
    assert closing.stdout.read() == ""
    closing.wait()  # 0, or 1 where echo wrote after the close (EPIPE): a race either way
    with pytest.raises(ValueError):
        next(sb.exec("true", stdout=modal.stream_type.StreamType.DEVNULL).stdout)


@pytest.mark.gvisor
def test_readers_made_after_the_process_ended_are_one_each_and_read_all(sb):
    # A ContainerProcess makes its readers on first use: one each, whoever asks first and however often.
    p = sb.exec("sh", "-c", "printf 'a\\nb\\n'; printf err >&2", bufsize=1)
    assert p.wait() == 0
    assert p.stdout is p.stdout and p.stderr is p.stderr and p.stdout is not p.stderr
    assert list(p.stdout) == ["a\n", "b\n"] and p.stderr.read() == "err"
    assert (p.stdout.file_descriptor, p.stderr.file_descriptor) == (1, 2)


@pytest.mark.gvisor
def test_invalid_utf8_raises(sb):
    p = sb.exec("printf", "\\xff")
    with pytest.raises(UnicodeDecodeError):
        p.stdout.read()


@pytest.mark.gvisor
def test_multibyte_split_across_chunks(sb):
    p = sb.exec("sh", "-c", "printf '\\303'; sleep 0.2; printf '\\251\\n'")
    assert p.stdout.read() == "é\n"


@pytest.mark.gvisor
def test_devnull_and_stdout_stream_types(sb, capfd):
    p = sb.exec("sh", "-c", "echo to-local; echo err >&2",
                stdout=modal.StreamType.STDOUT, stderr=modal.StreamType.DEVNULL)
    assert p.wait() == 0
    with pytest.raises(InvalidError, match="PIPE"):
        p.stdout.read()
    with pytest.raises(ValueError, match="DEVNULL"):
        p.stderr.read()
    assert "to-local" in capfd.readouterr().out


@pytest.mark.gvisor
def test_large_stderr_does_not_block_stdout_reader(sb):
    script = "head -c 3000000 /dev/zero >&2; echo done"
    p = sb.exec("sh", "-c", script, text=False)
    assert p.stdout.read() == b"done\n"
    assert len(p.stderr.read()) == 3000000
    assert p.wait() == 0


@pytest.mark.gvisor
def test_stdin_rules(sb):
    p = sb.exec("cat")
    p.stdin.write(b"foo\n")
    p.stdin.write("bar\n")
    with pytest.raises(TypeError):
        p.stdin.write(5)
    p.stdin.write_eof()
    with pytest.raises(ValueError, match="closed"):
        p.stdin.write("more")
    p.stdin.drain()
    assert p.stdout.read() == "foo\nbar\n"
    assert p.wait() == 0


@pytest.mark.gvisor
def test_stdin_buffer_limit(sb):
    p = sb.exec("cat", stdout=modal.StreamType.DEVNULL)
    p.stdin.write(b"x" * (16 << 20))
    with pytest.raises(BufferError):
        p.stdin.write(b"x")
    p.stdin.write_eof()
    p.stdin.drain()
    assert p.wait() == 0


@pytest.mark.gvisor
def test_exec_env_workdir_and_secrets(sb):
    secret = modal.Secret.from_dict({"TOKEN": "s3cret"})
    p = sb.exec("sh", "-c", "echo $A $TOKEN; pwd", env={"A": "1", "DROP": None}, secrets=[secret], workdir="/tmp")
    assert p.stdout.read() == "1 s3cret\n/tmp\n"


def test_a_request_over_the_default_send_buffer_goes_through(sb):
    """An exec whose request is larger than the socket's default send buffer (wmem_default,
    usually 208 KiB): the client raises the buffer for it and sends again."""
    env = {"A": "a" * 110_000, "B": "b" * 110_000}  # each under the kernel's 128 KiB per string
    p = sb.exec("sh", "-c", 'echo ${#A} ${#B}', env=env)
    assert p.stdout.read() == "110000 110000\n"
    assert p.wait() == 0


@pytest.mark.gvisor
def test_bad_workdir_is_reported(sb):
    p = sb.exec("true", workdir="/does/not/exist")
    assert p.wait() != 0
    assert "/does/not/exist" in p.stderr.read()


def test_only_stdio_fds_reach_the_process(sb):
    p = sb.exec("sh", "-c", "ls /proc/self/fd")
    fds = sorted(int(x) for x in p.stdout.read().split())
    assert fds[:3] == [0, 1, 2] and len(fds) == 4  # the fourth is ls's own directory fd


@pytest.mark.gvisor
def test_aio_forms(sb):
    async def main():
        p = await sb.exec.aio("sh", "-c", "echo a; echo b", bufsize=1)
        lines = [line async for line in p.stdout]
        code = await p.wait.aio()
        q = await sb.exec.aio("echo", "x")
        return lines, code, await q.stdout.read.aio(), await q.poll.aio()

    lines, code, out, _ = asyncio.run(main())
    assert lines == ["a\n", "b\n"] and code == 0 and out == "x\n"


@pytest.mark.parametrize(
    "args, kwargs, error",
    [
        ((1,), {}, InvalidError),
        (("x" * 70000,), {}, InvalidError),
        (("echo", "a\0b"), {}, InvalidError),
        (("true",), {"workdir": "relative"}, InvalidError),
        (("true",), {"env": {"1BAD": "x"}}, InvalidError),
        (("true",), {"env": {"A": "a\0b"}}, InvalidError),
        (("true",), {"timeout": -1}, InvalidError),
        (("true",), {"env": {"BIG": "x" * 300_000}}, InvalidError),
        ((), {}, InvalidError),
    ],
)
@pytest.mark.gvisor
def test_exec_validation(sb, args, kwargs, error):
    with pytest.raises(error):
        sb.exec(*args, **kwargs)


@pytest.mark.gvisor
def test_exec_after_finish_is_conflict(sandboxes):
    sb = sandboxes("true")
    sb.wait()
    with pytest.raises(modal.exception.ConflictError):
        sb.exec("true")


SCRIPT_BOTH = "for i in $(seq 300); do echo o$i; echo e$i >&2; done"
EXPECTED_OUT = [f"o{i}" for i in range(1, 301)]
EXPECTED_ERR = [f"e{i}" for i in range(1, 301)]


@pytest.mark.gvisor
def test_stdout_and_stderr_read_concurrently_by_tasks(sb):
    async def main():
        p = await sb.exec.aio("sh", "-c", SCRIPT_BOTH)
        return await asyncio.wait_for(asyncio.gather(p.stdout.read.aio(), p.stderr.read.aio()), 30)

    for _ in range(5):
        out, err = asyncio.run(main())
        assert out.split() == EXPECTED_OUT and err.split() == EXPECTED_ERR


@pytest.mark.gvisor
def test_stdout_and_stderr_read_concurrently_by_threads(sb):
    import threading

    for _ in range(5):
        p = sb.exec("sh", "-c", SCRIPT_BOTH)
        results = {}
        threads = [threading.Thread(target=lambda r=r: results.__setitem__(r, getattr(p, r).read()))
                   for r in ("stdout", "stderr")]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert results["stdout"].split() == EXPECTED_OUT and results["stderr"].split() == EXPECTED_ERR
