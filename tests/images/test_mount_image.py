"""Modal 1.6's directory snapshots and image mounts: snapshot_directory, mount_image,
unmount_image, and image ids that exist as soon as Modal says they do."""

import os
import stat

import pytest

import pysandbox as modal
from pysandbox import identity, settings
from pysandbox._state import paths
from pysandbox.exception import InvalidError, NotFoundError, UnimplementedError
from pysandbox.image import store

from ..hoststate import host_id

pytestmark = pytest.mark.rootless


def run(sb, command):
    process = sb.exec("sh", "-c", command)
    out = process.stdout.read()
    assert process.wait() == 0, (command, out, process.stderr.read())
    return out


@pytest.fixture(scope="module")
def project(app, runner):
    """A directory snapshot: a file, a nested one, an executable, a symlink, an empty directory."""
    sb = modal.Sandbox.create(app=app)
    run(sb, "mkdir -p /project/src/pkg /project/empty && echo hello > /project/README && "
            "echo deep > /project/src/pkg/mod.py && printf '#!/bin/sh\\necho ran\\n' > /project/run.sh && "
            "chmod 0750 /project/run.sh && ln -s src/pkg/mod.py /project/link && mkfifo /project/fifo")
    image = sb.snapshot_directory("/project")
    sb.terminate()
    return image


def test_snapshot_directory_round_trip(project, sandboxes):
    assert project.object_id.startswith("im-")  # hydrated at once, as on Modal
    sb = sandboxes()
    sb.mount_image("/user_project", project)
    assert run(sb, "cat /user_project/README /user_project/link; /user_project/run.sh") == "hello\ndeep\nran\n"
    assert run(sb, "stat -c %a /user_project/run.sh; readlink /user_project/link; "
                   "test -p /user_project/fifo && test -d /user_project/empty && echo ok") == \
        "750\nsrc/pkg/mod.py\nok\n"
    assert sorted(entry.path for entry in sb.filesystem.list_files("/user_project")) == \
        ["/user_project/README", "/user_project/empty", "/user_project/fifo", "/user_project/link",
         "/user_project/run.sh", "/user_project/src"]


def test_mount_has_its_own_writable_layer_and_unmount_restores(project, sandboxes):
    first, second = sandboxes(), sandboxes()
    run(first, "mkdir -p /mnt/work && echo before > /mnt/work/original")
    first.mount_image("/mnt/work", project)
    second.mount_image("/data", project)
    assert run(first, "ls /mnt/work | grep -c original || true") == "0\n"  # existing contents hidden
    run(first, "echo changed > /mnt/work/README && echo new > /mnt/work/added && rm /mnt/work/link")
    assert run(second, "cat /data/README; ls /data") == "hello\nREADME\nempty\nfifo\nlink\nrun.sh\nsrc\n"
    first.unmount_image("/mnt/work")
    assert run(first, "ls /mnt/work; cat /mnt/work/original") == "original\nbefore\n"
    assert list(paths.SandboxDir.of(first.object_id).mounts.glob("[0-9]*")) == []  # its layer went with it
    with pytest.raises(InvalidError, match="exact path"):
        first.unmount_image("/mnt/work")


def test_mount_on_an_image_root_by_id(project, debian, sandboxes):
    sb = sandboxes(image=debian)
    by_id = modal.Image.from_id(project.object_id)
    assert by_id.object_id == project.object_id
    sb.mount_image("/usr/local/project", by_id)
    assert run(sb, "cat /usr/local/project/README; python3 -c 'print(1)'") == "hello\n1\n"
    sb.mount_image("/usr/local/project", modal.Image.from_scratch())  # stacks: the newest is on top
    assert run(sb, "ls -A /usr/local/project | wc -l") == "0\n"
    sb.unmount_image("/usr/local/project")
    assert run(sb, "cat /usr/local/project/README") == "hello\n"
    directory = paths.SandboxDir.of(sb.object_id).mounts
    sb.terminate(wait=True)
    assert not directory.exists()  # the supervisor's teardown removes every mount's layer


def test_a_built_image_mounts_and_scratch_is_empty_and_writable(debian, sandboxes):
    sb = sandboxes()
    sb.mount_image("/opt/debian", debian)
    assert run(sb, "test -x /opt/debian/usr/bin/apt-get && echo yes") == "yes\n"
    sb.mount_image("/scratch", modal.Image.from_scratch())
    assert run(sb, "ls -A /scratch | wc -l; echo x > /scratch/f && cat /scratch/f") == "0\nx\n"


@pytest.mark.gvisor
def test_image_ids(debian, sandboxes, tmp_path):
    assert modal.Image.from_id(debian.object_id).object_id == debian.object_id
    with pytest.raises(NotFoundError):
        modal.Image.from_id("im-" + "0" * 32)
    image = debian.env({"MOUNT_TEST": "1"})
    assert image.object_id is None
    sandboxes(image=image)
    assert image.object_id.startswith("im-")  # built for the sandbox


@pytest.mark.gvisor
def test_bad_arguments_fail_before_any_work(sandboxes, tmp_path):
    sb = sandboxes()
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidError, match="absolute"):
        sb.mount_image("relative", modal.Image.from_scratch())
    with pytest.raises(InvalidError, match="root"):
        sb.mount_image("/", modal.Image.from_scratch())
    with pytest.raises(TypeError, match="Image"):
        sb.mount_image("/x", "im-123")
    with pytest.raises(InvalidError, match="prebuilt"):
        sb.mount_image("/x", modal.Image.debian_slim())  # no id: nothing is built
    with pytest.raises(InvalidError, match="copy=True"):
        sb.mount_image("/x", modal.Image.from_scratch().add_local_file(tmp_path / "f", "/f"))
    with pytest.raises(InvalidError, match="absolute"):
        sb.unmount_image("x")
    with pytest.raises(InvalidError, match="absolute"):
        sb.snapshot_directory("x")
    with pytest.raises(InvalidError, match="ttl"):
        sb.snapshot_directory("/tmp", ttl=0)
    with pytest.raises(UnimplementedError, match="encryption"):
        sb.mount_image("/x", modal.Image.from_scratch(), _experimental_encryption_key=b"k" * 32)
    assert not paths.SandboxDir.of(sb.object_id).mounts.exists()


