"""image/dockerfile.parse: a Dockerfile to plain instructions, with no Image and no build."""

from pathlib import Path

import pytest

from pysandbox.exception import InvalidError, UnimplementedError
from pysandbox.image import dockerfile
from pysandbox.image.dockerfile import Instruction


def _parse(tmp_path: Path, text: str, **kwargs):
    (tmp_path / "Dockerfile").write_text(text)
    return dockerfile.parse(tmp_path / "Dockerfile", tmp_path, **kwargs)


def test_instructions_resolved_in_order(tmp_path):
    (tmp_path / "app").mkdir()
    (tmp_path / "main.py").write_text("")
    (tmp_path / ".dockerignore").write_text("# comment\n*.pyc\n")
    parsed = _parse(tmp_path, (
        "ARG BASE=debian:12\nFROM $BASE\nLABEL x=y\nENV A=1 B=\"two words\"\nWORKDIR /srv\nWORKDIR app\n"
        "RUN echo $A\nRUN [\"ls\", \"-l\"]\nCOPY app /dst\nCOPY main.py /opt/\nCMD python main.py\n"
        "ENTRYPOINT [\"tini\", \"--\"]\n"
    ))
    assert parsed == [
        Instruction("FROM", ("debian:12",)),
        Instruction("ENV", ({"A": "1", "B": "two words"},)),
        Instruction("WORKDIR", ("/srv",)),
        Instruction("WORKDIR", ("/srv/app",)),
        Instruction("RUN", ("echo 1",)),
        Instruction("RUN", ("ls -l",)),
        Instruction("COPY_DIR", ((tmp_path / "app").resolve(), "/dst", ["*.pyc"])),
        Instruction("COPY_FILE", ((tmp_path / "main.py").resolve(), "/opt/main.py")),
        Instruction("CMD", (["/bin/sh", "-c", "python main.py"],)),
        Instruction("ENTRYPOINT", (["tini", "--"],)),
    ]


def test_build_args_and_user(tmp_path):
    parsed = _parse(tmp_path, "FROM scratch\nARG WHO=nobody\nUSER $WHO\nRUN id\n", build_args={"WHO": "app:app"})
    assert parsed[0] == Instruction("FROM", ("scratch",))
    assert parsed[1].op == "RUN" and parsed[1].args[0] == dockerfile.as_user("id", "app:app")
    assert "--reuid=app" in parsed[1].args[0]


@pytest.mark.parametrize("text, error, match", [
    ("RUN true\n", InvalidError, "before FROM"),
    ("# nothing\n", InvalidError, "has no FROM"),
    ("FROM a\nFROM b\n", UnimplementedError, "multi-stage"),
    ("FROM --platform=x a\n", UnimplementedError, "options"),
    ("FROM a\nRUN --mount=type=cache true\n", UnimplementedError, "RUN options"),
    ("FROM a\nHEALTHCHECK NONE\n", UnimplementedError, "HEALTHCHECK"),
    ("FROM a\nCOPY --from=x /a /b\n", UnimplementedError, "options"),
    ("FROM a\nCOPY only\n", InvalidError, "source and a destination"),
    ("FROM a\nADD https://x/y /y\n", UnimplementedError, "URLs"),
    ("FROM a\nCOPY ../outside /x\n", InvalidError, "outside the build context"),
    ("FROM a\nUSER a b\n", InvalidError, "USER"),
    ("FROM a\nCMD [\"x\", 1]\n", InvalidError, "JSON list of strings"),
])
def test_refusals(tmp_path, text, error, match):
    with pytest.raises(error, match=match):
        _parse(tmp_path, text)


def test_missing_file(tmp_path):
    with pytest.raises(InvalidError, match="not found"):
        dockerfile.parse(tmp_path / "Dockerfile")
