"""`shiftbench run`: suite -> splits -> one batched inference pass -> metrics -> report.

The report directory appears only when complete (written beside it, then renamed);
inference results live in the runner's cache, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench import __version__
from shiftbench.config import Domain, Suite, load_suite
from shiftbench.data import check_train_overlap, read_source, select, to_split
from shiftbench.errors import ShiftbenchError
from shiftbench.labels import class_indices
from shiftbench.registry import SHIFTS
from shiftbench.split import Split, sample_indices

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner

REPORTED_PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scipy", "scikit-learn",
                     "pandas", "nlpaug")


@dataclass
class RunOptions:
    reports_dir: Path = Path("reports")
    cache_dir: Path | None = None
    data_dir: Path | None = None
    limit: int | None = None
    device: str = "auto"
    precision: str = "auto"
    batch_size: int = 64
    run_id: str | None = None
    progress: bool | None = None
    movement: bool = True  # measure how far each shift moved the text (MiniLM + chrF)

    def resolved_cache_dir(self) -> Path:
        env = os.environ.get("SHIFTBENCH_CACHE_DIR")
        return self.cache_dir or (Path(env) if env else self.reports_dir / ".cache")


def add_run_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags that fill :class:`RunOptions` (shared by ``run`` and ``gate``)."""
    parser.add_argument("--data-dir", type=Path,
                        help="resolve the suite's relative data paths here")
    parser.add_argument("--limit", type=int, help="at most this many examples per evaluated split")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--cache-dir", type=Path,
                        help="prediction/embedding cache (default: <reports-dir>/.cache)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "fp16"])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--no-movement", action="store_true",
                        help="skip measuring how far each shift moved the text (MiniLM + chrF)")


def run_options(args: argparse.Namespace, run_id: str | None = None) -> RunOptions:
    """RunOptions from the flags of :func:`add_run_arguments`, checked."""
    if args.limit is not None and args.limit <= 0:
        raise ShiftbenchError("--limit must be a positive number")
    if args.batch_size <= 0:
        raise ShiftbenchError("--batch-size must be a positive number")
    return RunOptions(
        reports_dir=args.reports_dir, cache_dir=args.cache_dir, data_dir=args.data_dir,
        limit=args.limit, device=args.device, precision=args.precision,
        batch_size=args.batch_size, run_id=run_id,
        progress=False if args.no_progress else None, movement=not args.no_movement,
    )


@dataclass
class SuiteSplits:
    train: Split | None
    reference: Split
    shifted: list[Split]
    timings: dict[str, float] = field(default_factory=dict)
    shift_stats: dict[str, dict] = field(default_factory=dict)


def data_base_dir(suite: Suite, suite_path: Path, data_dir: Path | None) -> Path:
    """Relative data paths resolve against --data-dir, else suite.data_dir, else its folder."""
    if data_dir is not None:
        return data_dir
    if suite.data_dir is not None:
        return (suite_path.parent / suite.data_dir).resolve()
    return suite_path.parent


def build_splits(suite: Suite, suite_path: Path, options: RunOptions, need_train: bool,
                 runner: Runner | None = None) -> SuiteSplits:
    """Read the data once per source and make every split the suite names.

    Shifts that batch (back-translation) use ``runner`` for its cache and device, and
    leave throughput figures in ``stats_``; those go to ``shift_stats`` by split name.
    """
    t0 = time.perf_counter()
    base = data_base_dir(suite, suite_path, options.data_dir)
    frames: dict[str, pd.DataFrame] = {}

    def rows(selection, limit):
        source = selection.source or suite.data
        key = source.model_dump_json()
        if key not in frames:
            frames[key] = read_source(source, base)
        return select(frames[key], selection, suite.seed, limit)

    limit = options.limit or suite.limit
    train = None
    if need_train:
        if suite.train is None:
            raise ShiftbenchError(f"{suite_path}: train: the model needs a train split; add one")
        train = to_split(rows(suite.train, suite.train.limit), "train", True, kind="train")
    reference = to_split(rows(suite.reference, _min(suite.reference.limit, limit)), "reference",
                         True, kind="reference")
    domains = [to_split(rows(entry, _min(entry.limit, limit)), entry.name, True, kind="domain")
               for entry in suite.shifts if isinstance(entry, Domain)]
    reference, *domains = check_train_overlap(train, [reference, *domains],
                                              suite.allow_train_overlap, suite_path)
    t1 = time.perf_counter()
    shifted, shift_stats = [], {}
    for index, entry in enumerate(suite.shifts):
        if isinstance(entry, Domain):
            shifted.append(domains.pop(0))
            continue
        try:
            shift_cls = SHIFTS.load(entry.shift)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"{suite_path}: shifts.{index}.shift: {exc}") from None
        from shiftbench.shifts import apply_shift

        source = reference
        if entry.limit is not None:
            source = reference.subset(sample_indices(reference.ids, suite.seed, entry.limit))
        for severity in entry.severities:
            name = f"{entry.name or entry.shift}@{severity}"
            try:
                shift = shift_cls(severity=severity, **entry.params)
            except ShiftbenchError as exc:
                raise ShiftbenchError(f"{suite_path}: shifts.{index}.params: {exc}") from None
            shifted.append(apply_shift(shift, source, suite.seed, name, runner))
            if getattr(shift, "stats_", None):
                shift_stats[name] = shift.stats_
    t2 = time.perf_counter()
    return SuiteSplits(train, reference, shifted, {"load_data_s": t1 - t0, "shifts_s": t2 - t1},
                       shift_stats)


