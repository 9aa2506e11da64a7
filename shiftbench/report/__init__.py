"""A run directory: report.json (versioned schema) + predictions + summary.md + report.html
(+ failures.js, the failure browser's rows beyond those in the page).

report.json is the source of truth; the Markdown and HTML views can be re-rendered from
it at any time (``shiftbench report <run dir>``), so a newer renderer can redraw old runs.
Re-rendering first checks report.json against the predictions (each split's size and
accuracy) and each interval against its estimate, so an edited report is refused.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError
from shiftbench.report.failure_view import INLINE, FailureView, failure_view, save_sidecar
from shiftbench.report.html import report_html
from shiftbench.report.markdown import report_task, summary_markdown

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from shiftbench.evaluate import ScoredSplit
    from shiftbench.report.failures import Group

SCHEMA_VERSION = 1
REPORT_FILE = "report.json"
SUMMARY_FILE = "summary.md"
HTML_FILE = "report.html"
FAILURES_FILE = "failures.js"
REQUIRED_KEYS = (
    "schema_version", "shiftbench_version", "run_id", "created", "suite", "model",
    "environment", "seed", "timings", "runner", "splits", "predictions_file",
)
MAPPING_KEYS = ("suite", "model", "environment", "timings", "runner")
SPLIT_KEYS = ("name", "kind", "n", "metrics", "delta", "flip_rate", "n_paired")


def check_report(report: Any, source: Path) -> None:
    """Raise ShiftbenchError naming ``source`` if ``report`` does not follow the schema."""
    if not isinstance(report, dict):
        raise ShiftbenchError(f"{source}: a report is a JSON object, got {type(report).__name__}")
    version = report.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ShiftbenchError(
            f"{source}: schema_version {version!r} is not supported (this shiftbench reads "
            f"{SCHEMA_VERSION})"
        )
    missing = [k for k in REQUIRED_KEYS if k not in report]
    if missing:
        raise ShiftbenchError(f"{source}: missing required key(s) {', '.join(missing)}")
    for key in MAPPING_KEYS:
        if not isinstance(report[key], dict):
            raise ShiftbenchError(f"{source}: {key!r} must be an object")
    if not isinstance(report["splits"], list):
        raise ShiftbenchError(f"{source}: 'splits' must be a list")
    for i, record in enumerate(report["splits"]):
        lacking = [k for k in SPLIT_KEYS if not isinstance(record, dict) or k not in record]
        if lacking:
            raise ShiftbenchError(f"{source}: splits[{i}] lacks {', '.join(lacking)}")
    name = report["predictions_file"]
    if not isinstance(name, str) or Path(name).name != name or not name:
        raise ShiftbenchError(f"{source}: predictions_file must be a file name, got {name!r}")
    _check_slices(report.get("slices"), source)
    _check_failures(report.get("failures"), source)


def _check_failures(failures: Any, source: Path) -> None:
    """The optional ``failures`` section: examples per split in the page, and each
    split's counts (n compared, then how many went each way)."""
    if failures is None:
        return
    inline = failures.get("inline") if isinstance(failures, dict) else None
    groups = failures.get("groups") if isinstance(failures, dict) else None
    if not (isinstance(inline, int) and inline > 0 and isinstance(groups, dict)
            and isinstance(failures.get("metric", ""), str)):
        raise ShiftbenchError(f"{source}: 'failures' must be an object with a positive "
                              "'inline', 'groups' and an optional metric name")
    for name, found in groups.items():
        if not (isinstance(found, dict) and all(isinstance(v, int) for v in found.values())
                and "n" in found):
            raise ShiftbenchError(f"{source}: failures.groups.{name}: counts (n and one per "
                                  "direction) must be whole numbers")


SLICE_KEYS = ("split", "dimension", "slice", "n", "accuracy", "delta", "too_few")


