"""The built-in gate rule kinds, each with its own eligibility, set-up, test and wording.

``absolute``: the candidate's metric on a split against a bound; ``robustness``: the
metric's change from the reference to a shifted split; ``non_inferiority``: the
candidate's metric against the baseline's on the same examples; ``flip_rate``:
predictions that change under a perturbation; ``drift``: a suite detector's decision.

How a metric is tested follows its family in the metric table (:mod:`shiftbench.metrics`):
a proportion exactly (binomial against a bound; McNemar or Tango's score test for paired
changes), the ECE with worst-case bias bounds, any other resampled metric by bootstrap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from shiftbench.config import MetricName
from shiftbench.errors import ShiftbenchError
from shiftbench.gate import stats
from shiftbench.gate.policy import Compared, RuleBase, Setup, Trial
from shiftbench.gate.resample import one_sample_draws, point_value
from shiftbench.metrics import (
    ExpectedCalibrationError,
    Metric,
    Proportion,
    Resampled,
    metric_named,
    paired_draws,
    unpaired_draws,
)
from shiftbench.report.numbers import CHANGE, distance, number

if TYPE_CHECKING:
    from shiftbench.evaluate import ScoredSplit
    from shiftbench.gate.runs import Run


# --- rules about one metric of the metric table


def _bounds(info: ValidationInfo) -> tuple[str, float, float] | None:
    """The rule's metric and the values it can take, or None when the metric itself is
    invalid (that error is reported instead)."""
    name = info.data.get("metric")
    return None if name is None else (name, *metric_named(name).bounds)


def _inside(bound: float, info: ValidationInfo) -> float:
    """A bound at or past an end of the metric's range always or never holds."""
    found = _bounds(info)
    if found and not found[1] < bound < found[2]:
        name, low, high = found
        raise ValueError(f"a bound on {name} lies strictly between {low:g} and {high:g}")
    return bound


def _below_range(allowed: float, info: ValidationInfo) -> float:
    """A metric changes by at most its whole range, so allowing that much (or more: a
    margin of 2 on accuracy) makes a rule that always holds."""
    found = _bounds(info)
    if found and not allowed < found[2] - found[1]:
        name, low, high = found
        raise ValueError(f"{info.field_name} on {name} must be below {high - low:g}, the whole "
                         f"range of {name} ({low:g} to {high:g}): no change is larger, so the "
                         "rule could never fail")
    return allowed


Bound = Annotated[float, AfterValidator(_inside)]
Allowance = Annotated[float, Field(ge=0), AfterValidator(_below_range)]


class MetricRule(RuleBase):
    """A rule about one metric of the metric table (``accuracy`` by default), of the runs'
    task (a generation run's metrics: ROUGE, BLEU, chrF, exact match)."""

    metric: MetricName = "accuracy"

    @field_validator("metric")
    @classmethod
    def _testable(cls, name: str) -> str:
        if not isinstance(metric_named(name), Resampled | ExpectedCalibrationError):
            raise ValueError(f"the gate cannot test {name}: it is not a Resampled metric (no "
                             "statistic of resampled rows to bootstrap)")
        return name

    @property
    def metric_name(self) -> str:
        return self.metric

    def check_run(self, candidate: Run, where: str) -> None:
        task = self.table_row.task
        if task != candidate.task:
            raise ShiftbenchError(f"{where}.metric: {self.metric} is a {task} metric; the runs "
                                  f"are of a {candidate.task} suite")

    @property
    def table_row(self) -> Metric:
        return metric_named(self.metric)


def _level_test(metric: Metric, split: ScoredSplit, trial: Trial) -> stats.Evidence:
    """The metric on one split against the set-up's threshold."""
    s = trial.setup
    if isinstance(metric, Proportion):
        return stats.binomial_test(int(metric.outcome(split.proba, split.y).sum()),
                                   len(split.ids), s.threshold, s.op, trial.alpha, trial.a,
                                   trial.power)
    if isinstance(metric, ExpectedCalibrationError):
        return stats.ece_test(metric.gap(split.proba, split.y), s.threshold, s.op, trial.alpha,
                              trial.a, trial.power)
    stat, n = metric.stat(split.proba, split.y), len(split.ids)
    return stats.bootstrap_test(point_value(stat, n), one_sample_draws(stat, n, trial.rng,
                                                                       trial.n_boot),
                                s.threshold, s.op, trial.alpha, trial.a, trial.power,
                                "percentile bootstrap", n)


