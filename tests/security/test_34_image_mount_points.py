"""Red-team finding F5: an image's symlinks never lead a runner to a host path.

A runner makes its mount points (/tmp, /proc, /dev, the volumes', resolv.conf, init's) and
used to make the working directory and /root, at paths of the image, before the image is the
sandbox's root: an image whose /tmp, /w or /mnt is a symlink to a host directory
("/oldroot/..." is where bwrap keeps the host's root meanwhile; nsjail resolves on the host
itself) had it create directories and files there, as the sandbox's identity. Now every such
path is resolved inside the image first (_overlay.LayerView) and the directories are made by
init, inside. The sandbox still works: it sees its symlinks and everything behind them.
"""

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import pysandbox as modal
from pysandbox._state import paths
from pysandbox.exception import InvalidError
from pysandbox.runtime import gvisor
from pysandbox.runtime.layout import STAGE_DIR

pytestmark = pytest.mark.rootless

WRITER = r"""
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv)
{
  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd))
    return 2;
  printf("cwd %s\n", cwd);
  for (int i = 1; i < argc; i++) {
    int fd = open(argv[i], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    printf("%s %s\n", argv[i], fd >= 0 ? "written" : "refused");
    if (fd >= 0)
      close(fd);
  }
  return 0;
}
"""


@pytest.fixture(scope="module")
def victim():
    """A host directory the sandbox identity could write to, were it ever led there."""
    top = Path(tempfile.mkdtemp(prefix="pysandbox-victim-"))
    top.chmod(0o777)
    yield top
    shutil.rmtree(top, ignore_errors=True)


@pytest.fixture(scope="module")
def writer(tmp_path_factory):
    """A static program that prints its working directory and creates the files it is given."""
    top = tmp_path_factory.mktemp("writer")
    (top / "writer.c").write_text(WRITER)
    subprocess.run(["cc", "-static", "-O1", "-o", str(top / "writer"), str(top / "writer.c")], check=True)
    return top / "writer"


def _image(tmp_path_factory, writer, links):
    tree = tmp_path_factory.mktemp("image")
    (tree / "bin").mkdir()
    shutil.copy(writer, tree / "bin" / "writer")
    for name, target in links.items():
        os.symlink(target, tree / name)
    return modal.Image.from_scratch().add_local_dir(tree, "/", copy=True)


@pytest.fixture(scope="module")
def hostile_image(victim, writer, tmp_path_factory):
    return _image(tmp_path_factory, writer, {"tmp": f"/oldroot{victim}/tmp", "w": f"/oldroot{victim}", "mnt": str(victim), "root": str(victim),
             "proc": f"/oldroot{victim}/proc", "dev": f"/oldroot{victim}/dev", "__pysandbox": f"/oldroot{victim}/ps",
             "etc": f"/oldroot{victim}/etc", "data": "/shared", "everything": "/"})


def _assert_untouched(victim: Path) -> None:
    assert sorted(os.listdir(victim)) == [], "a runner made something on the host"


@pytest.mark.gvisor
def test_image_symlinks_lead_nowhere_on_the_host(sandboxes, hostile_image, victim):
    volume = modal.Volume.from_name("image-mount-points", create_if_missing=True)
    sb = sandboxes("/bin/writer", "/tmp/t", "/root/r", "here", "/mnt/vol/v", image=hostile_image,
                   workdir="/w/work", volumes={"/mnt/vol": volume})
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 0, sb.stderr.read()
    out = sb.stdout.read().splitlines()
    assert out[0] == f"cwd /oldroot{victim}/work"  # the image's own path, made inside the sandbox
    assert out[1:] == ["/tmp/t written", "/root/r written", "here written", "/mnt/vol/v written"]
    _assert_untouched(victim)
    assert b"".join(volume.read_file("v")) == b""  # the volume was mounted where the image said