def _check_slices(slices: Any, source: Path) -> None:
    """The optional ``slices`` section: its dimensions and one record per slice."""
    if slices is None:
        return
    if not isinstance(slices, dict) or not isinstance(slices.get("rows"), list) or \
            not isinstance(slices.get("dimensions"), list):
        raise ShiftbenchError(f"{source}: 'slices' must be an object with lists 'dimensions' "
                              "and 'rows'")
    for i, dimension in enumerate(slices["dimensions"]):
        if not isinstance(dimension, dict) or not {"name", "about", "slices"} <= set(dimension):
            raise ShiftbenchError(f"{source}: slices.dimensions[{i}] needs name, about and "
                                  "slices")
    for i, row in enumerate(slices["rows"]):
        lacking = [k for k in SLICE_KEYS if not isinstance(row, dict) or k not in row]
        if lacking:
            raise ShiftbenchError(f"{source}: slices.rows[{i}] lacks {', '.join(lacking)}")


def jsonable(obj: Any) -> Any:
    """Plain JSON values: numpy scalars/arrays as Python ones, NaN/inf as null."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def write_text(path: Path, text: str) -> None:
    """Write via a temporary file, so a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _render_views(run_dir: Path, report: dict[str, Any], view: FailureView | None) -> None:
    write_text(run_dir / SUMMARY_FILE, summary_markdown(report))
    write_text(run_dir / HTML_FILE, report_html(report, view.html if view else ""))
    save_sidecar(view or FailureView("", None), run_dir / FAILURES_FILE)


def _examples(report: dict[str, Any], frame: pd.DataFrame) -> list[ScoredSplit] | None:
    """The splits as the run's predictions score them, with their texts; None for
    predictions without texts (no failures, no slices)."""
    scored = {"target", "output"} if report_task(report) == "generation" else {"label"}
    if not {"split", "id", "text", *scored} <= set(frame.columns):
        return None
    return scored_splits(frame, report, Path(report["predictions_file"]))


def _score_metric(report: dict[str, Any], frame: pd.DataFrame) -> str | None:
    """The score a generation run's failures compare: the first of its metrics that the
    predictions hold example by example (None when every one is a corpus score, as BLEU)."""
    names = (report["splits"][0].get("metrics") or {}) if report["splits"] else {}
    return next((name for name in names if name in frame.columns), None)


def _groups(report: dict[str, Any], frame: pd.DataFrame) -> list[Group]:
    """The failure browser's groups (:mod:`shiftbench.report.failures`) of a run."""
    from shiftbench.report.failures import generation_groups, run_groups

    splits = _examples(report, frame)
    if not splits:
        return []
    if report_task(report) == "classification":
        return run_groups(splits, model_classes(report))
    metric = _score_metric(report, frame)
    if metric is None:
        return []
    scores = {s.name: frame.loc[frame["split"] == s.name, metric].to_numpy(float)
              for s in splits}
    return generation_groups(splits, scores, metric)


def run_failures(report: dict[str, Any], frame: pd.DataFrame,
                 inline: int) -> tuple[dict[str, Any] | None, FailureView | None]:
    """The failure browser of a run (its counts for report.json, and the view), from its
    predictions; (None, None) without one (see :func:`_examples`)."""
    from shiftbench.report.failures import counts

    groups = _groups(report, frame)
    if not groups:
        return None, None
    view = failure_view(groups, FAILURES_FILE, ("original", "shifted"), inline)
    metric = {"metric": groups[0].metric} if groups[0].metric else {}
    return {"inline": inline, "file": FAILURES_FILE, **metric, "groups": counts(groups)}, view


def run_slices(report: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any] | None:
    """Accuracy per slice under each shift (:mod:`shiftbench.report.slices`), or None (a
    generation run has no slices)."""
    from shiftbench.report.slices import slice_rows

    splits = _examples(report, frame)
    if not splits or report_task(report) == "generation":
        return None
    return slice_rows(splits, frame, model_classes(report), int(report.get("seed") or 0))


