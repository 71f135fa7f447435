"""identity.py: choosing and reserving root's range, the maps, and adopting an old state directory."""

import os
import pwd

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox import identity
from pysandbox.exception import InvalidError

RANGE = identity.RANGE


def test_parse_entries_keeps_well_formed_lines():
    text = "alice:100000:65536\n# comment\nbob:x:1\ncarol:165536:0\n dave:231072:65536 \n"
    assert identity.parse_entries(text) == [("alice", 100000, 65536), ("dave", 231072, 65536)]


@given(st.lists(st.tuples(st.integers(0, 10 ** 7), st.integers(1, 3 * RANGE)), max_size=12))
def test_the_chosen_range_overlaps_no_entry(taken):
    entries = [(f"u{i}", start, count) for i, (start, count) in enumerate(taken)]
    start = identity.choose_range(entries[::2], entries[1::2])
    assert start % RANGE == 0 and start >= 100000
    for _, first, count in entries:
        assert start + RANGE <= first or first + count <= start


def test_a_configured_range_holding_a_host_account_is_refused(monkeypatch):
    """PYSANDBOX_SANDBOX_UID=1000 was taken: sandbox root became uid 1000 and sandbox uid 3 uid 1003, real users."""
    monkeypatch.setattr(identity, "_read_entries", lambda path: [])
    monkeypatch.setattr(identity.pwd, "getpwall", lambda: [pwd_entry("alice", 1003)])
    monkeypatch.setattr(identity.grp, "getgrall", lambda: [])
    monkeypatch.setenv("PYSANDBOX_SANDBOX_UID", "1000")
    with pytest.raises(InvalidError, match=r"PYSANDBOX_SANDBOX_UID=1000: .* the user alice \(1003\)"):
        identity.root_range_start()
    monkeypatch.setenv("PYSANDBOX_SANDBOX_UID", str(1003 + 1))  # just past it: free
    assert identity.root_range_start() == 1004


def pwd_entry(name, uid):
    return pwd.struct_passwd((name, "x", uid, uid, "", "/home/" + name, "/bin/sh"))


def test_a_full_space_is_refused():
    with pytest.raises(InvalidError, match="No free range"):
        identity.choose_range([("a", 100000, 600000000)], [], high=600100000)


def test_the_maps_and_the_supervisor_options():
    root = identity.Identity(((0, 196608, RANGE),), ((0, 196608, RANGE),))
    assert root.owner == (196608, 196608) and root.size == RANGE
    assert root.supervisor_args() == ["--userns-uid", f"0:196608:{RANGE}", "--userns-gid", f"0:196608:{RANGE}"]
    single = identity.Identity(((0, 1001, 1),), ((0, 1001, 1),))
    assert single.size == 1 and single.owner == (1001, 1001)


@pytest.mark.skipif(os.geteuid() != 0, reason="moving file ownership needs root")
def test_an_old_state_directory_moves_to_the_range(tmp_path):
    (tmp_path / "volumes" / "v" / "data").mkdir(parents=True)
    files = [tmp_path / "volumes" / "v" / "data" / name for name in ("a", "b")]
    for path in files:
        path.write_text("x")
    os.chown(files[0], 100000, 100000)
    os.chown(files[1], 100000 + 1000, 100000 + 1000)
    os.chmod(files[1], 0o4755)
    (tmp_path / "record.json").write_text("{}")  # root's own files stay root's
    assert identity._move_ids(str(tmp_path), 100000, 196608) == 2
    assert (os.stat(files[0]).st_uid, os.stat(files[0]).st_gid) == (196608, 196608)
    assert os.stat(files[1]).st_uid == 197608 and os.stat(files[1]).st_mode & 0o7777 == 0o4755
    assert os.stat(tmp_path / "record.json").st_uid == 0
    assert identity._move_ids(str(tmp_path), 100000, 196608) == 0  # once


def _namespace(fs, uid_map, subids="me:100000:65536\n"):
    for name in ("uid_map", "gid_map"):
        fs.create_file(f"/proc/self/{name}", contents=uid_map)
    for path in (identity.SUBUID, identity.SUBGID):
        fs.create_file(path, contents=subids)


@pytest.fixture
def caller(monkeypatch):
    monkeypatch.setattr(identity, "_user_name", lambda uid: "me")
    monkeypatch.setattr(identity, "_has_tools", lambda: True)
    monkeypatch.setattr(os, "getegid", lambda: 1001)

    def as_uid(uid):
        monkeypatch.setattr(os, "geteuid", lambda: uid)
        return identity._current.__wrapped__(uid)
    return as_uid


def test_a_caller_gets_its_range_only_where_its_namespace_has_it(fs, caller):
    _namespace(fs, "         0          0 4294967295\n")
    assert caller(1001).newidmap and caller(1001).size == RANGE
    # Under `unshare --user --map-user=1001` (a test's own network namespace): newuidmap could not map it.
    fs.remove("/proc/self/uid_map")
    fs.create_file("/proc/self/uid_map", contents="      1001       1001          1\n")
    assert caller(1001) == identity.Identity(((0, 1001, 1),), ((0, 1001, 1),))


def test_a_root_without_the_whole_id_space_maps_only_itself_and_reserves_nothing(fs, caller):
    _namespace(fs, "         0       1001          1\n", subids="")  # `unshare --user --map-root-user`
    assert caller(0) == identity.Identity(((0, 0, 1),), ((0, 1001, 1),))
    assert open(identity.SUBUID).read() == ""