# Under gVisor the supervisor mounts the image's overlay on the host (in the runner's own mount namespace, at
# layout.STAGED_ROOT, beside the staged host paths) and runsc serves it as the root: links to the stage, to the
# host's root through /proc and to host files lead only into gVisor's own tree, and nothing stays mounted.
@pytest.mark.gvisor(only=True)
def test_under_gvisor_links_to_the_stage_and_the_host_stay_inside(sandboxes, writer, victim, tmp_path_factory):
    links = {"stage": STAGE_DIR, "staged": f"{STAGE_DIR}/0/v", "hostroot": "/proc/1/root", "shadow": "/etc/shadow",
             "v": str(victim), "w": f"{victim}/work", "root": str(victim), "etc": f"{victim}/etc"}
    image = _image(tmp_path_factory, writer, links)
    shadow = _fingerprint("/etc/shadow")
    targets = ["/stage/s", "/staged", "/hostroot/h", f"/hostroot{victim}/p", "/shadow", "/v/x", "/root/r"]
    with modal.Volume.ephemeral() as volume:  # staged: /run/pysandbox-stage/0 on the runner's side
        sb = sandboxes("/bin/writer", *targets, image=image, workdir="/w", volumes={"/data": volume})
        sb.wait(raise_on_termination=False)
        assert sb.returncode == 0, sb.stderr.read()
        out = sb.stdout.read().splitlines()
        assert [entry.path for entry in volume.listdir("/")] == []
    assert out[0] == f"cwd {victim}/work"  # made inside the sandbox, where the image's links say
    assert len(out) == 1 + len(targets), out
    _assert_untouched(victim)
    assert _fingerprint("/etc/shadow") == shadow
    if os.geteuid() == 0:
        assert os.listdir(STAGE_DIR) == [], "the stage (and the image's overlay in it) is visible on the host"
    else:  # an unprivileged caller's stage is the sandbox's own, gone with it
        assert not os.path.lexists(gvisor.rootless_stage(str(paths.sandbox_dir(sb.object_id))))


def _fingerprint(path: str):
    """What changes when a file is written (a rootless caller cannot read /etc/shadow)."""
    info = os.stat(path)
    return info.st_ino, info.st_size, info.st_mtime_ns


def test_an_image_root_linked_to_a_missing_directory_still_works(sandboxes, hostile_image, victim):
    # /root -> a host path, which in the image is missing: init makes the link's target, inside.
    sb = sandboxes("/bin/writer", "/root/r", image=hostile_image)
    sb.wait(raise_on_termination=False)
    assert sb.returncode == 0, sb.stderr.read()
    assert sb.stdout.read().splitlines() == ["cwd /", "/root/r written"]
    _assert_untouched(victim)


def test_a_mount_point_inside_a_volume_is_refused(sandboxes, hostile_image):
    # A runner would make it by following the volume's files, which sandboxes write.
    outer = modal.Volume.from_name("outer-volume", create_if_missing=True)
    inner = modal.Volume.from_name("inner-volume", create_if_missing=True)
    with pytest.raises(InvalidError, match="inside the volume mounted at /shared"):
        sandboxes("/bin/writer", image=hostile_image, volumes={"/shared": outer, "/data/x": inner})
    with pytest.raises(InvalidError, match="inside the volume mounted at /v"):
        sandboxes("/bin/writer", volumes={"/v": outer, "/v/in": inner})
    with pytest.raises(InvalidError, match=r"inside the volume mounted at /everything \(the image makes it /\)"):
        sandboxes("/bin/writer", image=hostile_image, volumes={"/everything": outer})


# Red-team, second round: the runner mounts its own /proc and /dev before the other mount points,
# and their links lead into the runner's root (the host: /oldroot under bwrap, / under nsjail).
THROUGH_PROC = {
    "resolv.conf through /proc/self/root": ("etc", "/proc/self/root/oldroot{victim}/etc", {}),
    "resolv.conf, nsjail's root": ("etc", "/proc/self/root{victim}/etc", {}),
    "/tmp through /proc/self/root": ("tmp", "/proc/self/root/oldroot{victim}/tmp", {}),
    "/dev through /proc/self/root": ("dev", "/proc/self/root/oldroot{victim}/dev", {}),
    "a volume through /dev/fd": ("data", "/dev/fd/0/data", {"volume": "/data/v"}),
    "a volume through /proc/self/cwd": ("data", "/proc/self/cwd/oldroot{victim}", {"volume": "/data/v"}),
}


