"""add_local_file / add_local_dir / add_local_python_source."""

import os

import pytest

from pysandbox.exception import InvalidError

from .test_build import run

pytestmark = pytest.mark.rootless


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "tool.sh").write_text("#!/bin/sh\necho tool-ran\n")
    os.chmod(tmp_path / "pkg" / "tool.sh", 0o755)
    (tmp_path / "pkg" / "sub" / "data.txt").write_text("data\n")
    (tmp_path / "pkg" / "skip.log").write_text("ignored\n")
    (tmp_path / "pkg" / "link").symlink_to("sub/data.txt")
    (tmp_path / "single.txt").write_text("single\n")
    return tmp_path


def test_remote_path_must_be_absolute(debian):
    with pytest.raises(InvalidError, match="absolute remote_path"):
        debian.add_local_file("x", "relative/x")
    with pytest.raises(InvalidError, match="absolute remote_path"):
        debian.add_local_dir("x", "relative")


def test_files_dirs_modes_symlinks_and_ignore(debian, project, sandboxes):
    image = (debian.add_local_file(project / "single.txt", "/bin/", copy=True)
             .add_local_dir(project / "pkg", "/opt/pkg", ignore=["*.log"]))
    sb = sandboxes(image=image)
    # /bin is a symlink to usr/bin in Debian: the file lands in /usr/bin, the symlink survives.
    assert run(sb, "cat /usr/bin/single.txt; readlink /bin") == "single\nusr/bin\n"
    assert run(sb, "/opt/pkg/tool.sh; cat /opt/pkg/link; test -e /opt/pkg/skip.log || echo skipped") == \
        "tool-ran\ndata\nskipped\n"
    assert run(sb, "stat -c %U /opt/pkg/tool.sh") == "root\n"


def test_changed_local_file_changes_the_image(debian, project):
    first = debian.add_local_file(project / "single.txt", "/single.txt").build().object_id
    assert debian.add_local_file(project / "single.txt", "/single.txt").build().object_id == first
    (project / "single.txt").write_text("changed\n")
    assert debian.add_local_file(project / "single.txt", "/single.txt").build().object_id != first


def test_build_step_after_mounted_local_files_is_refused_at_build(debian, project):
    image = debian.add_local_file(project / "single.txt", "/x").run_commands("true")  # lazy, as on Modal
    with pytest.raises(InvalidError, match="copy=True"):
        image.build()
    debian.add_local_file(project / "single.txt", "/x", copy=True).run_commands("cat /x").build()


def test_missing_local_file(debian, project):
    with pytest.raises(InvalidError, match="does not exist"):
        debian.add_local_file(project / "nope.txt", "/nope").build()


def test_add_local_python_source(debian, project, sandboxes, monkeypatch):
    (project / "mymod").mkdir()
    (project / "mymod" / "__init__.py").write_text("VALUE = 42\n")
    (project / "mymod" / "notes.md").write_text("not python\n")
    monkeypatch.syspath_prepend(str(project))
    sb = sandboxes(image=debian.add_local_python_source("mymod"))
    assert run(sb, "ls /root/mymod; cd /tmp && python -c 'import mymod; print(mymod.VALUE)'") == "__init__.py\n42\n"
