"""Image.from_dockerfile's parser: a Dockerfile as plain data (Instructions) that
image/recipe.py replays as image steps. Nothing is read but the Dockerfile, the
.dockerignore and the context's listing; nothing is built.

What each instruction means locally (docs/ARCHITECTURE.md, Images):
- FROM [--platform=linux/amd64] ref|scratch|stage [AS name]: stages. The last stage is the image;
  a stage is built only when a COPY --from of a stage it needs names it.
- ARG (before the first FROM: for FROM lines, and re-declared inside a stage), ENV (both forms;
  a variable the Dockerfile does not set, such as the base image's PATH, is expanded when the
  layer's config is made), WORKDIR, USER (RUN steps only: sandboxes run as root, as on Modal),
  SHELL (RUN and shell-form CMD/ENTRYPOINT), CMD, ENTRYPOINT.
- RUN, with heredocs; `--mount=type=cache` is accepted (no cache is kept) and `--network=default`.
- COPY/ADD of local files (globs; .dockerignore), `COPY <<EOF` files, `COPY --from=stage|image`,
  `--chown`/`--chmod` (a `chown -R`/`chmod -R` step after the copy, so the image needs them),
  `--link` (no effect); ADD of a local tar archive extracts it, bounded like registry layers.
- LABEL, EXPOSE, MAINTAINER, STOPSIGNAL, HEALTHCHECK, VOLUME, ONBUILD: accepted, no local effect
  (no label store, ports are opened with encrypted_ports=, sandboxes are stopped by terminate(),
  readiness is Sandbox.create(readiness_probe=), volumes are attached with volumes=, and a
  trigger would only run in a Dockerfile built on this one).
Anything else raises InvalidError naming the line (number and text).
"""

from __future__ import annotations

import fnmatch
import json
import os
import posixpath
import re
import shlex
import tarfile
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Tuple

from ..exception import InvalidError
from .ignore import DockerIgnore, read_dockerignore
from .local import AUTO_DOCKERIGNORE

ACCEPTED_WITHOUT_EFFECT = ("LABEL", "EXPOSE", "MAINTAINER", "STOPSIGNAL", "HEALTHCHECK", "VOLUME", "ONBUILD")
DEFAULT_SHELL = ("/bin/sh", "-c")
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_VARIABLE = re.compile(r"\\\$|\$(?:\{(%s)(?:(:[-+])([^}]*))?\}|(%s))" % (_NAME, _NAME))
_HEREDOC = re.compile(r"<<(-?)([\"']?)(%s)\2" % _NAME)
_WILDCARDS = re.compile(r"[*?\[]")


class Line(NamedTuple):
    """One instruction as written: its first line's number and text, its joined arguments and
    the bodies of its heredocs ((delimiter, quoted, body) in order)."""

    number: int
    text: str
    instruction: str
    arguments: str
    heredocs: Tuple[Tuple[str, bool, str], ...] = ()


class Instruction(NamedTuple):
    """One step of a parsed Dockerfile, as plain data; Image.from_dockerfile replays it.
    FROM (reference or "scratch"), RUN (script), ENV (dict), ENV_LATE (dict whose values still
    name variables of the image below), WORKDIR (absolute path), CMD or ENTRYPOINT (argv),
    COPY_DIR (local dir, dest, ignore), COPY_FILE (local file, dest), WRITE_FILE (dest, text),
    ADD_ARCHIVE (local archive, dest dir), COPY_FROM (the stage's instructions, sources, dest)."""

    op: str
    args: tuple


# Lexing --------------------------------------------------------------------


def lines(text: str) -> List[Line]:
    """The instructions of `text`: comments dropped, continuation lines joined, heredoc bodies read."""
    result: List[Line] = []
    source = text.splitlines()
    index = 0
    while index < len(source):
        start, pending = index, ""
        while index < len(source):
            stripped = source[index].strip()
            index += 1
            if stripped.startswith("#"):
                continue  # comments (and parser directives), also between continuation lines
            if stripped.endswith("\\"):
                pending += stripped[:-1] + " "
                continue
            pending += stripped
            break
        full = pending.strip()
        if not full:
            continue
        while not source[start].strip() or source[start].strip().startswith("#"):
            start += 1
        word, _, rest = full.partition(" ")
        heredocs = []
        if word.upper() in ("RUN", "COPY", "ADD"):
            for strip_tabs, quote, delimiter in _HEREDOC.findall(rest):
                body = []
                while True:
                    if index >= len(source):
                        raise InvalidError(f"Dockerfile line {start + 1} `{source[start].strip()}`: "
                                           f"the heredoc <<{delimiter} is never closed")
                    line = source[index]
                    index += 1
                    if (line.lstrip("\t") if strip_tabs else line) == delimiter:
                        break
                    body.append(line.lstrip("\t") if strip_tabs else line)
                heredocs.append((delimiter, bool(quote), "".join(b + "\n" for b in body)))
        result.append(Line(start + 1, source[start].strip(), word.upper(), rest.strip(), tuple(heredocs)))
    return result


