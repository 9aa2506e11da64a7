"""Which examples changed: the rows behind a drop, for people to read.

One mechanism serves every view that shows failures: a *group* compares a "before" and an
"after" scoring of the same examples, paired by id. In a run report, before is the clean
original and after its shifted copy (same model); in ``mitigate``'s report, before is the
base or ERM and after the mitigated model (same texts); in a gate, whatever the failed
rule compares. An example is listed when its predicted class changed: right -> wrong
first, then wrong -> right, then wrong -> another wrong class, each sorted by its drop
(the probability of the true label before minus after; the largest gain first for
wrong -> right). A split without a before (a domain split: other examples, no originals)
lists its most confident errors instead. The views are classification-only: a generation
run has no classes to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shiftbench.evaluate import ScoredSplit

DIRECTIONS = {"broke": "right → wrong", "fixed": "wrong → right",
              "flipped": "wrong → other wrong", "error": "wrong (no original)"}


@dataclass(frozen=True)
class Side:
    """One scoring of an example: its text, the predicted class with its probability, and
    the probability the model gave the true label."""

    text: str | None
    pred: str
    prob: float
    true_prob: float


@dataclass(frozen=True)
class Example:
    """An example as a group shows it; ``before`` is None for an unpaired error."""

    id: str
    label: str
    direction: str  # a key of DIRECTIONS
    after: Side
    before: Side | None = None

    @property
    def drop(self) -> float | None:
        """Probability of the true label before minus after (None without a before)."""
        return None if self.before is None else self.before.true_prob - self.after.true_prob


@dataclass(frozen=True)
class Group:
    """The changed examples of one comparison (all of them, in display order).

    ``key`` names the group in filters and links (a split's name, or split and models);
    ``before`` and ``after`` say what the two sides are (e.g. "original" and
    "keyboard@3", or "base" and "dann"); ``n`` is how many examples were compared."""

    key: str
    before: str
    after: str
    n: int
    examples: list[Example]

    @property
    def directions(self) -> list[str]:
        """The directions this group can hold: an unpaired group only errors."""
        return list(DIRECTIONS)[:3] if self.before else ["error"]

    def count(self, direction: str) -> int:
        return sum(e.direction == direction for e in self.examples)


def _side(split: ScoredSplit, row: int, classes: list[str]) -> Side:
    pred = int(split.pred[row])
    text = None if split.texts is None else str(split.texts[row])
    return Side(text, classes[pred], float(split.proba[row, pred]),
                float(split.proba[row, int(split.y[row])]))


def _direction(right_before: bool, right_after: bool) -> str:
    if right_before:
        return "broke"
    return "fixed" if right_after else "flipped"


def _order(example: Example) -> tuple[int, float]:
    """Directions in DIRECTIONS order; within one, the largest drop first (the largest
    gain for wrong -> right; the most confident for an unpaired error)."""
    rank = list(DIRECTIONS).index(example.direction)
    if example.drop is None:
        return rank, -example.after.prob
    return rank, example.drop if example.direction == "fixed" else -example.drop


def changed(key: str, before: ScoredSplit, after: ScoredSplit, classes: list[str],
            names: tuple[str, str], before_classes: list[str] | None = None) -> Group:
    """The examples of ``after`` whose predicted class differs from ``before``'s for the
    same id (ids missing from ``before`` are not compared); ``names``: what before and
    after are; ``before_classes``: the before model's classes where its order differs
    (two models), else ``classes``."""
    was = before_classes or classes
    position = {ex_id: i for i, ex_id in enumerate(before.ids)}
    pairs = [(position[ex_id], j) for j, ex_id in enumerate(after.ids) if ex_id in position]
    examples = [
        Example(after.ids[j], classes[int(after.y[j])],
                _direction(bool(before.correct[i]), bool(after.correct[j])),
                _side(after, j, classes), _side(before, i, was))
        for i, j in pairs if was[int(before.pred[i])] != classes[int(after.pred[j])]]
    return Group(key, *names, len(pairs), sorted(examples, key=_order))


def errors(key: str, split: ScoredSplit, classes: list[str], name: str) -> Group:
    """A split's wrong predictions, the most confident first (no originals to pair with)."""
    examples = [Example(split.ids[j], classes[int(split.y[j])], "error",
                        _side(split, j, classes))
                for j in range(len(split.ids)) if not split.correct[j]]
    return Group(key, "", name, len(split.ids), sorted(examples, key=_order))


def run_groups(splits: list[ScoredSplit], classes: list[str]) -> list[Group]:
    """A run's groups: each shifted split against the reference (a perturbation by id, a
    domain split by its most confident errors)."""
    reference = next(s for s in splits if s.kind == "reference")
    return [changed(s.name, reference, s, classes, ("original", s.name))
            if s.kind == "perturbation" else errors(s.name, s, classes, s.name)
            for s in splits if s.kind != "reference"]


def counts(groups: list[Group]) -> dict[str, dict[str, int]]:
    """Per group, how many examples were compared and how many went each way."""
    return {g.key: {"n": g.n, **{d: g.count(d) for d in g.directions}} for g in groups}
