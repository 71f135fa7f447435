"""The gvisor runner's root (runtime/gvisor.py): runsc takes a directory, so an image's overlay is mounted by
the supervisor (RunnerCommand.stage_overlay, native/supervisor/stage.h) from the store's layer paths alone, and
the host image's sized root is a tmpfs it mounts (stage_tmpfs). Its ids are the sandbox identity's."""

import json

import pytest

from pysandbox import identity
from pysandbox.exception import InvalidError
from pysandbox.runtime import gvisor
from pysandbox.runtime.layout import STAGED_ROOT, Mount, OverlayRoot, RunnerInputs

BINARY = "/usr/bin/runsc"


def inputs(**overrides):
    options = dict(upper="/state/sb/upper", mounts=(), init="/native/sandbox-init", workdir="/repo",
                   network="none", source=lambda path: "/staged" + path)
    return RunnerInputs(**{**options, **overrides})


def configured(command):
    return json.loads(command.config)


def test_the_host_image_root_is_the_upper_directory_and_nothing_is_staged():
    command = gvisor.command(inputs(), BINARY)  # disk_bytes None: PYSANDBOX_WRITABLE_ROOT_MAX=0
    assert command.stage_overlay is None and command.stage_tmpfs is None
    assert configured(command)["root"]["path"] == "/staged/state/sb/upper"


def test_a_sized_host_image_root_is_a_tmpfs_the_supervisor_mounts_and_holds_tmp(monkeypatch):
    monkeypatch.setattr(identity, "current", lambda: identity.Identity(((0, 196608, 65536),), ((0, 200000, 65536),)))
    command = gvisor.command(inputs(disk_bytes=64 << 20, tmp_bytes=1 << 30), BINARY)
    assert command.stage_tmpfs == f"size={64 << 20},mode=755,uid=196608,gid=200000" and command.stage_overlay is None
    config = configured(command)
    assert config["root"]["path"] == STAGED_ROOT
    tmp = [mount for mount in config["mounts"] if mount["destination"] == "/tmp"]  # runsc's would be unsized
    assert tmp == [{"destination": "/tmp", "type": "bind", "source": f"{STAGED_ROOT}/tmp",
                    "options": ["rbind", "rw", "nosuid", "nodev"]}]  # the root's own: one budget, as under bwrap


def test_sandbox_ids_are_the_sandbox_identitys_host_range(monkeypatch):
    monkeypatch.setattr(identity, "current", lambda: identity.Identity(((0, 196608, 65536),), ((0, 200000, 65536),)))
    linux = configured(gvisor.command(inputs(), BINARY))["linux"]
    assert {"type": "user"} in linux["namespaces"]
    assert linux["uidMappings"] == [{"containerID": 0, "hostID": 196608, "size": 65536}]
    assert linux["gidMappings"] == [{"containerID": 0, "hostID": 200000, "size": 65536}]


def test_an_image_root_is_the_overlay_the_supervisor_mounts():
    image = OverlayRoot(("/layers/base", "/layers/pip"), "/state/sb/upper")
    volume = Mount("bind", "/volumes/v", "/data")
    command = gvisor.command(inputs(overlay=image, mounts=(volume,), dest=lambda path: "/in-image" + path), BINARY)
    assert command.stage_overlay == ("lowerdir=/staged/layers/pip:/staged/layers/base,"
                                     "upperdir=/staged/state/sb/upper/rootfs,workdir=/staged/state/sb/upper/work,"
                                     "userxattr")
    config = configured(command)
    assert config["root"]["path"] == STAGED_ROOT
    destinations = [mount["destination"] for mount in config["mounts"]]
    # Every mount point resolved in the image; none of the host image's (its python, its masks).
    assert destinations == ["/in-image/proc", "/in-image/tmp", "/in-image/dev/shm", "/in-image/data",
                            "/in-image/__pysandbox/init"]
    assert all({"nosuid", "nodev"} <= set(mount.get("options", ["nosuid", "nodev"])) for mount in config["mounts"])


def test_an_empty_image_is_its_upper_directory():
    command = gvisor.command(inputs(overlay=OverlayRoot((), "/state/sb/upper")), BINARY)
    assert command.stage_overlay is None
    assert configured(command)["root"]["path"] == "/staged/state/sb/upper/rootfs"


def test_rootless_runsc_runs_in_the_sandboxs_user_namespace_with_its_root_staged_there(monkeypatch):
    # An unprivileged caller: runsc is root of the sandbox's namespace (the supervisor's userns.c), whose ids are
    # the sandbox's own, so the OCI map is the identity over them; its root is staged in the sandbox's directory.
    monkeypatch.setattr(gvisor, "_rootless", lambda: True)
    monkeypatch.setattr(identity, "current", lambda: identity.Identity(
        ((0, 1001, 1), (1, 100000, 65535)), ((0, 1001, 1), (1, 100000, 65535)), newidmap=True))
    command = gvisor.command(inputs(disk_bytes=64 << 20), BINARY)
    assert command.stage == "/state/sb/stage" and command.nested_userns == gvisor.NESTED_USERNS
    assert command.stage_tmpfs == f"size={64 << 20},mode=755,uid=0,gid=0"  # the namespace's root
    config = configured(command)
    assert config["root"]["path"] == "/state/sb/stage/root"
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 0, "size": 1},
                                              {"containerID": 1, "hostID": 1, "size": 65535}]
    assert config["linux"]["gidMappings"] == config["linux"]["uidMappings"]


def test_rootless_runsc_with_nothing_to_stage_has_no_stage(monkeypatch):
    monkeypatch.setattr(gvisor, "_rootless", lambda: True)
    command = gvisor.command(inputs(), BINARY)  # disk_bytes None: the upper directory is the root
    assert command.stage is None and configured(command)["root"]["path"] == "/staged/state/sb/upper"


def test_root_runsc_makes_its_own_user_namespace():
    command = gvisor.command(inputs(disk_bytes=64 << 20), BINARY)
    assert command.stage is None and command.nested_userns is None


def test_a_rootless_caller_without_a_subordinate_range_is_refused(monkeypatch):
    monkeypatch.setattr(gvisor, "_rootless", lambda: True)
    monkeypatch.setattr(gvisor, "binary", lambda: BINARY)
    monkeypatch.setattr(identity, "current", lambda: identity.Identity(((0, 1001, 1),), ((0, 1001, 1),)))
    with pytest.raises(InvalidError, match="needs root here, or a subordinate id range for this user"):
        gvisor.check()
