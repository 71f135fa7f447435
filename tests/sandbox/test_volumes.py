"""Volumes: persistent directories mounted into sandboxes, and their host-side API."""

import asyncio
import io
import os
import re

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox.exception import AlreadyExistsError, InvalidError, NotFoundError

from ..hoststate import sandbox_dirs

pytestmark = pytest.mark.rootless


@pytest.mark.gvisor
def test_data_survives_sandboxes_and_is_shared(sandboxes):
    vol = modal.Volume.from_name("shared-vol", create_if_missing=True)
    first = sandboxes(volumes={"/data": vol})
    second = sandboxes(volumes={"/mnt/data": vol})
    assert first.exec("sh", "-c", "echo hello > /data/f && mkdir -p /data/d/e").wait() == 0
    assert second.exec("cat", "/mnt/data/f").stdout.read() == "hello\n"  # at once, no reload needed
    first.terminate(wait=True)
    third = sandboxes(volumes={"/data": modal.Volume.from_name("shared-vol")})
    assert third.exec("cat", "/data/f").stdout.read() == "hello\n"
    vol.commit()
    vol.reload()
    third.reload_volumes()
    assert sorted(e.path for e in vol.listdir("/")) == ["d", "f"]
    assert sorted(e.path for e in vol.listdir("/", recursive=True)) == ["d", "d/e", "f"]
    assert b"".join(vol.read_file("f")) == b"hello\n"
    assert vol.listdir("f")[0].type == modal.FileEntryType.FILE


def test_read_only_and_sub_path(sandboxes):
    vol = modal.Volume.from_name("ro-vol", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"data"), "/sub/file.txt")
    ro = sandboxes(volumes={"/ro": vol.with_mount_options(read_only=True)})
    assert ro.exec("cat", "/ro/sub/file.txt").stdout.read() == "data"
    assert ro.exec("touch", "/ro/new").wait() != 0
    sub = sandboxes(volumes={"/only": vol.with_mount_options(sub_path="sub")})
    assert sub.exec("ls", "/only").stdout.read() == "file.txt\n"
    with pytest.raises(InvalidError, match="Read-only"):
        vol.read_only().remove_file("sub/file.txt")


@pytest.mark.gvisor
def test_host_api(tmp_path):
    vol = modal.Volume.from_name("api-vol", create_if_missing=True)
    (tmp_path / "tree" / "inner").mkdir(parents=True)
    (tmp_path / "tree" / "a.txt").write_text("A")
    (tmp_path / "tree" / "inner" / "b.txt").write_text("B")
    with vol.batch_upload() as batch:
        batch.put_directory(tmp_path / "tree", "/up")
        batch.put_file(tmp_path / "tree" / "a.txt", "/single.txt")
    with pytest.raises(FileExistsError):
        with vol.batch_upload() as batch:
            batch.put_file(tmp_path / "tree" / "a.txt", "/single.txt")
    with vol.batch_upload(force=True) as batch:
        batch.put_file(io.BytesIO(b"new"), "/single.txt")
    assert b"".join(vol.read_file("single.txt")) == b"new"
    with pytest.raises(ValueError):
        with vol.batch_upload() as batch:
            batch.put_file(io.BytesIO(b"x"), "/dir/")
    vol.copy_files(["up/a.txt"], "up/inner")
    assert sorted(e.path for e in vol.listdir("up/inner")) == ["up/inner/a.txt", "up/inner/b.txt"]
    vol.remove_file("up/a.txt")
    with pytest.raises(IsADirectoryError):
        vol.remove_file("up")
    vol.remove_file("up", recursive=True)
    with pytest.raises(FileNotFoundError):
        b"".join(vol.read_file("up/a.txt"))
    with pytest.raises(InvalidError):
        vol.listdir("/**")
    assert vol.info().name == "api-vol" and vol.object_id.startswith("vo-")
    assert modal.Volume.from_id(vol.object_id).info().name == "api-vol"


