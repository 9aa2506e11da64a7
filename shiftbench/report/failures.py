"""Which examples changed: the rows behind a drop, for people to read.

One mechanism serves every view that shows failures: a *group* compares a "before" and an
"after" scoring of the same examples, paired by id. In a run report, before is the clean
original and after its shifted copy (same model); in ``mitigate``'s report, before is the
base or ERM and after the mitigated model (same texts); in a gate, whatever the failed
rule compares. An example is listed when its predicted class changed: right -> wrong
first, then wrong -> right, then wrong -> another wrong class, each sorted by its drop
(the probability of the true label before minus after; the largest gain first for
wrong -> right). A split without a before (a domain split: other examples, no originals)
lists its most confident errors instead.

A generation run's groups compare a per-example score (the suite's first metric that
scores examples one by one, e.g. ROUGE-L) instead of a class: a perturbed example is
listed when its score changed, the largest fall first, then the largest rise; a domain
split lists its examples that score below the reference's mean, the lowest first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

    from shiftbench.evaluate import ScoredSplit

DIRECTIONS = {"broke": "right → wrong", "fixed": "wrong → right",
              "flipped": "wrong → other wrong", "error": "wrong (no original)",
              "worse": "score fell", "better": "score rose",
              "low": "below the reference's mean"}
GAINS = ("fixed", "better")  # the directions listed by the largest gain first
SAME_SCORE = 1e-9  # two scores closer than this are the same (float noise)


@dataclass(frozen=True)
class Side:
    """One scoring of an example: its text, the model's output (a predicted class, or a
    generated text) with its probability (None for a generated text), and its ``score``:
    the probability the model gave the true label, or the generated text's score."""

    text: str | None
    output: str
    confidence: float | None
    score: float


@dataclass(frozen=True)
class Example:
    """An example as a group shows it; ``before`` is None for an unpaired error."""

    id: str
    label: str  # the true class, or the target text
    direction: str  # a key of DIRECTIONS
    after: Side
    before: Side | None = None

    @property
    def drop(self) -> float | None:
        """The score before minus after (None without a before)."""
        return None if self.before is None else self.before.score - self.after.score


@dataclass(frozen=True)
class Group:
    """The changed examples of one comparison (all of them, in display order).

    ``key`` names the group in filters and links (a split's name, or split and models);
    ``before`` and ``after`` say what the two sides are (e.g. "original" and
    "keyboard@3", or "base" and "dann"); ``n`` is how many examples were compared;
    ``metric`` names the score a generation group compares (None: classes)."""

    key: str
    before: str
    after: str
    n: int
    examples: list[Example]
    metric: str | None = None

    @property
    def directions(self) -> list[str]:
        """The directions this group can hold: an unpaired group only errors (or low
        scores)."""
        if self.metric:
            return ["worse", "better"] if self.before else ["low"]
        return ["broke", "fixed", "flipped"] if self.before else ["error"]

    def count(self, direction: str) -> int:
        return sum(e.direction == direction for e in self.examples)


def _side(split: ScoredSplit, row: int, classes: list[str]) -> Side:
    pred = int(split.pred[row])
    text = None if split.texts is None else str(split.texts[row])
    return Side(text, classes[pred], float(split.proba[row, pred]),
                float(split.proba[row, int(split.y[row])]))


def _generated_side(split: ScoredSplit, row: int, scores: np.ndarray) -> Side:
    text = None if split.texts is None else str(split.texts[row])
    return Side(text, str(split.proba[row]), None, float(scores[row]))


def _direction(right_before: bool, right_after: bool) -> str:
    if right_before:
        return "broke"
    return "fixed" if right_after else "flipped"


def _order(example: Example) -> tuple[int, float]:
    """Directions in DIRECTIONS order; within one, the largest drop first (the largest
    gain for a gain; the most confident unpaired error, the lowest unpaired score)."""
    rank = list(DIRECTIONS).index(example.direction)
    if example.drop is None:
        after = example.after
        return rank, after.score if after.confidence is None else -after.confidence
    return rank, example.drop if example.direction in GAINS else -example.drop


def changed(key: str, before: ScoredSplit, after: ScoredSplit, classes: list[str],
            names: tuple[str, str], before_classes: list[str] | None = None) -> Group:
    """The examples of ``after`` whose predicted class differs from ``before``'s for the
    same id (ids missing from ``before`` are not compared); ``names``: what before and
    after are; ``before_classes``: the before model's classes where its order differs
    (two models), else ``classes``."""
    was = before_classes or classes
    pairs = _pairs(before, after)
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


def _pairs(before: ScoredSplit, after: ScoredSplit) -> list[tuple[int, int]]:
    """(row in before, row in after) of each id of ``after`` that ``before`` holds."""
    position = {ex_id: i for i, ex_id in enumerate(before.ids)}
    return [(position[ex_id], j) for j, ex_id in enumerate(after.ids) if ex_id in position]


def score_changed(key: str, before: ScoredSplit, after: ScoredSplit,
                  scores: tuple[np.ndarray, np.ndarray], metric: str,
                  names: tuple[str, str]) -> Group:
    """The generated examples of ``after`` whose ``metric`` score (``scores``: before's and
    after's, row by row) differs from ``before``'s for the same id."""
    pairs = _pairs(before, after)
    was, now = scores
    examples = [
        Example(after.ids[j], str(after.y[j]), "worse" if now[j] < was[i] else "better",
                _generated_side(after, j, now), _generated_side(before, i, was))
        for i, j in pairs if abs(float(now[j]) - float(was[i])) > SAME_SCORE]
    return Group(key, *names, len(pairs), sorted(examples, key=_order), metric)


def low_scores(key: str, split: ScoredSplit, scores: np.ndarray, below: float, metric: str,
               name: str) -> Group:
    """A generation split's examples scoring below ``below``, the lowest first (no
    originals to pair with)."""
    examples = [Example(split.ids[j], str(split.y[j]), "low",
                        _generated_side(split, j, scores))
                for j in range(len(split.ids)) if scores[j] < below]
    return Group(key, "", name, len(split.ids), sorted(examples, key=_order), metric)


def generation_groups(splits: list[ScoredSplit], scores: dict[str, np.ndarray],
                      metric: str) -> list[Group]:
    """A generation run's groups, by ``metric`` (``scores``: per split name, its examples'
    scores): each perturbation against the reference by id, each domain split by its
    examples below the reference's mean score."""
    reference = next(s for s in splits if s.kind == "reference")
    ref_scores = scores[reference.name]
    mean = float(sum(ref_scores)) / len(ref_scores)
    return [score_changed(s.name, reference, s, (ref_scores, scores[s.name]), metric,
                          ("original", s.name))
            if s.kind == "perturbation" else
            low_scores(s.name, s, scores[s.name], mean, metric, s.name)
            for s in splits if s.kind != "reference"]


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
