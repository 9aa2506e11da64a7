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

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench import metrics as M
from shiftbench.errors import ShiftbenchError
from shiftbench.label_free import versus_measured
from shiftbench.labels import class_indices
from shiftbench.split import Split, example_seed
from shiftbench.text_metrics import output_words

if TYPE_CHECKING:
    import pandas as pd

SHIFTED_KINDS = ("perturbation", "domain")
# Loose enough for half-precision softmax outputs, tight enough to catch logits.
PROBA_SUM_TOL = 1e-2
# A model that gives one class to this share of a split (or more) is not telling its
# examples apart there: its accuracy is that class's share of the labels.
ONE_CLASS_SHARE = 0.99
# The predictions keep each metadata column of the suite (data.metadata) as meta:<column>.
METADATA_PREFIX = "meta:"


@dataclass(frozen=True)
class ScoredSplit:
    """A split's examples scored by a model: what evaluation computes its records from and
    what the gate reads back from a run's predictions. The metric table's inputs: for a
    classifier ``y`` holds class indices and ``proba`` one row of class probabilities per
    example; for a generator (``generated``) ``y`` holds the target texts and ``proba``
    the generated ones (object arrays). ``pred`` and ``correct`` are a classifier's."""

    name: str
    kind: str  # reference | perturbation | domain
    ids: list[str]
    y: np.ndarray
    proba: np.ndarray
    texts: list[str] | None = None

    @property
    def generated(self) -> bool:
        return self.proba.ndim == 1

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


def prediction_warnings(pred: np.ndarray, y: np.ndarray, classes: Sequence[str]) -> list[str]:
    """What a reader must know about one split's predictions (class indices; ``y``: its
    labels as class indices) before trusting its numbers, in words; empty when nothing
    stands out: one class predicted for nearly every example, or a class predicted that
    no example has (an LLM's verbalizer for a class the data lacks, a 3-class model on
    2-class data), which macro-F1 averages in at 0."""
    if len(pred) == 0:
        return []
    counts = np.bincount(np.asarray(pred, dtype=np.int64), minlength=len(classes))
    found = []
    top = int(counts.argmax())
    if counts[top] / len(pred) >= ONE_CLASS_SHARE:
        found.append(f"the model predicted {classes[top]!r} for {counts[top]} of {len(pred)} "
                     f"examples: its accuracy here is the share of {classes[top]!r} labels, not "
                     "a sign that it tells the classes apart")
    labelled = set(np.asarray(y, dtype=np.int64).tolist())
    absent = [k for k in np.flatnonzero(counts) if k not in labelled]
    if absent:
        named = ", ".join(f"{classes[k]!r} ({counts[k]} examples)" for k in absent)
        found.append(f"the model predicted {named}, a class no example here has: those are "
                     "errors, and macro-F1 averages the class in at 0")
    return found


def metric_estimates(s: ScoredSplit, metrics: dict[str, M.Metric], seed: int,
                     n_boot: int = M.N_BOOT) -> dict[str, Any]:
    """Each metric of a scored split with its interval (a bootstrap draws from its own
    rng, seeded by the run seed, the metric and the split's name)."""
    return {name: metric.estimate(s.proba, s.y, _rng(seed, name, s.name), n_boot).to_dict()
            for name, metric in metrics.items()}


def _record(split: Split, s: ScoredSplit, metrics: dict[str, Any],
            warnings: list[str]) -> dict[str, Any]:
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
        "warnings": warnings,
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
        part.update({f"{METADATA_PREFIX}{column}": values
                     for column, values in split.metadata.items()})
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


def _table(metrics: list[str], names: list[str]) -> dict[str, M.Metric]:
    """The metric table's rows for ``metrics``, once the split names are checked unique."""
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ShiftbenchError(f"split names must be unique; repeated: {', '.join(dupes)}")
    return {name: M.metric_named(name) for name in metrics}


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
    table = _table(metrics, [reference.name, *(split.name for split, _ in shifted)])
    ref = _score(reference, "reference", reference_proba, classes)
    records = [_record(reference, ref, metric_estimates(ref, table, seed, n_boot),
                       prediction_warnings(ref.pred, ref.y, classes))]
    scored = [(reference, ref)]
    for split, proba in shifted:
        s = _score(split, _shifted_kind(split), proba, classes)
        record = _record(split, s, metric_estimates(s, table, seed, n_boot),
                         prediction_warnings(s.pred, s.y, classes))
        record.update(_compare(ref, s, seed, n_boot))
        records.append(record)
        scored.append((split, s))
    return records, _frame(scored, classes)


# --- generation: generated texts scored against each example's target