def instructions(text: str) -> List[Tuple[str, str]]:
    """(INSTRUCTION, arguments) of each instruction of `text`."""
    return [(line.instruction, line.arguments) for line in lines(text)]


def expand(text: str, variables: Dict[str, str], keep_unknown: bool = False) -> str:
    """$VAR, ${VAR}, ${VAR:-default} and ${VAR:+alternative} from `variables`, and \\$ as $.
    keep_unknown leaves a variable that is not there (and \\$) as written, for a later expansion."""
    def one(match: "re.Match[str]") -> str:
        if match.group(0) == "\\$":
            return match.group(0) if keep_unknown else "$"
        name = match.group(1) or match.group(4)
        if name not in variables and keep_unknown:
            return match.group(0)
        value, operator = variables.get(name, ""), match.group(2)
        if operator == ":-":
            return value or expand(match.group(3), variables, keep_unknown)
        if operator == ":+":
            return expand(match.group(3), variables, keep_unknown) if value else ""
        return value
    return _VARIABLE.sub(one, text)


# Parsing -------------------------------------------------------------------


def ignore_rules(ignore, context: Path, dockerfile: Optional[Path] = None):
    """What COPY leaves out, as a predicate on paths in the context: the .dockerignore
    (`<Dockerfile>.dockerignore` beside it first, as Modal) for AUTO_DOCKERIGNORE, the caller's
    patterns (.dockerignore syntax), or the caller's predicate on context-relative Paths."""
    if ignore is AUTO_DOCKERIGNORE:
        beside = None if dockerfile is None else dockerfile.with_name(dockerfile.name + ".dockerignore")
        return DockerIgnore(read_dockerignore(beside if beside is not None and beside.is_file()
                                              else context / ".dockerignore"), context)
    if callable(ignore):
        root = os.path.realpath(context)
        return lambda path: bool(ignore(Path(os.path.relpath(os.path.abspath(path), root))))
    if isinstance(ignore, (list, tuple)) and all(isinstance(p, str) for p in ignore):
        return DockerIgnore(ignore, context)
    raise InvalidError("ignore must be AUTO_DOCKERIGNORE, a list of glob patterns or a function of a Path")


def parse(path, context_dir=None, build_args: Optional[Dict[str, str]] = None,
          ignore=AUTO_DOCKERIGNORE) -> List[Instruction]:
    """The instructions of the Dockerfile's last stage, FROM first; anything unsupported raises
    before any is replayed."""
    dockerfile = Path(path)
    if not dockerfile.is_file():
        raise InvalidError(f"Dockerfile {path} not found")
    context = Path(context_dir) if context_dir is not None else Path.cwd()
    parser = _Parser(context, build_args or {}, ignore_rules(ignore, context, dockerfile), True)
    result = parser.run(lines(dockerfile.read_text()))
    if not result:
        raise InvalidError(f"Dockerfile {path} has no FROM")
    return result


def parse_commands(commands: List[str], context_dir=None, build_args: Optional[Dict[str, str]] = None,
                   ignore=AUTO_DOCKERIGNORE) -> List[Instruction]:
    """Dockerfile lines applied to an image that exists (setup_dockerfile_commands,
    dockerfile_commands): no FROM; relative paths start from /."""
    context = Path(context_dir) if context_dir is not None else Path.cwd()
    return _Parser(context, build_args or {}, ignore_rules(ignore, context), False).run(lines("\n".join(commands)))


class _Stage:
    """What a stage's later lines depend on: its instructions so far, variables, WORKDIR, USER, SHELL."""

    def __init__(self, name: Optional[str], instructions: List[Instruction], parent: Optional["_Stage"] = None):
        self.name, self.instructions = name, instructions
        self.variables: Dict[str, str] = dict(parent.variables) if parent else {}
        self.args: Dict[str, str] = dict(parent.args) if parent else {}  # exported to RUN, as docker does
        self.cmd_set = False
        self.workdir, self.user, self.shell = (parent.workdir, parent.user, parent.shell) if parent else \
            ("/", "root", DEFAULT_SHELL)


