"""`shiftbench mitigate`: retrain with a method and show before/after on the same suite.

The suite's splits are built once. One model per seed is trained with the method, and
one with ERM (the same trainer and seeds): a head on the frozen encoder of a probe base,
or the whole Hugging Face model of an hf base, fine-tuned end to end
(:mod:`shiftbench.mitigate.retrain`). The base as it is, the ERM models and the mitigated
models are then evaluated on the same examples and compared pair by pair (by example id).
A base without a classifier for the suite's labels (a bare encoder) has no as-is accuracy:
ERM, fine-tuned from it, is then the only baseline.

A method that trains on an unlabelled target uses the suite's domain splits (all, or
those ``--target`` names) without their labels, but never the rows it is evaluated on:
each target split's rows are halved by a stable hash of their id into a target-train half
and an evaluated half (the report states both counts); a target half sharing rows with
the train split is refused. Trained heads live in ``OUT/models`` with their checkpoints and
embeddings and predictions in the runner's cache, so a re-run trains nothing that
finished (a fine-tuned model's folder resumes from its checkpoints). Each training runs
where the runner's batches run: with ``--executor ray``, as one Ray task (retried from
its folder's checkpoints when its worker dies).
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.mitigate.gating import candidate_drift, gate
from shiftbench.mitigate.options import MitigateOptions, parse_params
from shiftbench.mitigate.report import before_after, failure_groups, write_report
from shiftbench.mitigate.selection import HOW, Score, dev_score, source_score
from shiftbench.mitigate.setup import (
    Candidate,
    Setup,
    check_policy_base,
    checked_setup,
    evaluable_base,
    split_targets,
    task_columns,
)
from shiftbench.progress import Phases
from shiftbench.suite_splits import build_splits

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from shiftbench.evaluate import ScoredSplit
    from shiftbench.mitigate.retrain import Retrainer
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation
    from shiftbench.train.trainer import TrainConfig, TrainResult

__all__ = ["MitigateOptions", "mitigate", "parse_params"]


def mitigate(suite_path: Path, base_spec: str, options: MitigateOptions) -> Path:
    """Train, evaluate and write the before/after report; return the report folder."""
    setup = checked_setup(suite_path, base_spec, options)
    suite, base = setup.suite, setup.base
    runner = options.runtime.runner()
    phases = Phases({"load_data_s": "reading data", "shifts_s": "shifting"},
                    enabled=options.runtime.progress is not False)
    splits = build_splits(suite, suite_path, options.data_dir, options.limit, True, runner,
                          phases)
    evaluated, target = split_targets(splits, setup.targets)
    assert splits.train is not None
    base.fit(splits.train, runner)
    evaluable = evaluable_base(base, evaluated)
    check_policy_base(options, base_spec, evaluable)

    key = [suite.spec_hash(), base.fingerprint(), options.data_dir and str(options.data_dir),
           options.limit]
    score_of = (source_score if setup.select == "source" else
                dev_score(base, splits.train, target, setup.config, runner))
    erm, erm_grid = train_selected(setup.erm_candidates, setup, splits.train, None, runner,
                                   options, key, score_of)
    mitigated, method_grid = train_selected(setup.candidates, setup, splits.train, target,
                                            runner, options, key, score_of)
    scored = {**({"base": [score(base, evaluated, runner)]} if evaluable else {}),
              "erm": [score(m, evaluated, runner) for m, _ in erm],
              "method": [score(m, evaluated, runner) for m, _ in mitigated]}
    selection = None if not options.grid else {
        "select": setup.select, "how": HOW[setup.select],
        "grid": grid_values(setup.candidates), "method": method_grid, "erm": erm_grid}
    report = before_after(suite, suite_path, base_spec, setup.mitigation,
                          without_seed(setup.config), options, evaluated, target, scored,
                          [r for _, r in erm], [r for _, r in mitigated], selection)
    if options.policy is not None:
        report["gate"] = gate(options.policy, suite, base, scored, [m for m, _ in mitigated],
                              candidate_drift(suite, evaluated, scored["method"], runner))
    models = {"erm": erm[0][0], "method": mitigated[0][0], **({"base": base} if evaluable else {})}
    classes = {name: [str(c) for c in model.classes_] for name, model in models.items()}
    write_report(options.out, report,
                 failure_groups(scored, classes, report["method"]["method"]),
                 options.failures_inline)
    return options.out


def without_seed(config: TrainConfig) -> dict[str, Any]:
    """The trainer's settings shared by every seed."""
    return {name: value for name, value in asdict(config).items() if name != "seed"}


