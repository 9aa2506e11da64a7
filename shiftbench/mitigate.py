"""`shiftbench mitigate`: retrain with a method and show before/after on the same suite.

The suite's splits are built once. One head per seed is trained on the base probe's
frozen encoder with the method, and one with ERM (the same trainer and seeds); the base
probe, the ERM heads and the mitigated heads are then evaluated on the same examples and
compared pair by pair (by example id).

A method that trains on an unlabelled target uses the suite's domain splits without
their labels, but never the rows it is evaluated on: each domain split's rows are halved
by a stable hash of their id into a target-train half and an evaluated half (the report
states both counts). Trained heads live in ``OUT/models`` with their checkpoints and
embeddings and predictions in the runner's cache, so a re-run trains nothing that
finished.
"""

from __future__ import annotations

import hashlib
import json
import sys
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.config import Domain
from shiftbench.errors import ShiftbenchError, did_you_mean
from shiftbench.paths import check_writable
from shiftbench.progress import Phases
from shiftbench.run import check_limit
from shiftbench.split import Split, unit_hash
from shiftbench.suite_splits import SuiteSplits, build_splits, load_valid_suite

if TYPE_CHECKING:
    import numpy as np

    from shiftbench.config import Suite
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.runtime import Runtime
    from shiftbench.train.mitigations import Mitigation

TARGET_SHARE = 0.5  # of each domain split's rows, by id hash, used as the unlabelled target
NOT_TUNABLE = ("seed", "device")  # set by --seeds and --device
TRUTHS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass
class MitigateOptions:
    """What ``shiftbench mitigate`` was asked, besides the suite and the base model."""

    method: str
    params: list[str]  # "k=v", for the method or the trainer (TrainConfig)
    seeds: int
    out: Path
    runtime: Runtime
    data_dir: Path | None = None
    limit: int | None = None
    policy: Path | None = None  # a gate policy: its verdict on each seed's model vs the base


