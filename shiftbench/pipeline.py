"""`shiftbench run`: suite -> splits -> one batched inference pass -> metrics -> report.

Everything that can be checked before the work is checked first (the suite's names and
parameters, the report folder's name and writability). The report directory appears only
when complete (written beside it, then renamed); inference results live in the runner's
cache, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import errno
import os
import platform
import shutil
import sys
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench import __version__
from shiftbench.config import DetectorSpec, Domain, Perturbation, Suite, load_suite
from shiftbench.data import check_train_overlap, read_source, select, to_split
from shiftbench.device import PRECISIONS, resolve_cache_dir
from shiftbench.errors import ShiftbenchError
from shiftbench.labels import class_indices
from shiftbench.paths import check_writable, inside, safe_component
from shiftbench.progress import Phases
from shiftbench.registry import SHIFTS
from shiftbench.split import Split, sample_indices

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.shifts import Shift

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
        return resolve_cache_dir(self.cache_dir, self.reports_dir)


def add_run_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags that fill :class:`RunOptions` (shared by ``run`` and ``gate``)."""
    parser.add_argument("--data-dir", type=Path,
                        help="resolve the suite's relative data paths here")
    parser.add_argument("--limit", type=int, help="at most this many examples per evaluated split")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    parser.add_argument("--cache-dir", type=Path,
                        help="prediction/embedding cache (default: <reports-dir>/.cache)")
    parser.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS)
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
    if run_id is not None:
        safe_component(run_id, "--run-id")
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
    shift_stats: dict[str, dict] = field(default_factory=dict)


def data_base_dir(suite: Suite, suite_path: Path, data_dir: Path | None) -> Path:
    """Relative data paths resolve against --data-dir, else suite.data_dir, else its folder."""
    if data_dir is not None:
        return data_dir
    if suite.data_dir is not None:
        return (suite_path.parent / suite.data_dir).resolve()
    return suite_path.parent


def build_splits(suite: Suite, suite_path: Path, options: RunOptions, need_train: bool,
                 runner: Runner, phases: Phases) -> SuiteSplits:
    """Read the data once per source and make every split the suite names.

    Shifts that batch (back-translation) use ``runner`` for its cache and device, and
    leave throughput figures in ``stats_``; those go to ``shift_stats`` by split name.
    """
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
    with phases.phase("load_data_s"):
        if need_train:
            if suite.train is None:
                raise ShiftbenchError(f"{suite_path}: train: the model needs a train split; "
                                      "add one")
            train = to_split(rows(suite.train, suite.train.limit), "train", True, kind="train")
        reference = to_split(rows(suite.reference, _min(suite.reference.limit, limit)),
                             "reference", True, kind="reference")
        domains = {index: to_split(rows(entry, _min(entry.limit, limit)), entry.name, True,
                                   kind="domain")
                   for index, entry in enumerate(suite.shifts) if isinstance(entry, Domain)}
        reference, *checked = check_train_overlap(train, [reference, *domains.values()],
                                                  suite.allow_train_overlap, suite_path)
        domains = dict(zip(domains, checked, strict=True))
    from shiftbench.shifts import apply_shift

    shifted, shift_stats = [], {}
    for index, entry in enumerate(suite.shifts):
        if index in domains:
            shifted.append(domains[index])
            continue
        source = reference
        if entry.limit is not None:
            source = reference.subset(sample_indices(reference.ids, suite.seed, entry.limit))
        for severity in entry.severities:
            name = f"{entry.name or entry.shift}@{severity}"
            shift = make_shift(entry, severity, index, suite_path)
            with phases.phase("shifts_s", name):
                shifted.append(apply_shift(shift, source, suite.seed, name, runner))
            if getattr(shift, "stats_", None):
                shift_stats[name] = shift.stats_
    return SuiteSplits(train, reference, shifted, shift_stats)


def _min(a: int | None, b: int | None) -> int | None:
    return min(x for x in (a, b) if x is not None) if a is not None or b is not None else None


