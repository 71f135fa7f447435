"""Item 11: /dev holds only the harmless devices, and no new ones can be made."""

import pytest

from ._inside import py_ok

pytestmark = pytest.mark.rootless

# (major, minor) of each device node the sandbox gets (bwrap --dev) plus its terminal multiplexer.
EXPECTED_DEVICES = {
    "/dev/null": (1, 3), "/dev/zero": (1, 5), "/dev/full": (1, 7), "/dev/random": (1, 8),
    "/dev/urandom": (1, 9), "/dev/tty": (5, 0), "/dev/pts/ptmx": (5, 2),
}


def test_dev_holds_exactly_the_expected_devices(sb):
    out = py_ok(sb, """
        import stat
        found = {}
        for root, dirs, files in os.walk("/dev"):
            for name in dirs + files:
                path = os.path.join(root, name)
                st = os.lstat(path)
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    found[path] = ("b" if stat.S_ISBLK(st.st_mode) else "c", os.major(st.st_rdev), os.minor(st.st_rdev))
        print(sorted(found.items()))
    """)
    assert out == repr(sorted((path, ("c", *numbers)) for path, numbers in EXPECTED_DEVICES.items())) + "\n"


def test_mknod_of_devices_refused(sb):
    out = py_ok(sb, """
        import stat
        results = []
        for kind, dev in ((stat.S_IFCHR, os.makedev(1, 1)), (stat.S_IFBLK, os.makedev(8, 0)), (stat.S_IFCHR, os.makedev(1, 3))):
            try:
                os.mknod("/tmp/node", kind | 0o666, dev)
                results.append("created")
            except OSError as e:
                results.append(errno.errorcode[e.errno])
        os.mknod("/tmp/fifo", stat.S_IFIFO | 0o600)  # a FIFO is no device: allowed
        print(results, stat.S_ISFIFO(os.stat("/tmp/fifo").st_mode), os.path.exists("/tmp/node"))
    """)
    assert out == "['EPERM', 'EPERM', 'EPERM'] True False\n"


def test_host_devices_unreachable(sb):
    out = py_ok(sb, """
        results = []
        for path in ("/dev/mem", "/dev/kmem", "/dev/sda", "/dev/vda", "/dev/kvm", "/dev/fuse", "/dev/console"):
            try:
                os.open(path, os.O_RDONLY)
                results.append(path)
            except OSError as e:
                assert e.errno == errno.ENOENT, (path, e)
        print(results)
    """)
    assert out == "[]\n"
