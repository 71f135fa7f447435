"""Matrix 22 (and issue 12, items 7, 8 and 13): a full or read-only state disk.

Each scenario runs with the state directory on a small tmpfs of its own (tests/security/
_statedir.py: a private mount namespace; unprivileged, through a user namespace), fills it
to the brim, and checks what users see: a clear error where something had to be written,
the old record left in place, teardown and gc that still succeed and free the space, and
nothing half-made left behind (no temporary file, no empty sandbox directory, no
half-published layer). Read-only is a read-only bind mount over the state directory: a
tmpfs with files open for writing cannot be remounted read-only, so descriptors opened
before (the supervisor's) keep writing, and every path looked up afterwards gets EROFS.
"""

import pytest

from ._statedir import on_small_disk

pytestmark = pytest.mark.rootless

# What a scenario usually needs first.
SETUP = """
import subprocess
import pysandbox as modal
from pysandbox import garbage
from pysandbox._state import paths, records
from pysandbox._state.files import read_json
from pysandbox.exception import ResourceExhaustedError
app = modal.App.lookup("disk", create_if_missing=True)

def create(**kwargs):
    return modal.Sandbox.create("sleep", "300", app=app, block_network=True, **kwargs)

def entries():
    return sorted(os.listdir(paths.sandboxes_dir()))

def temporaries(sandbox_id):
    return [n for n in os.listdir(paths.sandbox_dir(sandbox_id)) if n.endswith(".tmp")]

def cli(*args):
    r = subprocess.run([sys.executable, "-m", "pysandbox", *args], capture_output=True, text=True)
    return r.returncode, r.stdout, r.stderr
"""


def test_a_sandbox_that_fills_the_disk_is_torn_down_and_collected_and_tags_keep_their_old_value():
    result = on_small_disk(SETUP + """
os.environ["PYSANDBOX_WRITABLE_ROOT_MAX"] = "0"  # the root on the state disk, not a bounded tmpfs
sb = create(tags={"v": "1"})
# The sandbox's root is its upper directory, on the state disk: it writes until nothing is left.
wrote = sb.exec("sh", "-c", "cat /dev/zero > /fill; echo $?").stdout.read().strip()
full = free_bytes()
try:
    sb.set_tags({"v": "2"})
    tags_error = None
except ResourceExhaustedError as exc:
    tags_error = str(exc)
tags = records.read_record(sb.object_id).tags
temps = temporaries(sb.object_id)
code = sb.terminate(wait=True)  # teardown frees the upper directory first, then records the end
status = records.read_exit(sb.object_id)
rc, out, err = cli("gc")
report(wrote=wrote, full=full, tags_error=tags_error, tags=tags, temps=temps, code=code, lost=status.lost,
       gc=[rc, out, err], gone=not paths.sandbox_dir(sb.object_id).exists(), free=free_bytes())
""")
    assert result["wrote"] != "0" and result["full"] < 1 << 16  # the disk really was full
    assert "No space left on device" in result["tags_error"] and "record.json" in result["tags_error"]
    assert result["tags"] == {"v": "1"} and result["temps"] == []  # the old record, and no torn temp file
    assert result["code"] == 137 and result["lost"] is False  # the supervisor wrote its own record
    assert result["gc"][0] == 0 and result["gc"][1].startswith("removed 1 sandbox(es)"), result["gc"]
    assert result["gone"] and result["free"] > 60 << 20


