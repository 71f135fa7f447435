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
from typing import (
    Any,
    AsyncGenerator,
    AsyncIterator,
    Awaitable,
    Callable,
    Concatenate,
    ContextManager,
    Coroutine,
    Dict,
    Generator,
    Generic,
    Iterator,
    Optional,
    ParamSpec,
    Set,
    Tuple,
    TypeVar,
    cast,
    overload,
)

_S = TypeVar("_S")  # the instance a method is bound to
_P = ParamSpec("_P")  # the core function's parameters (less the instance), kept for both call forms
_R = TypeVar("_R")  # what a coroutine returns
_Y = TypeVar("_Y")  # what an async generator yields
_T = TypeVar("_T")  # what a context manager gives
_B = TypeVar("_B")  # a bound callable


class _Wait:
    """An awaitable that hands one request up to whichever driver runs us."""

    __slots__ = ("request",)

    def __init__(self, request: Tuple[Any, ...]) -> None:
        self.request = request

    def __await__(self) -> Generator[Tuple[Any, ...], Any, Any]:
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


def _answer_sync(request: Tuple[Any, ...]) -> Any:
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


def _coroutine(awaitable: Awaitable[Any]) -> Any:
    return awaitable if hasattr(awaitable, "send") else awaitable.__await__()


def run_sync(awaitable: Awaitable[Any]) -> Any:
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
        self._waiting: Dict[Tuple[int, str], Set[asyncio.Future[bool]]] = {}

    def add(self, fd: int, kind: str, fut: asyncio.Future[bool]) -> None:
        key = (fd, kind)
        if key not in self._waiting:
            self._waiting[key] = set()
            register = self._loop.add_reader if kind == "readable" else self._loop.add_writer
            register(fd, self._wake, key)
        self._waiting[key].add(fut)

    def discard(self, fd: int, kind: str, fut: asyncio.Future[bool]) -> None:
        key = (fd, kind)
        futures = self._waiting.get(key)
        if futures is None:
            return
        futures.discard(fut)
        if not futures:
            del self._waiting[key]
            unregister = self._loop.remove_reader if kind == "readable" else self._loop.remove_writer
            unregister(fd)

    def _wake(self, key: Tuple[int, str]) -> None:
        for fut in self._waiting.get(key, ()):
            if not fut.done():
                fut.set_result(True)


_watchers: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watchers]" = weakref.WeakKeyDictionary()


async def _answer_async(request: Tuple[Any, ...]) -> Any:
    kind = request[0]
    if kind in ("readable", "writable"):
        _, fds, timeout = request
        loop = asyncio.get_running_loop()
        watchers = _watchers.get(loop) or _watchers.setdefault(loop, _Watchers(loop))
        fut: asyncio.Future[bool] = loop.create_future()
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


async def _offloaded(func: Callable[..., Any], args: Tuple[Any, ...], undo: Optional[Callable[[Any], None]]) -> Any:
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


async def _wait_out(future: asyncio.Future[Any]) -> Any:
    """The future's result, through any number of further cancellations (given up, the work it
    stands for would be left half-done)."""
    while True:
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            if future.done():
                return future.result()


async def run_async(awaitable: Awaitable[Any]) -> Any:
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


def iterate_sync(agen: AsyncGenerator[_Y, None]) -> Iterator[_Y]:
    """A blocking iterator over a core async generator."""
    try:
        while True:
            try:
                yield run_sync(agen.__anext__())
            except StopAsyncIteration:
                return
    finally:
        run_sync(agen.aclose())


async def iterate_async(agen: AsyncGenerator[_Y, None]) -> AsyncIterator[_Y]:
    try:
        while True:
            try:
                item = await run_async(agen.__anext__())
            except StopAsyncIteration:
                return
            yield item
    finally:
        await run_async(agen.aclose())


