"""Phase lines: a long command says what it is doing, and how long each step took.

Each phase prints one line to stderr when it starts, numbered against the command's
steps and with the time since the start, e.g. ``shiftbench: [2/7] shifting: keyboard@1
(3.1 s elapsed)``: a log in CI, a sign of life on a terminal (where the runner's bars
show the progress inside model passes). ``--no-progress`` silences both.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")


class Phases:
    """The steps of one command (timing key -> label, in order) and the seconds spent in
    each; a step may run several times (once per split), its seconds add up."""

    def __init__(self, steps: dict[str, str], enabled: bool = True) -> None:
        self.steps = steps
        self.enabled = enabled
        self.seconds: dict[str, float] = {}
        self.started = time.perf_counter()

    @contextmanager
    def phase(self, key: str, detail: str = "") -> Iterator[None]:
        """Announce step ``key`` (with ``detail``, e.g. the split) and time it."""
        if self.enabled:
            number = list(self.steps).index(key) + 1
            what = self.steps[key] + (f": {detail}" if detail else "")
            print(f"shiftbench: [{number}/{len(self.steps)}] {what} "
                  f"({self.elapsed():.1f} s elapsed)", file=sys.stderr, flush=True)
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[key] = self.seconds.get(key, 0.0) + time.perf_counter() - started

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


def bar(items: Iterable[T], total: int, desc: str, enabled: bool) -> Iterable[T]:
    """``items`` with a progress bar when ``enabled`` (on a terminal); like the runner's
    bars, it appears only for work that lasts over 2 seconds."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(items, total=total, desc=desc, unit="text", delay=2)