def test_a_disk_filled_from_outside_still_lets_sandboxes_end_be_collected_and_refuses_creates_cleanly():
    result = on_small_disk(SETUP + """
reserved = create()  # its creator file holds room for its exit record
unreserved = create()
os.unlink(paths.sandbox_dir(unreserved.object_id) / "creator")  # as if made by a version without that
before = entries()
filler = fill()  # what a volume or an image layer on the same disk would do
try:
    create()
    create_error = None
except ResourceExhaustedError as exc:
    create_error = str(exc)
after = entries()
code_reserved = reserved.terminate(wait=True)
code_unreserved = unreserved.terminate(wait=True)
lost = {sb.object_id: records.finished(sb._record).lost for sb in (reserved, unreserved)}
leftover = os.listdir(paths.sandbox_dir(unreserved.object_id))
listed = [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
found = garbage.collect()
os.unlink(filler)
later = create()
later_echo = later.exec("echo", "ok").stdout.read()
later.terminate(wait=True)
report(create_error=create_error, new_entries=sorted(set(after) - set(before)), codes=[code_reserved, code_unreserved],
       lost=[lost[reserved.object_id], lost[unreserved.object_id]], leftover=leftover, listed=listed,
       removed=sorted(found.sandboxes), expected=sorted([reserved.object_id, unreserved.object_id]),
       problems=found.problems, later_echo=later_echo)
""")
    assert "No space left on device" in result["create_error"]
    assert result["new_entries"] == []  # a failed create leaves no directory, not even a staging one
    assert result["codes"] == [137, 137]
    # With the room its creator file holds the supervisor records the end on a full disk; without it, it cannot,
    # leaves no temporary file, and the sandbox reads as terminated all the same.
    assert result["lost"] == [False, True]
    assert "exit.tmp" not in result["leftover"] and "upper" not in result["leftover"]
    assert result["listed"] == []
    assert result["removed"] == result["expected"] and result["problems"] == []
    assert result["later_echo"] == "ok\n"


def test_a_read_only_state_disk_lets_readers_teardown_and_gc_run_and_say_why_nothing_was_removed():
    result = on_small_disk(SETUP + """
running = create()
done = create()
done.terminate(wait=True)
killed = create()
os.kill(killed._record.supervisor.pid, 9)  # its supervisor dies without a word: a repair is due
while killed._record.supervisor.alive():
    time.sleep(0.01)
remount("ro")
listed = [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
polls = [running.poll(), modal.Sandbox.from_id(done.object_id).poll(), killed.poll()]
ls = cli("ls", "--all")
code = running.terminate(wait=True)
killed_code = killed.terminate(wait=True)
listed_after = [s.object_id for s in modal.Sandbox.list(app_id=app.app_id)]
found = garbage.collect()
gc = cli("gc")
remount("rw")
found_rw = garbage.collect()
report(listed=listed, running=running.object_id, polls=polls, ls=ls, code=code, killed_code=killed_code,
       listed_after=listed_after, removed_ro=found.sandboxes, problems_ro=found.problems, gc=gc,
       removed_rw=sorted(found_rw.sandboxes), problems_rw=found_rw.problems,
       expected=sorted([running.object_id, done.object_id, killed.object_id]))
""")
    assert result["listed"] == [result["running"]] and result["polls"] == [None, 137, 137]
    assert result["ls"][0] == 0 and result["running"] in result["ls"][1]
    assert result["code"] == 137 and result["killed_code"] == 137 and result["listed_after"] == []
    assert result["removed_ro"] == [] and result["problems_ro"]
    assert all("Read-only file system" in line for line in result["problems_ro"])
    rc, out, err = result["gc"]
    assert rc == 1 and out.startswith("removed 0 sandbox(es)") and "Read-only file system" in err
    assert "Traceback" not in err
    assert result["removed_rw"] == result["expected"] and result["problems_rw"] == []


def test_writes_that_find_the_disk_full_leave_no_temporary_file_and_no_half_made_volume():
    result = on_small_disk(SETUP + """
import pathlib
modal.Secret.objects.create("kept", {"A": "1"})
modal.App.lookup("before", create_if_missing=True)
filler = fill()
errors = {}
for what, write in [("volume", lambda: modal.Volume.objects.create("new-volume")),
                    ("secret", lambda: modal.Secret.from_name("kept").update({"A": "2" * 100000})),
                    ("app", lambda: modal.App.lookup("after", create_if_missing=True))]:
    try:
        write()
        errors[what] = None
    except ResourceExhaustedError as exc:
        errors[what] = str(exc)
state = pathlib.Path(HOME)
litter = [str(p.relative_to(state)) for p in state.rglob("*") if p.name.endswith((".tmp", ".deleted"))]
secret = read_json(state / "secrets" / "kept.json", "secret")["env"]
os.unlink(filler)
modal.Volume.objects.create("new-volume")
report(errors=errors, litter=litter, secret=secret, volumes=[v.name for v in modal.Volume.objects.list()])
""", size="16m")
    assert all("No space left on device" in (error or "") for error in result["errors"].values()), result["errors"]
    assert result["litter"] == [] and result["secret"] == {"A": "1"}  # the old secret, whole
    assert result["volumes"] == ["new-volume"]


