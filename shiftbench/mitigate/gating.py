"""The gate's verdict on each mitigated model against the base, with the drift results
its drift rules need."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from shiftbench.config import Suite
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.split import Split


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