def write_run(run_dir: Path, report: dict[str, Any], predictions: pd.DataFrame,
              failures_inline: int = INLINE) -> None:
    """Write a finished run: predictions first, then report.json (it marks the run
    complete; the slices and the failures' counts are added from the predictions), then
    the views; ``failures_inline``: examples per split in the page's failure browser (the
    rest in failures.js)."""
    run_dir = Path(run_dir)
    report = jsonable(report)
    check_report(report, run_dir / REPORT_FILE)
    failures, view = run_failures(report, predictions, failures_inline)
    slices = report.get("slices") or run_slices(report, predictions)
    report = jsonable({**report, **({"failures": failures} if failures else {}),
                       **({"slices": slices} if slices else {})})
    run_dir.mkdir(parents=True, exist_ok=True)
    predictions.to_parquet(run_dir / report["predictions_file"], index=False)
    write_text(run_dir / REPORT_FILE, json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    _render_views(run_dir, report, view)


def load_report(run_dir: Path) -> dict[str, Any]:
    """Read and check a run directory's report.json."""
    run_dir = Path(run_dir)
    path = run_dir / REPORT_FILE
    if not run_dir.is_dir():
        raise ShiftbenchError(f"{run_dir}: run directory not found")
    if not path.is_file():
        raise ShiftbenchError(f"{path}: report file not found")
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise ShiftbenchError(f"{path}: not UTF-8 text") from exc
    except json.JSONDecodeError as exc:
        raise ShiftbenchError(
            f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})"
        ) from exc
    check_report(report, path)
    return report


def read_predictions(run_dir: Path, report: dict[str, Any]) -> pd.DataFrame:
    """A run's predictions file, checked to hold a probability column per model class."""
    import pandas as pd

    path = Path(run_dir) / report["predictions_file"]
    if not path.is_file():
        raise ShiftbenchError(f"{path}: predictions file not found")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:
        raise ShiftbenchError(f"{path}: not a readable parquet file ({exc.__class__.__name__})") \
            from None
    classes = model_classes(report)
    if report_task(report) == "generation":
        needed = ["split", "id", "target", "output"]
    else:
        needed = ["split", "id", "label", *(f"p_{c}" for c in classes)]
    missing = [c for c in needed if c not in frame.columns]
    if missing or not (classes or report_task(report) == "generation"):
        raise ShiftbenchError(f"{path}: missing column(s) {', '.join(missing) or 'p_<class>'}")
    return frame


def model_classes(report: dict[str, Any]) -> list[str]:
    return [str(c) for c in report["model"].get("classes") or []]


def scored_splits(frame: pd.DataFrame, report: dict[str, Any],
                  source: Path) -> list[ScoredSplit]:
    """Each split of the report, in its order, as the predictions score it (with its
    texts where the predictions keep them)."""
    from shiftbench.evaluate import ScoredSplit

    splits = []
    for record in report["splits"]:
        part, y, proba = split_predictions(frame, report, record["name"], source)
        splits.append(ScoredSplit(record["name"], record["kind"], part["id"].astype(str).tolist(),
                                  y, proba,
                                  part["text"].tolist() if "text" in part.columns else None))
    return splits


def split_predictions(frame: pd.DataFrame, report: dict[str, Any], name: str,
                      source: Path) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """One split's rows of the predictions and the metric table's inputs: its labels as
    class indices and its probabilities (columns in class order), or, for a generation
    run, its targets and outputs (object arrays of texts)."""
    import numpy as np

    from shiftbench.labels import class_indices

    classes = model_classes(report)
    part = frame[frame["split"] == name]
    if report_task(report) == "generation":
        return (part, np.array(part["target"].tolist(), dtype=object),
                np.array(part["output"].tolist(), dtype=object))
    y = class_indices(part["label"].astype(str).tolist(), classes,
                      part["id"].astype(str).tolist(), f"{source}: split {name!r}")
    return part, y, part[[f"p_{c}" for c in classes]].to_numpy(float)


def _estimates(record: dict[str, Any]) -> list[tuple[str, Any]]:
    """(field, estimate) of every interval in one split's record."""
    found = [(f"metrics.{k}", v) for k, v in (record.get("metrics") or {}).items()]
    found += [(f"delta.{k}", v) for k, v in (record.get("delta") or {}).items()]
    return found + [(k, record.get(k)) for k in ("flip_rate", "output_words")]


