""".dockerignore matching, as docker does it: patterns are anchored at the build context's root
(`*.log` is only the root's, `**/*.log` any depth's), a pattern that names a directory names all
beneath it, and a later `!pattern` takes back what an earlier one left out. The matching itself
is pathspec's (git's wildmatch); only the anchoring is ours."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, List

import pathspec

_WILDCARDS = frozenset("*?[")


def read_dockerignore(path: Path) -> List[str]:
    """The patterns of the .dockerignore at `path` ([] when there is none): comments and blank lines dropped."""
    if not path.is_file():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _anchored(pattern: str) -> str:
    negated = pattern.startswith("!")
    body = os.path.normpath(pattern[1:] if negated else pattern).lstrip("/")  # docker cleans each pattern
    return ("!" if negated else "") + "/" + body


class DockerIgnore:
    """A predicate on paths in (or under) `context`: True for what the patterns leave out."""

    def __init__(self, patterns: Iterable[str], context: Path) -> None:
        self.patterns = [p for p in patterns if p.strip("!").strip()]
        self.context = os.path.realpath(context)
        self._spec = pathspec.PathSpec.from_lines("gitignore", map(_anchored, self.patterns))
        # Exceptions a directory walk must look under an excluded directory for.
        self._exceptions = [_anchored(p)[2:] for p in self.patterns if p.startswith("!")]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DockerIgnore) and (other.patterns, other.context) == (self.patterns, self.context)

    def __repr__(self) -> str:
        return f"DockerIgnore({self.patterns!r}, {self.context!r})"

    def relative(self, path) -> str:
        return os.path.relpath(os.path.abspath(path), self.context)

    def excluded(self, rel: str, is_dir: bool = False) -> bool:
        """Whether the context-relative path `rel` is left out. A directory that an exception
        may reach into is kept (its excluded entries are then left out one by one)."""
        if rel in (".", "") or not self._spec.match_file(rel):
            return False
        if is_dir:
            return not any(_WILDCARDS & set(e) or e.startswith(rel + "/") for e in self._exceptions)
        return True

    def __call__(self, path) -> bool:
        return self.excluded(self.relative(path), os.path.isdir(path) and not os.path.islink(path))
