"""The layer store under concurrency and faults, and `pysandbox image`."""

import json
import os
import subprocess
import sys
import textwrap
import time

import pytest

import pysandbox as modal
from pysandbox import cli
from pysandbox._core import oneshot
from pysandbox.image import build, store

from .conftest import builder_sandbox_count, temp_dirs

pytestmark = pytest.mark.rootless

BUILD_SCRIPT = textwrap.dedent("""
    import sys, pysandbox as modal
    image = modal.Image.debian_slim().run_commands("sleep 2; echo " + sys.argv[1] + " > /built")
    print(image.build().object_id)
""")


def test_two_processes_build_one_recipe_once(debian):
    before = builder_sandbox_count()
    procs = [subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT, "concurrent"], stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    ids = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert ids[0] == ids[1] and ids[0].startswith("im-")
    assert builder_sandbox_count() == before + 1  # one built, the other waited and reused it


def test_crashed_build_leaves_only_a_temp_dir_that_prune_removes(debian):
    proc = subprocess.Popen([sys.executable, "-c", BUILD_SCRIPT.replace("sleep 2", "sleep 60"), "crash"])
    layer = build.layer_ids(modal.Image.debian_slim().run_commands("sleep 60; echo crash > /built")._steps)[-1]
    for _ in range(600):
        if any(path.name.startswith(layer) for path in temp_dirs()):
            break
        time.sleep(0.1)
    proc.kill()
    proc.wait()
    assert store.read_meta(layer) is None  # never published
    for sb in modal.Sandbox.list(app_id=modal.App.lookup(oneshot.BUILDER_APP).app_id):
        sb.wait(raise_on_termination=False)  # its build sandbox dies with it (the tether is cut)
    assert cli.main(["gc"]) == 0
    assert not any(path.name.startswith(layer) for path in temp_dirs())


def test_image_cli_ls_inspect_rm_prune(debian, capsys):
    image = debian.run_commands("echo cli > /cli").build()
    assert cli.main(["image", "ls", "--json"]) == 0
    rows = {row["image_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[image.object_id]["layers"] == 2 and rows[image.object_id]["size"] > 0
    assert cli.main(["image", "inspect", image.object_id]) == 0
    details = json.loads(capsys.readouterr().out)
    assert [layer["description"] for layer in details["layers"]][-1] == "RUN echo cli > /cli"
    top = store.layer_of(image.object_id)
    assert cli.main(["image", "rm", image.object_id]) == 0
    assert store.read_meta(top) is None  # its own layer is freed...
    assert store.read_meta(store.layer_of(debian.object_id)) is not None  # ...the shared base is not
    assert cli.main(["image", "rm", image.object_id]) == 1
    assert cli.main(["image", "prune"]) == 0


def test_corrupt_layer_metadata_is_reported(debian):
    image = debian.run_commands("echo corrupt > /c").build()
    meta = store.layer_dir(store.layer_of(image.object_id)) / "meta.json"
    meta.write_text("{not json")
    with pytest.raises(modal.exception.NotFoundError, match="corrupt"):
        debian.run_commands("echo corrupt > /c").build()
    os.unlink(meta)
    os.rename(store.layer_dir(store.layer_of(image.object_id)), store.root() / "tmp" / "gone.x")
    assert debian.run_commands("echo corrupt > /c").build().object_id == image.object_id  # rebuilt
    store.remove_stale_temps()


def test_layer_without_files_is_reported(debian):
    image = debian.run_commands("echo damaged > /d").build()
    rootfs = store.layer_dir(store.layer_of(image.object_id)) / "rootfs"
    os.rename(rootfs, store.root() / "tmp" / "damaged.x")
    try:
        with pytest.raises(modal.exception.NotFoundError, match="damaged"):
            debian.run_commands("echo damaged > /d").build()
    finally:
        os.rename(store.root() / "tmp" / "damaged.x", rootfs)


def test_prune_never_pulls_layers_from_under_a_running_sandbox(debian, sandboxes):
    image = debian.run_commands("echo in-use > /in-use").build()
    sb = sandboxes(image=image)
    assert cli.main(["image", "rm", image.object_id]) == 0
    assert cli.main(["image", "prune", "--all"]) == 0
    p = sb.exec("cat", "/in-use")
    assert p.stdout.read() == "in-use\n" and p.wait() == 0
    assert store.read_meta(store.layer_of(image.object_id)) is not None


def test_garbage_collection_during_a_snapshot_leaves_its_build_directory(debian, sandboxes, monkeypatch):
    # A create starts garbage collection in the background, which removes build directories whose layer
    # lock is free as crashed builds': a snapshot being made holds its lock (CI lost one to a concurrent gc).
    from pysandbox.image import snapshot
    sb = sandboxes(image=debian)
    assert sb.exec("sh", "-c", "echo kept > /kept").wait() == 0
    swept = []
    publish = store.publish

    def publish_after_a_sweep(temp, layer, meta):
        swept.append(temp)
        store.remove_stale_temps()  # what the background collection does meanwhile
        return publish(temp, layer, meta)
    monkeypatch.setattr(snapshot.store, "publish", publish_after_a_sweep)
    image = sb.snapshot_filesystem()
    assert swept and not swept[0].exists()  # published: the directory became the layer
    assert (store.layer_dir(store.layer_of(image.object_id)) / "rootfs" / "kept").read_text() == "kept\n"