def grid_values(candidates: list[Candidate]) -> dict[str, list[Any]]:
    """Each searched parameter's values, in the order given."""
    names = candidates[0].values
    return {name: list(dict.fromkeys(c.values[name] for c in candidates)) for name in names}


def train_selected(candidates: list[Candidate], setup: Setup, train: Split,
                   target: Split | None, runner: Runner, options: MitigateOptions,
                   key: list[Any], score_of: Score
                   ) -> tuple[list[tuple[ModelAdapter, TrainResult]], list[dict[str, Any]]]:
    """Per seed, every candidate trained and, when there are several, the one with the
    lowest selection score kept. Returns the kept model of each seed (and how its
    training went), and per candidate
    its grid values, score and whether it was kept, per seed."""
    records: list[dict[str, Any]] = [{"values": c.values, "scores": [], "chosen": []}
                                     for c in candidates]
    every = train_all([(seed, c) for seed in range(options.seeds) for c in candidates],
                      setup, train, target, runner, options, key)
    kept = []
    for seed in range(options.seeds):
        trained = every[seed * len(candidates):(seed + 1) * len(candidates)]
        scores = ([score_of(seed, *pair) for pair in trained] if len(trained) > 1
                  else [None])
        best = min(range(len(trained)), key=lambda k: scores[k] or 0.0)
        for k, record in enumerate(records):
            record["scores"].append(scores[k])
            record["chosen"].append(k == best)
        kept.append(trained[best])
    return kept, records


def train_all(jobs: list[tuple[int, Candidate]], setup: Setup, train: Split,
              target: Split | None, runner: Runner, options: MitigateOptions,
              key: list[Any]) -> list[tuple[ModelAdapter, TrainResult]]:
    """Each (seed, candidate)'s model, in the order of ``jobs``: trained where the
    runner's batches run (``--executor ray``: one Ray task each), each into its folder
    ``OUT/models/<method>-<hash of key, method and settings>/seed<k>``, then loaded from
    there. A finished one resumes from its last checkpoint and trains nothing."""
    from shiftbench.models import load_model

    progress = options.runtime.progress is not False
    folders = [model_folder(candidate, key, options.out) / f"seed{seed}"
               for seed, candidate in jobs]
    calls = []
    for (seed, candidate), folder in zip(jobs, folders, strict=True):
        method = candidate.method
        values = "".join(f" {name}={value}" for name, value in candidate.values.items())
        heading = f"shiftbench: {method.name}{values}, seed {seed}: {folder}"
        calls.append((setup.retrainer, train, folder, method,
                      replace(candidate.config, seed=seed),
                      target if method.uses_target else None,
                      {name: train.metadata[name] for name in task_columns(method)},
                      runner, heading if progress else None))
    results = runner.call_each(train_into, calls, "mitigate: training")
    return [(load_model(str(folder / "model.yaml")), result)
            for folder, result in zip(folders, results, strict=True)]


def model_folder(candidate: Candidate, key: list[Any], out: Path) -> Path:
    """Where a candidate's models go (one ``seed<k>`` folder per seed)."""
    method = candidate.method
    blob = json.dumps([*key, method.describe(), without_seed(candidate.config)],
                      sort_keys=True)
    digest = hashlib.sha256(blob.encode()).hexdigest()[:10]
    return out / "models" / f"{method.name}-{digest}"


def train_into(retrainer: Retrainer, train: Split, folder: Path, method: Mitigation,
               config: TrainConfig, target: Split | None,
               tasks: Mapping[str, Sequence[str]], runner: Runner, heading: str | None
               ) -> TrainResult:
    """One training (module level: a Ray task runs it, with ``runner`` as a Ray worker
    gets it); ``heading`` None: no progress lines (else printed first, then each
    epoch's)."""
    from shiftbench.train.trainer import print_epoch

    if heading is not None:
        print(heading, file=sys.stderr, flush=True)
    return retrainer.train(train, folder, method, config, target, tasks, runner,
                           print_epoch if heading is not None else None)


def score(model: ModelAdapter, splits: list[Split], runner: Runner) -> list[ScoredSplit]:
    """Each split scored by the model (one batched pass; predictions are cached)."""
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.labels import class_indices
    from shiftbench.run import predict_splits

    per_split = predict_splits(model, splits, runner)
    return [ScoredSplit(s.name, str(s.info.get("kind", "reference")), s.ids,
                        class_indices(s.labels or [], model.classes_, s.ids,
                                      f"split {s.name!r}"), proba, s.texts)
            for s, proba in zip(splits, per_split, strict=True)]
