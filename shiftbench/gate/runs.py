"""Two finished runs, checked to be comparable and aligned by example id.

Candidate and baseline pair only when they come from the same suite spec (same hash)
and evaluated the same examples with the same texts and labels: anything else would
make a paired test compare different things, so it is an error, never a warning.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import ScoredSplit, generation_warnings, prediction_warnings


@dataclass(frozen=True)
class Run:
    """What the gate needs of a run: its identity, splits in report order, drift results."""

    label: str  # where it came from, for messages
    suite_name: str
    suite_hash: str
    model: dict[str, Any]
    splits: dict[str, ScoredSplit]
    run_id: str = ""
    drift: dict[str, list[dict[str, Any]]] | None = None

    @property
    def task(self) -> str:
        """``generation`` when its splits hold generated texts, else ``classification``."""
        return "generation" if any(s.generated for s in self.splits.values()) \
            else "classification"

    def warnings(self) -> dict[str, list[str]]:
        """Each split's warnings about its predictions (e.g. one class predicted), computed
        from the predictions themselves; splits without any are left out."""
        classes = [str(c) for c in self.model.get("classes") or []]
        found = {name: generation_warnings(list(split.proba)) if split.generated
                 else prediction_warnings(split.pred, split.y, classes)
                 for name, split in self.splits.items()}
        return {name: lines for name, lines in found.items() if lines}


def load_run(run_dir: Path) -> Run:
    """Read report.json and predictions.parquet of a finished run."""
    from shiftbench.report import load_report, read_predictions, scored_splits

    run_dir = Path(run_dir)
    report = load_report(run_dir)
    frame = read_predictions(run_dir, report)
    found = scored_splits(frame, report, run_dir / report["predictions_file"])
    splits = {split.name: split for split in found}
    return Run(str(run_dir), report["suite"].get("name", "?"), report["suite"].get("hash", ""),
               report["model"], splits, report["run_id"], report.get("drift"))


def check_comparable(baseline: Run, candidate: Run,
                     roles: tuple[str, str] = ("baseline", "candidate")) -> None:
    """Raise unless the runs pair: same suite spec, classes, and examples per split;
    ``roles`` name the two runs in the message (``shiftbench compare``: "run", "run")."""
    check_same_suite(baseline, candidate, roles)
    first, second = f"{roles[0]} {baseline.label}", f"{roles[1]} {candidate.label}"
    if baseline.model.get("classes") != candidate.model.get("classes"):
        raise ShiftbenchError(f"{first} and {second} predict different classes "
                              f"({baseline.model.get('classes')} vs "
                              f"{candidate.model.get('classes')})")
    if list(baseline.splits) != list(candidate.splits):
        raise ShiftbenchError(f"{first} and {second} have different splits "
                              f"({', '.join(baseline.splits)} vs {', '.join(candidate.splits)})")
    for name, cand in candidate.splits.items():
        _check_same_examples(baseline.splits[name], cand, first, second)


def check_same_suite(baseline: Run, candidate: Run,
                     roles: tuple[str, str] = ("baseline", "candidate")) -> None:
    """Raise unless the runs come from the same suite spec: needs only their reports, so
    the gate checks a given run against a suite before running a model on it."""
    if baseline.suite_hash != candidate.suite_hash:
        raise ShiftbenchError(
            f"{roles[0]} {baseline.label} and {roles[1]} {candidate.label} come from "
            f"different suite specs ({baseline.suite_name} {baseline.suite_hash[:12]} vs "
            f"{candidate.suite_name} {candidate.suite_hash[:12]}); run both with the same "
            "suite")


def _check_same_examples(base: ScoredSplit, cand: ScoredSplit, first: str, second: str) -> None:
    if set(base.ids) != set(cand.ids):
        raise ShiftbenchError(
            f"split {cand.name!r}: {first} and {second} evaluated different examples "
            f"({len(base.ids)} vs {len(cand.ids)} ids, {len(set(base.ids) & set(cand.ids))} "
            "shared); run both with the same --limit and data")
    rows = base.rows(cand.ids)
    if not np.array_equal(base.y[rows], cand.y):
        raise ShiftbenchError(f"split {cand.name!r}: {first} and {second} disagree on "
                              f"{'targets' if cand.generated else 'labels'} of the same ids "
                              "(different data?)")
    if base.texts is not None and cand.texts is not None:
        differ = sum(base.texts[r] != t for r, t in zip(rows, cand.texts, strict=True))
        if differ:
            raise ShiftbenchError(f"split {cand.name!r}: {differ} of {len(cand.ids)} examples "
                                  f"have different texts in {first} and {second} (different "
                                  "data or shift versions?)")