class _Parser:
    def __init__(self, context: Path, build_args: Dict[str, str], ignore, need_from: bool) -> None:
        self.context, self.build_args, self.ignore, self.need_from = context, build_args, ignore, need_from
        self.global_args: Dict[str, str] = {}
        self.stages: List[_Stage] = []

    def run(self, parsed: List[Line]) -> List[Instruction]:
        if not self.need_from:
            self.stages.append(_Stage(None, []))
        for line in parsed:
            try:
                self.line(line)
            except InvalidError as exc:
                raise InvalidError(f"Dockerfile line {line.number} `{line.text}`: {exc}") from None
        return self.stages[-1].instructions if self.stages else []

    def line(self, line: Line) -> None:
        word, arguments = line.instruction, line.arguments
        if word == "ARG":
            self.arg(arguments)
        elif word == "FROM":
            if not self.need_from:
                raise InvalidError("FROM is not allowed here: these commands apply to the image before them")
            self.from_(expand(arguments, {**self.global_args}))
        elif not self.stages:
            raise InvalidError(f"{word} before FROM")
        elif word in ACCEPTED_WITHOUT_EFFECT:
            return
        else:
            handler = getattr(self, "i_" + word.lower(), None)
            if handler is None:
                raise InvalidError(f"{word} is not a Dockerfile instruction pysandbox supports")
            stage = self.stages[-1]
            keep = word in ("RUN", "ENV")  # the shell, or the base image's config, has the rest
            heredocs = tuple((d, quoted, body if quoted else expand(body, stage.variables, keep_unknown=keep))
                             for d, quoted, body in line.heredocs)
            handler(stage, expand(arguments, stage.variables, keep_unknown=keep), heredocs)

    def arg(self, arguments: str) -> None:
        for word in shlex.split(arguments):
            name, has_default, default = word.partition("=")
            if not re.fullmatch(_NAME, name):
                raise InvalidError(f"ARG {name!r} is not a variable name")
            scope = self.stages[-1].variables if self.stages else self.global_args
            fallback = expand(default, scope) if has_default else self.global_args.get(name, "")
            scope[name] = self.build_args.get(name, fallback)
            if self.stages:
                self.stages[-1].args[name] = scope[name]

    def from_(self, arguments: str) -> None:
        words = arguments.split()
        if words and words[0].startswith("--platform="):
            if words[0].split("=", 1)[1] not in ("linux/amd64", "linux/x86_64", "$BUILDPLATFORM", "$TARGETPLATFORM"):
                raise InvalidError(f"{words[0]}: pysandbox runs linux/amd64 images only")
            words = words[1:]
        if words and words[0].startswith("--") or len(words) not in (1, 3) or \
                (len(words) == 3 and words[1].upper() != "AS"):
            raise InvalidError("FROM takes [--platform=linux/amd64] an image [AS name]")
        name = words[2].lower() if len(words) == 3 else None
        parent = self._stage(words[0])
        instructions = list(parent.instructions) if parent else [Instruction("FROM", (words[0],))]
        self.stages.append(_Stage(name, instructions, parent))

    def _stage(self, name: str) -> Optional[_Stage]:
        """The earlier stage called `name` (or numbered so), None if `name` is an image."""
        for number, stage in enumerate(self.stages):
            if name.lower() == stage.name or name == str(number):
                return stage
        return None

    # Instructions ----------------------------------------------------------

    def i_run(self, stage: _Stage, arguments: str, heredocs) -> None:
        while arguments.startswith("--"):
            option, _, arguments = arguments.partition(" ")
            arguments = arguments.lstrip()
            if not (option.startswith("--mount=type=cache") or option == "--network=default"):
                raise InvalidError(f"RUN {option} is not supported by pysandbox (only --mount=type=cache, "
                                   "which keeps no cache here, and --network=default)")
        if heredocs and re.fullmatch(r"<<-?[\"']?\w+[\"']?", arguments):
            script = heredocs[0][2]  # `RUN <<EOF`: the body is the script
        elif heredocs:  # `RUN cmd <<EOF`: the shell reads the heredocs itself
            script = arguments + "\n" + "".join(f"{body}{delimiter}\n" for delimiter, _, body in heredocs)
        else:
            command = self.command(arguments, stage)
            script = command[2] if list(command[:2]) == list(DEFAULT_SHELL) and len(command) == 3 \
                else shlex.join(command)
        if heredocs and stage.shell != DEFAULT_SHELL:
            script = shlex.join([*stage.shell, script])
        if stage.args:
            script = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(stage.args.items())) + script
        script = script if _is_root(stage.user) else as_user(script, stage.user)
        stage.instructions.append(Instruction("RUN", (script,)))

    def command(self, arguments: str, stage: _Stage) -> List[str]:
        """The argv of an exec form (a JSON list) or a shell form (run by SHELL)."""
        if arguments.startswith("["):
            return _json_words(arguments)
        return [*stage.shell, arguments]

    def i_cmd(self, stage: _Stage, arguments: str, _) -> None:
        stage.instructions.append(Instruction("CMD", (self.command(arguments, stage),)))
        stage.cmd_set = True

    def i_entrypoint(self, stage: _Stage, arguments: str, _) -> None:
        stage.instructions.append(Instruction("ENTRYPOINT", (self.command(arguments, stage),)))
        if not stage.cmd_set:  # docker: an ENTRYPOINT drops the CMD the base image had
            stage.instructions.append(Instruction("CMD", ([],)))

    def i_shell(self, stage: _Stage, arguments: str, _) -> None:
        if not arguments.startswith("["):
            raise InvalidError('SHELL takes the JSON form, e.g. SHELL ["/bin/bash", "-c"]')
        shell = tuple(self.command(arguments, stage))
        if not shell:
            raise InvalidError("SHELL needs a program")
        stage.shell = shell

    def i_user(self, stage: _Stage, arguments: str, _) -> None:
        words = arguments.split()
        if len(words) != 1 or not re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_.-]*(:[A-Za-z0-9_.][A-Za-z0-9_.-]*)?",
                                               words[0]):
            raise InvalidError(f"USER {arguments!r}: give one user, a name or uid, optionally :group")
        stage.user = words[0]

    def i_env(self, stage: _Stage, arguments: str, _) -> None:
        pairs = env_pairs(arguments)
        late = {k: v for k, v in pairs.items() if expand(v, {}, keep_unknown=True) != expand(v, {})}
        # A value naming a variable the Dockerfile never set (the base image's PATH) is expanded
        # against the image's config when the layer is made; the rest now.
        now = {k: expand(v, {}) for k, v in pairs.items() if k not in late}
        if now:
            stage.instructions.append(Instruction("ENV", (now,)))
        if late:
            stage.instructions.append(Instruction("ENV_LATE", (late,)))
        stage.variables.update(now)
        for name in late:
            stage.variables.pop(name, None)

    def i_workdir(self, stage: _Stage, arguments: str, _) -> None:
        if not arguments:
            raise InvalidError("WORKDIR needs a path")
        stage.workdir = posixpath.normpath(posixpath.join(stage.workdir, arguments))
        stage.instructions.append(Instruction("WORKDIR", (stage.workdir,)))

    def i_copy(self, stage: _Stage, arguments: str, heredocs, add: bool = False) -> None:
        allowed = ("chown", "chmod", "link") + (() if add else ("from",))
        options, words = _options(arguments, allowed, "ADD" if add else "COPY")
        if len(words) < 2:
            raise InvalidError("needs a source and a destination")
        *sources, dest = words
        dest = _absolute(stage.workdir, dest)
        into_dir = dest.endswith("/") or len(sources) > 1
        out = stage.instructions
        if "from" in options:
            source = self._stage(options["from"])
            steps = tuple(source.instructions) if source else (Instruction("FROM", (options["from"],)),)
            out.append(Instruction("COPY_FROM", (steps, tuple(sources), dest)))
            touched = [dest]
        else:
            touched = []
            documents = iter(heredocs)
            for source in sources:
                if _HEREDOC.fullmatch(source):
                    _, quoted, body = next(documents)
                    target = posixpath.join(dest, _HEREDOC.fullmatch(source).group(3)) if into_dir else dest
                    out.append(Instruction("WRITE_FILE", (target, body)))
                    touched.append(target)
                    continue
                if add and re.match(r"^[a-z][a-z0-9+.-]*://", source):
                    raise InvalidError("ADD of URLs is not supported by pysandbox; use RUN curl or wget")
                matches = self.local_sources(source)
                if not matches and _WILDCARDS.search(source):
                    continue  # a glob may match nothing, as long as some source does
                for local in matches:
                    if local.is_dir():
                        out.append(Instruction("COPY_DIR", (local, dest, self.ignore)))
                        touched.append(dest)
                    elif add and _is_archive(local):
                        out.append(Instruction("ADD_ARCHIVE", (local, dest)))
                        touched.append(dest)
                    else:
                        target = posixpath.join(dest, local.name) if into_dir or len(matches) > 1 else dest
                        out.append(Instruction("COPY_FILE", (local, target)))
                        touched.append(target)
        if not touched:
            raise InvalidError(f"{' '.join(sources)} names nothing in the build context {self.context}")
        for option, tool in (("chown", "chown"), ("chmod", "chmod")):
            if option in options:
                spec = options[option]
                if not re.fullmatch(r"[A-Za-z0-9_.:-]+", spec):
                    raise InvalidError(f"--{option}={spec}: give user[:group] or an octal mode")
                out.append(Instruction("RUN", (f"{tool} -R {shlex.quote(spec)} {shlex.join(touched)}",)))

    def i_add(self, stage: _Stage, arguments: str, heredocs) -> None:
        self.i_copy(stage, arguments, heredocs, add=True)

    def local_sources(self, source: str) -> List[Path]:
        """The context's paths that `source` (a path or a glob) names, each inside the context
        once symlinks are followed, and not left out by .dockerignore."""
        root = self.context.resolve()
        found = _glob(root, source) if _WILDCARDS.search(source) else [root / source.lstrip("/")]
        kept = []
        for path in found:
            real = path.resolve()
            if root not in (real, *real.parents):
                raise InvalidError(f"{source} is outside the build context {self.context}")
            if not path.exists():
                raise InvalidError(f"{source} not found in the build context {self.context}")
            # The name and, for a symlink, what it leads to: a link cannot bring in a file .dockerignore
            # leaves out (docker would not have it in the context at all).
            if not self.ignore(path) and not self.ignore(real):
                kept.append(real)
        if not kept and not _WILDCARDS.search(source):
            raise InvalidError(f"{source} is left out of the build context by .dockerignore")
        return sorted(kept)


