"""The gvisor runner's root (runtime/gvisor.py): runsc takes a directory, so an image's overlay is mounted by
the supervisor (RunnerCommand.stage_overlay, native/supervisor/stage.h) from the store's layer paths alone, and
the host image's sized root is a tmpfs it mounts (stage_tmpfs). Its ids are the sandbox identity's."""

import json

from pysandbox import identity
from pysandbox.runtime import gvisor
from pysandbox.runtime.layout import STAGED_ROOT, STAGED_ROOT_TMP, Mount, OverlayRoot, RunnerInputs

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
    assert tmp == [{"destination": "/tmp", "type": "bind", "source": STAGED_ROOT_TMP,
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
