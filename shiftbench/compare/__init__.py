"""``shiftbench compare``: many finished runs of one suite side by side.

Each run is read and checked as ``shiftbench report`` checks it (report.json against its
predictions), and every run must pair with the first as a gate's baseline and candidate
do: the same suite spec, classes, splits and examples (ids, labels, texts). Then:

- each run's headline metric per split, with the interval its report gives;
- a robustness summary per run (:mod:`shiftbench.compare.summary`): the mean and the
  worst Δ over perturbation splits and the mean Δ over domain splits, with bootstrap
  intervals over examples;
- pairwise differences between runs (:mod:`shiftbench.compare.pairwise`): per split with
  the gate's paired test, on the summary with a paired bootstrap, Holm's adjustment over
  all of them;
- views (:mod:`shiftbench.compare.views`): compare.json, compare.md and a self-contained
  compare.html with a forest plot per split and, for runs of one model spec made at
  different times, its trend.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.gate.runs import Run

JSON_FILE, MARKDOWN_FILE, HTML_FILE = "compare.json", "compare.md", "compare.html"


@dataclass(frozen=True)
class Entry:
    """One compared run: its letter (A, B, ...: how tables and plots name it), its folder,
    its report and its scored splits."""

    letter: str
    path: Path
    report: dict[str, Any]
    run: Run

    @property
    def model_spec(self) -> str:
        """The model as the user named it: runs with the same spec form a trend."""
        model = self.report["model"]
        return str(model.get("spec") or model.get("adapter") or "?")


def letter(index: int) -> str:
    """A, B, ..., Z, AA, AB, ...: a run's short name."""
    letters = string.ascii_uppercase
    return letters[index] if index < 26 else letter(index // 26 - 1) + letters[index % 26]


def load_entries(run_dirs: Sequence[Path]) -> list[Entry]:
    """The runs, each checked like ``shiftbench report`` checks one and all paired with
    the first; any mix (suites, classes, splits, examples) is a one-line error."""
    from shiftbench.gate.runs import check_comparable, load_run
    from shiftbench.report import check_numbers, load_report

    if len(run_dirs) < 2:
        raise ShiftbenchError("compare: give at least two run directories")
    seen: dict[Path, Path] = {}
    for run_dir in map(Path, run_dirs):
        if run_dir.resolve() in seen:
            raise ShiftbenchError(f"compare: {run_dir} is given twice (as "
                                  f"{seen[run_dir.resolve()]} too)")
        seen[run_dir.resolve()] = run_dir
    entries = []
    for i, run_dir in enumerate(map(Path, run_dirs)):
        report = load_report(run_dir)
        check_numbers(run_dir, report)
        entries.append(Entry(letter(i), run_dir, report, load_run(run_dir)))
    for entry in entries[1:]:
        check_comparable(entries[0].run, entry.run, ("run", "run"))
    return entries


def compare_runs(run_dirs: Sequence[Path], out: Path | None = None) -> Path:
    """Write compare.json, compare.md and compare.html for ``run_dirs`` into ``out``
    (default: a ``compare`` folder beside the first run); returns the folder."""
    import json

    from shiftbench.compare.views import comparison_html, comparison_markdown
    from shiftbench.report import jsonable, write_text

    comparison = build_comparison(load_entries(run_dirs))
    folder = Path(out) if out is not None else Path(run_dirs[0]).parent / "compare"
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / JSON_FILE,
               json.dumps(jsonable(comparison), indent=2, ensure_ascii=False) + "\n")
    write_text(folder / MARKDOWN_FILE, comparison_markdown(comparison))
    write_text(folder / HTML_FILE, comparison_html(comparison))
    return folder


def build_comparison(entries: list[Entry]) -> dict[str, Any]:
    """Everything the views show, as plain data (it is compare.json)."""
    from shiftbench.compare.pairwise import ALPHA, boot_size, compare_pairs, family_size
    from shiftbench.compare.summary import Layout, robustness
    from shiftbench.report.html import headline

    first = entries[0].report
    metric = headline(first)
    n_boot = boot_size(family_size(entries, Layout.of(entries[0]).quantities()))
    summary = robustness(entries, metric, n_boot)
    comparisons = compare_pairs(entries, metric, summary)
    return {
        "suite": {"name": first["suite"].get("name"), "hash": first["suite"].get("hash")},
        "metric": metric,
        "runs": [_run_facts(e) for e in entries],
        "splits": [{"name": r["name"], "kind": r["kind"], "n": r["n"]} for r in first["splits"]],
        "estimates": {e.letter: {r["name"]: {"metric": (r.get("metrics") or {}).get(metric),
                                             "delta": (r.get("delta") or {}).get(metric)}
                                 for r in e.report["splits"]} for e in entries},
        "summary": summary.to_dict(),
        "comparisons": comparisons,
        "settings": {"alpha": ALPHA, "correction": "holm", "family_size": len(comparisons),
                     "n_boot": n_boot, "level": 0.95},
    }


def _run_facts(entry: Entry) -> dict[str, Any]:
    from shiftbench.report.markdown import model_label

    report = entry.report
    return {"letter": entry.letter, "path": str(entry.path), "run_id": report["run_id"],
            "created": report["created"], "model": model_label(report["model"]),
            "model_spec": entry.model_spec,
            "fingerprint": report["model"].get("fingerprint"),
            "device": report["environment"].get("device"),
            "precision": report["environment"].get("precision")}