def _absolute(workdir: str, dest: str) -> str:
    """`dest` from `workdir`, normalised, keeping the trailing '/' that says "into this directory"."""
    path = posixpath.normpath(posixpath.join(workdir, dest))
    return path + "/" if dest.endswith("/") and path != "/" else path


def _options(arguments: str, allowed: Tuple[str, ...], word: str) -> Tuple[Dict[str, str], List[str]]:
    """COPY/ADD's --options and the rest of its words (the JSON form too)."""
    options: Dict[str, str] = {}
    rest = arguments
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        if name not in allowed:
            raise InvalidError(f"{word} --{name} is not supported by pysandbox (only "
                               + ", ".join("--" + a for a in allowed) + ")")
        options[name] = value
        rest = rest.strip()
    if rest.startswith("["):
        return options, _json_words(rest)
    return options, rest.split()


def _glob(root: Path, pattern: str) -> List[Path]:
    """The paths under `root` matching `pattern` (Go's filepath.Match per component, as docker: `*`
    stops at `/` and matches dot-files); never a path outside `root` by a '..' component."""
    found = [root]
    for part in [p for p in pattern.split("/") if p not in ("", ".")]:
        if part == "..":
            raise InvalidError(f"{pattern} is outside the build context")
        if not _WILDCARDS.search(part):
            found = [p / part for p in found if os.path.lexists(p / part)]
            continue
        found = [p / name for p in found if p.is_dir() and not p.is_symlink()
                 for name in sorted(os.listdir(p)) if fnmatch.fnmatchcase(name, part)]
    return found