def test_an_uploaded_local_file_keeps_its_mode(sandboxes, tmp_path):
    """Modal's put_file of a local path takes the file's own mode (a script stays executable); a file object,
    or an explicit mode=, gives 0o644 or that mode. pysandbox made every path 0o644. Set-id bits stay out."""
    (tmp_path / "tree").mkdir()
    for name, mode in [("run.sh", 0o755), ("private", 0o600), ("sticky", 0o4755)]:
        (tmp_path / "tree" / name).write_text("#!/bin/sh\necho ran\n")
        os.chmod(tmp_path / "tree" / name, mode)
    with modal.Volume.ephemeral() as vol:
        with vol.batch_upload() as batch:
            batch.put_directory(tmp_path / "tree", "/tree")
            batch.put_file(str(tmp_path / "tree" / "run.sh"), "/as-str.sh")
            batch.put_file(tmp_path / "tree" / "run.sh", "/explicit", mode=0o640)
            batch.put_file(io.BytesIO(b"x"), "/object")
        sb = sandboxes(volumes={"/v": vol})
        modes = sb.exec("sh", "-c", "cd /v && stat -c '%n %a' tree/run.sh tree/private tree/sticky as-str.sh "
                                    "explicit object && ./tree/run.sh").stdout.read().splitlines()
    assert modes == ["tree/run.sh 755", "tree/private 600", "tree/sticky 755", "as-str.sh 755", "explicit 640",
                     "object 644", "ran"]


def test_volume_objects_and_ephemeral(app):
    modal.Volume.objects.create("made-vol")
    with pytest.raises(AlreadyExistsError):
        modal.Volume.objects.create("made-vol")
    modal.Volume.objects.create("made-vol", allow_existing=True)
    assert "made-vol" in [v.name for v in modal.Volume.objects.list()]
    modal.Volume.rename("made-vol", "renamed-vol")
    assert modal.Volume.from_name("renamed-vol").info().name == "renamed-vol"
    modal.Volume.objects.delete("renamed-vol")
    with pytest.raises(NotFoundError):
        modal.Volume.objects.delete("renamed-vol")
    with modal.Volume.ephemeral() as vol:
        assert vol.listdir("/") == []
        sb = modal.Sandbox.create("sh", "-c", "echo e > /e/x", app=app, volumes={"/e": vol})
        sb.wait()
        assert b"".join(vol.read_file("x")) == b"e\n"
        directory = vol._directory()
    assert not directory.exists()


@pytest.mark.parametrize("path", ["/tmp/work/vol", "/mnt/x", "/data", "/root/x", "/a/./b/", "//twice"])
def test_modal_mount_points_work_on_the_host_image(sandboxes, path):
    # Modal's rule: any canonical path but /, /root and /tmp themselves.
    with modal.Volume.ephemeral() as vol:
        where = "/" + path.strip("/").replace("/./", "/")
        sb = sandboxes("sh", "-c", f"echo in > {where}/f && stat -c %a /tmp /root", volumes={path: vol})
        assert sb.wait(raise_on_termination=False) is None and sb.returncode == 0, sb.stderr.read()
        assert sb.stdout.read().split() == ["1777", "700"]  # a mount point inside leaves them as they were
        assert b"".join(vol.read_file("f")) == b"in\n"


MODAL_REFUSALS = {  # Modal 1.6.4's messages (modal/_utils/mount_utils.py)
    "relative": "Volume relative must be a canonical, absolute path.",
    "/a/../b": "Volume /a/../b must be a canonical, absolute path.",
    "/": "Volume / cannot be mounted into root directory.",
    "/root": "Volume /root cannot be mounted at '/root'.",
    "/tmp/": "Volume /tmp cannot be mounted at '/tmp'.",
}
LOCAL_REFUSALS = {  # what only a local sandbox has: the kernel's directories, init's, the host's own
    "/proc/x": "under /proc: the sandbox's /proc is the kernel's",
    "/sys": "under /sys",
    "/dev/v": "under /dev",
    "/__pysandbox": "holds the sandbox's init",
    "/__pysandbox/init": "holds the sandbox's init",
    "/usr/local/x": "on the host image: /usr is the host's own, shared read-only.*or start the sandbox from an image",
    "/etc": "on the host image: /etc is the host's own",
    "/etc/ssh": "on the host image: /etc is the host's own",  # a masked secret stays masked
    "/bin/x": "on the host image: /bin is the host's own",
}


@pytest.mark.parametrize("path", [*MODAL_REFUSALS, *LOCAL_REFUSALS])
@pytest.mark.gvisor
def test_refused_mount_points_say_why_before_any_work(app, path):
    vol = modal.Volume.from_name("paths-vol", create_if_missing=True)
    before = sandbox_dirs()
    message = re.escape(MODAL_REFUSALS[path]) if path in MODAL_REFUSALS else LOCAL_REFUSALS[path]
    with pytest.raises(InvalidError, match=message):
        modal.Sandbox.create(app=app, volumes={path: vol})
    assert sandbox_dirs() == before


