"""Policy rules -> one check per (rule, split) -> verdicts with statistics.

The engine knows a rule only through its kind's methods (:class:`RuleBase`): which
splits it checks, its set-up, its evidence and how it words a violation. Each check
tests H0 "the rule holds" (see :mod:`shiftbench.gate.stats`). Test-decided
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
from shiftbench.gate.policy import Policy, RuleBase, Setup, Trial
from shiftbench.gate.runs import Run, check_comparable
from shiftbench.report.numbers import MISSING
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


def expand(policy: Policy, candidate: Run, where: str) -> list[Check]:
    """Checks in policy order, splits in run order; a name or pattern that selects
    nothing is an error naming the rule (a rule that checks nothing would pass silently)."""
    names = policy.rule_names()
    checks = []
    for index, rule in enumerate(policy.rules):
        field = f"{where}: rules.{index}"
        rule.check_run(candidate, field)
        chosen: list[str] = []
        for pattern in rule.patterns:
            if not any(c in pattern for c in "*?["):
                if pattern not in candidate.splits:
                    raise ShiftbenchError(f"{field}.split: no split {pattern!r} in the runs "
                                          f"(splits: {', '.join(candidate.splits)})")
                why = rule.ineligible(candidate.splits[pattern], candidate)
                if why:
                    raise ShiftbenchError(f"{field}.split: {pattern!r}: {why}")
                matched = [pattern]
            else:
                matched = [n for n, s in candidate.splits.items()
                           if fnmatch.fnmatchcase(n, pattern)
                           and not rule.ineligible(s, candidate)]
                if not matched:
                    raise ShiftbenchError(f"{field}.split: {pattern!r} matches no split a "
                                          f"{rule.kind} rule can check (splits: "
                                          f"{', '.join(candidate.splits)})")
            chosen += [n for n in matched if n not in chosen]
        family = rule.severity if rule.decide == "test" else None
        checks += [Check(index, names[index], rule, name, family)
                   for name in candidate.splits if name in chosen]
    return checks


# --- decisions


def fmt_p(p: float | None) -> str:
    if p is None:
        return MISSING
    return "<0.0001" if p < 1e-4 else f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _decide(check: Check, setup: Setup, ev: stats.Evidence, p_adj: float | None,
            family_size: int, policy: Policy) -> tuple[bool, str]:
    """(violated, reason) for one check."""
    claim = check.rule.violation(check.split, setup)
    if check.rule.decide == "point":
        if setup.op is None:  # no threshold (drift): the evidence's own decision
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
    setups = [c.rule.setup(c.split, candidate, f"{policy_path}: rules.{c.index}")
              for c in checks]
    sizes = {fam: sum(c.family == fam for c in checks) for fam in ("fail", "warn")}
    largest = max(sizes.values())
    if largest and 1 / (1 + policy.n_boot) > policy.alpha / largest:
        raise ShiftbenchError(
            f"{policy_path}: n_boot: {policy.n_boot} resamples cannot give a p-value below "
            f"alpha / {largest} checks; use at least {math.ceil(largest / policy.alpha)}")
    evidence = []
    for check, setup in zip(checks, setups, strict=True):
        rng = np.random.default_rng(example_seed(policy.seed, f"gate:{check.index}",
                                                 check.split))
        a = policy.alpha / sizes[check.family] if check.family else None
        evidence.append(check.rule.evidence(Trial(baseline, candidate, check.split, setup,
                                                  policy.alpha, a, policy.power,
                                                  policy.n_boot, rng)))
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
