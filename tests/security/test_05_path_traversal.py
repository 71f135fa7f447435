"""Matrix item 5: symlink, "..", hard link and /proc/self/root traversal in every
file API (sb.open, sb.ls/rm, sb.filesystem, the volume host API), including a
sandbox that swaps a symlink in a loop while the host copies in and out.
Every path must resolve inside the sandbox (or the volume); the host stays untouched."""

import errno
import io
import os

import pytest

import pysandbox as modal
from pysandbox.exception import SandboxFilesystemError, SandboxFilesystemNotFoundError

pytestmark = pytest.mark.rootless


@pytest.fixture
def host_marker(tmp_path):
    marker = tmp_path / "host-secret"
    marker.write_text("host data")
    os.chmod(tmp_path, 0o755)
    return marker


def test_symlinks_and_dotdot_resolve_inside_the_sandbox(sb, host_marker):
    # Code in the sandbox plants links to the host path; they resolve in the sandbox's root.
    sb.exec("sh", "-c", f"ln -s {host_marker} /tmp/link; ln -s /proc/1/root{host_marker} /tmp/proclink").wait()
    for path in ("/tmp/link", f"/../../..{host_marker}", f"{host_marker}"):
        with pytest.raises((FileNotFoundError, PermissionError)):
            sb.open(path)
    for path in ("/tmp/proclink", f"/proc/self/root{host_marker}"):  # init follows no magic link (red14)
        with pytest.raises(OSError) as refused:
            sb.open(path)
        assert refused.value.errno in (errno.ENOENT, errno.EACCES, errno.ELOOP), refused.value
    with pytest.raises((FileNotFoundError, PermissionError)):
        with sb.open("/tmp/link", "w") as f:  # would create through the dangling link: inside only
            f.write("overwritten")
    assert host_marker.read_text() == "host data"


@pytest.mark.gvisor
def test_dir_ops_resolve_inside_the_sandbox(sb, host_marker):
    sb.exec("ln", "-s", str(host_marker.parent), "/tmp/hostdir").wait()
    with pytest.raises(FileNotFoundError):
        sb.ls("/tmp/hostdir")
    with pytest.raises(FileNotFoundError):
        sb.rm(f"/tmp/hostdir/{host_marker.name}")
    assert host_marker.read_text() == "host data"


def test_filesystem_api_symlink_to_host_path_stays_inside(sb, host_marker):
    sb.exec("ln", "-s", str(host_marker), "/tmp/s").wait()
    with pytest.raises(SandboxFilesystemNotFoundError):
        sb.filesystem.read_text("/tmp/s")
    with pytest.raises(SandboxFilesystemNotFoundError):  # the target's directory exists only on the host
        sb.filesystem.write_text("inside", "/tmp/s")
    with pytest.raises(SandboxFilesystemError, match="No such file|symbolic links"):  # no magic link (red14)
        sb.filesystem.read_text(f"/proc/self/root/../..{host_marker}")
    assert host_marker.read_text() == "host data"


def test_racing_symlink_swaps_during_copies(sb, host_marker, tmp_path):
    # The sandbox flips /tmp/swap between its own file and a link to the host file,
    # atomically (rename over it), as fast as it can while the host copies in and out.
    sb.exec("sh", "-c", f"echo inside > /tmp/real; ln -s {host_marker} /tmp/evil; "
            "while :; do ln -f /tmp/real /tmp/r; mv -f /tmp/r /tmp/swap; "
            "ln -sfn /tmp/evil /tmp/e; mv -fT /tmp/e /tmp/swap; done")
    upload = tmp_path / "upload"
    upload.write_text("from host")
    local = tmp_path / "out" / "copy"
    outcomes = set()
    for _ in range(150):
        for step in (lambda: sb.filesystem.copy_to_local("/tmp/swap", local),
                     lambda: sb.filesystem.copy_from_local(upload, "/tmp/swap"),
                     lambda: outcomes.add(sb.filesystem.read_bytes("/tmp/swap"))):
            try:
                step()
            except SandboxFilesystemError:
                outcomes.add("error")
        if local.exists():
            outcomes.add(local.read_bytes())
    assert host_marker.read_text() == "host data"
    assert outcomes <= {b"inside\n", b"from host", "error"}  # never the host file's content


def test_hard_links_to_host_files_are_refused(sb, host_marker):
    # The host's files visible in the sandbox are on other mounts (or not the sandbox's):
    # linking them into writable places fails, so nothing writes through to them.
    result = sb.exec("sh", "-c", "ln /etc/hostname /tmp/hl 2>&1; ln /usr/bin/env /tmp/hl2 2>&1; echo done")
    output = result.stdout.read()
    assert output.count("ln: failed to create hard link") == 2 and output.endswith("done\n")
    with pytest.raises(SandboxFilesystemNotFoundError):
        sb.filesystem.read_text("/tmp/hl")


@pytest.mark.gvisor
def test_symlinks_planted_in_a_volume_stay_inside(sandboxes, host_marker):
    vol = modal.Volume.from_name("attack-vol", create_if_missing=True)
    sb = sandboxes(volumes={"/v": vol})
    sb.exec("sh", "-c", f"ln -s {host_marker} /v/link; ln -s / /v/rootlink; ln -s .. /v/up; "
            f"ln -s /proc/self/root /v/procroot").wait()
    for path in ("link", f"rootlink{host_marker}", f"up/up/up{host_marker}", f"procroot{host_marker}"):
        with pytest.raises(FileNotFoundError):
            b"".join(vol.read_file(path))
    with vol.batch_upload(force=True) as batch:  # writes through the link stay inside the volume
        batch.put_file(io.BytesIO(b"overwrite"), f"rootlink{host_marker}")
    vol.copy_files(["rootlink"], "copied", recursive=True)  # a link is copied as a link
    assert os.readlink(vol._directory() / "data" / "copied") == "/"
    assert host_marker.read_text() == "host data"
    vol.remove_file("link")
    assert host_marker.exists()
