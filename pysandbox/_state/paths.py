"""Where everything lives in the state directory (settings.state_dir()); the one place its layout is written.

    lock                              held for read-modify-write of names, tags, volumes, secrets (names.locked())
    gc.stamp, gc.lock                 when the last automatic collection started; one collection at a time (garbage.py)
    apps/<app-name>.json              {"app_id", "name", "created_at"} (apps.py)
    names/<app-id>/<name>             a name claim: {"sandbox_id", "creator"} (names.py)
    sandboxes/.exits/<sb-id>          the exit record of a directory gc removed, kept for the retention
    sandboxes/.<sb-id>.<pid>.<start>.new
                                      a sandbox directory being made (records.staging_name())
    sandboxes/<sb-id>/                one sandbox (SandboxDir):
        creator                       the process creating the sandbox (until its record exists),
                                      padded: once the record exists (or on a full disk) the supervisor
                                      writes its exit record over it (renamed to exit: no new inode)
        record.json                   the sandbox's spec, owner process and metadata (records.py)
        exit                          written once by the supervisor, after teardown (or by
                                      runtime/reconcile.py for a supervisor that died without a word)
        agent.sock                    init's listener (host side only)
        stdout, stderr                the entrypoint's output, written by the supervisor
        upper/                        the sandbox's writable layer
        mounts/                       images mounted into the running sandbox (_core/mounts.py):
                                      <n>/{rootfs,work,empty} per mount, table.json (path, mount id)
        terminating                   present once terminate() has signalled the supervisor
                                      (a second name of record.json: no inode of its own)
        supervisor.log                the supervisor's, runner's and init's own output; its lock
                                      says whether any of them still runs (records.held())
        cgroup.json                   the sandbox's cgroup (runtime/cgroups)
        net/                          resolv.conf and the network helper's socket (runtime/netplan.py)

    secrets/, volumes/, images/       kept by secret.py, volumes.py and image/store.py, which document them
"""

from __future__ import annotations

from pathlib import Path

import attrs

from .. import settings

RECORD_NAME = "record.json"  # a sandbox directory's record; its existence also confirms the sandbox
CREATOR_NAME = "creator"  # the creating process, so gc leaves a create in progress alone
EXIT_NAME = "exit"
LOG_NAME = "supervisor.log"  # the supervisor's, its runner's and sandbox-init's stdout and stderr
TERMINATING_NAME = "terminating"  # present once terminate() has signalled the supervisor
CGROUP_NAME = "cgroup.json"
COLLECTED_EXITS = ".exits"  # sandboxes/.exits/<id>: exit records of directories gc removed


SANDBOXES_NAME = "sandboxes"  # the state directory's directory of sandbox directories


def sandboxes_dir() -> Path:
    return settings.state_dir() / SANDBOXES_NAME


def sandbox_dir(sandbox_id: str) -> Path:
    return settings.state_dir().joinpath(SANDBOXES_NAME, sandbox_id)  # one join: Sandbox.list() makes one per sandbox


def collected_exit_path(sandbox_id: str) -> Path:
    """Where gc keeps the exit record of a sandbox whose directory it removed (a hard link made
    before the removal), for handles that have not read it yet; kept for the retention time."""
    return sandboxes_dir() / COLLECTED_EXITS / sandbox_id


@attrs.frozen
class SandboxDir:
    """The entries of one sandbox's directory (`path`), as listed in this module's docstring."""

    path: Path

    @classmethod
    def of(cls, sandbox_id: str) -> "SandboxDir":
        return cls(sandbox_dir(sandbox_id))

    @property
    def record(self) -> Path:
        return self.path / RECORD_NAME

    @property
    def exit(self) -> Path:
        return self.path / EXIT_NAME

    @property
    def creator(self) -> Path:
        return self.path / CREATOR_NAME

    @property
    def socket(self) -> Path:
        return self.path / "agent.sock"

    @property
    def upper(self) -> Path:
        return self.path / "upper"

    @property
    def mounts(self) -> Path:
        return self.path / "mounts"

    @property
    def stdout(self) -> Path:
        return self.path / "stdout"

    @property
    def stderr(self) -> Path:
        return self.path / "stderr"

    @property
    def log(self) -> Path:
        return self.path / LOG_NAME

    @property
    def terminating(self) -> Path:
        return self.path / TERMINATING_NAME

    @property
    def net(self) -> Path:
        return self.path / "net"

    @property
    def cgroup_json(self) -> Path:
        return self.path / CGROUP_NAME
