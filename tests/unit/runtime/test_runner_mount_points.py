"""Every mount point either runner makes in an image goes through RunnerInputs.dest (the image's
symlinks resolved inside the image), and no runner makes a directory itself: init does, inside."""

import pytest

from pysandbox.runtime import bwrap, nsjail
from pysandbox.runtime.layout import INIT_PATH, Mount, OverlayRoot, RunnerInputs

# bwrap options whose last argument is a path in the sandbox, and how many arguments each takes.
BWRAP_PLACES = {"--bind": 2, "--ro-bind": 2, "--overlay": 3, "--tmpfs": 1, "--proc": 1, "--dev": 1,
                "--remount-ro": 1, "--dir": 1, "--symlink": 2, "--chdir": 1}
BWRAP_ARITY = {**BWRAP_PLACES, "--overlay-src": 1, "--size": 1, "--perms": 1, "--hostname": 1, "--cap-add": 1,
               "--cap-drop": 1}


def image_inputs(**overrides):
    options = dict(upper="/state/sb/upper", init="/native/sandbox-init", workdir="/w/work",
                   overlay=OverlayRoot(("/layers/a",), "/state/sb/upper"), dest=lambda path: "/image" + path,
                   mounts=(Mount("bind", "/vol", "/data"), Mount("ro-bind", "/net/resolv.conf", "/etc/resolv.conf")))
    return RunnerInputs(**{**options, **overrides})


def bwrap_places(argv):
    places, index = [], 1
    while argv[index] != "--":
        option = argv[index]
        count = BWRAP_ARITY.get(option, 0)
        if option in BWRAP_PLACES:
            places.append((option, argv[index + count]))
        index += 1 + count
    return places


@pytest.mark.parametrize("disk_bytes", [None, 1 << 30])
def test_bwrap_makes_every_mount_point_through_dest(disk_bytes):
    argv = bwrap.command(image_inputs(disk_bytes=disk_bytes), "/bin/bwrap").argv
    places = bwrap_places(argv)
    assert ("--overlay", "/") in places  # the root itself
    others = [place for option, place in places if place != "/"]
    assert others and all(place.startswith("/image/") for place in others), places
    assert ("--bind", "/image/data") in places and ("--ro-bind", "/image" + INIT_PATH) in places
    assert not any(option in ("--dir", "--chdir") for option, _ in places)  # init makes them, inside
    tail = argv[argv.index("--") + 1:]
    assert tail[tail.index("--chdir") + 1] == "/w/work" and "0700" in tail  # as the sandbox sees them


def test_nsjail_makes_every_mount_point_through_dest():
    text = nsjail.configuration(image_inputs()).decode().splitlines()
    dsts = [line.split('dst: "')[1].split('"')[0] for line in text]
    assert dsts[0] == "/" and all(dst.startswith("/image/") for dst in dsts[1:]), dsts
    assert "/image/dev/shm" in dsts and "/image/proc" in dsts and "/image" + INIT_PATH in dsts