def _min(a: int | None, b: int | None) -> int | None:
    return min(x for x in (a, b) if x is not None) if a is not None or b is not None else None


def check_detectors(suite: Suite, suite_path: Path) -> None:
    """Unknown detector names fail before any work, naming the suite field."""
    from shiftbench.registry import DETECTORS

    for index, spec in enumerate(suite.detectors):
        try:
            DETECTORS.target(spec.name)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"{suite_path}: detectors.{index}.name: {exc}") from None


def check_labels(model: ModelAdapter, splits: list[Split]) -> None:
    """Every label is a class of the model, before any inference."""
    for split in splits:
        class_indices(split.labels or [], model.classes_, split.ids, f"split {split.name!r}")


def environment(runner) -> dict:
    packages = {}
    for name in REPORTED_PACKAGES:
        try:
            packages[name] = version(name)
        except PackageNotFoundError:
            packages[name] = None
    return {"python": sys.version.split()[0], "platform": platform.platform(),
            "packages": packages, "device": runner.device_, "precision": runner.precision_}


def new_run_id(fingerprint: str) -> str:
    """Time, adapter and short hash: sorts by time, says which model ran."""
    adapter, _, hash_ = fingerprint.rpartition("-")
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{adapter}-{hash_[:8]}"


def run_suite(suite_path: str | Path, model_spec: str, options: RunOptions) -> Path:
    """Run a suite against a model; return the finished report directory."""
    from shiftbench.drift import drift_tests
    from shiftbench.evaluate import evaluate
    from shiftbench.models import load_model
    from shiftbench.movement import text_movement
    from shiftbench.report import SCHEMA_VERSION
    from shiftbench.runner import Runner

    started = time.perf_counter()
    suite_path = Path(suite_path)
    suite = load_suite(suite_path)
    check_detectors(suite, suite_path)
    model = load_model(model_spec)
    runner = Runner(cache_dir=options.resolved_cache_dir(), device=options.device,
                    precision=options.precision, batch_size=options.batch_size,
                    progress=options.progress)
    splits = build_splits(suite, suite_path, options, model.needs_training, runner)
    timings = dict(splits.timings)

    t0 = time.perf_counter()
    if splits.train is not None:
        model.fit(splits.train, runner)
    timings["fit_s"] = time.perf_counter() - t0
    evaluated = [splits.reference, *splits.shifted]
    check_labels(model, evaluated)

    t0 = time.perf_counter()
    texts = [text for split in evaluated for text in split.texts]
    proba = model.predict_proba(texts, runner)
    timings["inference_s"] = time.perf_counter() - t0
    per_split, start = [], 0
    for split in evaluated:
        per_split.append(proba[start:start + len(split)])
        start += len(split)
    embed = text_encoder(runner)
    t0 = time.perf_counter()
    movement = text_movement(splits.reference, splits.shifted, embed) if options.movement else None
    timings["movement_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    drift = drift_tests(splits.reference, splits.shifted, suite.detectors, embed,
                        {s.name: p for s, p in zip(evaluated, per_split, strict=True)})
    timings["drift_s"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    records, predictions = evaluate(splits.reference, per_split[0],
                                    list(zip(splits.shifted, per_split[1:], strict=True)),
                                    model.classes_, list(suite.metrics), suite.seed)
    timings["metrics_s"] = time.perf_counter() - t0
    timings["total_s"] = time.perf_counter() - started

    fingerprint = model.fingerprint()
    run_id = options.run_id or new_run_id(fingerprint)
    report = {
        "schema_version": SCHEMA_VERSION,
        "shiftbench_version": __version__,
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "path": str(suite_path), "hash": suite.spec_hash(),
                  "spec": suite.model_dump(mode="json", by_alias=True)},
        "model": {**model.describe(), "fingerprint": fingerprint, "classes": model.classes_},
        "environment": environment(runner),
        "seed": suite.seed,
        "timings": timings,
        "runner": dict(runner.stats),
        "shift_stats": splits.shift_stats,
        "splits": records,
        "predictions_file": "predictions.parquet",
        **({"movement": movement} if movement is not None else {}),
        **({"drift": drift} if suite.detectors else {}),
    }
    return publish(options.reports_dir / suite.name, run_id, report, predictions)


def text_encoder(runner: Runner) -> Callable[[list[str]], np.ndarray]:
    """MiniLM embeddings through the runner's cache (hits when the model under test is the
    default probe): what movement and drift tests measure texts with."""
    from shiftbench.monitor.embed import text_embedder

    embedder = text_embedder()
    return lambda texts: embedder(texts, runner)


def publish(parent: Path, run_id: str, report: dict, predictions: pd.DataFrame) -> Path:
    """Write into a hidden partial folder, then rename: a report dir is always complete."""
    from shiftbench.report import write_run

    final = parent / run_id
    if final.exists():
        raise ShiftbenchError(f"{final}: a run with this id already exists")
    partial = parent / f".{run_id}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    try:
        write_run(partial, report, predictions)
        partial.rename(final)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final
