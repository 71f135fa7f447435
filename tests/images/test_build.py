"""Recipes built into layers, sandboxes started from them, failures that leave nothing behind."""

import asyncio
import os
import subprocess
import sys

import pytest

import pysandbox as modal
from pysandbox import settings
from pysandbox.exception import ImageBuildError, InvalidError, NotFoundError, UnimplementedError
from pysandbox.image import store

from .conftest import builder_sandbox_count, temp_dirs

pytestmark = pytest.mark.rootless


def run(sb, command):
    p = sb.exec("sh", "-c", command)
    out = p.stdout.read()
    assert p.wait() == 0, p.stderr.read()
    return out


def test_builder_methods_return_new_lazy_images():
    base = modal.Image.debian_slim(python_version="2.7")  # validated at build time, as on Modal
    child = base.env({"A": "1"})
    assert child is not base and base.object_id is None
    with pytest.raises(InvalidError, match="3.11"):
        child.build()


def test_bad_arguments_are_rejected_at_once():
    with pytest.raises(InvalidError, match="absolute"):
        modal.Image.debian_slim().workdir("relative")
    modal.Image.debian_slim().pip_install("x", gpu="A100")  # accepted: no local meaning (README)
    with pytest.raises(InvalidError, match="gpu"):
        modal.Image.debian_slim().pip_install("x", gpu=5)
    with pytest.raises(UnimplementedError, match="volumes"):
        modal.Image.debian_slim().run_commands("true", volumes={"/v": object()})
    with pytest.raises(InvalidError, match="A must be a string"):
        modal.Image.debian_slim().env({"A": 1})
    with pytest.raises(InvalidError, match="pysandbox.Image"):
        modal.Sandbox.create(image="python:3.12", app=modal.App.lookup("x", create_if_missing=True))


def test_debian_slim_has_python_pip_and_owns_its_files(debian, sandboxes):
    sb = sandboxes(image=debian)
    assert run(sb, "python --version").startswith("Python 3.11")
    assert "pip" in run(sb, "pip --version")
    assert run(sb, "id -u; stat -c %U /usr/bin/python3").split() == ["0", "root"]
    meta = store.read_meta(store.layer_of(debian.object_id))
    rootfs = store.layer_dir(meta["id"]) / "rootfs"
    assert os.lstat(rootfs / "usr" / "bin").st_uid == settings.sandbox_owner()[0]


def test_steps_env_workdir_and_whiteouts(debian, sandboxes):
    image = (debian.run_commands("echo built > /etc/built && rm /etc/debian_version", "mkdir -p /srv/app")
             .env({"GREETING": "hi there"}).workdir("/srv/app"))
    sb = sandboxes(image=image)
    assert run(sb, "cat /etc/built; test -e /etc/debian_version || echo gone; pwd; echo $GREETING") == \
        "built\ngone\n/srv/app\nhi there\n"
    assert sb._record.image_id == image.object_id


def test_sandbox_writes_never_reach_the_layers(debian, sandboxes):
    sb = sandboxes(image=debian)
    run(sb, "echo changed > /etc/hostname.new; rm /etc/issue; echo broken > /usr/bin/python3")
    sb2 = sandboxes(image=debian)
    assert run(sb2, "test -e /etc/hostname.new || echo clean; head -c 6 /etc/issue; echo; python3 -c 'print(1)'") == \
        "clean\nDebian\n1\n"


def test_a_built_image_resolves_without_building(debian):
    image = debian.run_commands("echo once > /once")
    image.build()
    before = builder_sandbox_count()
    again = modal.Image.debian_slim().run_commands("echo once > /once")
    again.build()  # no work: no builder sandbox (the benchmark times it)
    assert again.object_id == image.object_id
    assert builder_sandbox_count() == before


def test_build_aio(debian):
    image = asyncio.run(modal.Image.debian_slim().build.aio())
    assert image.object_id == debian.object_id


def test_failing_step_raises_with_log_tail_and_publishes_nothing(debian):
    image = debian.run_commands("echo line-before-failure; echo oops >&2; exit 3")
    layers_before, temps_before = store.all_layers(), temp_dirs()  # a force_build may have retired a layer
    with pytest.raises(ImageBuildError, match="exit code 3") as caught:
        image.build()
    assert "line-before-failure" in str(caught.value) and "oops" in str(caught.value)
    assert caught.value.image_id.startswith("im-")
    assert store.all_layers() == layers_before
    assert temp_dirs() == temps_before
    assert debian.run_commands("true").build().object_id  # the cache is still usable


def test_from_id_and_unknown_ids(debian, sandboxes):
    sb = sandboxes(image=modal.Image.from_id(debian.object_id))
    assert run(sb, "echo ok") == "ok\n"
    with pytest.raises(NotFoundError):
        modal.Image.from_id("im-" + "0" * 32).build()
    with pytest.raises(NotFoundError, match="Invalid image id"):
        modal.Image.from_id("nope")


def test_cli_runs_a_command_in_a_built_image(debian):
    debian.build()
    run = subprocess.run([sys.executable, "-m", "pysandbox", "run", "--image", debian.object_id, "--",
                          "head", "-c", "6", "/etc/issue"], capture_output=True, text=True, env=os.environ)
    assert (run.returncode, run.stdout) == (0, "Debian")


