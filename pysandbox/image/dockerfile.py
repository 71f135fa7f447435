"""Image.from_dockerfile's parser: the common Dockerfile instructions as plain data.

FROM (one stage; `scratch` or a registry reference), RUN, ENV, ARG (with
build_args), WORKDIR, COPY and ADD of local files from the context directory
(.dockerignore honoured), CMD, ENTRYPOINT. LABEL, EXPOSE and MAINTAINER are
metadata without effect on a sandbox and are accepted. Anything else, and
options such as COPY --from or ADD of URLs, raises UnimplementedError naming it.
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shlex
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..exception import InvalidError, UnimplementedError

METADATA_ONLY = ("LABEL", "EXPOSE", "MAINTAINER")
_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def instructions(text: str) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) with comments dropped and continuation lines joined."""
    result, pending = [], ""
    for line in text.splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        if pending and stripped.startswith("#"):
            continue
        full = (pending + stripped).strip()
        pending = ""
        if full:
            word, _, rest = full.partition(" ")
            result.append((word.upper(), rest.strip()))
    if pending.strip():
        word, _, rest = pending.strip().partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def _substitute(text: str, variables: Dict[str, str], keep_unknown: bool = False) -> str:
    """ARG and ENV values into `text`; in RUN lines (keep_unknown) other variables are left to
    the shell, which has the build's secrets and env."""
    return _VARIABLE.sub(lambda m: variables.get(m.group(1) or m.group(2), m.group(0) if keep_unknown else ""), text)


def _exec_or_shell(arguments: str) -> List[str]:
    if arguments.startswith("["):
        try:
            value = json.loads(arguments)
        except ValueError:
            raise InvalidError(f"Dockerfile: malformed JSON form {arguments!r}") from None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InvalidError(f"Dockerfile: {arguments!r} must be a JSON list of strings")
        return value
    return ["/bin/sh", "-c", arguments]


def _env_pairs(arguments: str) -> Dict[str, str]:
    words = shlex.split(arguments)
    if words and "=" not in words[0]:  # legacy form: ENV KEY value with spaces
        return {words[0]: arguments.split(None, 1)[1] if len(words) > 1 else ""}
    return dict(word.split("=", 1) for word in words)


def _user(arguments: str) -> str:
    words = arguments.split()
    if len(words) != 1 or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?", words[0]):
        raise InvalidError(f"Dockerfile: USER {arguments!r}: give one user, a name or uid, optionally :group")
    return words[0]


def as_user(script: str, user: str) -> str:
    """A RUN step after `USER user[:group]`, as Docker runs it: as that user, with its primary
    group (or the one given) and its supplementary groups. setpriv where the image has it, else
    su. Only build steps: a sandbox's processes run as root, as on Modal (docs/ARCHITECTURE.md)."""
    name, _, group = user.partition(":")
    u, command = shlex.quote(name), shlex.quote(script)
    gid = shlex.quote(group) if group else f'"$(id -g {u})"'
    groups = "--clear-groups" if group else "--init-groups"
    return (f"if command -v setpriv >/dev/null 2>&1; then exec setpriv --reuid={u} --regid={gid} {groups} "
            f"-- /bin/sh -c {command}; else exec su -s /bin/sh -c {command} {u}; fi")


def _dockerignore(path: Path) -> List[str]:
    if not path.is_file():
        return []
    return [line.strip() for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]


class Instruction(NamedTuple):
    """One step of a parsed Dockerfile, as plain data; Image.from_dockerfile replays it.
    op is FROM (reference or "scratch"), RUN (script), ENV (dict), WORKDIR (absolute path),
    CMD or ENTRYPOINT (argv), COPY_DIR (local dir, dest, ignore) or COPY_FILE (local file, dest)."""

    op: str
    args: tuple


class _AutoDockerIgnoreSentinel:
    """Modal's default `ignore`: the .dockerignore of the Dockerfile or of the context."""

    def __repr__(self) -> str:
        return "modal._image.AUTO_DOCKERIGNORE"

    def __call__(self, _: Path) -> bool:
        raise NotImplementedError("AUTO_DOCKERIGNORE is a placeholder: it is never called")


AUTO_DOCKERIGNORE = _AutoDockerIgnoreSentinel()


def ignore_rules(ignore, context: Path, dockerfile: Optional[Path] = None):
    """What COPY leaves out: the .dockerignore (`<Dockerfile>.dockerignore` beside it first, as
    Modal) for AUTO_DOCKERIGNORE, else the caller's patterns or its predicate on context-relative Paths."""
    if ignore is AUTO_DOCKERIGNORE:
        beside = None if dockerfile is None else dockerfile.with_name(dockerfile.name + ".dockerignore")
        return _dockerignore(beside if beside is not None and beside.is_file() else context / ".dockerignore")
    if callable(ignore):
        root = context.resolve()
        return lambda path: bool(ignore(Path(path).resolve().relative_to(root)))
    if isinstance(ignore, (list, tuple)) and all(isinstance(p, str) for p in ignore):
        return list(ignore)
    raise InvalidError("ignore must be AUTO_DOCKERIGNORE, a list of glob patterns or a function of a Path")


