"""Metrics with 95% intervals, so no robustness number is reported without its uncertainty.

Inputs are integer class indices (``y_true``, ``y_pred``) and probability matrices
(rows = examples, columns = classes). Conventions, stated once:

- accuracy: Wilson score interval (good at k=0 and k=n, unlike the normal interval).
- macro-F1: mean F1 over the classes present in the labels *or* the predictions of the
  sample at hand (scikit-learn's default), so a class nobody predicts counts as F1 = 0
  and a class absent from both sides does not dilute the mean.
- ECE: top-label expected calibration error, 15 equal-width confidence bins
  (lo, hi] (confidence 0 falls in the first bin), sum over bins of
  |bin| / n * |accuracy(bin) - mean confidence(bin)|. The plug-in value of that formula
  is biased upward on small samples (every bin's noise counts as miscalibration), so the
  reported estimate is Kumar et al.'s (2019) debiased one and its interval bounds the
  plug-in's bias in the worst case (see :func:`calibration_gap`).
- NLL: mean of -log p(true class), probabilities clipped at 1e-12.
- macro-F1, NLL: percentile bootstrap over examples (seeded, vectorised).
- paired accuracy deltas: Tango's score interval (it keeps its coverage when few or no
  pairs disagree, where a pair bootstrap collapses), with McNemar's exact p-value;
  unpaired deltas resample each side on its own.
- several p-values at once: Holm's step-down adjustment (:func:`holm`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, ClassVar

import numpy as np

from shiftbench.errors import ShiftbenchError

LEVEL = 0.95
N_BOOT = 1000
ECE_BINS = 15
PROB_FLOOR = 1e-12
_SQRT_2_OVER_PI = math.sqrt(2 / math.pi)

# Bootstrap index matrices are drawn in chunks of at most this many entries (~16 MB).
_CHUNK = 2_000_000

Seed = int | np.random.Generator


@dataclass(frozen=True)
class Estimate:
    """A point value with its interval; ``n`` is the number of examples (or pairs) used.

    ``n_boot`` is set for bootstrap intervals; ``p_value`` for estimates that come with a
    test (McNemar for paired accuracy deltas).
    """

    value: float
    low: float
    high: float
    n: int
    method: str
    level: float = LEVEL
    n_boot: int | None = None
    p_value: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _z(level: float) -> float:
    if not 0 < level < 1:
        raise ValueError(f"interval level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson(k: int, n: int, level: float = LEVEL) -> Estimate:
    """Wilson score interval for a proportion k/n."""
    if n <= 0:
        raise ShiftbenchError("cannot estimate a proportion from 0 examples")
    if not 0 <= k <= n:
        raise ValueError(f"wilson: k={k} is outside 0..n={n}")
    z2 = _z(level) ** 2
    p = k / n
    denom = 1 + z2 / n
    center = (p + z2 / (2 * n)) / denom
    half = math.sqrt(z2) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / denom
    low = 0.0 if k == 0 else max(0.0, center - half)
    high = 1.0 if k == n else min(1.0, center + half)
    return Estimate(float(p), float(low), float(high), int(n), "wilson", level)


def resample_chunks(n_boot: int, cells_per_resample: int) -> Iterator[int]:
    """How many of ``n_boot`` resamples to draw at a time, so that one chunk of index
    matrices stays near 16 MB whatever the sample size (shared by every bootstrap)."""
    step = max(1, _CHUNK // max(1, cells_per_resample))
    for start in range(0, n_boot, step):
        yield min(step, n_boot - start)


def percentile_interval(draws: np.ndarray, level: float) -> tuple[float, float]:
    """The central ``level`` percentile interval of bootstrap draws."""
    _z(level)
    if draws.size == 0:
        raise ValueError("n_boot must be >= 1")
    low, high = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)


def _binary(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size == 0:
        raise ShiftbenchError(f"{name}: cannot estimate from 0 examples")
    if arr.dtype != bool and not np.isin(arr, (0, 1)).all():
        raise ValueError(f"{name} must hold only 0/1 or booleans")
    return arr.astype(bool)


def _pair(a: Any, b: Any, names: tuple[str, str]) -> tuple[np.ndarray, np.ndarray]:
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.shape != b_arr.shape or a_arr.ndim != 1:
        raise ValueError(f"{names[0]} and {names[1]} must be 1-D and aligned by pair")
    if a_arr.size == 0:
        raise ShiftbenchError(f"{names[0]}/{names[1]}: cannot estimate from 0 examples")
    return a_arr, b_arr


def _labels(y_true: Any, proba: np.ndarray) -> np.ndarray:
    y = np.asarray(y_true, dtype=np.int64)
    if proba.ndim != 2 or y.shape != (proba.shape[0],):
        raise ValueError(f"labels of shape {y.shape} do not match probabilities {proba.shape}")
    if y.size == 0:
        raise ShiftbenchError("cannot compute a metric on 0 examples")
    if y.min() < 0 or y.max() >= proba.shape[1]:
        raise ValueError("labels must be class indices into the probability columns")
    return y


# Statistics as functions of a (b, n) index matrix -> b values. The point estimate is the
# same function at the identity resample: one definition serves both.
Stat = Callable[[np.ndarray], np.ndarray]


def _identity(n: int) -> np.ndarray:
    return np.arange(n)[None, :]


def _n_classes(y_true: np.ndarray, y_pred: np.ndarray) -> int:
    return int(max(y_true.max(), y_pred.max())) + 1


def macro_f1_stat(y_true: np.ndarray, y_pred: np.ndarray) -> Stat:
    k = _n_classes(y_true, y_pred)
    cell = y_true * k + y_pred  # each row's confusion-matrix cell

    def stat(idx: np.ndarray) -> np.ndarray:
        b = idx.shape[0]
        key = cell[idx] + (np.arange(b) * k * k)[:, None]
        confusion = np.bincount(key.ravel(), minlength=b * k * k).reshape(b, k, k)
        tp = np.diagonal(confusion, axis1=1, axis2=2)
        support = confusion.sum(axis=2) + confusion.sum(axis=1)  # true + predicted counts
        present = support > 0
        f1 = np.divide(2 * tp, support, out=np.zeros((b, k)), where=present)
        return f1.sum(axis=1) / present.sum(axis=1)

    return stat


def _folded_normal_mean(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """E|X| for X ~ N(mean, sd^2); |mean| where sd is 0."""
    from scipy.special import erf

    safe = np.where(sd > 0, sd, 1.0)
    folded = (safe * _SQRT_2_OVER_PI * np.exp(-(mean**2) / (2 * safe**2))
              + mean * erf(mean / (safe * math.sqrt(2))))
    return np.where(sd > 0, folded, np.abs(mean))


@dataclass(frozen=True)
class CalibrationGap:
    """One sample's binned ECE: what its estimate, interval and the gate's tests need.

    ``plug_in`` is the textbook formula; ``debiased`` the reported estimate;
    ``max_bias`` the largest amount by which the plug-in can exceed the true ECE on
    average; ``se`` the standard error of the plug-in's linear part (see
    :func:`calibration_gap`).
    """

    plug_in: float
    debiased: float
    max_bias: float
    se: float
    n: int

    def bounds(self, level: float) -> tuple[float, float]:
        """(low, high): each a one-sided (1 + level) / 2 bound on the true ECE, whatever
        the gaps of the bins (conservative where bins are calibrated), within ECE's range
        [0, 1] (on a few rows the normal bound alone passes 1)."""
        z = _z(level)
        return (max(0.0, self.plug_in - self.max_bias - z * self.se),
                min(1.0, self.plug_in + z * self.se))


def calibration_gap(proba: Any, y_true: Any, n_bins: int = ECE_BINS) -> CalibrationGap:
    """The plug-in and debiased ECE with the two numbers that bound the true ECE.

    Given the confidences, bin b's mean gap X_b (correct - confidence) is close to
    N(g_b, s_b^2) with weight w_b = n_b / n, and the ECE is sum w_b |g_b| =
    sum w_b sign(g_b) g_b. That signed sum is estimated without bias by
    sum w_b sign(g_b) X_b <= plug-in, with standard error ``se`` = sqrt(sum w_b^2 s_b^2)
    whatever the signs: so plug-in + z se is an upper bound. E|X_b| - |g_b| is largest at
    g_b = 0, where it is s_b sqrt(2 / pi): so plug-in - ``max_bias`` - z se, with
    ``max_bias`` = sqrt(2 / pi) sum w_b s_b, is a lower bound. The debiased estimate
    (Kumar et al. 2019: per bin 2|X_b| - E|N(X_b, s_b^2)|, the plug-in minus the bias it
    would have were the observed gap the true one; clipped at 0) lies between the two.

    A row's outcome is Bernoulli(q) given its confidence c; its variance q(1 - q) is
    c(1 - c) where the model is calibrated, and the bin's accuracy a gives a(1 - a), an
    estimate of the bin's mean q times (1 - mean q), which bounds the mean of q(1 - q)
    (concavity). s_b uses the larger of the two, so miscalibrated bins are not taken for
    less noisy than they are.
    """
    proba = np.asarray(proba, dtype=float)
    y = _labels(y_true, proba)
    conf = proba.max(axis=1)
    right = (proba.argmax(axis=1) == y).astype(float)
    bins = np.clip(np.ceil(conf * n_bins).astype(np.int64) - 1, 0, n_bins - 1)
    count, gap_sum, spread, correct = (np.bincount(bins, weights=col, minlength=n_bins)
                                       for col in (np.ones_like(conf), right - conf,
                                                   conf * (1 - conf), right))
    size = np.maximum(count, 1.0)
    weight, gap, accuracy = count / len(y), gap_sum / size, correct / size
    sd = np.sqrt(np.maximum(spread / size, accuracy * (1 - accuracy)) / size)
    debiased = np.sum(weight * (2 * np.abs(gap) - _folded_normal_mean(gap, sd)))
    return CalibrationGap(
        plug_in=float(np.sum(weight * np.abs(gap))),
        debiased=float(max(0.0, debiased)),
        max_bias=float(_SQRT_2_OVER_PI * np.sum(weight * sd)),
        se=float(np.sqrt(np.sum((weight * sd) ** 2))),
        n=len(y),
    )


def nll_stat(proba: np.ndarray, y_true: np.ndarray) -> Stat:
    p_true = proba[np.arange(len(y_true)), y_true]
    loss = -np.log(np.clip(p_true, PROB_FLOOR, 1.0))
    return lambda idx: loss[idx].mean(axis=1)


def accuracy(y_true: Any, y_pred: Any) -> float:
    y_true, y_pred = _pair(y_true, y_pred, ("y_true", "y_pred"))
    return float(np.mean(y_true == y_pred))


def macro_f1(y_true: Any, y_pred: Any) -> float:
    y_true, y_pred = _pair(np.asarray(y_true, np.int64), np.asarray(y_pred, np.int64),
                           ("y_true", "y_pred"))
    return float(macro_f1_stat(y_true, y_pred)(_identity(len(y_true)))[0])


def expected_calibration_error(proba: Any, y_true: Any, n_bins: int = ECE_BINS) -> float:
    """The plug-in ECE (the textbook formula, biased upward on small samples)."""
    return calibration_gap(proba, y_true, n_bins).plug_in


def nll(proba: Any, y_true: Any) -> float:
    proba = np.asarray(proba, dtype=float)
    y = _labels(y_true, proba)
    return float(nll_stat(proba, y)(_identity(len(y)))[0])


def _percentile_bootstrap(stat: Stat, n: int, rng: Seed, n_boot: int, level: float,
                          cells: int = 1) -> Estimate:
    """Point value of ``stat`` plus a percentile interval over ``n_boot`` resamples.

    ``cells`` is how many counters ``stat`` keeps per resample; with ``n`` it bounds the
    memory of one chunk of resamples.
    """
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    gen = np.random.default_rng(rng)
    draws = [stat(gen.integers(0, n, size=(b, n))) for b in resample_chunks(n_boot, max(n, cells))]
    low, high = percentile_interval(np.concatenate(draws), level)
    value = float(stat(_identity(n))[0])
    return Estimate(value, low, high, n, "percentile_bootstrap", level, n_boot)


def mean_ci(values: Any, rng: Seed = 0, n_boot: int = N_BOOT, level: float = LEVEL) -> Estimate:
    """The mean of per-example values with a percentile bootstrap interval."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        raise ShiftbenchError("cannot estimate a mean from 0 examples")
    return _percentile_bootstrap(lambda idx: values[idx].mean(axis=1), len(values), rng, n_boot,
                                 level)


