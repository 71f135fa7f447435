"""StreamType: where an exec'd process's stdout or stderr goes (modal.stream_type)."""

import enum

from .exception import InvalidError


class StreamType(enum.Enum):
    PIPE = -1
    STDOUT = -2
    DEVNULL = -3

    def __repr__(self) -> str:
        return f"pysandbox.stream_type.StreamType.{self.name}"


def output_of(stream_type: object, name: str) -> str:
    """The core's plain name (ExecSpec.stdout/stderr) for an exec's `name`=StreamType argument."""
    if not isinstance(stream_type, StreamType):
        raise InvalidError(f"{name} must be a StreamType, got {stream_type!r}")
    return stream_type._name_.lower()  # not .name: an enum property costs two calls, on every exec