def _check_interval(field: str, est: Any, where: str) -> None:
    if est is None:
        return
    bounds = [est.get(k) if isinstance(est, dict) else None for k in ("low", "value", "high")]
    if any(b is None for b in bounds):  # NaN is written as null: nothing to check
        return
    if not all(isinstance(b, (int, float)) and not isinstance(b, bool) for b in bounds):
        raise ShiftbenchError(f"{where}, {field}: low, value and high must be numbers")
    low, value, high = bounds
    if not low <= value <= high:
        raise ShiftbenchError(f"{where}, {field}: the interval [{low}, {high}] does not "
                              f"contain its estimate {value}; report.json was edited or is "
                              "corrupt")


def _check_scores(part: pd.DataFrame, record: dict[str, Any], where: str) -> None:
    """A generation run's mean per-example scores (metrics with a column of them in the
    predictions) against report.json."""
    for name, est in (record.get("metrics") or {}).items():
        if name in part.columns and est is not None and len(part):
            actual = float(part[name].mean())
            if not math.isclose(est["value"], actual, rel_tol=1e-9, abs_tol=1e-9):
                raise ShiftbenchError(f"{where}, metrics.{name}: report.json says "
                                      f"{est['value']}, the predictions give {actual}")


def check_numbers(run_dir: Path, report: dict[str, Any]) -> None:
    """Refuse a report whose numbers its predictions do not bear out: each split's n and
    accuracy (a generation run: each mean per-example score) are recomputed from the
    predictions, and each interval must contain its estimate."""
    frame = read_predictions(run_dir, report)
    source = Path(run_dir) / REPORT_FILE
    for record in report["splits"]:
        where = f"{source}: split {record['name']!r}"
        part, y, proba = split_predictions(frame, report, record["name"], source)
        if record["n"] != len(y):
            raise ShiftbenchError(f"{where}, n: report.json says {record['n']}, the "
                                  f"predictions hold {len(y)} rows")
        if report_task(report) == "generation":
            _check_scores(part, record, where)
        accuracy = (record.get("metrics") or {}).get("accuracy")
        _check_interval("metrics.accuracy", accuracy, where)
        if accuracy is not None and len(y):
            actual = float((proba.argmax(axis=1) == y).mean())
            if not math.isclose(accuracy["value"], actual, rel_tol=0, abs_tol=1e-9):
                raise ShiftbenchError(f"{where}, metrics.accuracy: report.json says "
                                      f"{accuracy['value']}, the predictions give {actual}")
        for field, est in _estimates(record):
            _check_interval(field, est, where)
    _check_slice_numbers(report, source)


def _check_slice_numbers(report: dict[str, Any], source: Path) -> None:
    """Each split's slices of one dimension hold all of its examples, and each slice's
    intervals contain their estimates."""
    slices = report.get("slices")
    if not slices:
        return
    sizes = {record["name"]: record["n"] for record in report["splits"]}
    totals: dict[tuple[str, str], int] = {}
    for row in slices["rows"]:
        where = f"{source}: slices, split {row['split']!r}, {row['dimension']} {row['slice']!r}"
        key = (row["split"], row["dimension"])
        totals[key] = totals.get(key, 0) + row["n"]
        for field in ("accuracy", "delta"):
            _check_interval(field, row[field], where)
    for (split, dimension), total in totals.items():
        if total != sizes.get(split):
            raise ShiftbenchError(f"{source}: slices: the {dimension} slices of split "
                                  f"{split!r} hold {total} examples, the split "
                                  f"{sizes.get(split)}")


def render(run_dir: Path, failures_inline: int | None = None) -> None:
    """Re-create summary.md, report.html and failures.js from report.json and the
    predictions, once its numbers check out; ``failures_inline``: examples per split in
    the page (default: as the run was written)."""
    run_dir = Path(run_dir)
    report = load_report(run_dir)
    check_numbers(run_dir, report)
    inline = failures_inline or (report.get("failures") or {}).get("inline") or INLINE
    _, view = run_failures(report, read_predictions(run_dir, report), inline)
    _render_views(run_dir, report, view)