def bootstrap_indices(rng: np.random.Generator, n: int, n_boot: int) -> Iterator[np.ndarray]:
    """``n_boot`` resamples of ``n`` row indices, in chunks of bounded memory."""
    for size in resample_chunks(n_boot, n):
        yield rng.integers(0, n, size=(size, n))


def paired_draws(before: Stat, after: Stat, n: int, rng: np.random.Generator,
                 n_boot: int) -> np.ndarray:
    """Bootstrap of after - before, resampling pairs (the same rows on both sides)."""
    return np.concatenate([after(idx) - before(idx) for idx in bootstrap_indices(rng, n, n_boot)])


def unpaired_draws(before: Stat, n_before: int, after: Stat, n_after: int,
                   rng: np.random.Generator, n_boot: int) -> np.ndarray:
    """Bootstrap of after - before, resampling each side on its own (different examples)."""
    return (np.concatenate([after(idx) for idx in bootstrap_indices(rng, n_after, n_boot)])
            - np.concatenate([before(idx) for idx in bootstrap_indices(rng, n_before, n_boot)]))


def bootstrap_delta(before: Stat, n_before: int, after: Stat, n_after: int, paired: bool,
                    rng: Seed = 0, n_boot: int = N_BOOT, level: float = LEVEL) -> Estimate:
    """after - before of a resampled metric: a paired bootstrap over the same rows (both
    statistics over one example order), else each side resampled on its own. The interval
    is widened to its estimate where a non-linear statistic (corpus BLEU) puts the estimate
    outside the draws' percentiles, so it always contains it."""
    gen = np.random.default_rng(rng)
    value = float(after(_identity(n_after))[0] - before(_identity(n_before))[0])
    draws = (paired_draws(before, after, n_after, gen, n_boot) if paired
             else unpaired_draws(before, n_before, after, n_after, gen, n_boot))
    low, high = percentile_interval(draws, level)
    method = "paired_bootstrap" if paired else "unpaired_bootstrap"
    return Estimate(value, min(low, value), max(high, value), n_after, method, level, n_boot)


