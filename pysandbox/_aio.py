"""One async core, two ways to call it.

Every I/O operation in pysandbox is written once, as a coroutine (or async
generator) that waits only through the primitives below: `readable(fd)` and
`sleep(seconds)`. Two small drivers run such a coroutine:

* `run_sync` answers each wait with a blocking poll()/sleep in the calling
  thread. A coroutine that never waits finishes in one `send` with no event
  loop at all, which keeps the blocking API as fast as a direct syscall.
* `run_async` answers each wait through the running asyncio loop
  (`add_reader`, `asyncio.sleep`), so `.aio` calls cooperate with other tasks.

The descriptors at the bottom turn a core coroutine function into Modal's
calling convention: `obj.method(...)` blocks, `await obj.method.aio(...)` does
not. Async generators become `for x in f(...)` and `async for x in f.aio(...)`.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import select
import time
import weakref
from typing import Any, AsyncIterator, Awaitable, Callable, Iterator, Optional


class _Wait:
    """An awaitable that hands one request up to whichever driver runs us."""

    __slots__ = ("request",)

    def __init__(self, request: tuple) -> None:
        self.request = request

    def __await__(self):
        return (yield self.request)


def readable(*fds: int, timeout: Optional[float] = None) -> Awaitable[bool]:
    """Wait until one of `fds` is readable (or hung up); False if `timeout` passed first."""
    return _Wait(("readable", fds, timeout))


def writable(fd: int) -> Awaitable[bool]:
    """Wait until `fd` can take more data (or its reader is gone)."""
    return _Wait(("writable", (fd,), None))


def sleep(seconds: float) -> Awaitable[None]:
    return _Wait(("sleep", seconds))


def checkpoint() -> Awaitable[None]:
    """Let other tasks run (a long loop of quick steps, e.g. a copy, awaits this between
    steps); free in the blocking driver."""
    return _Wait(("checkpoint",))


def offload(func: Callable[..., Any], *args: Any, undo: Optional[Callable[[Any], None]] = None) -> Awaitable[Any]:
    """`func(*args)`, a blocking step (an image build, a launch): the blocking driver calls it
    right here; the asyncio driver runs it in a worker thread (with the caller's context
    variables), so the loop goes on meanwhile. A task cancelled meanwhile still waits for the
    call to finish (it cannot stop half-way), then `undo(result)` reverts it: a cancelled
    create leaves no sandbox behind."""
    return _Wait(("offload", func, args, undo))


def _answer_sync(request: tuple) -> Any:
    kind = request[0]
    if kind == "offload":
        return request[1](*request[2])
    if kind in ("readable", "writable"):
        _, fds, timeout = request
        poller = select.poll()
        for fd in fds:
            poller.register(fd, select.POLLIN if kind == "readable" else select.POLLOUT)
        ms = None if timeout is None else max(0, int(timeout * 1000))
        return bool(poller.poll(ms))
    if kind == "sleep":
        time.sleep(request[1])
        return None
    if kind == "checkpoint":
        return None
    raise RuntimeError(f"unknown wait request {request!r}")


def _coroutine(awaitable: Awaitable):
    return awaitable if hasattr(awaitable, "send") else awaitable.__await__()


def run_sync(awaitable: Awaitable) -> Any:
    """Drive a core coroutine to completion in this thread."""
    coro = _coroutine(awaitable)
    resume, value = coro.send, None
    while True:
        try:
            request = resume(value)
        except StopIteration as stop:
            return stop.value
        try:
            resume, value = coro.send, _answer_sync(request)
        except BaseException as exc:  # KeyboardInterrupt: let the core clean up
            resume, value = coro.throw, exc


class _Watchers:
    """The tasks waiting on each fd of one loop. asyncio keeps one callback per
    fd and direction, so two tasks waiting on the same fd (the linked stdout and
    stderr readers do) share one registration that wakes them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._waiting: dict = {}

    def add(self, fd: int, kind: str, fut: asyncio.Future) -> None:
        key = (fd, kind)
        if key not in self._waiting:
            self._waiting[key] = set()
            register = self._loop.add_reader if kind == "readable" else self._loop.add_writer
            register(fd, self._wake, key)
        self._waiting[key].add(fut)

    def discard(self, fd: int, kind: str, fut: asyncio.Future) -> None:
        key = (fd, kind)
        futures = self._waiting.get(key)
        if futures is None:
            return
        futures.discard(fut)
        if not futures:
            del self._waiting[key]
            unregister = self._loop.remove_reader if kind == "readable" else self._loop.remove_writer
            unregister(fd)

    def _wake(self, key) -> None:
        for fut in self._waiting.get(key, ()):
            if not fut.done():
                fut.set_result(True)


_watchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchers]" = weakref.WeakKeyDictionary()


async def _answer_async(request: tuple) -> Any:
    kind = request[0]
    if kind in ("readable", "writable"):
        _, fds, timeout = request
        loop = asyncio.get_running_loop()
        watchers = _watchers.get(loop) or _watchers.setdefault(loop, _Watchers(loop))
        fut = loop.create_future()
        for fd in fds:
            watchers.add(fd, kind, fut)
        try:
            return await asyncio.wait_for(fut, timeout) if timeout is not None else await fut
        except asyncio.TimeoutError:
            return False
        finally:
            for fd in fds:
                watchers.discard(fd, kind, fut)
    if kind in ("sleep", "checkpoint"):
        await asyncio.sleep(request[1] if kind == "sleep" else 0)
        return None
    if kind == "offload":
        return await _offloaded(*request[1:])
    raise RuntimeError(f"unknown wait request {request!r}")


