"""image/dockerfile.parse: a Dockerfile to plain instructions, with no Image and no build."""

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pysandbox.exception import InvalidError
from pysandbox.image import dockerfile
from pysandbox.image.dockerfile import Instruction
from pysandbox.image.ignore import DockerIgnore


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
        Instruction("COPY_DIR", ((tmp_path / "app").resolve(), "/dst", DockerIgnore(["*.pyc"], tmp_path))),
        Instruction("COPY_FILE", ((tmp_path / "main.py").resolve(), "/opt/main.py")),
        Instruction("CMD", (["/bin/sh", "-c", "python main.py"],)),
        Instruction("ENTRYPOINT", (["tini", "--"],)),
    ]


def test_build_args_and_user(tmp_path):
    parsed = _parse(tmp_path, "FROM scratch\nARG WHO=nobody\nUSER $WHO\nRUN id\n", build_args={"WHO": "app:app"})
    assert parsed[0] == Instruction("FROM", ("scratch",))
    assert parsed[1].op == "RUN" and parsed[1].args[0] == dockerfile.as_user("export WHO=app:app\nid", "app:app")
    assert "--reuid=app" in parsed[1].args[0]


@pytest.mark.parametrize("text, match", [
    ("RUN true\n", "line 1 `RUN true`: RUN before FROM"),
    ("# nothing\n", "has no FROM"),
    ("FROM --platform=linux/arm64 a\n", "linux/amd64"),
    ("FROM a b\n", "AS name"),
    ("FROM a\nRUN --mount=type=secret,id=x true\n", "line 2 .*RUN --mount=type=secret"),
    ("FROM a\nCOPY --parents x /b\n", "COPY --parents"),
    ("FROM a\nADD --from=x /a /b\n", "ADD --from"),
    ("FROM a\nCOPY only\n", "source and a destination"),
    ("FROM a\nADD https://x/y /y\n", "URLs"),
    ("FROM a\nCOPY ../outside /x\n", "outside the build context"),
    ("FROM a\nCOPY ../*.txt /x\n", "outside the build context"),
    ("FROM a\nCOPY missing.txt /x\n", "not found"),
    ("FROM a\nCOPY *.nothing /x\n", "names nothing"),
    ("FROM a\nUSER a b\n", "USER"),
    ("FROM a\nCMD [\"x\", 1]\n", "JSON list of strings"),
    ("FROM a\nSHELL bash -c\n", "JSON form"),
    ("FROM a\nCOPY --chown=$(id) x /x\n", "--chown"),
    ("FROM a\n\nFROBNICATE x\n", "line 3 `FROBNICATE x`: FROBNICATE is not"),
    ("FROM a\nRUN <<EOF\ntrue\n", "line 2 `RUN <<EOF`: the heredoc <<EOF is never closed"),
])
def test_refusals_name_the_line(tmp_path, text, match):
    (tmp_path / "x").write_text("")
    with pytest.raises(InvalidError, match=match):
        _parse(tmp_path, text)


def test_stages_heredocs_and_variables(tmp_path):
    (tmp_path / "a.txt").write_text("")
    (tmp_path / ".b.txt").write_text("")
    parsed = _parse(tmp_path, (
        "ARG BASE=debian:12\nARG TAG\nFROM ${BASE} AS build\nARG TAG=v1\nENV PATH=/opt/bin:$PATH LEGACY=x\n"
        "RUN --mount=type=cache,target=/c <<EOF\necho ${TAG:-none} ${UNSET:-dflt} ${TAG:+set} $HOME\nEOF\n"
        "FROM build AS test\nRUN never-built\n"
        "FROM scratch\nCOPY --from=build --chown=1:2 /out /app/\nCOPY *.txt /t/\n"
        "COPY <<EOF /etc/conf\nv=$TAG\nEOF\nSHELL [\"/bin/bash\", \"-c\"]\nCMD run it\nHEALTHCHECK CMD true\n"))
    build = (Instruction("FROM", ("debian:12",)), Instruction("ENV", ({"LEGACY": "x"},)),
             Instruction("ENV_LATE", ({"PATH": "/opt/bin:$PATH"},)),
             Instruction("RUN", ("export TAG=v1\necho v1 ${UNSET:-dflt} set $HOME\n",)))
    assert parsed == [
        Instruction("FROM", ("scratch",)),
        Instruction("COPY_FROM", (build, ("/out",), "/app/")),
        Instruction("RUN", ("chown -R 1:2 /app/",)),
        Instruction("COPY_FILE", ((tmp_path / ".b.txt").resolve(), "/t/.b.txt")),  # `*` matches dot-files
        Instruction("COPY_FILE", ((tmp_path / "a.txt").resolve(), "/t/a.txt")),
        Instruction("WRITE_FILE", ("/etc/conf", "v=\n")),  # TAG was declared in another stage only
        Instruction("CMD", (["/bin/bash", "-c", "run it"],)),
    ]


def test_dockerignore_is_anchored_with_exceptions(tmp_path):
    for rel in ("a.log", "sub/a.log", "sub/deep/b.log", "out/x", "out/keep", "src/main.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    ignore = DockerIgnore(["*.log", "**/b.log", "out", "!out/keep", "# not a comment here"], tmp_path)
    left_out = {rel for rel in ("a.log", "sub/a.log", "sub/deep/b.log", "out/x", "out/keep", "src/main.py")
                if ignore(tmp_path / rel)}
    assert left_out == {"a.log", "sub/deep/b.log", "out/x"}
    assert not ignore(tmp_path / "out")  # an exception reaches into it: walked, entries filtered


def test_entrypoint_drops_the_base_cmd_and_a_glob_may_match_nothing(tmp_path):
    (tmp_path / "go.mod").write_text("")
    parsed = _parse(tmp_path, "FROM a\nCOPY go.mod go.sum* /src/\nENTRYPOINT [\"/app\"]\n")
    assert parsed[1:] == [Instruction("COPY_FILE", ((tmp_path / "go.mod").resolve(), "/src/go.mod")),
                          Instruction("ENTRYPOINT", (["/app"],)), Instruction("CMD", ([],))]
    parsed = _parse(tmp_path, "FROM a\nCMD [\"x\"]\nENTRYPOINT [\"/app\"]\n")
    assert parsed[-1] == Instruction("ENTRYPOINT", (["/app"],))


def test_missing_file(tmp_path):
    with pytest.raises(InvalidError, match="not found"):
        dockerfile.parse(tmp_path / "Dockerfile")


@given(st.text(st.characters(exclude_characters="$\\"), max_size=40),
       st.dictionaries(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True), st.text(max_size=8)))
def test_expand_leaves_text_without_variables_alone(text, variables):
    assert dockerfile.expand(text, variables) == text == dockerfile.expand(text, variables, keep_unknown=True)


@given(st.text(st.characters(exclude_characters="$\\}"), max_size=10), st.text(max_size=10))
def test_expand_default_and_alternative(word, value):
    for variables in ({}, {"V": value}):
        set_ = bool(variables.get("V"))
        assert dockerfile.expand("${V:-%s}" % word, variables) == (value if set_ else word)
        assert dockerfile.expand("${V:+%s}" % word, variables) == (word if set_ else "")
        assert dockerfile.expand("$V${V}", variables) == 2 * variables.get("V", "")
    assert dockerfile.expand("${V:-%s} \\$V" % word, {}, keep_unknown=True) == "${V:-%s} \\$V" % word