def accuracy_ci(y_true: Any, y_pred: Any, level: float = LEVEL) -> Estimate:
    """Accuracy of predicted class indices with a Wilson score interval."""
    y_true, y_pred = _pair(y_true, y_pred, ("y_true", "y_pred"))
    return wilson(int(np.sum(y_true == y_pred)), len(y_true), level)


def ece_ci(proba: Any, y_true: Any, level: float = LEVEL, n_bins: int = ECE_BINS) -> Estimate:
    """Debiased ECE with an interval that holds whatever the bins' gaps (no resampling)."""
    gap = calibration_gap(proba, y_true, n_bins)
    low, high = gap.bounds(level)
    return Estimate(gap.debiased, low, high, gap.n, "debiased_ece", level)


def nll_ci(proba: Any, y_true: Any, rng: Seed = 0, n_boot: int = N_BOOT,
           level: float = LEVEL) -> Estimate:
    """Mean negative log-likelihood of the true class, percentile bootstrap."""
    return estimate("nll", proba, y_true, rng, n_boot, level)


# --- the metric table: one row (a Metric class) per metric, read by everything else


class Metric(ABC):
    """A number computed from a model's class probabilities and the true labels, with its
    interval: one row of the metric table.

    Suites, evaluation, the gate and the reports know a metric only through its row
    (looked up by name in :data:`shiftbench.registry.METRICS`, plug-ins included):
    ``label`` heads report columns, ``unit`` says how its numbers print ("%": a
    proportion in percent, "num": a plain number; see :mod:`shiftbench.report.numbers`),
    ``higher_is_better`` which way a change is a regression, and ``bounds`` the values it
    can take (a gate threshold outside them is an error). How the gate tests a metric
    follows from its family: :class:`Proportion` (exact tests), :class:`Resampled`
    (bootstrap of its statistic) or :class:`ExpectedCalibrationError` (bias bounds).

    ``task`` says what the metric scores: a classifier's probabilities against class
    indices (``classification``), or generated texts against target texts, one per example
    (``generation``, :mod:`shiftbench.text_metrics`); a suite takes the metrics of its task.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    higher_is_better: ClassVar[bool]
    task: ClassVar[str] = "classification"
    unit: ClassVar[str] = "num"
    bounds: ClassVar[tuple[float, float]] = (0.0, math.inf)

    @abstractmethod
    def estimate(self, proba: np.ndarray, y: np.ndarray, rng: Seed = 0, n_boot: int = N_BOOT,
                 level: float = LEVEL) -> Estimate:
        """The metric of ``proba`` (rows x classes) against class indices ``y`` (checked to
        match), with its interval at ``level``; a bootstrap draws ``n_boot`` resamples
        from ``rng``."""


class Resampled(Metric):
    """A metric defined by a statistic of resampled rows: its interval is a percentile
    bootstrap, and the gate's bootstrap tests resample the same statistic."""

    @abstractmethod
    def stat(self, proba: np.ndarray, y: np.ndarray) -> Stat:
        """The metric as a function of a (B, n) matrix of row indices -> B values; its
        value is the function at the identity resample."""

    def cells(self, proba: np.ndarray, y: np.ndarray) -> int:
        """How many counters ``stat`` keeps per resample (bounds a chunk's memory)."""
        return 1

    def estimate(self, proba: np.ndarray, y: np.ndarray, rng: Seed = 0, n_boot: int = N_BOOT,
                 level: float = LEVEL) -> Estimate:
        return _percentile_bootstrap(self.stat(proba, y), len(y), rng, n_boot, level,
                                     self.cells(proba, y))