def paired_test(metric: Metric, method: str, before: ScoredSplit, after: ScoredSplit,
                trial: Trial) -> stats.Evidence:
    """after - before on the same examples: every row of ``after``, ``before`` by id."""
    s = trial.setup
    rows, n = before.rows(after.ids), len(after.ids)
    proba_before, y_before = before.proba[rows], before.y[rows]
    if isinstance(metric, Proportion):
        good_before = metric.outcome(proba_before, y_before)
        good_after = metric.outcome(after.proba, after.y)
        worse = int(np.sum(good_before & ~good_after))
        better = int(np.sum(~good_before & good_after))
        if method == "mcnemar" or (method == "auto" and s.threshold == 0):
            return stats.mcnemar_test(worse, better, n, trial.alpha, trial.a, trial.power)
        return stats.score_test(worse, better, n, s.threshold, s.op, trial.alpha, trial.a,
                                trial.power)
    if isinstance(metric, ExpectedCalibrationError):
        return stats.ece_change_test(metric.gap(proba_before, y_before),
                                     metric.gap(after.proba, after.y), s.threshold,
                                     trial.alpha, trial.a, trial.power, paired=True)
    stat_before, stat_after = metric.stat(proba_before, y_before), metric.stat(after.proba,
                                                                               after.y)
    value = point_value(stat_after, n) - point_value(stat_before, n)
    draws = paired_draws(stat_before, stat_after, n, trial.rng, trial.n_boot)
    return stats.bootstrap_test(value, draws, s.threshold, s.op, trial.alpha, trial.a,
                                trial.power, "paired bootstrap", n)


def _unpaired_test(metric: Metric, before: ScoredSplit, after: ScoredSplit,
                   trial: Trial) -> stats.Evidence:
    """after - before on different examples (an out-of-domain split vs the reference)."""
    s = trial.setup
    if isinstance(metric, ExpectedCalibrationError):
        return stats.ece_change_test(metric.gap(before.proba, before.y),
                                     metric.gap(after.proba, after.y), s.threshold,
                                     trial.alpha, trial.a, trial.power, paired=False)
    n_b, n_a = len(before.ids), len(after.ids)
    stat_before, stat_after = metric.stat(before.proba, before.y), metric.stat(after.proba,
                                                                               after.y)
    value = point_value(stat_after, n_a) - point_value(stat_before, n_b)
    rng, n_boot = trial.rng, trial.n_boot
    if isinstance(metric, Proportion):  # the resampled count of good outcomes is Binomial
        draws = (rng.binomial(n_a, metric.outcome(after.proba, after.y).mean(), n_boot) / n_a
                 - rng.binomial(n_b, metric.outcome(before.proba, before.y).mean(), n_boot)
                 / n_b)
    else:
        draws = unpaired_draws(stat_before, n_b, stat_after, n_a, rng, n_boot)
    return stats.bootstrap_test(value, draws, s.threshold, s.op, trial.alpha, trial.a,
                                trial.power, "unpaired bootstrap", n_a)


def _shifted(candidate: Run, split: str) -> Compared:
    """The candidate's reference against its shifted split: paired by id for a
    perturbation, the split's own errors for another domain."""
    after = candidate.splits[split]
    if after.kind != "perturbation":
        return Compared(None, after, ("", split))
    return Compared(candidate.splits["reference"], after, ("reference", split))


