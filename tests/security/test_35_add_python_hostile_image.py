"""add_python reads one thing from the image it builds: the names its `ldd` prints as missing
(image/hostpython.py). A hostile image's ldd can print anything, as often as it likes: the
names only select sonames from the host's own ldd table, nothing is written outside the
layer, and the list is bounded."""

import os

from pysandbox.image import hostpython


def test_hostile_missing_names_select_nothing_outside_the_host_table(tmp_path):
    rootfs = tmp_path / "layer" / "rootfs"
    (rootfs / "usr" / "local" / "lib").mkdir(parents=True)
    outside = tmp_path / "pwned"
    missing = []
    lines = [f"{hostpython.MISSING} ../../../../../{outside.relative_to('/')}", f"{hostpython.MISSING} /etc/shadow",
             f"{hostpython.MISSING} libz.so.1 extra words", "libz.so.1 => not found",
             *(f"{hostpython.MISSING} lib{n}.so" for n in range(10_000))]
    for line in lines:
        hostpython._collect(line, missing)
    assert len(missing) == 256  # bounded, however much the image prints
    libz = os.path.realpath("/lib/x86_64-linux-gnu/libz.so.1")
    unknown = hostpython.bundle(missing + ["libz.so.1"], {"libz.so.1": libz}, rootfs)
    assert "libz.so.1" not in unknown and set(missing) <= set(unknown)
    assert sorted(os.listdir(rootfs / "usr" / "local" / "lib")) == ["libz.so.1"]  # the host's, by its soname
    assert not outside.exists() and not (tmp_path / "etc").exists()
