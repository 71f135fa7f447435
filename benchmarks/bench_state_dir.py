"""What the state directory's fault handling adds to a create, against what it replaced, in
one process (so both see the same load): the sandbox directory made whole (staging name,
creator padded with room for the exit record, rename) against mkdir + creator; the check that
starts the background collection when it is due (one stat); reading a finished sandbox;
and what a collection costs per directory.
"""

import os
import sys
import tempfile
import time
from pathlib import Path

from _common import interleaved, median_ms, report

from pysandbox import garbage
from pysandbox._state import paths, records
from pysandbox._state.files import ensure_dir, new_id, remove_tree, write_json_atomic
from pysandbox._state.proc import ProcessRef, boot_id

RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
FINISHED = 500


def previous_sandbox_dir(sandbox_id):
    """What create did before: the directory, then the creator record in it."""
    directory = paths.sandbox_dir(sandbox_id)
    directory.mkdir(mode=0o700)
    write_json_atomic(directory / "creator", ProcessRef.of(os.getpid()).to_json(), durable=False)


def main():
    os.environ["PYSANDBOX_HOME"] = tempfile.mkdtemp(prefix="pysandbox-bench-state-")
    ensure_dir(paths.sandboxes_dir(), 0o711)
    medians = interleaved({"new": lambda: records.make_sandbox_dir(new_id("sb-")),
                           "old": lambda: previous_sandbox_dir(new_id("sb-"))}, RUNS)
    new, old = medians["new"], medians["old"]
    report("sandbox directory made whole (staging, padded creator, rename)", new,
           "mkdir + creator (before)", old)
    (Path(os.environ["PYSANDBOX_HOME"]) / garbage.STAMP_NAME).touch()  # a collection just ran: nothing to start
    due = median_ms(garbage.collect_soon, RUNS)
    nothing = median_ms(lambda: None, RUNS)
    print(f"garbage.collect_soon() when no collection is due: median {due * 1000:.1f} us "
          f"(an empty call: {nothing * 1000:.1f} us)", flush=True)

    for sandbox_id in os.listdir(paths.sandboxes_dir()):
        remove_tree(paths.sandboxes_dir() / sandbox_id)
    dead = ProcessRef(os.getpid(), 0, boot_id())  # a start time no process has
    for _ in range(FINISHED):
        sandbox_id = new_id("sb-")
        directory = records.make_sandbox_dir(sandbox_id)
        records.write_record(records.SandboxRecord(
            sandbox_id=sandbox_id, app_id="ap-bench", app_name="bench", name=None, tags={}, created_at=time.time(),
            timeout=300, supervisor=dead, entrypoint=(), workdir="/", image_id="host"))
        write_json_atomic(directory / "exit", {"status": "exited", "code": 0, "finished_at": time.time()},
                                   durable=False)
    record = records.read_record(sandbox_id)
    read = median_ms(lambda: records.finished(record), RUNS)
    print(f"records.finished() of a finished sandbox: median {read * 1000:.1f} us", flush=True)
    kept = median_ms(lambda: garbage.collect(min_age=3600), 20, warmup=2)
    print(f"a collection over {FINISHED} finished sandboxes it keeps (the automatic one, within the retention): "
          f"median {kept:.1f} ms ({kept * 1000 / FINISHED:.0f} us per directory)", flush=True)
    start = time.perf_counter()
    found = garbage.collect()
    took = (time.perf_counter() - start) * 1000
    print(f"a collection removing {len(found.sandboxes)} finished sandboxes: {took:.1f} ms "
          f"({took * 1000 / max(1, len(found.sandboxes)):.0f} us per directory)", flush=True)
    remove_tree(Path(os.environ["PYSANDBOX_HOME"]))


if __name__ == "__main__":
    main()