@pytest.mark.parametrize("case", THROUGH_PROC, ids=list(THROUGH_PROC))
def test_a_link_through_the_runners_proc_or_dev_is_refused(sandboxes, writer, victim, tmp_path_factory, case):
    name, target, options = THROUGH_PROC[case]
    image = _image(tmp_path_factory, writer, {name: target.format(victim=victim)})
    volumes = {options["volume"]: modal.Volume.from_name("through-proc", create_if_missing=True)} \
        if "volume" in options else {}
    with pytest.raises(InvalidError, match="whose links lead out of the sandbox"):
        sandboxes("/bin/writer", image=image, volumes=volumes)
    _assert_untouched(victim)


# Issue 15: volumes under /tmp and an image's system directories. The image's /tmp is hidden by the
# sandbox's own tmpfs, so its links there lead nowhere; everywhere else they are resolved inside it.
def test_volumes_under_tmp_and_system_directories_of_an_image(sandboxes, writer, victim, tmp_path_factory):
    tree = tmp_path_factory.mktemp("image")
    for directory in ("bin", "tmp", "usr/local"):
        (tree / directory).mkdir(parents=True)
    shutil.copy(writer, tree / "bin" / "writer")
    for name in ("w", "h"):
        os.symlink(f"/oldroot{victim}", tree / "tmp" / name)  # hidden by /tmp's tmpfs
    os.symlink("/tmp/h", tree / "usr" / "local" / "l")  # into /tmp, where the image's link is hidden too
    image = modal.Image.from_scratch().add_local_dir(tree, "/", copy=True)
    with modal.Volume.ephemeral() as under_tmp, modal.Volume.ephemeral() as local, \
            modal.Volume.ephemeral() as linked:
        sb = sandboxes("/bin/writer", "/tmp/w/v/a", "/usr/local/x/b", "/usr/local/l/v/c", image=image,
                       volumes={"/tmp/w/v": under_tmp, "/usr/local/x": local, "/usr/local/l/v": linked})
        sb.wait(raise_on_termination=False)
        assert sb.returncode == 0, sb.stderr.read()
        assert sb.stdout.read().split("\n")[1:4] == ["/tmp/w/v/a written", "/usr/local/x/b written",
                                                     "/usr/local/l/v/c written"]
        assert [entry.path for volume in (under_tmp, local, linked) for entry in volume.listdir("/")] == \
            ["a", "b", "c"]
    _assert_untouched(victim)


def test_a_volume_under_a_tmp_the_image_links_to_the_host(sandboxes, hostile_image, victim):
    with modal.Volume.ephemeral() as volume:
        sb = sandboxes("/bin/writer", "/tmp/x/vol/v", image=hostile_image, volumes={"/tmp/x/vol": volume})
        sb.wait(raise_on_termination=False)
        assert sb.returncode == 0, sb.stderr.read()
        assert sb.stdout.read().splitlines()[1:] == ["/tmp/x/vol/v written"]
        assert [entry.path for entry in volume.listdir("/")] == ["v"]
    _assert_untouched(victim)


def test_a_volume_over_inits_directory_is_refused(sandboxes, writer, victim, tmp_path_factory):
    # The image leads /ctl to /__pysandbox: a volume there would hide sandbox-init (or be its parent).
    image = _image(tmp_path_factory, writer, {"ctl": "/__pysandbox", "deep": "/__pysandbox/init"})
    for path in ("/ctl", "/deep"):
        with modal.Volume.ephemeral() as volume:
            with pytest.raises(InvalidError, match="pysandbox mounts itself, would be mounted inside the volume"):
                sandboxes("/bin/writer", image=image, volumes={path: volume})
    _assert_untouched(victim)