def parse(path, context_dir=None, build_args: Optional[Dict[str, str]] = None,
          ignore=AUTO_DOCKERIGNORE) -> List[Instruction]:
    """The instructions of the Dockerfile at `path`, FROM first, with ARGs, USER and
    relative paths resolved; anything unsupported raises before any is replayed."""
    dockerfile = Path(path)
    if not dockerfile.is_file():
        raise InvalidError(f"Dockerfile {path} not found")
    context = Path(context_dir) if context_dir is not None else Path.cwd()
    result = _parse(dockerfile.read_text(), context, build_args, ignore_rules(ignore, context, dockerfile), True)
    if not result:
        raise InvalidError(f"Dockerfile {path} has no FROM")
    return result


def parse_commands(commands: List[str], context_dir=None, build_args: Optional[Dict[str, str]] = None,
                   ignore=AUTO_DOCKERIGNORE) -> List[Instruction]:
    """Dockerfile lines applied to an image that exists (setup_dockerfile_commands,
    dockerfile_commands): no FROM; relative paths start from /."""
    context = Path(context_dir) if context_dir is not None else Path.cwd()
    return _parse("\n".join(commands), context, build_args, ignore_rules(ignore, context), False)


def _parse(text: str, context: Path, build_args: Optional[Dict[str, str]], ignore, need_from: bool
           ) -> List[Instruction]:
    variables: Dict[str, str] = {}
    result: List[Instruction] = []
    workdir, user = "/", "root"
    for instruction, arguments in instructions(text):
        if instruction == "ARG":
            name, _, default = arguments.partition("=")
            variables[name.strip()] = (build_args or {}).get(name.strip(), default)
            continue
        arguments = _substitute(arguments, variables, keep_unknown=instruction == "RUN")
        if instruction == "FROM":
            if not need_from:
                raise InvalidError("FROM is not allowed here: these commands apply to the image before them")
            result.append(_from(arguments, first=not result))
        elif need_from and not result:
            raise InvalidError(f"Dockerfile: {instruction} before FROM")
        elif instruction in METADATA_ONLY:
            continue
        elif instruction == "RUN":
            result.append(Instruction("RUN", (_run_script(arguments, user),)))
        elif instruction == "USER":
            user = _user(arguments)
        elif instruction == "ENV":
            result.append(Instruction("ENV", (_env_pairs(arguments),)))
            variables.update(_env_pairs(arguments))
        elif instruction == "WORKDIR":
            workdir = posixpath.join(workdir, arguments)
            result.append(Instruction("WORKDIR", (workdir,)))
        elif instruction in ("CMD", "ENTRYPOINT"):
            result.append(Instruction(instruction, (_exec_or_shell(arguments),)))
        elif instruction in ("COPY", "ADD"):
            result += _copy(instruction, arguments, context, workdir, ignore)
        else:
            raise UnimplementedError(f"Dockerfile: {instruction} is not supported by pysandbox")
    return result


def _from(arguments: str, first: bool) -> Instruction:
    if not first:
        raise UnimplementedError("Dockerfile: multi-stage builds (a second FROM) are not supported by pysandbox")
    words = arguments.split()
    if len(words) not in (1, 3) or words[0].startswith("--"):
        raise UnimplementedError(f"Dockerfile: FROM {arguments} (options or stage names are not supported)")
    return Instruction("FROM", (words[0],))


def _run_script(arguments: str, user: str) -> str:
    if arguments.startswith("--"):
        raise UnimplementedError(f"Dockerfile: RUN options ({arguments.split()[0]}) are not supported")
    command = _exec_or_shell(arguments)
    script = command[2] if command[:2] == ["/bin/sh", "-c"] else shlex.join(command)
    return script if user in ("root", "0", "root:root", "0:0") else as_user(script, user)


def _copy(instruction: str, arguments: str, context: Path, workdir: str, ignore) -> List[Instruction]:
    words = _exec_or_shell(arguments) if arguments.startswith("[") else arguments.split()
    if any(word.startswith("--") for word in words):
        raise UnimplementedError(f"Dockerfile: {instruction} options ({arguments}) are not supported by pysandbox")
    if len(words) < 2:
        raise InvalidError(f"Dockerfile: {instruction} needs a source and a destination")
    *sources, dest = words
    dest = posixpath.join(workdir, dest)
    copies = []
    for source in sources:
        if instruction == "ADD" and re.match(r"^[a-z]+://", source):
            raise UnimplementedError("Dockerfile: ADD of URLs is not supported by pysandbox; use RUN curl")
        local = (context / source).resolve()
        if context.resolve() not in (local, *local.parents):
            raise InvalidError(f"Dockerfile: {instruction} {source} is outside the build context {context}")
        if instruction == "ADD" and re.search(r"\.(tar|tgz|tar\.\w+)$", source):
            raise UnimplementedError("Dockerfile: ADD of archives (auto-extraction) is not supported by pysandbox")
        if local.is_dir():
            copies.append(Instruction("COPY_DIR", (local, dest, ignore)))
        else:
            target = posixpath.join(dest, os.path.basename(source)) if dest.endswith("/") or len(sources) > 1 else dest
            copies.append(Instruction("COPY_FILE", (local, target)))
    return copies