def parse_params(method_cls: type, pairs: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``k=v`` strings -> (the method's parameters, the trainer's), each value converted
    strictly to the type its ``__init__`` (or :class:`TrainConfig` field) annotates."""
    from shiftbench.train.trainer import TrainConfig

    method_types = typing.get_type_hints(method_cls.__init__)
    train_types = {f.name: f.type for f in fields(TrainConfig) if f.name not in NOT_TUNABLE}
    train_types = {name: {"int": int, "float": float, "str": str}.get(str(kind), kind)
                   for name, kind in train_types.items()}
    known = [*method_cls.param_names(), *train_types]
    method_params: dict[str, Any] = {}
    train_params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ShiftbenchError(f"--param {pair!r}: write name=value")
        if name not in known:
            raise ShiftbenchError(f"--param {name!r}: not a parameter of {method_cls.name} or "
                                  f"the trainer" + did_you_mean(name, known))
        is_method = name in method_cls.param_names()
        kind = method_types.get(name, str) if is_method else train_types[name]
        target = method_params if is_method else train_params
        if name in target:
            raise ShiftbenchError(f"--param {name!r} is given twice")
        target[name] = convert(name, text, kind)
    return method_params, train_params


def convert(name: str, text: str, kind: Any) -> Any:
    """One parameter's value as ``kind`` (bool, int, float or str); anything else is an
    error naming the parameter."""
    import math

    try:
        if kind is bool:
            return TRUTHS[text.lower()]
        if kind is int:
            return int(text)
        if kind is float:
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
    except (KeyError, ValueError):
        what = {bool: "true or false", int: "an integer", float: "a finite number"}[kind]
        raise ShiftbenchError(f"--param {name}={text!r}: must be {what}") from None
    return text


def base_encoder(spec: str) -> tuple[ModelAdapter, str | None]:
    """The base model and its encoder: only a probe (frozen encoder + head) can be
    retrained here."""
    from shiftbench.models import load_model
    from shiftbench.models.probe import EncoderProbe

    model = load_model(spec)
    if not isinstance(model, EncoderProbe):
        raise ShiftbenchError(f"--model {spec!r}: a {model.adapter} model cannot be retrained by "
                              "mitigate, which trains heads on a frozen encoder's embeddings; "
                              "use probe or probe:<encoder>")
    return model, model.source


def split_domains(splits: SuiteSplits) -> tuple[list[Split], Split | None]:
    """The evaluated splits (each domain split keeps only its evaluated half) and the
    target (the other halves, joined; None without domain splits)."""
    evaluated, target_parts = [splits.reference], []
    for split in splits.shifted:
        if split.info.get("kind") != "domain":
            evaluated.append(split)
            continue
        held = [unit_hash("mitigate-target", i) < TARGET_SHARE for i in split.ids]
        target_parts.append(split.subset([k for k, h in enumerate(held) if h]))
        evaluated.append(split.subset([k for k, h in enumerate(held) if not h]))
    if not target_parts:
        return evaluated, None
    target = Split("target", [i for p in target_parts for i in p.ids],
                   [t for p in target_parts for t in p.texts])
    return evaluated, target


def mitigate(suite_path: Path, base_spec: str, options: MitigateOptions) -> Path:
    """Train, evaluate and write the before/after report; return the report folder."""
    from shiftbench.train.mitigations import ERM

    suite, mitigation, train_params, base, encoder = checked_setup(suite_path, base_spec,
                                                                   options)
    runner = options.runtime.runner()
    phases = Phases({"load_data_s": "reading data", "shifts_s": "shifting"},
                    enabled=options.runtime.progress is not False)
    splits = build_splits(suite, suite_path, options.data_dir, options.limit, True, runner,
                          phases)
    evaluated, target = split_domains(splits)
    assert splits.train is not None
    base.fit(splits.train, runner)

    key = [suite.spec_hash(), base.fingerprint(), train_params,
           options.data_dir and str(options.data_dir), options.limit]
    erm = train_seeds(ERM(), train_params, splits.train, None, encoder, runner, options, key)
    mitigated = train_seeds(mitigation, train_params, splits.train, target, encoder, runner,
                            options, key)
    scored = {"base": [score(base, evaluated, runner)],
              "erm": [score(m, evaluated, runner) for m in erm],
              "method": [score(m, evaluated, runner) for m in mitigated]}
    report = before_after(suite, suite_path, base_spec, mitigation, train_params, options,
                          evaluated, target, scored, erm, mitigated)
    if options.policy is not None:
        report["gate"] = gate(options.policy, suite, base, scored, mitigated,
                              candidate_drift(suite, evaluated, scored["method"], runner))
    write_report(options.out, report)
    return options.out


def checked_setup(suite_path: Path, base_spec: str, options: MitigateOptions
                  ) -> tuple[Suite, Mitigation, dict[str, Any], ModelAdapter, str | None]:
    """Everything that can be refused before any work: the suite, the method and its
    parameters, the trainer's settings, seeds, limit, base model, output folder, policy.
    Returns (suite, method, trainer parameters, base model, encoder)."""
    from shiftbench.registry import MITIGATIONS
    from shiftbench.train.trainer import TrainConfig

    suite = load_valid_suite(suite_path)
    method_cls = MITIGATIONS.load(options.method)
    method_params, train_params = parse_params(method_cls, options.params)
    if options.seeds < 1:
        raise ShiftbenchError("--seeds must be at least 1")
    check_limit(options.limit)
    base, encoder = base_encoder(base_spec)
    check_writable(options.out)
    if options.policy is not None:
        from shiftbench.gate.policy import load_policy

        load_policy(options.policy)
    if method_cls.uses_target and not any(isinstance(e, Domain) for e in suite.shifts):
        raise ShiftbenchError(f"{suite_path}: {options.method} trains on an unlabelled target, "
                              "taken from the suite's domain splits; this suite has none")
    mitigation = method_cls(**method_params)
    TrainConfig(**train_params)  # out-of-range values fail before any work
    return suite, mitigation, train_params, base, encoder


def before_after(suite: Suite, suite_path: Path, base_spec: str, mitigation: Mitigation,
                 train_params: dict[str, Any], options: MitigateOptions,
                 evaluated: list[Split], target: Split | None,
                 scored: dict[str, list[list[ScoredSplit]]], erm: list[ModelAdapter],
                 mitigated: list[ModelAdapter]) -> dict[str, Any]:
    """The report's content: what was trained and how, and each split's accuracies and
    paired deltas (see :func:`split_record`)."""
    from shiftbench.train.trainer import TrainConfig

    correct = {name: [[correct_by_id(split) for split in seed] for seed in seeds]
               for name, seeds in scored.items()}
    return {
        "suite": {"name": suite.name, "path": str(suite_path), "hash": suite.spec_hash()},
        "base": base_spec, "method": mitigation.describe(),
        "training": asdict(TrainConfig(**train_params)) | {"seed": list(range(options.seeds))},
        "selection": "early stopping on held-out training rows (source validation); "
                     "no target labels are used",
        "target": {"source": "the suite's domain splits, labels unused",
                   "n_target_train": 0 if target is None else len(target),
                   "n_evaluated": {s.name: len(s) for s in evaluated
                                   if s.info.get("kind") == "domain"}},
        "models": {"erm": [str(m.source) for m in erm],  # type: ignore[attr-defined]
                   "method": [str(m.source) for m in mitigated]},  # type: ignore[attr-defined]
        "splits": [split_record(s, correct, k) for k, s in enumerate(evaluated)],
    }


def train_seeds(method: Mitigation, params: dict[str, Any], train: Split,
                target: Split | None, encoder: str | None, runner: Runner,
                options: MitigateOptions, key: list[Any]) -> list[ModelAdapter]:
    """One head per seed, in ``OUT/models/<method>-<hash of key and method>/seed<k>``: a
    finished one resumes from its last checkpoint and trains nothing."""
    from shiftbench.models import load_model
    from shiftbench.train.trainer import TrainConfig, print_epoch, train_head

    blob = json.dumps([*key, method.describe()], sort_keys=True)
    name = f"{method.name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"
    models = []
    for seed in range(options.seeds):
        folder = options.out / "models" / name / f"seed{seed}"
        if options.runtime.progress is not False:
            print(f"shiftbench: {method.name}, seed {seed}: {folder}", file=sys.stderr,
                  flush=True)
        train_head(train, folder, runner, method, TrainConfig(**{**params, "seed": seed}),
                   encoder, target if method.uses_target else None,
                   None if options.runtime.progress is False else print_epoch)
        models.append(load_model(str(folder / "model.yaml")))
    return models


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


def correct_by_id(split: ScoredSplit) -> dict[str, bool]:
    """Example id -> whether the model predicted its label."""
    return dict(zip(split.ids, (split.pred == split.y).tolist(), strict=True))


def candidate_drift(suite: Suite, evaluated: list[Split], seeds: list[list[ScoredSplit]],
                    runner: Runner) -> list[dict[str, list[dict[str, Any]]] | None]:
    """Each seed's drift results on the evaluated rows (the suite's detectors, as ``run``
    measures them), for the gate's drift rules; None per seed when the suite has none."""
    from shiftbench.drift import drift_tests
    from shiftbench.run import text_encoder

    if not suite.detectors:
        return [None] * len(seeds)
    embed = text_encoder(runner)
    return [drift_tests(evaluated[0], evaluated[1:], suite.detectors, embed,
                        {split.name: split.proba for split in scored}) for scored in seeds]