# Matrix 22 proper: a layer build and a snapshot that run out of space.

IMAGES = SETUP + """
import tempfile
from pysandbox.image import store
local = tempfile.mkdtemp()  # on the host's disk, not the small one
def local_file(name, size):
    path = os.path.join(local, name)
    with open(path, "wb") as f:
        f.write(os.urandom(size))
    return path

def store_state():
    tmp = store.root() / "tmp"
    return {"layers": store.all_layers(), "tmp": sorted(os.listdir(tmp)) if tmp.exists() else []}
"""


def test_a_layer_build_that_runs_out_of_space_fails_clearly_publishes_nothing_and_keeps_the_cache():
    result = on_small_disk(IMAGES + """
small = local_file("small", 1000)
big = local_file("big", 8 << 20)
cached = modal.Image.from_scratch().add_local_file(small, "/small", copy=True).build()
before = store_state()
filler = fill(leave=2 << 20)
try:
    modal.Image.from_scratch().add_local_file(big, "/big", copy=True).build()
    error = None
except Exception as exc:  # reported as its first public class (a build step's failure is an ImageBuildError)
    error = [next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "pysandbox.exception"), str(exc)]
after = store_state()
again = modal.Image.from_scratch().add_local_file(small, "/small", copy=True).build()
sb = modal.Sandbox.create(image=again, app=app, block_network=True)
small_back = len(sb.open("/small", "rb").read())
sb.terminate(wait=True)
os.unlink(filler)
rebuilt = modal.Image.from_scratch().add_local_file(big, "/big", copy=True).build()
sb = modal.Sandbox.create(image=rebuilt, app=app, block_network=True)
big_back = len(sb.open("/big", "rb").read())
sb.terminate(wait=True)
report(error=error, before=before, after=after, same=again.object_id == cached.object_id,
       small_back=small_back, big_back=big_back)
""")
    kind, message = result["error"]
    assert kind == "ResourceExhaustedError" and "No space left on device" in message
    assert result["after"] == result["before"]  # no half-published layer, no build directory left
    assert result["same"] and result["small_back"] == 1000  # the cache still serves the earlier build
    assert result["big_back"] == 8 << 20  # and, with space again, the same recipe builds


def test_a_snapshot_that_runs_out_of_space_fails_clearly_publishes_nothing_and_works_later():
    result = on_small_disk(IMAGES + """
base = modal.Image.from_scratch().add_local_file(local_file("small", 1000), "/small", copy=True).build()
sb = modal.Sandbox.create(image=base, app=app, block_network=True)
with sb.open("/data.bin", "wb") as f:
    f.write(os.urandom(4 << 20))
before = store_state()
filler = fill(leave=1 << 20)
try:
    sb.snapshot_filesystem()
    error = None
except Exception as exc:  # reported as its first public class (a build step's failure is an ImageBuildError)
    error = [next(c.__name__ for c in type(exc).__mro__ if c.__module__ == "pysandbox.exception"), str(exc)]
after = store_state()
os.unlink(filler)
snapshot = sb.snapshot_filesystem()
sb.terminate(wait=True)
copy = modal.Sandbox.create(image=snapshot, app=app, block_network=True)
data_back = len(copy.open("/data.bin", "rb").read())
copy.terminate(wait=True)
report(error=error, before=before, after=after, data_back=data_back)
""")
    kind, message = result["error"]
    assert kind in ("ImageBuildError", "ResourceExhaustedError") and "No space left on device" in message, message
    assert result["after"] == result["before"]
    assert result["data_back"] == 4 << 20