def _is_archive(path: Path) -> bool:
    """Docker extracts a local tar archive (plain, gzip, bzip2 or xz) named in ADD; other files are copied."""
    try:
        return tarfile.is_tarfile(path)
    except OSError:
        return False


def env_pairs(arguments: str) -> Dict[str, str]:
    """ENV A=1 B="two words", or the legacy ENV KEY value with spaces."""
    words = shlex.split(arguments, posix=True)
    if words and "=" not in words[0]:
        return {words[0]: arguments.split(None, 1)[1] if len(words) > 1 else ""}
    pairs = dict(word.split("=", 1) for word in words if "=" in word)
    if len(pairs) != len(words) or not all(re.fullmatch(r"[^\s=]+", name) for name in pairs):
        raise InvalidError("ENV takes NAME=value pairs (or the legacy NAME value)")
    return pairs



def _is_root(user: str) -> bool:
    return user in ("root", "0", "root:root", "0:0")


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


def _json_words(text: str) -> List[str]:
    """An exec form: a JSON list of strings."""
    try:
        words = json.loads(text)
    except ValueError:
        raise InvalidError(f"malformed JSON form {text!r}") from None
    if not isinstance(words, list) or not all(isinstance(w, str) for w in words):
        raise InvalidError(f"{text!r} must be a JSON list of strings")
    return words
