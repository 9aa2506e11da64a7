"""Release gate: a policy + a baseline run + a candidate run -> pass/fail with reasons.

The gate controls false fails: a candidate that satisfies every fail rule is failed
with probability at most the policy's alpha (one-sided tests of H0 "the rule holds",
Holm across the checks). See :mod:`shiftbench.gate.rules` and the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.config import Suite
    from shiftbench.gate.policy import Policy
    from shiftbench.gate.rules import GateResult
    from shiftbench.gate.runs import Run
    from shiftbench.report.failures import Group


def policy_suite(policy: Policy, policy_path: Path) -> Path | None:
    """The suite file the policy names, resolved against the policy's folder."""
    return None if policy.suite is None else Path(policy_path).parent / policy.suite


def check_policy_suite(policy: Policy, policy_path: Path, run: Run) -> None:
    """A policy that names its suite only gates runs of that suite's current spec."""
    from shiftbench.config import load_suite

    path = policy_suite(policy, policy_path)
    if path is None:
        return
    suite = load_suite(path)
    if suite.spec_hash() != run.suite_hash:
        raise ShiftbenchError(
            f"{policy_path}: suite: run {run.label} is not a run of {path} as it is now "
            f"(suite hash {run.suite_hash[:12]} vs {suite.spec_hash()[:12]}); re-run it")


def gate_runs(policy_path: str | Path, baseline_dir: str | Path,
              candidate_dir: str | Path) -> tuple[GateResult, list[Group]]:
    """Gate two finished run directories under a policy file; also the examples behind
    each failing or warning check (:func:`example_groups`)."""
    from shiftbench.gate.policy import load_policy
    from shiftbench.gate.rules import evaluate_gate
    from shiftbench.gate.runs import load_run

    policy_path = Path(policy_path)
    policy = load_policy(policy_path)
    baseline, candidate = load_run(Path(baseline_dir)), load_run(Path(candidate_dir))
    check_policy_suite(policy, policy_path, candidate)
    result = evaluate_gate(policy, baseline, candidate, policy_path)
    return result, example_groups(policy, result, baseline, candidate)


def check_key(rule: str, split: str) -> str:
    """How the examples page names a check (its group key and link anchor)."""
    return f"{rule} [{split}]"


def example_groups(policy: Policy, result: GateResult, baseline: Run,
                   candidate: Run) -> list[Group]:
    """The examples behind each check that failed or warned, as its rule compares them
    (:meth:`~shiftbench.gate.policy.RuleBase.examples`): the examples whose prediction
    changed, paired by id, or the most confident errors. Rules with no examples behind
    them (drift) and generation runs (no classes) have none."""
    from shiftbench.report.failures import changed, errors

    classes = [str(c) for c in candidate.model.get("classes") or []]
    groups = []
    for verdict in result.verdicts:
        found = None if verdict.status == "pass" else \
            policy.rules[verdict.index].examples(baseline, candidate, verdict.split)
        if found is None or found.after.generated:
            continue
        key = check_key(verdict.rule, verdict.split)
        groups.append(errors(key, found.after, classes, found.names[1]) if found.before is None
                      else changed(key, found.before, found.after, classes, found.names))
    return groups


def check_before_running(policy: Policy, policy_path: Path, suite_path: Path,
                         given: dict[str, Path], limit: int | None) -> None:
    """What can fail before a model spec runs on the suite, checked at once rather than
    after minutes of running: every rule's splits, and whether each given run (by side)
    will pair with the run to be made: the same suite spec, and no split with more
    examples than that run evaluates (``limit``, else the suite's, as ``run`` applies it).
    """
    from shiftbench.config import load_suite
    from shiftbench.gate.rules import expand
    from shiftbench.gate.runs import check_same_suite, load_run

    suite = load_suite(suite_path)
    planned = _planned_run(suite, suite_path)
    expand(policy, planned, str(policy_path))
    limit = limit or suite.limit
    for side, run_dir in given.items():
        run = load_run(run_dir)
        check_same_suite(*((run, planned) if side == "baseline" else (planned, run)))
        for split in run.splits.values():
            if limit is not None and len(split.ids) > limit:
                raise ShiftbenchError(
                    f"{side} {run.label}: split {split.name!r} has {len(split.ids)} examples, "
                    f"more than the {planned.label} evaluates (limit {limit}); run both "
                    "with the same --limit")


def _planned_run(suite: Suite, suite_path: Path) -> Run:
    """A run of the suite before it runs: the suite's spec hash and its splits, empty (a
    drift result list each when the suite has detectors)."""
    import numpy as np

    from shiftbench.config import Perturbation, split_names
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.gate.runs import Run

    kinds = {"reference": "reference"}
    for entry in suite.shifts:
        names = split_names(suite.model_copy(update={"shifts": [entry]}))
        kinds.update(dict.fromkeys(names, "perturbation" if isinstance(entry, Perturbation)
                                   else "domain"))
    empty = np.zeros(0, dtype=np.int64)
    outputs = np.zeros(0, dtype=object) if suite.task == "generation" else np.zeros((0, 0))
    splits = {name: ScoredSplit(name, kind, [], empty, outputs) for name, kind in kinds.items()}
    drift = {name: [] for name in list(kinds)[1:]} if suite.detectors else None
    return Run(f"run of {suite_path}", suite.name, suite.spec_hash(), {}, splits, drift=drift)
