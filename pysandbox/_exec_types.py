"""Sandbox.exec as a type checker sees it: ContainerProcess[str] for text=True (the default),
ContainerProcess[bytes] for text=False, in both call forms (`sb.exec(...)`, `await sb.exec.aio(...)`).

A ParamSpec cannot carry overloads through a decorator, so the overloads are written here once, for
both forms, and `typed_exec` lays them over the synchronized method; at run time it returns the
method unchanged. tests/typing/test_types.py checks that they name exactly the real parameters.
"""

from __future__ import annotations

from typing import Any, Coroutine, Literal, Mapping, Optional, Protocol, Sequence, TypeVar, overload

from .container_process import ContainerProcess
from .secret import Secret
from .stream_type import StreamType

_Text = TypeVar("_Text", covariant=True)
_Bytes = TypeVar("_Bytes", covariant=True)
_Either = TypeVar("_Either", covariant=True)


class ExecSignature(Protocol[_Text, _Bytes, _Either]):
    """exec's parameters, returning _Text for text=True, _Bytes for text=False, _Either for a bool."""

    @overload
    def __call__(
        self, *args: str, stdout: StreamType = ..., stderr: StreamType = ..., timeout: Optional[int] = ...,
        workdir: Optional[str] = ..., env: Optional[Mapping[str, Optional[str]]] = ...,
        secrets: Optional[Sequence[Secret]] = ..., text: Literal[True] = ..., bufsize: int = ..., pty: bool = ...,
        _pty_info: Any = ..., pty_info: Any = ...,
    ) -> _Text: ...

    @overload
    def __call__(
        self, *args: str, stdout: StreamType = ..., stderr: StreamType = ..., timeout: Optional[int] = ...,
        workdir: Optional[str] = ..., env: Optional[Mapping[str, Optional[str]]] = ...,
        secrets: Optional[Sequence[Secret]] = ..., text: Literal[False], bufsize: int = ..., pty: bool = ...,
        _pty_info: Any = ..., pty_info: Any = ...,
    ) -> _Bytes: ...

    @overload
    def __call__(
        self, *args: str, stdout: StreamType = ..., stderr: StreamType = ..., timeout: Optional[int] = ...,
        workdir: Optional[str] = ..., env: Optional[Mapping[str, Optional[str]]] = ...,
        secrets: Optional[Sequence[Secret]] = ..., text: bool = ..., bufsize: int = ..., pty: bool = ...,
        _pty_info: Any = ..., pty_info: Any = ...,
    ) -> _Either: ...

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...  # the overloads' registry key (typing.get_overloads)


class BoundExec(ExecSignature[ContainerProcess[str], ContainerProcess[bytes], ContainerProcess[Any]], Protocol):
    """`sb.exec`: call it, or await `sb.exec.aio(...)`."""

    @property
    def aio(self) -> ExecSignature[
        Coroutine[Any, Any, ContainerProcess[str]],
        Coroutine[Any, Any, ContainerProcess[bytes]],
        Coroutine[Any, Any, ContainerProcess[Any]],
    ]: ...


class ExecMethod(Protocol):
    """`Sandbox.exec`: the method, bound on access to a sandbox."""

    @overload
    def __get__(self, obj: None, objtype: Any = None) -> ExecMethod: ...

    @overload
    def __get__(self, obj: object, objtype: Any = None) -> BoundExec: ...

    # Sandbox.exec(sb, ...) and Sandbox.exec.aio(sb, ...), as Modal allows: without exec's overloads.
    def __call__(self, sandbox: Any, *args: str, **options: Any) -> ContainerProcess[Any]: ...

    def aio(self, sandbox: Any, *args: str, **options: Any) -> Coroutine[Any, Any, ContainerProcess[Any]]: ...


def typed_exec(method: object) -> ExecMethod:
    """`method` itself, typed with exec's overloads."""
    return method  # type: ignore[return-value]