def _wraps(wrapper: object, func: Callable[..., Any]) -> None:
    """Give `wrapper` (a descriptor) the name, docstring and __wrapped__ of `func` (help() and inspect show them)."""
    functools.update_wrapper(cast(Callable[..., Any], wrapper), func)


# `__doc__` of a bound method is its core function's, so help(Sandbox.create) and Sandbox.create.__doc__ show
# the public docstring, as inspect.signature shows its parameters (each class sets it: a class without a
# docstring of its own gets __doc__ = None).
_CORE_DOC = property(lambda self: self._func.__doc__)


class _BoundBase:
    __slots__ = ("_func", "_obj")

    def __init__(self, func: Callable[..., Any], obj: Any) -> None:
        self._func, self._obj = func, obj

    def _core(self, args: Any, kwargs: Any) -> Any:
        return self._func(self._obj, *args, **kwargs) if self._obj is not None else self._func(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<pysandbox method {self._func.__qualname__}>"

    @property
    def __signature__(self) -> inspect.Signature:
        """The core function's, less `self` once bound (what inspect.signature and help() show)."""
        signature = inspect.signature(self._func)
        if self._obj is None:
            return signature
        return signature.replace(parameters=list(signature.parameters.values())[1:])


class _Bound(_BoundBase, Generic[_P, _R]):
    # `obj.method` for a synchronized coroutine method: callable, with `.aio`.
    __doc__ = _CORE_DOC

    __slots__ = ()

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        return run_sync(self._core(args, kwargs))  # type: ignore[no-any-return]

    def aio(self, *args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _R]:
        return run_async(self._core(args, kwargs))


class _BoundGen(_BoundBase, Generic[_P, _Y]):
    # `obj.method` for a synchronized async generator: a blocking iterator, with `.aio`.
    __doc__ = _CORE_DOC

    __slots__ = ()

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> Iterator[_Y]:
        return iterate_sync(self._core(args, kwargs))

    def aio(self, *args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[_Y]:
        return iterate_async(self._core(args, kwargs))


class _Method(Generic[_S, _P, _R]):
    """What `synchronized` makes of a coroutine method."""

    __wrapped__: Callable[..., Any]  # the core function (_wraps)

    def __init__(self, func: Callable[Concatenate[_S, _P], Awaitable[_R]]) -> None:
        self._func = func
        _wraps(self, func)

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> "_Method[_S, _P, _R]": ...
    @overload
    def __get__(self, obj: _S, objtype: Any = None) -> _Bound[_P, _R]: ...
    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return _Bound(self._func, obj) if obj is not None else self

    def __call__(self, obj: _S, *args: _P.args, **kwargs: _P.kwargs) -> _R:  # Class.method(instance, ...)
        bound: _Bound[_P, _R] = _Bound(self._func, obj)
        return bound(*args, **kwargs)

    def aio(self, obj: _S, *args: _P.args, **kwargs: _P.kwargs) -> Coroutine[Any, Any, _R]:  # as on Modal
        bound: _Bound[_P, _R] = _Bound(self._func, obj)
        return bound.aio(*args, **kwargs)


class _GenMethod(Generic[_S, _P, _Y]):
    """What `synchronized` makes of an async generator method."""

    __wrapped__: Callable[..., Any]  # the core function (_wraps)

    def __init__(self, func: Callable[Concatenate[_S, _P], AsyncIterator[_Y]]) -> None:
        self._func = func
        _wraps(self, func)

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> "_GenMethod[_S, _P, _Y]": ...
    @overload
    def __get__(self, obj: _S, objtype: Any = None) -> _BoundGen[_P, _Y]: ...
    def __get__(self, obj: Any, objtype: Any = None) -> Any:
        return _BoundGen(self._func, obj) if obj is not None else self

    def __call__(self, obj: _S, *args: _P.args, **kwargs: _P.kwargs) -> Iterator[_Y]:
        bound: _BoundGen[_P, _Y] = _BoundGen(self._func, obj)
        return bound(*args, **kwargs)

    def aio(self, obj: _S, *args: _P.args, **kwargs: _P.kwargs) -> AsyncIterator[_Y]:
        bound: _BoundGen[_P, _Y] = _BoundGen(self._func, obj)
        return bound.aio(*args, **kwargs)


@overload
def synchronized(func: Callable[Concatenate[_S, _P], AsyncIterator[_Y]]) -> _GenMethod[_S, _P, _Y]: ...
@overload
def synchronized(func: Callable[Concatenate[_S, _P], Awaitable[_R]]) -> _Method[_S, _P, _R]: ...
def synchronized(func: Callable[..., Any]) -> Any:
    """Decorate a core `async def` (or async generator) method of a class.

    `sb.exec(...)` runs it to completion; `await sb.exec.aio(...)` runs it on
    the caller's event loop (an async generator: `for x in sb.m(...)`, `async for
    x in sb.m.aio(...)`). Typed through: both forms take the core's parameters.
    """
    return _GenMethod(func) if inspect.isasyncgenfunction(func) else _Method(func)


class _Static(Generic[_B]):
    """What `synchronized_static` makes of a function: the same bound callable on the class and its instances."""

    def __init__(self, bound: _B, func: Callable[..., Any]) -> None:
        self._bound = bound
        _wraps(self, func)

    def __get__(self, obj: Any, objtype: Any = None) -> _B:
        return self._bound


@overload
def synchronized_static(func: Callable[_P, AsyncIterator[_Y]]) -> _Static[_BoundGen[_P, _Y]]: ...
@overload
def synchronized_static(func: Callable[_P, Awaitable[_R]]) -> _Static[_Bound[_P, _R]]: ...
def synchronized_static(func: Callable[..., Any]) -> Any:
    """Like `synchronized`, for functions that take no instance (Sandbox.create)."""
    bound = _BoundGen(func, None) if inspect.isasyncgenfunction(func) else _Bound(func, None)
    return _Static(bound, func)


class context(Generic[_S, _P, _T]):
    """Decorate a generator method written as for contextlib.contextmanager:
    the result works with `with`, `async with`, and `async with x.m.aio()`,
    like Modal's async context managers (Volume.ephemeral, batch_upload, App.run)."""

    def __init__(self, func: Callable[Concatenate[_S, _P], Iterator[_T]]) -> None:
        self._func = func
        _wraps(self, func)

    def __get__(self, obj: _S, objtype: Any = None) -> "_ContextFactory[_P, _T]":
        return _ContextFactory(functools.partial(self._func, obj) if obj is not None else self._func)


class static_context(Generic[_P, _T]):
    """`context` for a function that takes no instance."""

    def __init__(self, func: Callable[_P, Iterator[_T]]) -> None:
        self._func = func
        _wraps(self, func)

    def __get__(self, obj: Any, objtype: Any = None) -> "_ContextFactory[_P, _T]":
        return _ContextFactory(self._func)


class _ContextFactory(Generic[_P, _T]):
    def __init__(self, func: Callable[_P, Iterator[_T]]) -> None:
        self._manager = contextlib.contextmanager(func)
        functools.update_wrapper(self, func)  # its signature, docstring and name

    def __call__(self, *args: _P.args, **kwargs: _P.kwargs) -> "_DualContext[_T]":
        return _DualContext(self._manager(*args, **kwargs))

    aio = __call__


class _DualContext(Generic[_T]):
    def __init__(self, manager: ContextManager[_T]) -> None:
        self._manager = manager

    def __enter__(self) -> _T:
        return self._manager.__enter__()

    def __exit__(self, *exc_info: Any) -> Optional[bool]:
        return self._manager.__exit__(*exc_info)

    async def __aenter__(self) -> _T:
        return self._manager.__enter__()

    async def __aexit__(self, *exc_info: Any) -> Optional[bool]:
        return self._manager.__exit__(*exc_info)