def make_shift(entry: Perturbation, severity: int, index: int, suite_path: Path) -> Shift:
    """The shift a suite entry names, at one severity; errors name the suite field."""
    try:
        shift_cls = SHIFTS.load(entry.shift)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{suite_path}: shifts.{index}.shift: {exc}") from None
    try:
        return shift_cls(severity=severity, **entry.params)
    except (ShiftbenchError, TypeError, ValueError) as exc:
        raise ShiftbenchError(f"{suite_path}: shifts.{index}.params: {exc}") from None


def check_detector(spec: DetectorSpec, index: int, suite_path: Path) -> None:
    """A detector the suite names must exist and accept its parameters."""
    from shiftbench.detectors import make_detector
    from shiftbench.registry import DETECTORS

    try:
        DETECTORS.target(spec.name)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{suite_path}: detectors.{index}.name: {exc}") from None
    try:
        make_detector(spec.name, **spec.params)
    except (ShiftbenchError, TypeError, ValueError) as exc:
        raise ShiftbenchError(f"{suite_path}: detectors.{index}.params: {exc}") from None


def load_valid_suite(path: Path) -> Suite:
    """Load a suite and build each shift and detector it names, so what `run` would reject
    fails before any work. `ls` calls this too: a suite it lists as valid, `run` accepts."""
    suite = load_suite(path)
    for index, entry in enumerate(suite.shifts):
        if isinstance(entry, Perturbation):
            for severity in entry.severities:
                make_shift(entry, severity, index, path)
    for index, spec in enumerate(suite.detectors):
        check_detector(spec, index, path)
    return suite


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


def new_run_id(fingerprint: str, parent: Path) -> str:
    """Time, adapter and short hash: sorts by time, says which model ran; a number is
    added when the same model already finished in ``parent`` within the same second."""
    adapter, _, hash_ = fingerprint.rpartition("-")
    base = f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{adapter}-{hash_[:8]}"
    run_id, number = base, 1
    while (parent / run_id).exists():
        number += 1
        run_id = f"{base}-{number}"
    return run_id


def run_steps(suite: Suite, model: ModelAdapter, options: RunOptions) -> dict[str, str]:
    """The phases of this run (timing key -> what the phase line says), in order."""
    steps = {"load_data_s": "reading data"}
    if any(isinstance(entry, Perturbation) for entry in suite.shifts):
        steps["shifts_s"] = "shifting"
    if model.needs_training:
        steps["fit_s"] = "fitting the model"
    steps["inference_s"] = "inference"
    if options.movement:
        steps["movement_s"] = "text movement"
    if suite.detectors:
        steps["drift_s"] = "drift tests"
    return {**steps, "metrics_s": "metrics", "write_s": "writing the report"}


def check_report_folder(suite: Suite, options: RunOptions) -> Path:
    """The suite's report folder, checked before any work: inside --reports-dir,
    writable, and without a run of the requested id; the cache folder writable too."""
    parent = inside(options.reports_dir, suite.name)
    if options.run_id is not None and inside(parent, options.run_id).exists():
        raise ShiftbenchError(f"{parent / options.run_id}: a run with this id already exists")
    check_writable(parent)
    check_writable(options.resolved_cache_dir())
    return parent


