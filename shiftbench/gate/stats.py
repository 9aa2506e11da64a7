"""One-sided tests for gate rules and the power each test promises.

Every rule is tested the same way: H0 "the rule holds" against H1 "it is violated", so a
small p-value is evidence of a violation and the error the gate controls is failing a
release that satisfies its policy (a false fail). ``op`` says when a rule holds:
``">="`` when the estimate is at least the threshold, ``"<="`` when at most. Holm's
adjustment over the checks is :func:`shiftbench.metrics.holm`.

Intervals are two-sided at level 1 - 2 * alpha, so each bound is a one-sided
(1 - alpha) bound; every bound is the inversion of its check's test, so a check fails
only when the bound on its side crosses the threshold (McNemar checks show Tango's score
interval beside the exact p-value).

``detectable`` is the violation (distance beyond the threshold) that the rule would
catch with probability ``power`` when tested at level ``a`` (the gate passes
alpha / m, Bonferroni's level, which Holm never undercuts, so the promise is
conservative). ``a = None`` is the point-estimate decision: fail when the estimate
crosses the threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

from shiftbench import metrics as M

_TIE = 1e-12  # bootstrap draws within this of the threshold count as holding the rule


@dataclass(frozen=True)
class Evidence:
    """An estimate, its interval, the one-sided p-value of H0 "the rule holds", and power."""

    value: float
    low: float | None
    high: float | None
    p_value: float | None
    method: str
    n: int
    detectable: float | None = None
    flagged: bool | None = None  # a drift detector's own decision (at its alpha)


def holds(value: float, threshold: float, op: str) -> bool:
    return value >= threshold if op == ">=" else value <= threshold


def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


# --- exact binomial: a proportion against a fixed threshold (accuracy floor, flip rate)


def _binomial_crit(n: int, t: float, a: float | None) -> int:
    """Largest count k that fails a ">=" rule: P(X <= k | n, t) <= a (or k/n < t); -1: none."""
    from scipy.special import bdtr

    if a is None:
        return int(np.ceil(n * t - _TIE)) - 1
    return int(np.sum(bdtr(np.arange(n + 1), n, t) <= a)) - 1  # the cdf grows with k


def binomial_test(k: int, n: int, threshold: float, op: str, alpha: float, a: float | None,
                  power: float) -> Evidence:
    """k successes of n against ``threshold``: exact binomial p, Clopper-Pearson interval."""
    from scipy.special import bdtr, betaincinv

    low = 0.0 if k == 0 else float(betaincinv(k, n - k + 1, alpha))
    high = 1.0 if k == n else float(betaincinv(k + 1, n - k, 1 - alpha))
    # ">=": a violation is a small count; "<=" mirrors it (count failures instead).
    k_low, t_low = (k, threshold) if op == ">=" else (n - k, 1 - threshold)
    p = float(bdtr(k_low, n, t_low))
    crit = _binomial_crit(n, t_low, a)
    detectable = None
    if crit >= 0:
        # P(X <= crit | n, q) = I_{1-q}(n - crit, crit + 1): solve it for power.
        q = 1 - float(betaincinv(n - crit, crit + 1, power)) if crit < n else 1.0
        detectable = max(0.0, t_low - q)
    return Evidence(k / n, low, high, p, "exact binomial", n, detectable)


# --- exact McNemar: paired 0/1 outcomes, H0 "no more worse pairs than better pairs"


def mcnemar_p(worse: int, better: int) -> float:
    """One-sided exact p: P(X >= worse) for X ~ Binomial(worse + better, 1/2)."""
    from scipy.special import bdtrc

    return float(bdtrc(worse - 1, worse + better, 0.5)) if worse + better else 1.0


def _mcnemar_crit(d: np.ndarray, a: float | None) -> np.ndarray:
    """Per discordant count D, the smallest count of worse pairs that fails (D + 1: none)."""
    from scipy.special import bdtrc
    from scipy.stats import binom

    if a is None:
        return d // 2 + 1
    crit = np.asarray(binom.isf(a, d, 0.5), dtype=np.int64) + 1
    crit = np.where(bdtrc(crit - 2, d, 0.5) <= a, crit - 1, crit)
    crit = np.where(bdtrc(crit - 1, d, 0.5) > a, crit + 1, crit)
    return np.minimum(crit, d + 1)


def _mcnemar_power_fn(n: int, discordant: float, a: float | None):
    """delta -> power of the exact one-sided McNemar test (see :func:`mcnemar_power`)."""
    from scipy.special import bdtrc
    from scipy.stats import binom

    d = np.arange(n + 1)
    weight = binom.pmf(d, n, discordant)
    keep = weight > 1e-12 * weight.max()  # the discordant counts that can happen
    d, weight = d[keep], weight[keep]
    crit = _mcnemar_crit(d, a)

    def power(delta: float) -> float:
        share = min(1.0, (discordant + delta) / (2 * discordant))
        return float(np.sum(weight * bdtrc(crit - 1, d, share)))

    return power


def mcnemar_power(n: int, discordant: float, delta: float, a: float | None) -> float:
    """Chance that McNemar's one-sided exact test fails a regression of ``delta``.

    ``discordant`` = P(the two outcomes differ); ``delta`` = P(worse) - P(better). The
    number of discordant pairs is Binomial(n, discordant) and, given it, the worse pairs
    are Binomial(D, (discordant + delta) / (2 discordant)).
    """
    return _mcnemar_power_fn(n, discordant, a)(delta)


def mcnemar_test(worse: int, better: int, n: int, alpha: float, a: float | None,
                 power: float) -> Evidence:
    """Paired difference (better - worse) / n against 0: exact one-sided McNemar p.

    The interval is Tango's score interval; power is computed exactly at the observed
    share of discordant pairs.
    """
    low, high = M.paired_score_interval(worse, better, n, 1 - 2 * alpha)
    share = (worse + better) / n
    detectable = None
    if share > 0:
        from scipy.optimize import brentq

        power_at = _mcnemar_power_fn(n, share, a)
        if power_at(0.0) >= power:  # (only for a power target below the test's level)
            detectable = 0.0
        elif power_at(share) > power:  # power grows with delta; at delta = share all
            # discordant pairs are worse
            detectable = brentq(lambda delta: power_at(delta) - power, 0.0, share, xtol=1e-6)
    return Evidence((better - worse) / n, low, high, mcnemar_p(worse, better),
                    "exact McNemar", n, detectable)


def score_test(worse: int, better: int, n: int, threshold: float, op: str, alpha: float,
               a: float | None, power: float) -> Evidence:
    """Paired difference (better - worse) / n against a nonzero threshold: Tango's score
    test, whose inversion is the score interval shown (it keeps its level when few pairs
    disagree, where a pair bootstrap collapses to a point). ``detectable`` uses the
    normal approximation (z_{1-a} + z_power) * SE at the observed shares."""
    value = (better - worse) / n
    low, high = M.paired_score_interval(worse, better, n, 1 - 2 * alpha)
    z = float(M.paired_score_z(worse, better, n, threshold))
    p = NormalDist().cdf(z if op == ">=" else -z)
    se = np.sqrt(max((worse + better) / n - value**2, 0.0) / n)
    z_a = 0.0 if a is None else _z(1 - a)
    return Evidence(value, low, high, p, "paired score (Tango)", n, (z_a + _z(power)) * se)


# --- ECE against a threshold: bounds that hold whatever the bins' gaps


def ece_test(gap: M.CalibrationGap, threshold: float, op: str, alpha: float, a: float | None,
             power: float) -> Evidence:
    """The debiased ECE against ``threshold`` (see :func:`shiftbench.metrics.calibration_gap`).

    ``"<="`` (H0: ECE <= t): the plug-in exceeds the ECE by at most ``max_bias`` on
    average, so p = P(N(t + max_bias, se^2) >= plug-in); ``">="`` (H0: ECE >= t): the
    plug-in is at least an unbiased signed estimate, so p = P(N(t, se^2) <= plug-in).
    Either way a model that satisfies the rule (for ``"<="`` a perfectly calibrated one
    included) is failed at most alpha of the time, whatever its bins look like and at any
    sample size. The promise covers any gaps: a violation of ``max_bias`` +
    (z_{1-a} + z_power) * se is caught with probability ``power``.
    """
    low, high = gap.bounds(1 - 2 * alpha)
    excess = gap.plug_in - gap.max_bias - threshold if op == "<=" else threshold - gap.plug_in
    p = 1 - NormalDist().cdf(excess / gap.se) if gap.se > 0 else float(excess <= 0)
    z_a = 0.0 if a is None else _z(1 - a)
    detectable = gap.max_bias + (z_a + _z(power)) * gap.se
    return Evidence(gap.debiased, low, high, p, "debiased ECE, worst-case bias bound", gap.n,
                    detectable)


def ece_change_test(before: M.CalibrationGap, after: M.CalibrationGap, threshold: float,
                    alpha: float, a: float | None, power: float, paired: bool) -> Evidence:
    """The change in debiased ECE (after - before) against ``threshold``; H0: the change is
    at most ``threshold`` (ECE is lower-is-better, so the rule allows that much worsening).

    Worst case on both sides, as :func:`ece_test`: after's plug-in minus its largest bias,
    minus before's plug-in (never below the true ECE on average), is on average at most
    the true change, whichever bins carry the miscalibration (a bootstrap of the debiased
    difference false-failed a candidate calibrated better than its baseline, but in fewer
    bins, 9% of the time at alpha 5%). Its spread is at most se_after + se_before on the
    same examples (``paired``), sqrt(se_after^2 + se_before^2) on independent ones.
    """
    sd = after.se + before.se if paired else math.hypot(after.se, before.se)
    z = _z(1 - alpha)
    low = max(-1.0, after.plug_in - after.max_bias - before.plug_in - z * sd)
    high = min(1.0, after.plug_in - before.plug_in + before.max_bias + z * sd)  # ECE's range
    excess = after.plug_in - after.max_bias - before.plug_in - threshold
    p = 1 - NormalDist().cdf(excess / sd) if sd > 0 else float(excess <= 0)
    z_a = 0.0 if a is None else _z(1 - a)
    detectable = after.max_bias + before.max_bias + (z_a + _z(power)) * sd
    return Evidence(after.debiased - before.debiased, low, high, p,
                    "debiased ECE change, worst-case bias bound", after.n, detectable)


# --- bootstrap: any statistic, from its resampled values


def bootstrap_test(value: float, draws: np.ndarray, threshold: float, op: str, alpha: float,
                   a: float | None, power: float, method: str, n: int) -> Evidence:
    """Percentile-bootstrap test: p = (1 + #draws on the holding side) / (1 + B).

    The rule fails at level a exactly when the percentile bound on its side crosses the
    threshold. ``detectable`` uses the normal approximation (z_{1-a} + z_power) * SE.
    """
    side = draws >= threshold - _TIE if op == ">=" else draws <= threshold + _TIE
    p = (1 + int(np.sum(side))) / (1 + draws.size)
    low, high = np.quantile(draws, [alpha, 1 - alpha])
    z_a = 0.0 if a is None else _z(1 - a)
    detectable = (z_a + _z(power)) * float(np.std(draws, ddof=1))
    return Evidence(value, float(low), float(high), p, method, n, detectable)
