"""Slices: accuracy under each shift by class, by text length and by each metadata column
the suite keeps (``data.metadata``), so a reader sees where a model breaks (e.g. short
texts under typos).

An example's slice is a fact of the clean example, so a perturbed copy stays in its
original's slice: its label, the word count of its clean text (quantile bins of the
reference's word counts) and its metadata values. Each slice's accuracy has a Wilson
interval; its drop is against the same slice of the reference: paired by id for a
perturbation (Tango's score interval), each side resampled on its own for a domain split,
as the split-level numbers are. A slice with fewer than :data:`MIN_N` examples (on either
side of a drop) is marked too few rather than read: its interval is too wide to say
anything. Intervals are per slice, not adjusted for the number of slices shown.
Classification only (a generation run has no slices).
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench import metrics as M
from shiftbench.evaluate import METADATA_PREFIX as META_PREFIX
from shiftbench.split import example_seed

if TYPE_CHECKING:
    import pandas as pd

    from shiftbench.evaluate import ScoredSplit

MIN_N = 30  # a slice with fewer examples is marked, not read
LENGTH_QUANTILES = (0.25, 0.5, 0.75)
MAX_VALUES = 8  # a metadata column's most frequent values; the rest pool as OTHER
MISSING_VALUE, OTHER = "(missing)", "(other)"


def word_count(text: str) -> int:
    return len(str(text).split())


def length_bins(counts: list[int]) -> tuple[list[int], list[str]]:
    """Cut points (a bin holds counts up to its cut; the last is open) at the quantiles of
    the reference's word counts, and the bins' labels."""
    cuts = sorted({int(q) for q in np.quantile(counts, LENGTH_QUANTILES)}) if counts else []
    if not cuts:
        return [], ["all lengths"]
    labels = [f"≤ {cuts[0]} words"]
    labels += [f"{low + 1}–{high} words" if high > low + 1 else f"{high} words"
               for low, high in zip(cuts, cuts[1:], strict=False)]
    return cuts, [*labels, f"> {cuts[-1]} words"]


def _meta_values(frame: pd.DataFrame, column: str, reference: str) -> list[str]:
    """A metadata column's slices: its most frequent values in the reference (then in all
    rows), the rest pooled, and missing values on their own."""
    values = [MISSING_VALUE if v is None or v != v else str(v) for v in frame[column]]
    in_reference = Counter(v for v, s in zip(values, frame["split"], strict=True)
                           if s == reference)
    overall = Counter(values)
    order = sorted(overall, key=lambda v: (-in_reference[v], -overall[v], v))
    kept = [v for v in order if v != MISSING_VALUE][:MAX_VALUES]
    return [*kept, *([OTHER] if len(kept) < len(overall) - (MISSING_VALUE in overall) else []),
            *([MISSING_VALUE] if MISSING_VALUE in overall else [])]


class Slicer:
    """Which slice each example of each split is in, per dimension."""

    def __init__(self, splits: list[ScoredSplit], frame: pd.DataFrame, classes: list[str]):
        reference = next(s for s in splits if s.kind == "reference")
        self.dimensions: dict[str, list[str]] = {"class": list(classes)}
        self.about = {"class": "the example's label"}
        self._of: dict[str, dict[str, list[str]]] = {
            s.name: {"class": [classes[int(k)] for k in s.y]} for s in splits}
        if reference.texts is not None and all(s.texts is not None for s in splits):
            self._lengths(splits, reference)
        for column in (c for c in frame.columns if str(c).startswith(META_PREFIX)):
            self._metadata(splits, frame, column, reference.name)

    def _lengths(self, splits: list[ScoredSplit], reference: ScoredSplit) -> None:
        clean = dict(zip(reference.ids, map(word_count, reference.texts), strict=True))
        cuts, labels = length_bins(list(clean.values()))
        self.dimensions["length"] = labels
        self.about["length"] = ("words in the clean text (a perturbed copy: its original's), "
                                "bins at the reference's quartiles")
        for s in splits:
            counts = [clean[i] if s.kind == "perturbation" and i in clean else word_count(t)
                      for i, t in zip(s.ids, s.texts, strict=True)]
            self._of[s.name]["length"] = [labels[int(np.searchsorted(cuts, c))]
                                          for c in counts]

    def _metadata(self, splits: list[ScoredSplit], frame: pd.DataFrame, column: str,
                  reference: str) -> None:
        name = column[len(META_PREFIX):]
        values = _meta_values(frame, column, reference)
        kept = set(values)
        self.dimensions[name] = values
        self.about[name] = f"metadata column {name!r}"
        for s in splits:
            rows = frame[frame["split"] == s.name]
            found = dict(zip(rows["id"].astype(str), rows[column], strict=True))
            raw = [found.get(i) for i in s.ids]
            named = [MISSING_VALUE if v is None or v != v else str(v) for v in raw]
            self._of[s.name][name] = [v if v in kept else OTHER for v in named]

    def mask(self, split: str, dimension: str, value: str) -> np.ndarray:
        return np.array([v == value for v in self._of[split][dimension]], dtype=bool)


def _delta(ref: ScoredSplit, ref_mask: np.ndarray, s: ScoredSplit, mask: np.ndarray,
           seed: int, where: str) -> M.Estimate | None:
    """The slice's accuracy minus the reference slice's (None when a side is empty)."""
    if s.kind == "perturbation":
        position = {ex_id: i for i, ex_id in enumerate(ref.ids)}
        pairs = [(position[s.ids[j]], j) for j in np.flatnonzero(mask) if s.ids[j] in position]
        if not pairs:
            return None
        i, j = map(list, zip(*pairs, strict=True))
        return M.paired_delta(ref.correct[i], s.correct[j])
    if not ref_mask.any() or not mask.any():
        return None
    rng = np.random.default_rng(example_seed(seed, "slices:delta", where))
    return M.unpaired_delta(ref.correct[ref_mask], s.correct[mask], rng)


def slice_rows(splits: list[ScoredSplit], frame: pd.DataFrame, classes: list[str],
               seed: int) -> dict[str, Any]:
    """The slices section of report.json: the dimensions with their slices, and one row
    per (split, dimension, slice) that has examples."""
    slicer = Slicer(splits, frame, classes)
    reference = next(s for s in splits if s.kind == "reference")
    rows = []
    for s in splits:
        for dimension, values in slicer.dimensions.items():
            for value in values:
                mask = slicer.mask(s.name, dimension, value)
                if not mask.any():
                    continue
                ref_mask = slicer.mask(reference.name, dimension, value)
                delta = None if s is reference else _delta(
                    reference, ref_mask, s, mask, seed, f"{s.name}/{dimension}/{value}")
                n = int(mask.sum())
                few = n < MIN_N or (delta is not None and delta.n < MIN_N) or \
                    (s.kind == "domain" and int(ref_mask.sum()) < MIN_N)
                rows.append({"split": s.name, "dimension": dimension, "slice": value, "n": n,
                             "accuracy": M.wilson(int(s.correct[mask].sum()), n).to_dict(),
                             "delta": None if delta is None else delta.to_dict(),
                             "too_few": bool(few)})
    return {"metric": "accuracy", "min_n": MIN_N,
            "dimensions": [{"name": name, "about": slicer.about[name], "slices": values}
                           for name, values in slicer.dimensions.items()],
            "rows": rows}
