"""Red team, session 9: snapshot_directory under bwrap and nsjail copies what sandbox code cannot read.

sandbox-mount --copy (common/tree.c's walk) runs in the sandbox's namespaces with every capability over its
user namespace, the one init was exec'd in, so it passes the ptrace check on init that keeps sandbox code
out of /proc/1 (init is not dumpable). A symlink the sandbox plants, /data -> /proc/1/fd, is a plain link
inside the sandbox, so snapshot_directory("/data") copies init's descriptors as symlinks into a layer the
sandbox can mount_image and read: host paths (1 and 2 are /var/lib/pysandbox/sandboxes/<id>/supervisor.log,
the state directory's layout); through /proc/1/fdinfo their flags, positions, inodes and the host's flock
records. /proc/1 itself fails at mem (EIO), but
directories of it without mem come out whole. The walk never leaves its mount, but the root it starts from
may be /proc. Suggested fix: refuse a directory on procfs or sysfs (fstatfs) in sandbox-mount --copy, or
drop CAP_SYS_PTRACE before the walk; either turns this into an InvalidError.
"""

import pytest

from pysandbox.exception import InvalidError

from ._inside import sh

pytestmark = [pytest.mark.rootless]


@pytest.mark.parametrize("target", ["fd", "fdinfo"])
def test_a_link_into_init_s_proc_is_not_copied_with_more_rights_than_the_sandbox_has(sandboxes, target):
    sb = sandboxes("sleep", "120", block_network=True)
    probe = {"fd": "readlink /proc/1/fd/1", "fdinfo": "cat /proc/1/fdinfo/1"}[target]
    code, out = sh(sb, f"ln -s /proc/1/{target} /data && "
                       f"if {probe} >/dev/null 2>&1; then echo readable; else echo refused; fi")
    # The attack is real: what the link leads to is init's, which the sandbox may not read.
    assert code == 0 and out.strip() == "refused", out
    with pytest.raises(InvalidError, match="on /proc or /sys"):
        sb.snapshot_directory("/data")
