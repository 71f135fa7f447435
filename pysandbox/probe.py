"""modal.Probe, the readiness check of a sandbox (Sandbox.wait_until_ready() runs it).

A TCP probe is a connection to 127.0.0.1:port made inside the sandbox (by the
static sandbox-probe helper, bind-mounted when the sandbox has a TCP probe);
an exec probe is the command, run in the sandbox, exiting 0.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

from ._validate import whole_number
from .exception import InvalidError
from .network import check_port

PROBE_PATH = "/__pysandbox/probe"  # where the runtime binds sandbox-probe for a TCP probe
_USAGE = "Probe must be created with Probe.with_tcp(...) or Probe.with_exec(...)"


@dataclasses.dataclass(frozen=True)
class Probe:
    """When a sandbox is ready: a TCP port accepts connections, or a command exits 0."""

    tcp_port: Optional[int] = None
    exec_argv: Optional[Tuple[str, ...]] = None
    interval_ms: int = 100

    def __post_init__(self) -> None:
        if (self.tcp_port is None) == (self.exec_argv is None):
            raise InvalidError(_USAGE)
        if self.tcp_port is not None:
            check_port(self.tcp_port, "Probe.with_tcp port")
        if self.exec_argv is not None:
            if not self.exec_argv or not all(isinstance(arg, str) and "\0" not in arg for arg in self.exec_argv):
                raise InvalidError("Probe.with_exec needs at least one argument, all of them strings "
                                   "without NUL bytes.")
        whole_number(self.interval_ms, "interval_ms")

    @classmethod
    def with_tcp(cls, port: int, *, interval_ms: int = 100) -> "Probe":
        return cls(tcp_port=port, interval_ms=interval_ms)

    @classmethod
    def with_exec(cls, *argv: str, interval_ms: int = 100) -> "Probe":
        return cls(exec_argv=tuple(argv), interval_ms=interval_ms)

    def argv(self) -> Tuple[str, ...]:
        """The command that checks readiness inside the sandbox."""
        if self.tcp_port is not None:
            return (PROBE_PATH, str(self.tcp_port))
        return self.exec_argv

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "Probe":
        argv = data.get("exec_argv")
        return cls(data.get("tcp_port"), None if argv is None else tuple(argv), data["interval_ms"])


def check_probe(probe) -> Optional[Probe]:
    if probe is not None and not isinstance(probe, Probe):
        raise InvalidError(f"readiness_probe must be a modal.Probe, got {type(probe).__name__}")
    return probe