def test_paths_the_sandbox_cannot_hold_a_mount(sandboxes):
    sb = sandboxes()
    run(sb, "echo x > /file")
    with pytest.raises(InvalidError, match="read-only"):
        sb.mount_image("/usr/project", modal.Image.from_scratch())  # host image: /usr is the host's, read-only
    with pytest.raises(InvalidError, match="not a directory"):
        sb.mount_image("/file/x", modal.Image.from_scratch())
    assert list(paths.SandboxDir.of(sb.object_id).mounts.glob("[0-9]*")) == []  # failed mounts leave no layer


@pytest.mark.gvisor
def test_snapshot_directory_of_what_is_no_directory(sandboxes):
    sb = sandboxes()
    run(sb, "echo x > /file && ln -s /nowhere /dangling")
    with pytest.raises(InvalidError, match="does not exist"):
        sb.snapshot_directory("/missing")
    with pytest.raises(InvalidError, match="does not exist"):
        sb.snapshot_directory("/dangling")
    with pytest.raises(InvalidError, match="not a directory"):
        sb.snapshot_directory("/file")


@pytest.mark.gvisor
def test_snapshot_directory_keeps_the_tree(sandboxes):
    # Under gVisor the tree comes out as a stream (image/treestream.py): the same layer as the others make.
    sb = sandboxes()
    run(sb, "mkdir -p /t/sub/deeper /t/empty && echo data > /t/sub/deeper/f && head -c 200000 /dev/urandom > /t/big "
            "&& mkdir -m 0700 /t/private && chown 1000:1001 /t/private && chmod 4755 /t/sub && ln -s ../big /t/sub/l "
            "&& mkfifo -m 0640 /t/fifo && chmod 0751 /t && touch -d @1000000000 /t/sub/deeper/f")
    digest = run(sb, "md5sum < /t/big")
    image = sb.snapshot_directory("/t")
    rootfs = store.layer_dir(image.object_id[3:]) / "rootfs"
    modes = {str(path.relative_to(rootfs)): oct(path.lstat().st_mode) for path in rootfs.rglob("*")}
    assert modes == {"big": "0o100644", "empty": "0o40755", "fifo": "0o10640", "private": "0o40700",
                     "sub": "0o44755", "sub/deeper": "0o40755", "sub/deeper/f": "0o100644", "sub/l": "0o120777"}
    assert oct(rootfs.stat().st_mode) == "0o40751" and os.readlink(rootfs / "sub/l") == "../big"
    assert (rootfs / "sub/deeper/f").stat().st_mtime == 1000000000
    owner = settings.sandbox_owner()
    assert (rootfs.stat().st_uid, rootfs.stat().st_gid) == owner
    private = (rootfs / "private").stat()
    assert (private.st_uid, private.st_gid) == (host_id(identity.current().uids, 1000),
                                               host_id(identity.current().gids, 1001))
    reader = sandboxes(experimental_options={"runner": "bwrap"})  # mount_image is not the gVisor runner's
    reader.mount_image("/t", image)
    assert run(reader, "md5sum < /t/big; cat /t/sub/deeper/f; stat -c '%a %u:%g' /t/private") == \
        digest + "data\n700 1000:1001\n"


def test_snapshot_directory_of_a_mounted_image_and_of_an_image_root(project, debian, sandboxes):
    sb = sandboxes(image=debian)
    sb.mount_image("/srv/p", project)
    run(sb, "echo more >> /srv/p/README")
    again = sb.snapshot_directory("/srv/p")
    etc = sb.snapshot_directory("/etc/apt")
    other = sandboxes()
    other.mount_image("/p", again)
    other.mount_image("/apt", etc)
    assert run(other, "cat /p/README; test -d /apt/sources.list.d && echo apt") == "hello\nmore\napt\n"


def test_snapshot_keeps_owners_and_modes(sandboxes):
    sb = sandboxes()
    run(sb, "mkdir -m 0700 /d && touch /d/f && chmod 0604 /d/f")
    image = sb.snapshot_directory("/d")
    rootfs = store.layer_dir(image.object_id[3:]) / "rootfs"
    assert stat.S_IMODE(os.stat(rootfs).st_mode) == 0o700 and stat.S_IMODE(os.stat(rootfs / "f").st_mode) == 0o604
    other = sandboxes()
    other.mount_image("/d", image)
    assert run(other, "stat -c '%a %u' /d /d/f") == "700 0\n604 0\n"


def test_prune_keeps_the_layers_of_a_mounted_image(sandboxes):
    source = sandboxes()
    run(source, "mkdir /kept && echo kept > /kept/f")
    image = source.snapshot_directory("/kept")
    sb = sandboxes()
    sb.mount_image("/kept", image)
    # prune and `image rm` never remove a layer in use (prune(everything=True) here would also
    # take the session's debian image, which other tests use).
    assert image.object_id[3:] in store.layers_in_use()
    sb.unmount_image("/kept")
    assert image.object_id[3:] not in store.layers_in_use()
