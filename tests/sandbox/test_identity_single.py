"""Issue 13, an unprivileged caller without a subordinate id range (or without newuidmap):
sandbox root is the caller and no other id is mapped. Sandboxes, volumes and images still work;
what needs other ids fails plainly inside the sandbox, and `pysandbox doctor` says so.
.ci/run runs this file as a system user, which `useradd` gives no range."""

import io
import os
import tarfile

import psutil
import pytest

import pysandbox as modal
from pysandbox import doctor, identity
from pysandbox.exception import InvalidError

from .. import oci
from ..hoststate import sandbox_dirs

pytestmark = [pytest.mark.rootless, pytest.mark.skipif(
    identity.current().size != 1, reason="this caller has a subordinate id range: test_identity.py covers it")]


def run(sb, script, status=0):
    p = sb.exec("sh", "-c", script)
    out, err = p.stdout.read(), p.stderr.read()
    assert p.wait() == status, err
    return out + err


def test_only_sandbox_root_is_mapped_and_it_is_the_caller(sb):
    assert run(sb, "cat /proc/self/uid_map").split() == ["0", "0", "1"]  # one id, of the namespace around it
    assert run(sb, "id -u; stat -c %u /proc/1") == "0\n0\n"
    inside = psutil.Process(sb._record.supervisor.pid).children(recursive=True)
    assert inside and {proc.uids().real for proc in inside} == {os.geteuid()}  # the host sees the caller


def test_switching_user_fails_inside_and_doctor_says_why(sb):
    assert "Invalid argument" in run(sb, "touch /tmp/f && chown 1000 /tmp/f", status=1)
    assert "setresuid failed: Invalid argument" in run(sb, "setpriv --reuid=1000 true 2>&1 || true")
    finding = doctor.identity()
    assert not finding.ok and "no subordinate range" in finding.detail and "su, setpriv" in finding.disables


def test_volume_files_belong_to_the_caller(sandboxes):
    vol = modal.Volume.from_name("single-id-vol", create_if_missing=True)
    first = sandboxes(volumes={"/v": vol})
    run(first, "echo mine > /v/f")
    first.terminate(wait=True)
    assert b"".join(vol.read_file("f")) == b"mine\n"
    second = sandboxes(volumes={"/v": vol})
    assert run(second, "stat -c '%u %g' /v/f; cat /v/f") == "0 0\nmine\n"


def test_an_image_whose_files_belong_to_other_users_still_unpacks(sandboxes, tmp_path):
    # Their owners cannot be kept (only sandbox root is mapped): they become sandbox root's.
    layout = tmp_path / "layout"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        info = tarfile.TarInfo("srv/theirs")
        info.size, info.mode, info.uid, info.gid = 5, 0o640, 1000, 1000
        archive.addfile(info, io.BytesIO(b"data\n"))
    layers = [(oci.tar(oci.shell_entries() + [("srv", None, 0o755)]), oci.LAYER), (buffer.getvalue(), oci.LAYER)]
    oci.write_layout(layout, "owned", layers)
    with oci.docker_registry(tmp_path) as host:
        oci.push(layout, "owned", host, "test/owned:1")
        sb = sandboxes("/bin/sh", "-c", "while read line; do :; done",
                       image=modal.Image.from_registry(f"{host}/test/owned:1"))
        assert run(sb, "read line < /srv/theirs; echo $line") == "data\n"


def test_gvisor_is_refused_before_any_work_and_doctor_says_why(app):
    # runsc runs as root of the sandbox's user namespace and maps its Sentry to that namespace's nobody
    # (runtime/gvisor.py): a namespace of the caller's uid alone has no nobody.
    before = sandbox_dirs()
    with pytest.raises(InvalidError, match="gVisor runner needs root here, or a subordinate id range"):
        modal.Sandbox.create(app=app, runtime="gvisor", block_network=True)
    assert sandbox_dirs() == before
    finding = doctor.gvisor_runner()
    assert not finding.ok and "subordinate id range" in finding.detail