class Absolute(MetricRule):
    """The candidate's metric on a split is at least ``min`` (or at most ``max``)."""

    kind: Literal["absolute"]
    split: str | list[str] = "reference"
    min: Bound | None = None
    max: Bound | None = None

    @model_validator(mode="after")
    def _one_bound(self) -> Absolute:
        if (self.min is None) == (self.max is None):
            raise ValueError("an absolute rule takes exactly one of min, max")
        return self

    def setup(self, split: str, candidate: Run, where: str) -> Setup:
        op, threshold = (">=", self.min) if self.min is not None else ("<=", self.max)
        return Setup(self.metric, self.table_row.unit, op, threshold)

    def evidence(self, trial: Trial) -> stats.Evidence:
        return _level_test(self.table_row, trial.candidate.splits[trial.split], trial)

    def examples(self, baseline: Run, candidate: Run, split: str) -> Compared:
        return Compared(None, candidate.splits[split], ("", "candidate"))

    def violation(self, split: str, setup: Setup) -> str:
        side = "below the floor" if setup.op == ">=" else "above the ceiling"
        return f"{self.metric} on {split} is {side} {number(setup.threshold, setup.unit)}"


class MetricChange(MetricRule):
    """A metric's change (after - before) may worsen it by at most an allowance; the
    change of a proportion is tested with McNemar when ``method`` says so (or, with
    ``auto``, when nothing may be lost), else Tango's score test."""

    method: Literal["auto", "mcnemar", "bootstrap"] = "auto"
    allowance: ClassVar[str]  # the field that holds the allowed worsening
    compared: ClassVar[str]  # what the change subtracts, e.g. "shifted − reference"

    @property
    def allowed(self) -> float:
        return getattr(self, self.allowance)

    @model_validator(mode="after")
    def _mcnemar_fits(self) -> MetricChange:
        if self.method == "mcnemar" and (not isinstance(self.table_row, Proportion)
                                         or self.allowed != 0):
            raise ValueError(f"method mcnemar tests accuracy with {self.allowance} 0; use "
                             "bootstrap")
        return self

    def setup(self, split: str, candidate: Run, where: str) -> Setup:
        metric, allowed = self.table_row, self.allowed
        op, threshold = ((">=", -allowed if allowed else 0.0) if metric.higher_is_better
                         else ("<=", allowed))
        return Setup(f"Δ {self.metric} ({self.compared})", CHANGE[metric.unit], op, threshold)


class Robustness(MetricChange):
    """The candidate's metric worsens by at most ``max_drop`` from the reference to each
    shifted split (paired by id for perturbations, unpaired for other domains)."""

    kind: Literal["robustness"]
    max_drop: Allowance
    allowance = "max_drop"
    compared = "shifted − reference"

    def ineligible(self, split: ScoredSplit, candidate: Run) -> str | None:
        if split.kind == "reference":
            return "the reference has no drop from itself"
        if self.method == "mcnemar" and split.kind != "perturbation":
            return "McNemar needs examples paired with the reference (a perturbation)"
        return None

    def evidence(self, trial: Trial) -> stats.Evidence:
        before, after = trial.candidate.splits["reference"], trial.candidate.splits[trial.split]
        if after.kind != "perturbation":
            return _unpaired_test(self.table_row, before, after, trial)
        return paired_test(self.table_row, self.method, before, after, trial)

    def examples(self, baseline: Run, candidate: Run, split: str) -> Compared:
        return _shifted(candidate, split)

    def violation(self, split: str, setup: Setup) -> str:
        return (f"{self.metric} worsens by more than {distance(self.max_drop, setup.unit)} "
                f"from reference to {split}")


class NonInferiority(MetricChange):
    """The candidate's metric on a split is worse than the baseline's by at most ``margin``
    (paired by example id)."""

    kind: Literal["non_inferiority"]
    margin: Allowance = 0.0
    allowance = "margin"
    compared = "candidate − baseline"

    def evidence(self, trial: Trial) -> stats.Evidence:
        return paired_test(self.table_row, self.method, trial.baseline.splits[trial.split],
                           trial.candidate.splits[trial.split], trial)

    def examples(self, baseline: Run, candidate: Run, split: str) -> Compared:
        return Compared(baseline.splits[split], candidate.splits[split],
                        ("baseline", "candidate"))

    def violation(self, split: str, setup: Setup) -> str:
        by = f" by more than {distance(self.margin, setup.unit)}" if self.margin else ""
        return f"the candidate's {self.metric} on {split} is worse than the baseline's{by}"


