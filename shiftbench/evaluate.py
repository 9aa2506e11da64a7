"""Score a model's probabilities on the reference and each shifted split.

Perturbations keep their examples' original ids, so their accuracy delta and flip rate
pair with the reference *by id* (a perturbed split may be a reordered subset). Domain
splits hold other examples: their delta is unpaired, and their label-free accuracy
estimates (ATC, DoC, from the reference) are recorded beside the measured accuracy
(``label_free``), so users see how far those estimators miss on their own data. Every
bootstrap draws from its own rng, seeded from (run seed, metric, split name), so a number
does not change when other splits or metrics are added, and the same run gives the same
numbers twice.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench import metrics as M
from shiftbench.errors import ShiftbenchError
from shiftbench.label_free import versus_measured
from shiftbench.labels import class_indices
from shiftbench.split import Split, example_seed

if TYPE_CHECKING:
    import pandas as pd

SHIFTED_KINDS = ("perturbation", "domain")
# Loose enough for half-precision softmax outputs, tight enough to catch logits.
PROBA_SUM_TOL = 1e-2
# A model that gives one class to this share of a split (or more) is not telling its
# examples apart there: its accuracy is that class's share of the labels.
ONE_CLASS_SHARE = 0.99


@dataclass(frozen=True)
class ScoredSplit:
    """A split's examples scored by a model: labels as class indices and one row of class
    probabilities per example (what evaluation computes its records from and what the
    gate reads back from a run's predictions)."""

    name: str
    kind: str  # reference | perturbation | domain
    ids: list[str]
    y: np.ndarray
    proba: np.ndarray
    texts: list[str] | None = None

    @property
    def pred(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.y

    def rows(self, ids: list[str]) -> np.ndarray:
        """Positions of ``ids`` in this split (every one must be present)."""
        index = {ex_id: i for i, ex_id in enumerate(self.ids)}
        return np.array([index[ex_id] for ex_id in ids], dtype=np.int64)


def _rng(seed: int, purpose: str, split: str) -> np.random.Generator:
    return np.random.default_rng(example_seed(seed, f"evaluate:{purpose}", split))


def _score(split: Split, kind: str, proba: np.ndarray, classes: list[str]) -> ScoredSplit:
    if len(split) == 0:
        raise ShiftbenchError(f"split {split.name!r} has no examples")
    if split.labels is None:
        raise ShiftbenchError(f"split {split.name!r} has no labels; evaluation needs them")
    proba = np.asarray(proba, dtype=float)
    if proba.shape != (len(split), len(classes)):
        raise ShiftbenchError(
            f"split {split.name!r}: probabilities have shape {proba.shape}, "
            f"expected ({len(split)}, {len(classes)})"
        )
    bad = ~np.isfinite(proba).all(axis=1) | (proba < 0).any(axis=1)
    bad |= np.abs(proba.sum(axis=1) - 1) > PROBA_SUM_TOL
    if bad.any():
        row = int(np.argmax(bad))
        raise ShiftbenchError(
            f"split {split.name!r}, example {split.ids[row]!r}: the model returned "
            f"{proba[row].round(4).tolist()}, not probabilities that sum to 1"
        )
    y = class_indices(split.labels, classes, split.ids, f"split {split.name!r}")
    return ScoredSplit(split.name, kind, split.ids, y, proba, split.texts)


def prediction_warnings(pred: np.ndarray, classes: Sequence[str]) -> list[str]:
    """What a reader must know about one split's predictions (class indices) before
    trusting its numbers, in words; empty when nothing stands out."""
    if len(pred) == 0:
        return []
    counts = np.bincount(np.asarray(pred, dtype=np.int64), minlength=len(classes))
    top = int(counts.argmax())
    share = counts[top] / len(pred)
    if share < ONE_CLASS_SHARE:
        return []
    return [f"the model predicted {classes[top]!r} for {counts[top]} of {len(pred)} "
            f"examples: its accuracy here is the share of {classes[top]!r} labels, not a sign "
            "that it tells the classes apart"]


def metric_estimates(s: ScoredSplit, metrics: dict[str, M.Metric], seed: int,
                     n_boot: int = M.N_BOOT) -> dict[str, Any]:
    """Each metric of a scored split with its interval (a bootstrap draws from its own
    rng, seeded by the run seed, the metric and the split's name)."""
    return {name: metric.estimate(s.proba, s.y, _rng(seed, name, s.name), n_boot).to_dict()
            for name, metric in metrics.items()}


def _record(split: Split, s: ScoredSplit, metrics: dict[str, Any],
            classes: list[str]) -> dict[str, Any]:
    info = split.info
    return {
        "name": s.name,
        "kind": s.kind,
        "n": len(s.ids),
        "shift": info.get("shift"),
        "severity": info.get("severity"),
        "params": info.get("params"),
        "source": info.get("source"),
        "train_overlap": info.get("train_overlap"),  # rows shared with train (suite allowed it)
        "labels_dropped": info.get("labels_dropped"),  # rows the suite's label mapping left out
        "metrics": metrics,
        "delta": None,
        "flip_rate": None,
        "n_paired": None,
        "warnings": prediction_warnings(s.pred, classes),
        "label_free": None,
    }


def _compare(ref: ScoredSplit, s: ScoredSplit, seed: int, n_boot: int) -> dict[str, Any]:
    """The delta, flip-rate and label-free fields of a shifted split's record."""
    if s.kind == "domain":
        delta = M.unpaired_delta(ref.correct, s.correct, _rng(seed, "delta:accuracy", s.name),
                                 n_boot)
        label_free = versus_measured(ref.proba, ref.correct, s.proba, s.correct, n_boot,
                                     example_seed(seed, "evaluate:label_free", s.name))
        return {"delta": {"accuracy": delta.to_dict()}, "flip_rate": None, "n_paired": 0,
                "label_free": label_free}
    ref_pos = {ex_id: i for i, ex_id in enumerate(ref.ids)}
    shift_rows = [j for j, ex_id in enumerate(s.ids) if ex_id in ref_pos]
    if not shift_rows:
        raise ShiftbenchError(
            f"split {s.name!r}: no example id matches the reference split "
            f"{ref.name!r}; a perturbation must keep the original ids"
        )
    ref_rows = [ref_pos[s.ids[j]] for j in shift_rows]
    delta = M.paired_delta(ref.correct[ref_rows], s.correct[shift_rows])
    flips = M.flip_rate(ref.pred[ref_rows], s.pred[shift_rows])
    return {
        "delta": {"accuracy": delta.to_dict()},
        "flip_rate": flips.to_dict(),
        "n_paired": len(shift_rows),
    }


def _shifted_kind(split: Split) -> str:
    kind = split.info.get("kind")
    if kind not in SHIFTED_KINDS:
        raise ShiftbenchError(
            f"split {split.name!r}: kind must be one of {', '.join(SHIFTED_KINDS)}, got {kind!r}"
        )
    return kind


def _frame(scored: list[tuple[Split, ScoredSplit]], classes: list[str]) -> pd.DataFrame:
    import pandas as pd

    parts = []
    for split, s in scored:
        part = {
            "split": s.name,
            "id": s.ids,
            "text": s.texts,
            "label": split.labels,
            "pred": [classes[i] for i in s.pred],
            "confidence": s.proba.max(axis=1),
            "correct": s.correct,
        }
        part.update({f"p_{c}": s.proba[:, i] for i, c in enumerate(classes)})
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


def evaluate(
    reference: Split,
    reference_proba: np.ndarray,
    shifted: list[tuple[Split, np.ndarray]],
    classes: list[str],
    metrics: list[str],
    seed: int,
    n_boot: int = M.N_BOOT,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Report records (reference first, then ``shifted`` in order) and per-example predictions.

    ``classes`` orders the probability columns. Deltas are shifted minus reference, so a
    negative accuracy delta is what the shift costs.
    """
    table = {name: M.metric_named(name) for name in metrics}
    names = [reference.name, *(split.name for split, _ in shifted)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ShiftbenchError(f"split names must be unique; repeated: {', '.join(dupes)}")
    ref = _score(reference, "reference", reference_proba, classes)
    records = [_record(reference, ref, metric_estimates(ref, table, seed, n_boot), classes)]
    scored = [(reference, ref)]
    for split, proba in shifted:
        s = _score(split, _shifted_kind(split), proba, classes)
        record = _record(split, s, metric_estimates(s, table, seed, n_boot), classes)
        record.update(_compare(ref, s, seed, n_boot))
        records.append(record)
        scored.append((split, s))
    return records, _frame(scored, classes)