def gate(policy_path: Path, suite: Suite, base: ModelAdapter,
         scored: dict[str, list[list[ScoredSplit]]], mitigated: list[ModelAdapter],
         drift: list[dict[str, list[dict[str, Any]]] | None]) -> list[dict[str, Any]]:
    """The gate's verdict on each seed's mitigated model against the base (the policy's
    checks, on the rows mitigate evaluates)."""
    from shiftbench.gate import check_policy_suite
    from shiftbench.gate.policy import load_policy
    from shiftbench.gate.rules import evaluate_gate
    from shiftbench.gate.runs import Run

    policy = load_policy(policy_path)

    def run(label: str, model: ModelAdapter, splits: list[ScoredSplit],
            drift: dict[str, list[dict[str, Any]]] | None = None) -> Run:
        return Run(label, suite.name, suite.spec_hash(),
                   {**model.describe(), "classes": model.classes_},
                   {split.name: split for split in splits}, drift=drift)

    baseline = run("base", base, scored["base"][0])
    verdicts = []
    for seed, (model, splits, found) in enumerate(zip(mitigated, scored["method"], drift,
                                                       strict=True)):
        candidate = run(f"seed {seed}", model, splits, found)
        check_policy_suite(policy, policy_path, candidate)
        result = evaluate_gate(policy, baseline, candidate, policy_path)
        verdicts.append({"seed": seed, "status": result.status,
                         "result": result.to_dict()})
    return verdicts


def paired(before: dict[str, bool], after: dict[str, bool]) -> tuple[np.ndarray, np.ndarray]:
    """The two models' outcomes on the examples both were evaluated on, in one id order."""
    import numpy as np

    ids = [i for i in before if i in after]
    return np.array([before[i] for i in ids]), np.array([after[i] for i in ids])


