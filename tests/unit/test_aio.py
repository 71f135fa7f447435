"""The two drivers run the same core coroutine with the same result."""

import asyncio
import os

import pytest

from pysandbox import _aio
from pysandbox._aio import synchronized, synchronized_static


class Thing:
    @synchronized
    async def echo_after_pipe(self, value):
        r, w = os.pipe()
        os.write(w, b"x")
        assert await _aio.readable(r)
        os.close(r)
        os.close(w)
        await _aio.sleep(0)
        return value

    @synchronized
    async def timed_out(self):
        r, w = os.pipe()
        try:
            return await _aio.readable(r, timeout=0.01)
        finally:
            os.close(r)
            os.close(w)

    @synchronized
    async def numbers(self, n):
        for i in range(n):
            await _aio.sleep(0)
            yield i

    @synchronized_static
    async def static(x):
        return x * 2

    @synchronized
    async def fails(self):
        await _aio.sleep(0)
        raise KeyError("boom")


def test_sync_and_async_agree():
    t = Thing()
    assert t.echo_after_pipe(5) == 5
    assert asyncio.run(t.echo_after_pipe.aio(5)) == 5
    assert t.timed_out() is False
    assert asyncio.run(t.timed_out.aio()) is False


def test_generators_both_ways():
    t = Thing()
    assert list(t.numbers(3)) == [0, 1, 2]

    async def collect():
        return [i async for i in t.numbers.aio(3)]

    assert asyncio.run(collect()) == [0, 1, 2]


def test_static_and_errors():
    assert Thing.static(2) == 4
    assert asyncio.run(Thing.static.aio(3)) == 6
    with pytest.raises(KeyError):
        Thing().fails()
    with pytest.raises(KeyError):
        asyncio.run(Thing().fails.aio())


def test_async_calls_interleave():
    t = Thing()

    async def main():
        return await asyncio.gather(*(t.echo_after_pipe.aio(i) for i in range(20)))

    assert asyncio.run(main()) == list(range(20))


def test_cancellation_reaches_the_core():
    cleaned = []

    class Slow:
        @synchronized
        async def run(self):
            try:
                await _aio.sleep(10)
            finally:
                cleaned.append(True)

    async def main():
        task = asyncio.ensure_future(Slow().run.aio())
        await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert cleaned == [True]


def test_help_shows_the_public_docstring_of_a_synchronized_function():
    import pydoc

    import pysandbox

    for bound in (pysandbox.Sandbox.create, pysandbox.Sandbox.list, pysandbox.Image.from_id):
        assert bound.__doc__ and bound.__doc__ == bound._func.__doc__
    assert pysandbox.Sandbox.create.__doc__ in pydoc.render_doc(pysandbox.Sandbox.create, renderer=pydoc.plaintext)
