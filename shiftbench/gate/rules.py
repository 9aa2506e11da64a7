"""Policy rules -> one check per (rule, split) -> verdicts with statistics.

Each check tests H0 "the rule holds" (see :mod:`shiftbench.gate.stats`). Test-decided
checks of severity ``fail`` form one family and those of severity ``warn`` another;
Holm's step-down procedure bounds, within each family, the chance of failing any check
whose rule actually holds by the policy's alpha. Point-decided checks fail whenever
their estimate crosses the threshold and sit outside both families.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench import metrics as M
from shiftbench.errors import ShiftbenchError
from shiftbench.gate import stats
from shiftbench.gate.policy import HIGHER_IS_BETTER, Policy, RuleBase
from shiftbench.gate.resample import (
    metric_stat,
    one_sample_draws,
    paired_draws,
    point_value,
    unpaired_draws,
)
from shiftbench.gate.runs import Run, SplitData, check_comparable
from shiftbench.split import example_seed


@dataclass(frozen=True)
class Check:
    """One rule applied to one split; ``family`` is None for point-decided checks."""

    index: int
    name: str
    rule: RuleBase
    split: str
    family: str | None


@dataclass
class Verdict:
    rule: str
    index: int
    kind: str
    split: str
    metric: str
    severity: str
    decide: str
    quantity: str  # what the estimate is, e.g. "Δ accuracy (candidate − baseline)"
    unit: str  # "%", "pp", "num", "Δnum" or "stat": how to print the numbers
    estimate: float
    low: float | None
    high: float | None
    level: float
    op: str | None
    threshold: float | None
    p_value: float | None
    p_adjusted: float | None
    family_size: int
    method: str
    n: int
    detectable: float | None
    status: str  # pass | fail | warn
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GateResult:
    status: str  # pass | fail
    policy: str
    alpha: float
    power: float
    suite: dict[str, str]
    baseline: dict[str, Any]
    candidate: dict[str, Any]
    verdicts: list[Verdict]

    @property
    def exit_code(self) -> int:
        return 1 if self.status == "fail" else 0

    def count(self, status: str) -> int:
        return sum(v.status == status for v in self.verdicts)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["counts"] = {s: self.count(s) for s in ("pass", "warn", "fail")}
        return out


# --- expanding rules into checks


def _eligible(rule: RuleBase, split: SplitData, run: Run) -> str | None:
    """Why a rule cannot check this split, or None when it can."""
    if rule.kind == "robustness" and split.kind == "reference":
        return "the reference has no drop from itself"
    if rule.kind == "robustness" and rule.method == "mcnemar" and split.kind != "perturbation":
        return "McNemar needs examples paired with the reference (a perturbation)"
    if rule.kind == "flip_rate" and split.kind != "perturbation":
        return "flip rates need a perturbation (paired with the reference by id)"
    if rule.kind == "drift" and split.name not in (run.drift or {}):
        return "the run has no drift results for it"
    return None


def expand(policy: Policy, candidate: Run, where: str) -> list[Check]:
    """Checks in policy order, splits in run order; a name or pattern that selects
    nothing is an error naming the rule (a rule that checks nothing would pass silently)."""
    names = policy.rule_names()
    checks = []
    for index, rule in enumerate(policy.rules):
        field = f"{where}: rules.{index}"
        if rule.kind == "drift" and not candidate.drift:
            raise ShiftbenchError(f"{field}: the candidate run has no drift results; add "
                                  "detectors to the suite")
        chosen: list[str] = []
        for pattern in rule.patterns:
            if not any(c in pattern for c in "*?["):
                if pattern not in candidate.splits:
                    raise ShiftbenchError(f"{field}.split: no split {pattern!r} in the runs "
                                          f"(splits: {', '.join(candidate.splits)})")
                why = _eligible(rule, candidate.splits[pattern], candidate)
                if why:
                    raise ShiftbenchError(f"{field}.split: {pattern!r}: {why}")
                matched = [pattern]
            else:
                matched = [n for n, s in candidate.splits.items()
                           if fnmatch.fnmatchcase(n, pattern) and not _eligible(rule, s, candidate)]
                if not matched:
                    raise ShiftbenchError(f"{field}.split: {pattern!r} matches no split a "
                                          f"{rule.kind} rule can check (splits: "
                                          f"{', '.join(candidate.splits)})")
            chosen += [n for n in matched if n not in chosen]
        family = rule.severity if rule.decide == "test" else None
        checks += [Check(index, names[index], rule, name, family)
                   for name in candidate.splits if name in chosen]
    return checks


# --- one check -> evidence


@dataclass(frozen=True)
class _Setup:
    """What a check compares: the quantity, its unit, the threshold and when it holds."""

    quantity: str
    unit: str
    op: str | None
    threshold: float | None


def _setup(check: Check) -> _Setup:
    rule, kind = check.rule, check.rule.kind
    metric = rule.metric_name
    higher = HIGHER_IS_BETTER.get(metric, True)
    pct = metric == "accuracy"
    if kind == "absolute":
        op, t = (">=", rule.min) if rule.min is not None else ("<=", rule.max)
        return _Setup(f"{metric}", "%" if pct else "num", op, t)
    if kind in ("robustness", "non_inferiority"):
        allowed = rule.max_drop if kind == "robustness" else rule.margin
        what = "shifted − reference" if kind == "robustness" else "candidate − baseline"
        op, t = (">=", -allowed if allowed else 0.0) if higher else ("<=", allowed)
        return _Setup(f"Δ {metric} ({what})", "pp" if pct else "Δnum", op, t)
    if kind == "flip_rate":
        return _Setup("flip rate", "%", "<=", rule.max)
    return _Setup(f"{rule.detector} statistic", "stat", None, None)


def _uses_mcnemar(rule: RuleBase, threshold: float) -> bool:
    if rule.method == "mcnemar":
        return True
    return rule.method == "auto" and rule.metric == "accuracy" and threshold == 0


def _evidence(check: Check, setup: _Setup, baseline: Run, candidate: Run, policy: Policy,
              a: float | None) -> stats.Evidence:
    rule, kind = check.rule, check.rule.kind
    alpha, power, n_boot = policy.alpha, policy.power, policy.n_boot
    rng = np.random.default_rng(example_seed(policy.seed, f"gate:{check.index}", check.split))
    split = candidate.splits[check.split]
    if kind == "drift":
        return _drift_evidence(check, candidate)
    if kind == "flip_rate":
        ref = candidate.splits["reference"]
        flips = ref.pred[ref.rows(split.ids)] != split.pred
        return stats.binomial_test(int(flips.sum()), len(flips), setup.threshold, "<=", alpha,
                                   a, power)
    if kind == "absolute" and rule.metric == "accuracy":
        return stats.binomial_test(int(split.correct.sum()), len(split.ids), setup.threshold,
                                   setup.op, alpha, a, power)
    if kind == "absolute" and rule.metric == "ece":
        return stats.ece_test(M.calibration_gap(split.proba, split.y), setup.threshold,
                              setup.op, alpha, a, power)
    if kind == "absolute":
        stat = metric_stat(rule.metric, split)
        n = len(split.ids)
        return stats.bootstrap_test(point_value(stat, n), one_sample_draws(stat, n, rng, n_boot),
                                    setup.threshold, setup.op, alpha, a, power,
                                    "percentile bootstrap", n)
    if kind == "robustness":
        before = candidate.splits["reference"]
        if split.kind != "perturbation":
            return _unpaired(rule, before, split, setup, policy, rng, a)
        return _paired(rule, before, split, setup, policy, rng, a)
    return _paired(rule, baseline.splits[check.split], split, setup, policy, rng, a)


def _paired(rule: RuleBase, before: SplitData, after: SplitData, setup: _Setup, policy: Policy,
            rng: np.random.Generator, a: float | None) -> stats.Evidence:
    """after - before on the same examples: every row of ``after``, ``before`` by id."""
    before_rows, n = before.rows(after.ids), len(after.ids)
    alpha, power, n_boot = policy.alpha, policy.power, policy.n_boot
    if rule.metric == "accuracy":
        right_before = before.correct[before_rows]
        right_after = after.correct
        worse = int(np.sum(right_before & ~right_after))
        better = int(np.sum(~right_before & right_after))
        if _uses_mcnemar(rule, setup.threshold):
            return stats.mcnemar_test(worse, better, n, alpha, a, power)
        return stats.score_test(worse, better, n, setup.threshold, setup.op, alpha, a, power)
    if rule.metric == "ece":
        return stats.ece_change_test(
            M.calibration_gap(before.proba[before_rows], before.y[before_rows]),
            M.calibration_gap(after.proba, after.y), setup.threshold, alpha, a, power,
            paired=True)
    stat_before = metric_stat(rule.metric, before, before_rows)
    stat_after = metric_stat(rule.metric, after)
    value = point_value(stat_after, n) - point_value(stat_before, n)
    draws = paired_draws(stat_before, stat_after, n, rng, n_boot)
    return stats.bootstrap_test(value, draws, setup.threshold, setup.op, alpha, a, power,
                                "paired bootstrap", n)


def _unpaired(rule: RuleBase, before: SplitData, after: SplitData, setup: _Setup,
              policy: Policy, rng: np.random.Generator, a: float | None) -> stats.Evidence:
    """after - before on different examples (an out-of-domain split vs the reference)."""
    if rule.metric == "ece":
        return stats.ece_change_test(M.calibration_gap(before.proba, before.y),
                                     M.calibration_gap(after.proba, after.y), setup.threshold,
                                     policy.alpha, a, policy.power, paired=False)
    n_b, n_a = len(before.ids), len(after.ids)
    stat_before, stat_after = metric_stat(rule.metric, before), metric_stat(rule.metric, after)
    value = point_value(stat_after, n_a) - point_value(stat_before, n_b)
    if rule.metric == "accuracy":  # the resampled count of right answers is Binomial
        draws = (rng.binomial(n_a, after.correct.mean(), policy.n_boot) / n_a
                 - rng.binomial(n_b, before.correct.mean(), policy.n_boot) / n_b)
    else:
        draws = unpaired_draws(stat_before, n_b, stat_after, n_a, rng, policy.n_boot)
    return stats.bootstrap_test(value, draws, setup.threshold, setup.op, policy.alpha, a,
                                policy.power, "unpaired bootstrap", n_a)


def _drift_evidence(check: Check, candidate: Run) -> stats.Evidence:
    (result,) = [r for r in candidate.drift[check.split] if r["method"] == check.rule.detector]
    return stats.Evidence(float(result["statistic"]), None, None, result["p_value"],
                          f"{check.rule.detector} drift test", int(result["n_sample"]),
                          flagged=bool(result["drifted"]))


def check_detectors(checks: list[Check], candidate: Run, where: str) -> None:
    """Drift rules name a detector the candidate ran, and one with p-values to test."""
    for check in checks:
        if check.rule.kind != "drift":
            continue
        field = f"{where}: rules.{check.index}"
        methods = [r["method"] for r in candidate.drift[check.split]]
        if methods.count(check.rule.detector) != 1:
            found = "runs it more than once" if check.rule.detector in methods else "has none"
            raise ShiftbenchError(f"{field}.detector: the candidate run {found} named "
                                  f"{check.rule.detector!r} (detectors: "
                                  f"{', '.join(methods) or 'none'})")
        result = candidate.drift[check.split][methods.index(check.rule.detector)]
        if result["p_value"] is None and check.rule.decide == "test":
            raise ShiftbenchError(f"{field}.decide: detector {check.rule.detector!r} gives no "
                                  "p-value to test; use decide: point (its own decision)")


# --- decisions


def fmt(value: float | None, unit: str, bare: bool = False) -> str:
    """A number as the run summary prints it: % and pp with one decimal, others with three;
    ``bare`` drops the unit (for interval bounds)."""
    if value is None:
        return "–"
    if unit in ("%", "pp"):
        number = f"{value * 100:{'+' if unit == 'pp' else ''}.1f}"
        return number if bare else f"{number}{'%' if unit == '%' else ' pp'}"
    if unit == "Δnum":
        return f"{value:+.3f}"
    return f"{value:.3f}" if unit == "num" else f"{value:.4g}"


def fmt_p(p: float | None) -> str:
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def fmt_size(value: float | None, unit: str) -> str:
    """A distance (margin, drop, detectable violation): points for proportions."""
    if value is None:
        return "–"
    return f"{value * 100:.1f} pp" if unit in ("%", "pp") else f"{value:.3g}"


def violation(check: Check, setup: _Setup) -> str:
    """What a failure of this check means, in words."""
    rule, split = check.rule, check.split
    metric = rule.metric_name
    if rule.kind == "absolute":
        side = "below the floor" if setup.op == ">=" else "above the ceiling"
        return f"{metric} on {split} is {side} {fmt(setup.threshold, setup.unit)}"
    if rule.kind == "robustness":
        return (f"{metric} worsens by more than {fmt_size(rule.max_drop, setup.unit)} from "
                f"reference to {split}")
    if rule.kind == "non_inferiority":
        by = f" by more than {fmt_size(rule.margin, setup.unit)}" if rule.margin else ""
        return f"the candidate's {metric} on {split} is worse than the baseline's{by}"
    if rule.kind == "flip_rate":
        return f"more than {fmt(rule.max, '%')} of predictions flip under {split}"
    return f"{rule.detector} detects drift on {split}"


def _decide(check: Check, setup: _Setup, ev: stats.Evidence, p_adj: float | None,
            family_size: int, policy: Policy) -> tuple[bool, str]:
    """(violated, reason) for one check."""
    claim = violation(check, setup)
    if check.rule.decide == "point":
        if setup.op is None:  # drift: the detector's own decision at its alpha
            crossed = bool(ev.flagged)
        else:
            crossed = not stats.holds(ev.value, setup.threshold, setup.op)
        return crossed, (f"{claim} (point estimate, no test)" if crossed
                         else "holds (point estimate)")
    alpha = policy.alpha
    if p_adj <= alpha:
        return True, f"{claim}: significant (Holm p {fmt_p(p_adj)} ≤ α {alpha:g})"
    crossed = setup.op is not None and not stats.holds(ev.value, setup.threshold, setup.op)
    if ev.p_value <= alpha:
        return False, (f"not significant after Holm over {family_size} checks "
                       f"(p {fmt_p(ev.p_value)}, Holm p {fmt_p(p_adj)} > α {alpha:g})")
    if crossed:
        return False, f"estimate crosses the threshold, within noise (p {fmt_p(ev.p_value)})"
    return False, "holds"


def evaluate_gate(policy: Policy, baseline: Run, candidate: Run,
                  policy_path: str | Path = "policy") -> GateResult:
    """Every check's verdict, Holm-adjusted per family, and the gate's status."""
    check_comparable(baseline, candidate)
    checks = expand(policy, candidate, str(policy_path))
    check_detectors(checks, candidate, str(policy_path))
    sizes = {fam: sum(c.family == fam for c in checks) for fam in ("fail", "warn")}
    largest = max(sizes.values())
    if largest and 1 / (1 + policy.n_boot) > policy.alpha / largest:
        raise ShiftbenchError(
            f"{policy_path}: n_boot: {policy.n_boot} resamples cannot give a p-value below "
            f"alpha / {largest} checks; use at least {math.ceil(largest / policy.alpha)}")
    setups = [_setup(c) for c in checks]
    evidence = []
    for check, setup in zip(checks, setups, strict=True):
        a = policy.alpha / sizes[check.family] if check.family else None
        evidence.append(_evidence(check, setup, baseline, candidate, policy, a))
    adjusted: dict[int, float] = {}
    for fam in ("fail", "warn"):
        members = [i for i, c in enumerate(checks) if c.family == fam]
        adjusted.update(zip(members, M.holm([evidence[i].p_value for i in members]),
                            strict=True))
    verdicts = []
    for i, (check, setup, ev) in enumerate(zip(checks, setups, evidence, strict=True)):
        size = sizes.get(check.family, 0)
        violated, reason = _decide(check, setup, ev, adjusted.get(i), size, policy)
        status = ("fail" if check.rule.severity == "fail" else "warn") if violated else "pass"
        rule = check.rule
        verdicts.append(Verdict(
            check.name, check.index, rule.kind, check.split, rule.metric_name, rule.severity,
            rule.decide, setup.quantity, setup.unit, ev.value, ev.low, ev.high,
            1 - 2 * policy.alpha, setup.op, setup.threshold, ev.p_value, adjusted.get(i), size,
            ev.method, ev.n, ev.detectable, status, reason))
    status = "fail" if any(v.status == "fail" for v in verdicts) else "pass"
    return GateResult(status, str(policy_path), policy.alpha, policy.power,
                      {"name": candidate.suite_name, "hash": candidate.suite_hash},
                      _describe(baseline), _describe(candidate), verdicts)


def _describe(run: Run) -> dict[str, Any]:
    return {"run": run.label, "run_id": run.run_id, "model": dict(run.model),
            "warnings": run.warnings()}