class Proportion(Resampled):
    """The share of examples with a good outcome (one 0/1 per example): a Wilson interval,
    and exact tests in the gate (binomial against a bound, McNemar and Tango's score test
    for paired changes)."""

    higher_is_better = True
    unit = "%"
    bounds = (0.0, 1.0)

    @abstractmethod
    def outcome(self, proba: np.ndarray, y: np.ndarray) -> np.ndarray:
        """True for each example whose outcome is good."""

    def stat(self, proba: np.ndarray, y: np.ndarray) -> Stat:
        good = self.outcome(proba, y).astype(float)
        return lambda idx: good[idx].mean(axis=1)

    def estimate(self, proba: np.ndarray, y: np.ndarray, rng: Seed = 0, n_boot: int = N_BOOT,
                 level: float = LEVEL) -> Estimate:
        return wilson(int(np.sum(self.outcome(proba, y))), len(y), level)


class Accuracy(Proportion):
    """Accuracy (share of correct predictions) with a Wilson score interval."""

    name = "accuracy"
    label = "accuracy"

    def outcome(self, proba: np.ndarray, y: np.ndarray) -> np.ndarray:
        return proba.argmax(axis=1) == y


class MacroF1(Resampled):
    """Macro-F1 over the classes in the labels or the predictions, percentile bootstrap."""

    name = "macro_f1"
    label = "macro-F1"
    higher_is_better = True
    bounds = (0.0, 1.0)

    def stat(self, proba: np.ndarray, y: np.ndarray) -> Stat:
        return macro_f1_stat(y, proba.argmax(axis=1))

    def cells(self, proba: np.ndarray, y: np.ndarray) -> int:
        return _n_classes(y, proba.argmax(axis=1)) ** 2