def deltas(before: list[dict[str, bool]], after: list[dict[str, bool]]) -> dict[str, Any]:
    """Paired accuracy deltas (after - before): each seed's, and pooled over seeds (the
    pairs of every seed together). A single ``before`` (the base) pairs with every seed."""
    import numpy as np

    from shiftbench.metrics import paired_delta

    pairs = [paired(before[k % len(before)], a) for k, a in enumerate(after)]
    pooled = paired_delta(np.concatenate([b for b, _ in pairs]),
                          np.concatenate([a for _, a in pairs]))
    return {"pooled": pooled.to_dict(),
            "seeds": [paired_delta(b, a).to_dict() for b, a in pairs]}


def split_record(split: Split, correct: dict[str, list[list[dict]]], k: int) -> dict[str, Any]:
    """One split's accuracies (per model, per seed) and paired deltas."""
    import numpy as np

    outcome = {name: [seed[k] for seed in seeds] for name, seeds in correct.items()}
    accuracy = {name: {"mean": float(np.mean([np.mean(list(s.values())) for s in seeds])),
                       "seeds": [float(np.mean(list(s.values()))) for s in seeds]}
                for name, seeds in outcome.items()}
    return {"name": split.name, "kind": split.info.get("kind", "reference"), "n": len(split),
            "accuracy": accuracy,
            "delta": {"method_vs_base": deltas(outcome["base"], outcome["method"]),
                      "method_vs_erm": deltas(outcome["erm"], outcome["method"]),
                      "erm_vs_base": deltas(outcome["base"], outcome["erm"])}}


def write_report(out: Path, report: dict[str, Any]) -> None:
    """mitigate.json and mitigate.md, each written atomically."""
    from shiftbench.cache import atomic

    out.mkdir(parents=True, exist_ok=True)
    with atomic(out / "mitigate.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2), encoding="utf-8")
    with atomic(out / "mitigate.md") as tmp:
        tmp.write_text(markdown(report), encoding="utf-8")


def _delta(estimate: dict[str, Any]) -> str:
    return (f"{estimate['value']:+.3f} [{estimate['low']:+.3f}, {estimate['high']:+.3f}]")


def markdown(report: dict[str, Any]) -> str:
    """The before/after table: accuracy per model, paired deltas (95% intervals)."""
    method = report["method"]["method"]
    target = report["target"]
    lines = [f"# mitigate {report['suite']['name']}: {method} vs ERM vs {report['base']}", "",
             f"Method: `{json.dumps(report['method'])}`; seeds: {len(report['training']['seed'])}"
             f"; model selection: {report['selection']}.", "",
             f"Target (unlabelled): {target['n_target_train']} rows from the domain splits; "
             "evaluated rows of each domain split: "
             + (", ".join(f"{k} {v}" for k, v in target["n_evaluated"].items()) or "none")
             + " (disjoint, by id hash).", "",
             f"| split | n | base | ERM | {method} | {method} - base | {method} - ERM "
             f"| seeds' spread ({method} - base) |",
             "|---|---|---|---|---|---|---|---|"]
    for split in report["splits"]:
        acc, delta = split["accuracy"], split["delta"]
        seeds = [d["value"] for d in delta["method_vs_base"]["seeds"]]
        lines.append(f"| {split['name']} | {split['n']} | {acc['base']['mean']:.3f} | "
                     f"{acc['erm']['mean']:.3f} | {acc['method']['mean']:.3f} | "
                     f"{_delta(delta['method_vs_base']['pooled'])} | "
                     f"{_delta(delta['method_vs_erm']['pooled'])} | "
                     f"{min(seeds):+.3f} .. {max(seeds):+.3f} |")
    reference = report["splits"][0]["delta"]
    lines += ["", f"Cost on the clean reference: {method} - base "
              f"{_delta(reference['method_vs_base']['pooled'])}, {method} - ERM "
              f"{_delta(reference['method_vs_erm']['pooled'])} (paired by id, pooled over "
              "seeds; 95% Tango score intervals)."]
    if report.get("gate"):
        lines.append("")
    for verdict in report.get("gate", []):
        lines.append(f"Gate ({verdict['result']['policy']}), {method} seed {verdict['seed']} "
                     f"vs base: **{verdict['status']}**")
    return "\n".join(lines) + "\n"
