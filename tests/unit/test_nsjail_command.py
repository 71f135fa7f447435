"""The nsjail command line (pure logic): bwrap's inputs, translated."""

import os

import pytest

from pysandbox.runtime import confinement, nsjail
from pysandbox.runtime.layout import INIT_PATH, Mount, OverlayRoot, RunnerInputs


def inputs(**overrides):
    options = dict(upper="/state/sb/upper", mounts=(), init="/native/sandbox-init", workdir="/repo")
    return RunnerInputs(**{**options, **overrides})


def argv(mask="/dev/null", **overrides):
    return nsjail.command("/bin/nsjail", inputs(**overrides), owner=(100000, 100000), mask=mask)


def test_mounts_translate():
    def source(path):
        return "/staged" + path

    assert nsjail.mount_args(Mount("ro-bind", "/usr", "/usr"), source) == ["--bindmount_ro", "/staged/usr:/usr"]
    assert nsjail.mount_args(Mount("bind", "/vol", "/data"), source) == ["--bindmount", "/staged/vol:/data"]
    assert nsjail.mount_args(Mount("symlink", "usr/bin", "/bin"), source) == ["--symlink", "usr/bin:/bin"]
    assert nsjail.mount_args(Mount("mask-file", "/dev/null", "/etc/shadow"), source) == \
        ["--bindmount_ro", "/dev/null:/etc/shadow"]
    assert nsjail.mount_args(Mount("mask-dir", "/dev/null", "/etc/ssh"), source) == \
        ["--mount", "none:/etc/ssh:tmpfs:mode=755"]


def test_identity_root_init_and_policies_left_to_pysandbox():
    args = argv(idle_timeout_ms=5000, pty=True)
    joined = " ".join(args)
    assert args[:2] == ["/bin/nsjail", "-Mo"]
    assert "--user 0:100000:1 --group 0:100000:1" in joined
    assert "--chroot /state/sb/upper --rw --cwd /" in joined
    assert "--time_limit 0" in joined and "--disable_rlimits" in joined
    assert "--seccomp" not in joined and "--cgroup" not in joined and "--disable_clone_newnet" not in joined
    assert [args[i + 1] for i, a in enumerate(args) if a == "--pass_fd"] == ["3", "4", "5", "6", "8"]
    assert "--keep_env" not in args  # init takes the sandbox's environment from its configuration
    assert args[args.index("--") + 1:] == [INIT_PATH, "--dir", "0700", "/root", "--chmod", "0700", "/root",
                                           "--dir", "0755", "/repo", "--chdir", "/repo",
                                           "--idle-timeout-ms", "5000", "--pty"]
    assert f"/native/sandbox-init:{INIT_PATH}" in args


def test_masked_files_get_the_unopenable_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PYSANDBOX_HOME", str(tmp_path))
    mask = nsjail.mask_file()
    assert os.stat(mask).st_mode & 0o7777 == 0 and os.path.getsize(mask) == 0
    assert nsjail.mask_file() == mask  # made once
    args = argv(mounts=(Mount("mask-file", "/dev/null", "/etc/shadow"),), mask=mask)
    assert f"{mask}:/etc/shadow" in args and "/dev/null:/etc/shadow" not in args


def test_proc_before_its_masks(monkeypatch):
    monkeypatch.setattr(confinement, "proc_masks", lambda: (("/proc/keys", False), ("/proc/scsi", True)))
    monkeypatch.setattr(nsjail, "proc_masks", confinement.proc_masks)
    assert nsjail.proc_args.__wrapped__() == (
        "--disable_proc", "--mount", "none:/proc:proc:ro",
        "--bindmount_ro", "/dev/null:/proc/keys",
        "--mount", "none:/proc/scsi:tmpfs:ro,mode=755",
    )


def test_a_colon_in_a_mount_point_is_refused():
    with pytest.raises(nsjail.InvalidError, match="separates paths"):
        nsjail.mount_args(Mount("bind", "/vol", "/data:x"), lambda path: path)


def test_init_makes_what_bwrap_dir_would():
    assert nsjail.init_dirs(inputs(workdir="/usr/lib")) == [  # under a system directory: mounted
        "--dir", "0700", "/root", "--chmod", "0700", "/root", "--chdir", "/usr/lib"]
    assert nsjail.init_dirs(inputs(workdir="/usr/lib", disk_bytes=1 << 20)) == [
        "--dir", "0700", "/root", "--chmod", "0700", "/root", "--dir", "1777", "/tmp",
        "--dir", "0755", "/usr/lib", "--chdir", "/usr/lib"]
    assert nsjail.init_dirs(inputs(workdir="/", overlay=OverlayRoot((), "/up"))) == [  # an image's /root keeps its mode
        "--dir", "0700", "/root", "--dir", "0755", "/", "--chdir", "/"]


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="workdir must be an absolute path"):
        inputs(workdir="repo")


def test_roots():
    assert nsjail.root_args("/up", str, None, None) == ["--chroot", "/up", "--rw"]
    assert nsjail.root_args("/up", str, 1 << 20, None) == ["--mount", "none:/:tmpfs:size=1048576,mode=755"]
    image = OverlayRoot(("/layers/base", "/layers/pip"), "/sb/upper")
    assert nsjail.root_args("/sb/upper", lambda path: "/staged" + path, None, image) == [
        "--mount", "none:/:overlay:lowerdir=/staged/layers/pip:/staged/layers/base,"
        "upperdir=/staged/sb/upper/rootfs,workdir=/staged/sb/upper/work,userxattr"]
    assert nsjail.root_args("/sb/upper", str, None, OverlayRoot((), "/sb/upper")) == [
        "--chroot", "/sb/upper/rootfs", "--rw"]


@pytest.mark.parametrize("path", ["/state,x/layers/a", "/state:x/layers/a"])
def test_a_layer_path_overlayfs_cannot_hold_is_refused(path):
    with pytest.raises(nsjail.InvalidError, match="overlayfs options"):
        nsjail.root_args("/up", str, None, OverlayRoot((path,), "/up"))