class ExpectedCalibrationError(Metric):
    """Debiased top-label ECE (15 bins) with an interval that holds whatever the bins'
    gaps (no resampling).

    See :func:`calibration_gap` for the estimate and its bounds."""

    name = "ece"
    label = "ECE"
    higher_is_better = False
    bounds = (0.0, 1.0)

    def gap(self, proba: np.ndarray, y: np.ndarray) -> CalibrationGap:
        """What the estimate, its interval and the gate's bias-bounded tests need."""
        return calibration_gap(proba, y)

    def estimate(self, proba: np.ndarray, y: np.ndarray, rng: Seed = 0, n_boot: int = N_BOOT,
                 level: float = LEVEL) -> Estimate:
        return ece_ci(proba, y, level)


class NegativeLogLikelihood(Resampled):
    """Mean negative log-likelihood of the true class, percentile bootstrap."""

    name = "nll"
    label = "NLL"
    higher_is_better = False

    def stat(self, proba: np.ndarray, y: np.ndarray) -> Stat:
        return nll_stat(proba, y)


def metric_named(name: str) -> Metric:
    """The metric table's row for ``name``, built-in or plug-in; an unknown name is a
    one-line error with a did-you-mean."""
    from shiftbench.registry import METRICS

    return METRICS.load(name)()


def estimate(metric: str, proba: Any, y_true: Any, rng: Seed = 0, n_boot: int = N_BOOT,
             level: float = LEVEL) -> Estimate:
    """One named metric of a model's probabilities, with its interval."""
    proba = np.asarray(proba, dtype=float)
    y = _labels(y_true, proba)
    return metric_named(metric).estimate(proba, y, rng, n_boot, level)


def mcnemar_exact(ref_only: int, shift_only: int) -> float:
    """Two-sided exact McNemar p-value: binomial(discordant, 1/2) on the discordant pairs.

    ``ref_only`` = pairs right on the reference only; ``shift_only`` = right when shifted only.
    """
    from scipy.stats import binom

    discordant = ref_only + shift_only
    if discordant == 0:
        return 1.0
    return float(min(1.0, 2 * binom.cdf(min(ref_only, shift_only), discordant, 0.5)))