# --- rules about predictions and drift


class FlipRate(RuleBase):
    """At most ``max`` of the candidate's predictions change under a perturbation."""

    kind: Literal["flip_rate"]
    max: float = Field(gt=0, lt=1)

    def ineligible(self, split: ScoredSplit, candidate: Run) -> str | None:
        if split.generated:
            return "flip rates need class predictions; a generation run has none"
        if split.kind != "perturbation":
            return "flip rates need a perturbation (paired with the reference by id)"
        return None

    def setup(self, split: str, candidate: Run, where: str) -> Setup:
        return Setup("flip rate", "%", "<=", self.max)

    def evidence(self, trial: Trial) -> stats.Evidence:
        ref, split = trial.candidate.splits["reference"], trial.candidate.splits[trial.split]
        flips = ref.pred[ref.rows(split.ids)] != split.pred
        return stats.binomial_test(int(flips.sum()), len(flips), trial.setup.threshold, "<=",
                                   trial.alpha, trial.a, trial.power)

    def examples(self, baseline: Run, candidate: Run, split: str) -> Compared:
        return _shifted(candidate, split)

    def violation(self, split: str, setup: Setup) -> str:
        return f"more than {number(self.max, '%')} of predictions flip under {split}"


def _detector_names(result: dict[str, Any]) -> str:
    """A drift result's detector as a rule may name it: its name in the suite and, where
    that differs, the method its results carry ('evidently (evidently:mmd)')."""
    name, method = result.get("detector"), result["method"]
    return method if name in (None, method) else f"{name} ({method})"


class Drift(RuleBase):
    """A drift detector of the suite must not flag the split (e.g. shifts the model is
    meant to be invariant to); needs a candidate run with drift results.

    ``detector`` is the detector's name in the suite (``mmd``, ``evidently``) or the
    method its results name (``evidently:mmd``, which tells two detectors of one kind
    apart); runs recorded before results carried the suite name match by method only.
    """

    kind: Literal["drift"]
    detector: str

    @property
    def auto_name(self) -> str:
        return f"drift {self.detector}"

    def check_run(self, candidate: Run, where: str) -> None:
        if not candidate.drift:
            raise ShiftbenchError(f"{where}: the candidate run has no drift results; add "
                                  "detectors to the suite")

    def ineligible(self, split: ScoredSplit, candidate: Run) -> str | None:
        if split.name not in (candidate.drift or {}):
            return "the run has no drift results for it"
        return None

    def _results(self, candidate: Run, split: str) -> list[dict[str, Any]]:
        return [r for r in candidate.drift[split]
                if self.detector in (r.get("detector"), r["method"])]

    def setup(self, split: str, candidate: Run, where: str) -> Setup:
        """Checks that the candidate ran the detector once, with p-values to test."""
        results = self._results(candidate, split)
        if len(results) != 1:
            found = "runs it more than once" if results else "has none"
            known = ", ".join(map(_detector_names, candidate.drift[split])) or "none"
            raise ShiftbenchError(f"{where}.detector: the candidate run {found} named "
                                  f"{self.detector!r} (detectors: {known})")
        if results[0]["p_value"] is None and self.decide == "test":
            raise ShiftbenchError(f"{where}.decide: detector {self.detector!r} gives no "
                                  "p-value to test; use decide: point (its own decision)")
        return Setup(f"{self.detector} statistic", "stat", None, None)

    def evidence(self, trial: Trial) -> stats.Evidence:
        (result,) = self._results(trial.candidate, trial.split)
        return stats.Evidence(float(result["statistic"]), None, None, result["p_value"],
                              f"{self.detector} drift test", int(result["n_sample"]),
                              flagged=bool(result["drifted"]))

    def violation(self, split: str, setup: Setup) -> str:
        return f"{self.detector} detects drift on {split}"
