"""modal.enable_output(): show image builds as they happen.

Without it builds are quiet on stderr (their log tail still comes with an
ImageBuildError). With it, each step is announced with its number and every
line of its log is streamed to stderr, then the total time is printed.
Either way every build goes to the `pysandbox.image` logger: its start, each
step and its end at INFO, each line of a step's log at DEBUG, so that a long
build is never silent in an application's logs.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from typing import Iterator

_enabled = [False]  # process-wide, like Modal's output manager
logger = logging.getLogger("pysandbox.image")


@contextlib.contextmanager
def enable_output() -> Iterator[None]:
    """Stream image build logs while the block runs; the previous setting comes back after it."""
    previous = _enabled[0]
    _enabled[0] = True
    try:
        yield
    finally:
        _enabled[0] = previous


def enabled() -> bool:
    return _enabled[0]


class BuildProgress:
    """Progress of one image build: printed when output is enabled, silent otherwise."""

    def __init__(self, image_id: str, steps: int, stream=None) -> None:
        self.image_id, self.steps = image_id, steps
        self.stream = stream if stream is not None else (sys.stderr if enabled() else None)
        self.started = time.monotonic()
        self._emit(logging.INFO, f"Building image {image_id}")

    def _emit(self, level: int, text: str) -> None:
        logger.log(level, "%s", text.strip())
        if self.stream is not None:
            self.stream.write(text + "\n")
            self.stream.flush()

    def step(self, number: int, description: str) -> None:
        self._emit(logging.INFO, f"=> Step {number}/{self.steps}: {description}")

    def cached(self, number: int, description: str) -> None:
        self._emit(logging.INFO, f"=> Step {number}/{self.steps}: {description} (cached)")

    def log(self, line: str) -> None:
        self._emit(logging.DEBUG, f"   {line}")

    def done(self) -> None:
        self._emit(logging.INFO, f"Built image {self.image_id} in {time.monotonic() - self.started:.1f}s")