def paired_score_z(worse: int, better: int, n: int, delta: Any) -> np.ndarray:
    """Tango's (1998) score statistic for H0: P(better) - P(worse) = ``delta``, from the
    counts of pairs that got worse and better out of ``n`` (vectorised over ``delta``).

    The variance is taken at the restricted maximum-likelihood P(worse) under H0, so the
    statistic stays finite and informative when no pair disagrees.
    """
    d = np.asarray(delta, dtype=float)
    a = 2.0 * n
    b = -(worse + better) + (2.0 * n + worse - better) * d
    c = -worse * d * (1 - d)
    p_worse = (np.sqrt(np.maximum(b * b - 4 * a * c, 0.0)) - b) / (2 * a)
    variance = np.maximum(2 * p_worse + d - d * d, 0.0)
    excess = better - worse - n * d
    with np.errstate(divide="ignore", invalid="ignore"):
        z = excess / np.sqrt(n * variance)
    return np.where(excess == 0, 0.0, np.where(variance > 0, z, np.copysign(np.inf, excess)))


def paired_score_interval(worse: int, better: int, n: int,
                          level: float = LEVEL) -> tuple[float, float]:
    """Tango's score interval for P(better) - P(worse): the deltas whose |z| <= z_level."""
    from scipy.optimize import brentq

    z = _z(level)
    value = (better - worse) / n
    edge = 1 - 1e-12

    def score(d: float) -> float:
        return float(paired_score_z(worse, better, n, d))

    low = -1.0 if score(-edge) <= z else brentq(lambda d: score(d) - z, -edge, value,
                                                  xtol=1e-12)
    high = 1.0 if score(edge) >= -z else brentq(lambda d: score(d) + z, value, edge,
                                                 xtol=1e-12)
    return float(low), float(high)


def paired_delta(correct_ref: Any, correct_shift: Any, level: float = LEVEL) -> Estimate:
    """mean(correct_shift - correct_ref) over pairs: Tango's score interval, McNemar's p."""
    ref, shift = _pair(_binary(correct_ref, "correct_ref"),
                       _binary(correct_shift, "correct_shift"), ("correct_ref", "correct_shift"))
    n = len(ref)
    ref_only = int(np.sum(ref & ~shift))
    shift_only = int(np.sum(~ref & shift))
    low, high = paired_score_interval(ref_only, shift_only, n, level)
    return Estimate((shift_only - ref_only) / n, low, high, n, "tango_score", level,
                    p_value=mcnemar_exact(ref_only, shift_only))


def unpaired_delta(correct_ref: Any, correct_shift: Any, rng: Seed = 0, n_boot: int = N_BOOT,
                   level: float = LEVEL) -> Estimate:
    """mean(correct_shift) - mean(correct_ref) for different examples (natural domain shift).

    Each side is resampled on its own; for 0/1 outcomes the resampled count of correct
    examples is Binomial(n, observed accuracy), which is what is drawn. ``n`` is the
    shifted sample's size.
    """
    ref = _binary(correct_ref, "correct_ref")
    shift = _binary(correct_shift, "correct_shift")
    gen = np.random.default_rng(rng)
    p_ref, p_shift = ref.mean(), shift.mean()
    boot_ref = gen.binomial(len(ref), p_ref, size=n_boot) / len(ref)
    boot_shift = gen.binomial(len(shift), p_shift, size=n_boot) / len(shift)
    low, high = percentile_interval(boot_shift - boot_ref, level)
    return Estimate(float(p_shift - p_ref), low, high, len(shift), "unpaired_bootstrap", level,
                    n_boot)


def flip_rate(pred_ref: Any, pred_shift: Any, level: float = LEVEL) -> Estimate:
    """Share of paired examples whose predicted class changed under the shift (Wilson)."""
    ref, shift = _pair(pred_ref, pred_shift, ("pred_ref", "pred_shift"))
    return wilson(int(np.sum(ref != shift)), len(ref), level)


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: each test is rejected where
    its adjusted value is at most alpha, and the chance of rejecting any true null
    hypothesis among them stays at most alpha."""
    p = np.asarray(p_values, dtype=float)
    order = np.argsort(p, kind="stable")
    steps = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(steps), 1.0)
    return adjusted.tolist()