async def _offloaded(func: Callable[..., Any], args: tuple, undo: Optional[Callable[[Any], None]]) -> Any:
    loop = asyncio.get_running_loop()
    done = loop.run_in_executor(None, functools.partial(contextvars.copy_context().run, func, *args))
    try:
        return await asyncio.shield(done)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):  # it failed on its own: nothing to revert
            result = await _wait_out(done)
            if undo is not None:
                await _wait_out(loop.run_in_executor(None, undo, result))
        raise


async def _wait_out(future: asyncio.Future) -> Any:
    """The future's result, through any number of further cancellations (given up, the work it
    stands for would be left half-done)."""
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                return future.result()


async def run_async(awaitable: Awaitable) -> Any:
    """Drive a core coroutine on the running asyncio loop."""
    coro = _coroutine(awaitable)
    resume, value = coro.send, None
    while True:
        try:
            request = resume(value)
        except StopIteration as stop:
            return stop.value
        try:
            resume, value = coro.send, await _answer_async(request)
        except BaseException as exc:  # cancellation: let the core clean up
            resume, value = coro.throw, exc


def iterate_sync(agen: AsyncIterator) -> Iterator:
    """A blocking iterator over a core async generator."""
    try:
        while True:
            try:
                yield run_sync(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        run_sync(agen.aclose())


async def iterate_async(agen: AsyncIterator) -> AsyncIterator:
    try:
        while True:
            try:
                item = await run_async(agen.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        await run_async(agen.aclose())


class _Bound:
    """`obj.method` for a synchronized method: callable, with `.aio`."""

    __slots__ = ("_func", "_obj", "_gen")

    def __init__(self, func: Callable, obj: Any, gen: bool) -> None:
        self._func, self._obj, self._gen = func, obj, gen

    def _core(self, args, kwargs):
        return self._func(self._obj, *args, **kwargs) if self._obj is not None else self._func(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        core = self._core(args, kwargs)
        return iterate_sync(core) if self._gen else run_sync(core)

    def aio(self, *args, **kwargs):
        core = self._core(args, kwargs)
        return iterate_async(core) if self._gen else run_async(core)

    def __repr__(self) -> str:
        return f"<pysandbox method {self._func.__qualname__}>"

    @property
    def __signature__(self) -> inspect.Signature:
        """The core function's, less `self` once bound (what inspect.signature and help() show)."""
        signature = inspect.signature(self._func)
        if self._obj is None:
            return signature
        return signature.replace(parameters=list(signature.parameters.values())[1:])


class synchronized:
    """Decorate a core `async def` (or async generator) method of a class.

    `sb.exec(...)` runs it to completion; `await sb.exec.aio(...)` runs it on
    the caller's event loop. Works for instance methods and, stacked under
    `staticmethod`-like use via `synchronized.static`, for static functions.
    """

    def __init__(self, func: Callable) -> None:
        self._func = func
        self._gen = _is_async_gen(func)
        functools.update_wrapper(self, func)

    def __get__(self, obj, objtype=None):
        return _Bound(self._func, obj, self._gen) if obj is not None else self

    def __call__(self, obj, *args, **kwargs):  # Class.method(instance, ...)
        return _Bound(self._func, obj, self._gen)(*args, **kwargs)

    def aio(self, obj, *args, **kwargs):  # Class.method.aio(instance, ...), as on Modal
        return _Bound(self._func, obj, self._gen).aio(*args, **kwargs)


class synchronized_static:
    """Like `synchronized`, for functions that take no instance (Sandbox.create)."""

    def __init__(self, func: Callable) -> None:
        self._bound = _Bound(func, None, _is_async_gen(func))
        functools.update_wrapper(self, func)

    def __get__(self, obj, objtype=None):
        return self._bound


def _is_async_gen(func: Callable) -> bool:
    return inspect.isasyncgenfunction(func)


class context:
    """Decorate a generator method written as for contextlib.contextmanager:
    the result works with `with`, `async with`, and `async with x.m.aio()`,
    like Modal's async context managers (Volume.ephemeral, batch_upload, App.run)."""

    def __init__(self, func: Callable) -> None:
        self._func = func
        functools.update_wrapper(self, func)

    def __get__(self, obj, objtype=None):
        return _ContextFactory(functools.partial(self._func, obj) if obj is not None else self._func)


class static_context(context):
    """`context` for a function that takes no instance."""

    def __get__(self, obj, objtype=None):
        return _ContextFactory(self._func)


class _ContextFactory:
    def __init__(self, func: Callable) -> None:
        self._manager = contextlib.contextmanager(func)
        functools.update_wrapper(self, func)  # its signature, docstring and name

    def __call__(self, *args, **kwargs) -> "_DualContext":
        return _DualContext(self._manager(*args, **kwargs))

    aio = __call__


class _DualContext:
    def __init__(self, manager) -> None:
        self._manager = manager

    def __enter__(self):
        return self._manager.__enter__()

    def __exit__(self, *exc_info):
        return self._manager.__exit__(*exc_info)

    async def __aenter__(self):
        return self._manager.__enter__()

    async def __aexit__(self, *exc_info):
        return self._manager.__exit__(*exc_info)