def test_entrypoint_and_cmd(debian, sandboxes):
    image = debian.entrypoint(["echo", "from-entrypoint"]).cmd(["default-arg"])
    sb = sandboxes(image=image)
    sb.wait(raise_on_termination=False)
    assert sb.stdout.read() == "from-entrypoint default-arg\n"
    sb = sandboxes("given", image=image)
    sb.wait(raise_on_termination=False)
    assert sb.stdout.read() == "from-entrypoint given\n"


def test_enable_output_streams_build_logs(debian, capfd, runner):
    # Recipes of their own per runner: the other runner's pass would have built (and cached) them.
    image = debian.run_commands(f"echo visible-build-line {runner}")
    with modal.enable_output():
        image.build()
    err = capfd.readouterr().err
    assert f"visible-build-line {runner}" in err and "Step 2/2" in err
    debian.run_commands(f"echo quiet-build-line {runner}").build()
    assert "quiet-build-line" not in capfd.readouterr().err


@pytest.mark.gvisor
def test_snapshot_filesystem_starts_a_new_sandbox_from_the_changes(debian, sandboxes):
    sb = sandboxes(image=debian)
    run(sb, "echo state > /root/state; rm /etc/issue; mkdir -p /srv/empty; rm -r /etc/apt; mkdir /etc/apt")
    snapshot = sb.snapshot_filesystem()
    assert snapshot.build().object_id.startswith("im-")
    sb2 = sandboxes(image=snapshot)
    assert run(sb2, "cat /root/state; test -e /etc/issue || echo deleted; test -d /srv/empty && echo dir; "
                    "echo /etc/apt/*") == "state\ndeleted\ndir\n/etc/apt/*\n"  # a directory made again is empty


# While it runs, a process holds a written file open, a shared mapping's dirty page, and metadata it changed:
# all of it is in a snapshot taken meanwhile (gVisor's gofer writes through: image/snapshot.py).
_HOLDER = r"""
import mmap, os, sys
data = open("/srv/data", "w"); data.write("written"); data.flush()
mapped = open("/srv/mapped", "wb+"); mapped.write(bytes(4096)); mapped.flush()
page = mmap.mmap(mapped.fileno(), 4096); page[:6] = b"mapped"
os.chown("/srv/data", 1000, 1001); os.chmod("/srv/data", 0o640); os.utime("/srv/data", (1000000, 1000000))
os.mkdir("/srv/private", 0o700)
print("held", flush=True)
sys.stdin.read()
"""

_STATS = "import os\nfor n in ('data', 'private'):\n    s = os.stat('/srv/' + n)\n" \
         "    print(n, oct(s.st_mode), s.st_uid, s.st_gid, int(s.st_mtime) if n == 'data' else '')"


@pytest.mark.gvisor
def test_a_snapshot_holds_what_running_processes_wrote_with_their_owners_and_modes(debian, sandboxes):
    sb = sandboxes(image=debian)
    holder = sb.exec("python3", "-c", _HOLDER)
    assert next(iter(holder.stdout)).strip() == "held"
    snapshot = sb.snapshot_filesystem()
    holder.stdin.write_eof()
    holder.stdin.drain()
    assert holder.wait() == 0
    again = sandboxes(image=snapshot)
    assert run(again, "cat /srv/data; echo; head -c 6 /srv/mapped") == "written\nmapped"
    assert again.exec("python3", "-c", _STATS).stdout.read() == \
        "data 0o100640 1000 1001 1000000\nprivate 0o40700 0 0 \n"


def test_snapshot_limits(sandboxes, debian):
    with pytest.raises(UnimplementedError, match="host image"):
        sandboxes().snapshot_filesystem()
    sb = sandboxes(image=debian)
    with pytest.raises(InvalidError, match="absolute"):
        sb.snapshot_directory("relative")
    with pytest.raises(InvalidError, match="ttl"):
        sb.snapshot_filesystem(ttl=0)


def test_apt_install_in_a_single_uid_sandbox(debian, sandboxes):
    sb = sandboxes(image=debian.apt_install("jq"))
    assert run(sb, "echo '{\"a\": 7}' | jq .a") == "7\n"
    assert run(sb, "ls /var/lib/apt/lists | grep -c Packages || true") == "0\n"  # lists cleaned


def test_uv_pip_install_and_pip_options(debian, sandboxes):
    image = debian.uv_pip_install("six").pip_install(["idna"], pre=True, extra_options="--no-deps")
    sb = sandboxes(image=image)
    assert run(sb, "python -c 'import six, idna; print(six.__name__, idna.__name__)'") == "six idna\n"


def test_unknown_package_fails_the_build(debian):
    with pytest.raises(ImageBuildError, match="no-such-package-pysandbox"):
        debian.apt_install("no-such-package-pysandbox").build()


def test_force_build_rebuilds_in_place_without_breaking_running_sandboxes(debian, sandboxes):
    from pysandbox import cli
    stamp = "cat /proc/sys/kernel/random/uuid > /stamp"
    first = debian.run_commands(stamp).env({"AFTER": "1"}).build()
    sb = sandboxes(image=first)
    old = run(sb, "cat /stamp")
    again = debian.run_commands(stamp, force_build=True).env({"AFTER": "1"}).build()
    assert again.object_id == first.object_id  # same recipe, same id: the cache now holds the rebuild
    assert run(sandboxes(image=again), "cat /stamp") != old
    assert run(sandboxes(image=debian.run_commands(stamp).env({"AFTER": "1"})), "cat /stamp") != old
    assert cli.main(["gc"]) == 0
    assert run(sb, "cat /stamp") == old  # the retired layer stays while a sandbox stands on it
