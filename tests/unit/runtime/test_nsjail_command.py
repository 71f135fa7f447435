"""The nsjail command line and configuration file (pure logic): bwrap's inputs, translated.
What every runner gives is in test_runners_contract.py."""


import pytest

from pysandbox.exception import InvalidError
from pysandbox.runtime import confinement, nsjail
from pysandbox.runtime.layout import INIT_PATH, Mount, OverlayRoot, RunnerInputs


def inputs(**overrides):
    options = dict(upper="/state/sb/upper", mounts=(), init="/native/sandbox-init", workdir="/repo")
    return RunnerInputs(**{**options, **overrides})


def argv(**overrides):
    return list(nsjail.command(inputs(**overrides), "/bin/nsjail").argv)


def config_lines(**overrides):
    return nsjail.configuration(inputs(**overrides)).decode().splitlines()


def test_mounts_translate():
    def source(path):
        return "/staged" + path

    assert nsjail.mount_point(Mount("ro-bind", "/usr", "/usr"), source, "/usr").text() == \
        'mount { src: "/staged/usr" dst: "/usr" is_bind: true rw: false nosuid: true nodev: true }'
    assert nsjail.mount_point(Mount("bind", "/vol", "/data"), source, "/data").text() == \
        'mount { src: "/staged/vol" dst: "/data" is_bind: true rw: true nosuid: true nodev: true }'
    assert nsjail.mount_point(Mount("symlink", "usr/bin", "/bin"), source, "/bin").text() == \
        'mount { src: "usr/bin" dst: "/bin" is_symlink: true }'
    assert nsjail.mount_point(Mount("mask-dir", "/dev/null", "/etc/ssh"), source, "/etc/ssh").text() == \
        'mount { dst: "/etc/ssh" fstype: "tmpfs" options: "mode=755" rw: true nosuid: true nodev: true }'


def test_masked_files_are_a_nodev_dev_null():
    # nodev: opening it fails with EACCES, as under bwrap.
    assert nsjail.mount_point(Mount("mask-file", "/dev/null", "/etc/shadow"), str, "/etc/shadow") == \
        nsjail.MountPoint("/etc/shadow", "/dev/null", is_bind=True, rw=False, nodev=True)


@pytest.mark.parametrize("path, quoted", [
    ("/data:x", '"/data:x"'), ('/a"b\\c', '"/a\\"b\\\\c"'), ("/new\nline", '"/new\\012line"'),
    ("/caf\u00e9", '"/caf\\303\\251"'),
])
def test_paths_are_quoted_for_the_text_format(path, quoted):
    assert nsjail._quote(path) == quoted


def test_namespace_root_init_and_policies_left_to_pysandbox():
    args = argv(idle_timeout_ms=5000, pty=True, sandbox_id="sb-x")
    joined = " ".join(args)
    assert args[:3] == ["/bin/nsjail", "--config", "/proc/self/fd/9"]  # first: it replaces what came before
    assert "-Mo" in args and "--disable_proc" in args
    assert "--disable_clone_newuser" in args and "--user" not in args  # it runs in the sandbox's user namespace
    assert "--cwd /" in joined and "--cap CAP_SETUID" in joined and "--cap CAP_SYS_ADMIN" not in joined
    assert "--time_limit 0" in joined and "--disable_rlimits" in joined
    assert "--seccomp" not in joined and "--cgroup" not in joined
    assert "--mount" not in args and "--bindmount" not in args and "--chroot" not in args  # all in the file
    assert [args[i + 1] for i, a in enumerate(args) if a == "--pass_fd"] == ["3", "4", "5", "6", "8"]
    assert "--keep_env" not in args  # init takes the sandbox's environment from its configuration
    assert args[args.index("--") + 1:] == [INIT_PATH, "--sandbox", "sb-x", "--dir", "0700", "/root",
                                           "--chmod", "0700", "/root", "--dir", "0755", "/repo",
                                           "--chdir", "/repo", "--idle-timeout-ms", "5000", "--pty"]


@pytest.mark.parametrize("network, passed", [("none", ["3", "4", "5", "6", "8"]),
                                              ("default", ["3", "4", "5", "6", "8", "7"])])
def test_the_default_network_passes_its_handshake_fd(network, passed):
    # nsjail closes every fd it is not told to pass (bwrap passes them on as they are).
    args = argv(network=network)
    assert [args[i + 1] for i, a in enumerate(args) if a == "--pass_fd"] == passed
    assert "--disable_clone_newnet" in args  # whatever the mode: the supervisor's runner child made it


def test_the_configuration_travels_with_the_command():
    assert nsjail.command(inputs(), "/bin/nsjail").config == nsjail.configuration(inputs())


def test_the_configuration_mounts_in_order():
    lines = config_lines(mounts=(Mount("bind", "/vol", "/data"),), shm_bytes=1 << 20, tmp_bytes=2 << 20)
    dsts = [line.split('dst: "')[1].split('"')[0] for line in lines]
    assert dsts[0] == "/" and 'src: "/state/sb/upper"' in lines[0] and "rw: true" in lines[0]
    assert dsts.index("/proc") < dsts.index("/dev") < dsts.index("/dev/shm") < dsts.index("/tmp") < \
        dsts.index("/data") < dsts.index(INIT_PATH) == len(dsts) - 1
    assert 'options: "mode=755,size=65536" rw: false' in lines[dsts.index("/dev")]  # read-only once made
    assert 'options: "mode=1777,size=1048576"' in lines[dsts.index("/dev/shm")]
    assert 'options: "mode=1777,size=2097152"' in lines[dsts.index("/tmp")]
    assert "nosuid: true nodev: true" in lines[dsts.index("/data")]
    assert "nodev: false" in lines[dsts.index("/dev/null")]  # the only mounts with devices


def test_proc_before_its_masks(monkeypatch):
    monkeypatch.setattr(confinement, "proc_masks", lambda: (("/proc/keys", False), ("/proc/scsi", True)))
    monkeypatch.setattr(nsjail, "proc_masks", confinement.proc_masks)
    assert nsjail.proc_mounts.__wrapped__() == (
        nsjail.MountPoint("/proc", fstype="proc"),
        nsjail.MountPoint("/proc/keys", "/dev/null", is_bind=True),
        nsjail.MountPoint("/proc/scsi", fstype="tmpfs", options="mode=755"),
    )


def test_roots():
    assert nsjail.root_mount(inputs()) == nsjail.MountPoint("/", "/state/sb/upper", is_bind=True, rw=True)
    assert nsjail.root_mount(inputs(disk_bytes=1 << 20)) == \
        nsjail.MountPoint("/", fstype="tmpfs", options="size=1048576,mode=755", rw=True)
    image = OverlayRoot(("/layers/base", "/layers/pip"), "/sb/upper")
    assert nsjail.root_mount(inputs(overlay=image, source=lambda path: "/staged" + path)).options == (
        "lowerdir=/staged/layers/pip:/staged/layers/base,"
        "upperdir=/staged/sb/upper/rootfs,workdir=/staged/sb/upper/work,userxattr")
    assert nsjail.root_mount(inputs(overlay=OverlayRoot((), "/sb/upper"))).src == "/sb/upper/rootfs"


@pytest.mark.parametrize("path", ["/state,x/layers/a", "/state:x/layers/a"])
def test_a_layer_path_overlayfs_cannot_hold_is_refused(path):
    with pytest.raises(InvalidError, match="The nsjail runner cannot lay out an image .* overlayfs options"):
        nsjail.root_mount(inputs(overlay=OverlayRoot((path,), "/up")))
