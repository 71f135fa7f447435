"""The runners, by name: the one place a runner's name is bound to its module.

Every runner module has the same interface (docs/RUNNERS.md, "Adding a runner"):

* `check()`: refuse, with InvalidError and before any work, what it cannot do on this host;
* `binary()`: the path of its binary (InvalidError when there is none);
* `refuse(spec)`: InvalidError, before any work, for what `spec` asks that the runner
  cannot give;
* `command(inputs: layout.RunnerInputs, binary: str) -> layout.RunnerCommand`: its command
  line, from the binary (staged if need be) to sandbox-init's argv, and the configuration
  it reads from fds.RUNNER_CONFIG, if any.

The names are config.RUNNERS, which the leaf layer validates (PYSANDBOX_RUNNER, the spec's
runner); tests/unit/runtime/test_runners_contract.py keeps the two in step.
"""

from __future__ import annotations

from types import ModuleType
from typing import Dict

from .._core.spec import SandboxSpec
from . import bwrap, gvisor, nsjail, ptys

RUNNERS: Dict[str, ModuleType] = {"bwrap": bwrap, "nsjail": nsjail, "gvisor": gvisor}


def check(name: str) -> None:
    """Refuse, before any work, a sandbox the runner `name` (a validated config.RUNNERS name)
    cannot start on this host, or a bad PYSANDBOX_PTYS_MAX under any runner, used or not."""
    RUNNERS[name].check()
    ptys.ptys_max()


def refuse(spec: SandboxSpec) -> None:
    """Refuse, before any work, what `spec` asks of its runner that it cannot give; create(pty=True)
    when the host has no terminal left for its entrypoint (ResourceExhaustedError)."""
    RUNNERS[spec.runner].refuse(spec)
    if spec.pty:
        ptys.check_free(spec.runner)
