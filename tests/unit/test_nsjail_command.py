"""The nsjail command line (pure logic): bwrap's inputs, translated."""

import os
import stat

import pytest

from pysandbox.runtime import confinement, nsjail
from pysandbox.runtime.layout import INIT_PATH, Mount


def argv(**overrides):
    options = dict(upper="/state/sb/upper", mounts=(), init="/native/sandbox-init", workdir="/repo",
                   entrypoint=("sleep", "1"), idle_timeout_ms=None, owner=(100000, 100000))
    return nsjail.command("/bin/nsjail", **{**options, **overrides})


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
    assert "--chroot /state/sb/upper --rw --cwd /repo" in joined
    assert "--time_limit 0" in joined and "--disable_rlimits" in joined
    assert "--seccomp" not in joined and "--cgroup" not in joined and "--disable_clone_newnet" not in joined
    assert [args[i + 1] for i, a in enumerate(args) if a == "--pass_fd"] == ["3", "4", "5", "6"]
    assert args[args.index("--") + 1:] == [INIT_PATH, "--idle-timeout-ms", "5000", "--pty", "--", "sleep", "1"]
    assert f"/native/sandbox-init:{INIT_PATH}" in args


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


def test_prepare_upper_makes_what_bwrap_dir_would(tmp_path):
    owner = (os.geteuid(), os.getegid())
    nsjail.prepare_upper(tmp_path, "/repo/src", owner)
    assert stat.S_IMODE((tmp_path / "root").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "repo" / "src").stat().st_mode) == 0o755
    nsjail.prepare_upper(tmp_path, "/usr/lib", owner)  # under a system directory: mounted, not made
    assert not (tmp_path / "usr").exists()