def run_suite(suite_path: str | Path, model_spec: str, options: RunOptions) -> Path:
    """Run a suite against a model; return the finished report directory."""
    from shiftbench.drift import drift_tests
    from shiftbench.evaluate import evaluate
    from shiftbench.models import load_model
    from shiftbench.movement import text_movement
    from shiftbench.report import SCHEMA_VERSION
    from shiftbench.runner import Runner

    suite_path = Path(suite_path)
    suite = load_valid_suite(suite_path)
    parent = check_report_folder(suite, options)
    model = load_model(model_spec)
    phases = Phases(run_steps(suite, model, options), enabled=options.progress is not False)
    runner = Runner(cache_dir=options.resolved_cache_dir(), device=options.device,
                    precision=options.precision, batch_size=options.batch_size,
                    progress=options.progress)
    splits = build_splits(suite, suite_path, options, model.needs_training, runner, phases)
    if splits.train is not None:
        with phases.phase("fit_s"):
            model.fit(splits.train, runner)
    evaluated = [splits.reference, *splits.shifted]
    check_labels(model, evaluated)

    with phases.phase("inference_s"):
        texts = [text for split in evaluated for text in split.texts]
        proba = model.predict_proba(texts, runner)
    per_split, start = [], 0
    for split in evaluated:
        per_split.append(proba[start:start + len(split)])
        start += len(split)
    embed = text_encoder(runner)
    movement = drift = None
    if options.movement:
        with phases.phase("movement_s"):
            movement = text_movement(splits.reference, splits.shifted, embed)
    if suite.detectors:
        with phases.phase("drift_s"):
            drift = drift_tests(splits.reference, splits.shifted, suite.detectors, embed,
                                {s.name: p for s, p in zip(evaluated, per_split, strict=True)})

    with phases.phase("metrics_s"):
        records, predictions = evaluate(splits.reference, per_split[0],
                                        list(zip(splits.shifted, per_split[1:], strict=True)),
                                        model.classes_, list(suite.metrics), suite.seed)
    timings = {**phases.seconds, "total_s": phases.elapsed()}

    fingerprint = model.fingerprint()
    run_id = options.run_id or new_run_id(fingerprint, parent)
    report = {
        "schema_version": SCHEMA_VERSION,
        "shiftbench_version": __version__,
        "run_id": run_id,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "suite": {"name": suite.name, "path": str(suite_path), "hash": suite.spec_hash(),
                  "spec": suite.model_dump(mode="json", by_alias=True)},
        "model": {**model.describe(), "spec": model_spec, "fingerprint": fingerprint,
                  "classes": model.classes_},
        "environment": environment(runner),
        "seed": suite.seed,
        "timings": timings,
        "runner": dict(runner.stats),
        "shift_stats": splits.shift_stats,
        "splits": records,
        "predictions_file": "predictions.parquet",
        **({"movement": movement} if movement is not None else {}),
        **({"drift": drift} if drift is not None else {}),
    }
    with phases.phase("write_s"):
        return publish(parent, run_id, report, predictions)


def text_encoder(runner: Runner) -> Callable[[list[str]], np.ndarray]:
    """MiniLM embeddings through the runner's cache (hits when the model under test is the
    default probe): what movement and drift tests measure texts with."""
    from shiftbench.models.embed import text_embedder

    embedder = text_embedder()
    return lambda texts: embedder(texts, runner)


def publish(parent: Path, run_id: str, report: dict, predictions: pd.DataFrame) -> Path:
    """Write into a hidden partial folder of this process's own, then rename it into place:
    a report folder is always complete, and of two runs with one id exactly one wins."""
    from shiftbench.report import write_run

    final = inside(parent, safe_component(run_id, "run id"))
    partial = parent / f".{run_id}.{uuid.uuid4().hex}.partial"
    try:
        partial.mkdir(parents=True)
        write_run(partial, report, predictions)
        claim(partial, final)
    except OSError as exc:
        raise ShiftbenchError(f"{final}: cannot write the report ({exc.strerror or exc}); "
                              "nothing was left behind and finished work is cached: fix this "
                              "and run again") from None
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return final


def claim(partial: Path, final: Path) -> None:
    """Rename ``partial`` to ``final`` unless a run already holds that name (the rename
    itself refuses a non-empty folder, so a run finishing at the same moment loses)."""
    already = ShiftbenchError(f"{final}: a run with this id already exists")
    if final.exists() or final.is_symlink():
        raise already
    try:
        os.rename(partial, final)
    except OSError as exc:
        if exc.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise already from None
        raise
