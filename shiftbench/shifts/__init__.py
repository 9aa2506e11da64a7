"""Shifts: texts + per-example rng -> texts.

Determinism follows HELM: each example's rng is seeded from (suite seed, shift key,
example id), so a perturbed text never depends on batch order, batch size or process.
"""

from __future__ import annotations

import json
import random
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from shiftbench.errors import ShiftbenchError
from shiftbench.split import Split, example_seed

if TYPE_CHECKING:
    from shiftbench.runner import Runner


class Shift(ABC):
    """The shift contract: subclasses set ``name`` and implement :meth:`perturb`.

    ``__init__`` only stores parameters (scikit-learn style), so ``key`` and the
    report can describe a shift exactly, and ``type(shift)(shift.severity,
    **shift.params)`` rebuilds it. Shifts that batch (translation) also override
    :meth:`transform`; they get the run's :class:`~shiftbench.runner.Runner` for its
    cache, device and progress setting (per-example shifts ignore it). Either way a
    text's output depends only on the text and its example seed, never on the batch.
    """

    name: ClassVar[str] = "shift"

    def __init__(self, severity: int = 1, **params: Any) -> None:
        if isinstance(severity, bool) or not isinstance(severity, int) or not 1 <= severity <= 5:
            raise ShiftbenchError(
                f"shift {self.name!r}: severity must be an integer 1-5, got {severity!r}"
            )
        self.severity = severity
        self.params = params

    @property
    def key(self) -> str:
        params = json.dumps(self.params, sort_keys=True, default=str)
        return f"{self.name}@{self.severity}:{params}"

    @abstractmethod
    def perturb(self, text: str, rng: random.Random) -> str:
        """One text, perturbed with ``rng`` (seeded from the suite seed, shift and id)."""

    def transform(self, texts: Sequence[str], seeds: Sequence[int],
                  runner: Runner | None = None) -> list[str]:
        from shiftbench.progress import bar

        pairs = bar(zip(texts, seeds, strict=True), len(texts), self.name,
                    runner is not None and runner.show_progress)
        return [self.perturb(text, random.Random(s)) for text, s in pairs]

    def __repr__(self) -> str:
        extra = "".join(f", {k}={v!r}" for k, v in sorted(self.params.items()))
        return f"{type(self).__name__}(severity={self.severity}{extra})"


def apply_shift(shift: Shift, split: Split, seed: int, name: str | None = None,
                runner: Runner | None = None) -> Split:
    """Perturb every example of ``split``; ids and labels stay, so results pair by id."""
    seeds = [example_seed(seed, shift.key, i) for i in split.ids]
    texts = shift.transform(split.texts, seeds, runner)
    return split.derive(
        name or f"{shift.name}@{shift.severity}",
        texts,
        kind="perturbation",
        shift=shift.name,
        severity=shift.severity,
        params=shift.params,
    )
