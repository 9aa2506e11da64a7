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
class _Scored:
    """A split with its labels as class indices and the model's outputs."""

    split: Split
    y: np.ndarray
    proba: np.ndarray

    @property
    def pred(self) -> np.ndarray:
        return self.proba.argmax(axis=1)

    @property
    def correct(self) -> np.ndarray:
        return self.pred == self.y


def _rng(seed: int, purpose: str, split: Split) -> np.random.Generator:
    return np.random.default_rng(example_seed(seed, f"evaluate:{purpose}", split.name))


def _score(split: Split, proba: np.ndarray, classes: list[str]) -> _Scored:
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
    return _Scored(split, y, proba)


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


def _metrics(s: _Scored, metrics: list[str], seed: int, n_boot: int) -> dict[str, Any]:
    return {
        m: M.estimate(m, s.proba, s.y, _rng(seed, m, s.split), n_boot).to_dict() for m in metrics
    }


def _record(s: _Scored, kind: str, metrics: dict[str, Any],
            classes: list[str]) -> dict[str, Any]:
    info = s.split.info
    return {
        "name": s.split.name,
        "kind": kind,
        "n": len(s.split),
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


def _compare(ref: _Scored, s: _Scored, kind: str, seed: int, n_boot: int) -> dict[str, Any]:
    """The delta, flip-rate and label-free fields of a shifted split's record."""
    if kind == "domain":
        delta = M.unpaired_delta(ref.correct, s.correct, _rng(seed, "delta:accuracy", s.split),
                                 n_boot)
        label_free = versus_measured(ref.proba, ref.correct, s.proba, s.correct, n_boot,
                                     example_seed(seed, "evaluate:label_free", s.split.name))
        return {"delta": {"accuracy": delta.to_dict()}, "flip_rate": None, "n_paired": 0,
                "label_free": label_free}
    ref_pos = {ex_id: i for i, ex_id in enumerate(ref.split.ids)}
    shift_rows = [j for j, ex_id in enumerate(s.split.ids) if ex_id in ref_pos]
    if not shift_rows:
        raise ShiftbenchError(
            f"split {s.split.name!r}: no example id matches the reference split "
            f"{ref.split.name!r}; a perturbation must keep the original ids"
        )
    ref_rows = [ref_pos[s.split.ids[j]] for j in shift_rows]
    delta = M.paired_delta(ref.correct[ref_rows], s.correct[shift_rows])
    flips = M.flip_rate(ref.pred[ref_rows], s.pred[shift_rows])
    return {
        "delta": {"accuracy": delta.to_dict()},
        "flip_rate": flips.to_dict(),
        "n_paired": len(shift_rows),
    }


def _check_metrics(metrics: list[str]) -> list[str]:
    unknown = [m for m in metrics if m not in M.METRIC_NAMES]
    if unknown:
        raise ShiftbenchError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}; known: {', '.join(M.METRIC_NAMES)}"
        )
    return list(dict.fromkeys(metrics))


def _shifted_kind(split: Split) -> str:
    kind = split.info.get("kind")
    if kind not in SHIFTED_KINDS:
        raise ShiftbenchError(
            f"split {split.name!r}: kind must be one of {', '.join(SHIFTED_KINDS)}, got {kind!r}"
        )
    return kind


def _frame(scored: list[_Scored], classes: list[str]) -> pd.DataFrame:
    import pandas as pd

    parts = []
    for s in scored:
        part = {
            "split": s.split.name,
            "id": s.split.ids,
            "text": s.split.texts,
            "label": s.split.labels,
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
    metrics = _check_metrics(metrics)
    names = [reference.name, *(split.name for split, _ in shifted)]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ShiftbenchError(f"split names must be unique; repeated: {', '.join(dupes)}")
    ref = _score(reference, reference_proba, classes)
    records = [_record(ref, "reference", _metrics(ref, metrics, seed, n_boot), classes)]
    scored = [ref]
    for split, proba in shifted:
        kind = _shifted_kind(split)
        s = _score(split, proba, classes)
        record = _record(s, kind, _metrics(s, metrics, seed, n_boot), classes)
        record.update(_compare(ref, s, kind, seed, n_boot))
        records.append(record)
        scored.append(s)
    return records, _frame(scored, classes)