def _generated(split: Split, kind: str, outputs: list[str]) -> ScoredSplit:
    if len(split) == 0:
        raise ShiftbenchError(f"split {split.name!r} has no examples")
    if split.targets is None:
        raise ShiftbenchError(f"split {split.name!r} has no targets; a generation suite names "
                              "its target column")
    if len(outputs) != len(split) or not all(isinstance(o, str) for o in outputs):
        raise ShiftbenchError(f"split {split.name!r}: the model returned {len(outputs)} "
                              f"outputs for {len(split)} examples; expected one text each")
    return ScoredSplit(split.name, kind, split.ids, np.array(split.targets, dtype=object),
                       np.array(outputs, dtype=object), split.texts)


def generation_warnings(outputs: Sequence[str]) -> list[str]:
    """What a reader must know about one split's outputs before trusting its numbers: the
    same text generated for nearly every example (the outputs ignore the input)."""
    if len(outputs) < 2:
        return []
    text, count = Counter(outputs).most_common(1)[0]
    if count / len(outputs) < ONE_CLASS_SHARE:
        return []
    return [f"the model generated {text!r} for {count} of {len(outputs)} examples: its "
            "outputs do not depend on the input"]


def _generation_record(split: Split, s: ScoredSplit, table: dict[str, M.Metric], seed: int,
                       n_boot: int) -> dict[str, Any]:
    record = _record(split, s, metric_estimates(s, table, seed, n_boot),
                     generation_warnings(list(s.proba)))
    words = output_words(s.proba)
    record["output_words"] = M.mean_ci(words, _rng(seed, "output_words", s.name),
                                       n_boot).to_dict()
    return record


def _generation_delta(metric: M.Metric, ref: ScoredSplit, s: ScoredSplit, paired: bool,
                      rng: np.random.Generator, n_boot: int) -> M.Estimate:
    """A metric's change from the reference: a proportion as accuracy's is (Tango's score
    interval when paired), any other metric by bootstrap (paired over example ids)."""
    if paired:
        ref = _take(ref, ref.rows(s.ids))
    if isinstance(metric, M.Proportion):
        good_ref, good = metric.outcome(ref.proba, ref.y), metric.outcome(s.proba, s.y)
        return (M.paired_delta(good_ref, good) if paired
                else M.unpaired_delta(good_ref, good, rng, n_boot))
    return M.bootstrap_delta(metric.stat(ref.proba, ref.y), len(ref.ids),
                             metric.stat(s.proba, s.y), len(s.ids), paired, rng, n_boot)


def _take(s: ScoredSplit, rows: np.ndarray) -> ScoredSplit:
    return ScoredSplit(s.name, s.kind, [s.ids[r] for r in rows], s.y[rows], s.proba[rows],
                       None if s.texts is None else [s.texts[r] for r in rows])


def _generation_compare(ref: ScoredSplit, s: ScoredSplit, table: dict[str, M.Metric],
                        seed: int, n_boot: int) -> dict[str, Any]:
    """Each metric's change from the reference, paired by id for a perturbation (its
    examples are a subset of the reference's) and unpaired for another domain."""
    paired = s.kind == "perturbation"
    if paired:
        missing = set(s.ids) - set(ref.ids)
        if missing:
            raise ShiftbenchError(f"split {s.name!r}: example id {sorted(missing)[0]!r} is "
                                  f"not in the reference split; a perturbation must keep the "
                                  "original ids")
    delta = {name: _generation_delta(metric, ref, s, paired, _rng(seed, f"delta:{name}", s.name),
                                     n_boot).to_dict()
             for name, metric in table.items()}
    return {"delta": delta, "flip_rate": None, "n_paired": len(s.ids) if paired else 0}


def _generation_frame(scored: list[ScoredSplit], table: dict[str, M.Metric]) -> pd.DataFrame:
    """One row per example: input, target, output, its length and its score under each
    metric that averages per-example scores (corpus BLEU has none)."""
    import pandas as pd

    parts = []
    for s in scored:
        part = {"split": s.name, "id": s.ids, "text": s.texts, "target": list(s.y),
                "output": list(s.proba), "output_words": output_words(s.proba)}
        part.update({name: metric.per_example(s.proba, s.y) for name, metric in table.items()
                     if hasattr(metric, "per_example")})
        parts.append(pd.DataFrame(part))
    return pd.concat(parts, ignore_index=True)


def evaluate_generation(
    reference: Split,
    reference_outputs: list[str],
    shifted: list[tuple[Split, list[str]]],
    metrics: list[str],
    seed: int,
    n_boot: int = M.N_BOOT,
) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Report records and per-example outputs of a generation suite, as :func:`evaluate`
    gives them for a classifier: each metric with its interval, and its change from the
    reference (shifted minus reference) in ``delta``."""
    table = _table(metrics, [reference.name, *(split.name for split, _ in shifted)])
    ref = _generated(reference, "reference", reference_outputs)
    records = [_generation_record(reference, ref, table, seed, n_boot)]
    scored = [ref]
    for split, outputs in shifted:
        s = _generated(split, _shifted_kind(split), outputs)
        record = _generation_record(split, s, table, seed, n_boot)
        record.update(_generation_compare(ref, s, table, seed, n_boot))
        records.append(record)
        scored.append(s)
    return records, _generation_frame(scored, table)