@pytest.mark.gvisor
def test_a_mount_point_is_a_str_or_a_path(app):
    vol = modal.Volume.from_name("paths-vol", create_if_missing=True)
    with pytest.raises(InvalidError, match="mount paths must be str or PurePosixPath"):
        modal.Sandbox.create(app=app, volumes={3: vol})
    with pytest.raises(InvalidError, match="is not usable as a volume"):
        modal.Sandbox.create(app=app, volumes={"/v": "not a volume"})


@pytest.mark.gvisor
def test_same_volume_twice_and_missing_volume(app):
    vol = modal.Volume.from_name("twice-vol", create_if_missing=True)
    with pytest.raises(InvalidError, match="two paths"):
        modal.Sandbox.create(app=app, volumes={"/a": vol, "/b": vol})
    with pytest.raises(NotFoundError):
        modal.Sandbox.create(app=app, volumes={"/a": modal.Volume.from_name("never-made")})
    other = modal.Volume.from_name("twice-vol-2", create_if_missing=True)
    with pytest.raises(InvalidError, match="Two volumes"):
        modal.Sandbox.create(app=app, volumes={"/a": vol, "/a/": other})


def test_files_written_by_sandbox_root_belong_to_the_sandbox_user(sandboxes):
    vol = modal.Volume.from_name("owner-vol", create_if_missing=True)
    sb = sandboxes(volumes={"/o": vol})
    sb.exec("touch", "/o/by-sandbox").wait()
    owner = os.stat(vol._directory() / "data" / "by-sandbox").st_uid
    assert owner != 0 and owner == settings.sandbox_owner()[0]


@pytest.mark.gvisor
def test_volume_cli(tmp_path, state_home):
    import subprocess
    import sys

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pysandbox", "volume", *args], capture_output=True,
                              text=True, env=os.environ)

    local = tmp_path / "f.txt"
    local.write_text("via cli")
    assert cli("create", "cli-vol").returncode == 0
    assert "cli-vol" in cli("ls").stdout.split()
    assert cli("put", "cli-vol", str(local), "/dir/f.txt").returncode == 0
    assert cli("put", "cli-vol", str(local), "/dir/f.txt").returncode == 1  # exists, no --force
    assert "dir/f.txt" in cli("ls", "cli-vol", "/", "-r").stdout
    assert cli("get", "cli-vol", "/dir/f.txt", str(tmp_path / "back")).returncode == 0
    assert (tmp_path / "back").read_text() == "via cli"
    assert cli("rm", "cli-vol").returncode == 0
    missing = cli("rm", "cli-vol")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


@pytest.mark.gvisor
def test_copy_directories_like_cp_r(tmp_path):
    vol = modal.Volume.from_name("copy-vol", create_if_missing=True)
    with vol.batch_upload() as batch:
        batch.put_file(io.BytesIO(b"1"), "/src/one.txt")
        batch.put_file(io.BytesIO(b"2"), "/src/deep/two.txt")
    os.symlink("/etc/passwd", vol._directory() / "data" / "src" / "link")  # as sandbox code could plant it
    with pytest.raises(IsADirectoryError, match="recursive=True"):
        vol.copy_files(["src"], "dst")
    vol.copy_files(["src"], "dst", recursive=True)  # dst missing: becomes the copy
    vol.copy_files(["src"], "dst", recursive=True)  # dst a directory: the copy goes inside it
    paths = sorted(e.path for e in vol.listdir("dst", recursive=True))
    assert paths == ["dst/deep", "dst/deep/two.txt", "dst/link", "dst/one.txt",
                     "dst/src", "dst/src/deep", "dst/src/deep/two.txt", "dst/src/link", "dst/src/one.txt"]
    assert os.readlink(vol._directory() / "data" / "dst" / "link") == "/etc/passwd"  # copied as a link
    assert b"".join(vol.read_file("dst/src/deep/two.txt")) == b"2"
    with pytest.raises(InvalidError, match="into itself"):
        vol.copy_files(["src"], "src/deep", recursive=True)


@pytest.mark.gvisor
def test_batch_upload_and_ephemeral_async():
    async def main():
        async with modal.Volume.ephemeral() as vol:
            async with vol.batch_upload() as batch:
                batch.put_file(io.BytesIO(b"a"), "/a")
            async with vol.batch_upload.aio(force=True) as batch:
                batch.put_file(io.BytesIO(b"b"), "/a")
            return [chunk async for chunk in vol.read_file.aio("a")]

    assert asyncio.run(main()) == [b"b"]
