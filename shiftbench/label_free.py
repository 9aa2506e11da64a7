"""Does the drift hurt? Label-free estimates of a model's accuracy on current traffic.

Both estimators need the model's class probabilities on a labelled reference and on the
current sample; neither needs current labels.

- ATC, average thresholded confidence (Garg et al., ICLR 2022), with the
  negative-entropy score s(p) = sum_c p_c log p_c (their best variant; ``max`` uses the
  max-softmax probability instead). On the reference, with accuracy a over n rows, the
  threshold t is the midpoint between the k-th and (k+1)-th largest scores,
  k = round(a * n), so exactly k reference rows score >= t (when no scores tie). The
  current accuracy estimate is the share of current rows scoring >= t.
- DoC, difference of confidences (Guillory et al., ICCV 2021): reference accuracy
  minus (mean reference confidence - mean current confidence), confidence being the
  max-softmax probability; clipped to [0, 1].

Intervals: 95% percentile bootstrap that resamples the reference (threshold, accuracy
and mean confidence) and the current sample independently. They cover the sampling
error only: neither estimator is unbiased under every shift (DoC is exact when the
model stays calibrated on the current data; ATC when being correct is decided by the
score crossing one threshold), so a gap between the two is itself a warning, and
``CAVEAT`` goes wherever an estimate is shown. Where the current rows have labels (a
suite's domain splits), :func:`versus_measured` puts the estimates beside the truth.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import LEVEL, N_BOOT, Estimate, percentile_interval, resample_chunks

SCORES = ("entropy", "max")
PROB_FLOOR = 1e-12
CAVEAT = ("ATC/DoC intervals cover sampling error only, not the estimators' own bias: "
          "across Amazon review domains ATC missed the measured accuracy by up to 10 pp and "
          "DoC by up to 13 pp, their intervals covering it in 15 and 6 of 24 cases "
          "(tests/benchmarks/label_free_accuracy.py); check them against labelled data")


@dataclass(frozen=True)
class ATC:
    """An ATC estimate, with the threshold and the score it was fitted on."""

    estimate: Estimate
    threshold: float
    score: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def confidence_scores(proba: np.ndarray, score: str) -> np.ndarray:
    """Per row: negative entropy (``entropy``) or the max probability (``max``)."""
    if score not in SCORES:
        raise ShiftbenchError(f"ATC score {score!r}: use {', '.join(SCORES)}")
    if score == "max":
        return proba.max(axis=1)
    clipped = np.clip(proba, PROB_FLOOR, 1.0)
    return (proba * np.log(clipped)).sum(axis=1)


def atc_threshold(scores: np.ndarray, accuracy: float) -> float:
    """The t with round(accuracy * n) reference scores >= t (midpoint between neighbours)."""
    return float(_thresholds(scores[None, :], np.array([accuracy]))[0])


def _thresholds(scores: np.ndarray, accuracy: np.ndarray) -> np.ndarray:
    """Row-wise :func:`atc_threshold` for a (B, n) matrix of scores."""
    n = scores.shape[1]
    desc = -np.sort(-scores, axis=1)
    k = np.rint(accuracy * n).astype(int)
    rows = np.arange(len(desc))
    above = desc[rows, np.clip(k - 1, 0, n - 1)]
    below = desc[rows, np.clip(k, 0, n - 1)]
    t = (above + below) / 2
    t = np.where(k >= n, desc[:, -1], t)
    return np.where(k <= 0, np.nextafter(desc[:, 0], np.inf), t)


def _check(ref_proba: Any, ref_correct: Any, cur_proba: Any) -> tuple[np.ndarray, ...]:
    ref = np.asarray(ref_proba, dtype=np.float64)
    cur = np.asarray(cur_proba, dtype=np.float64)
    correct = np.asarray(ref_correct, dtype=bool)
    for name, p in (("reference", ref), ("current", cur)):
        if p.ndim != 2 or len(p) == 0:
            raise ShiftbenchError(f"accuracy estimate: {name} probabilities must be a non-empty "
                                  f"(rows x classes) array, got shape {p.shape}")
        if not np.isfinite(p).all():
            raise ShiftbenchError(f"accuracy estimate: {name} probabilities hold NaN or inf")
    if ref.shape[1] != cur.shape[1]:
        raise ShiftbenchError(f"accuracy estimate: {cur.shape[1]} classes in the current "
                              f"probabilities, {ref.shape[1]} in the reference")
    if correct.shape != (len(ref),):
        raise ShiftbenchError(f"accuracy estimate: {correct.shape} correctness flags for "
                              f"{len(ref)} reference rows")
    return ref, correct, cur


def _bootstrap(stat: Callable[[np.ndarray, np.ndarray], np.ndarray], n: int, m: int,
               n_boot: int, seed: int, level: float) -> tuple[float, float]:
    """Percentile interval of ``stat(ref_rows, cur_rows)`` over resampled row indices."""
    rng = np.random.default_rng(seed)
    draws = np.concatenate([stat(rng.integers(0, n, (b, n)), rng.integers(0, m, (b, m)))
                            for b in resample_chunks(n_boot, max(n, m))])
    return percentile_interval(draws, level)


def atc(ref_proba: Any, ref_correct: Any, cur_proba: Any, score: str = "entropy",
        n_boot: int = N_BOOT, seed: int = 0, level: float = LEVEL) -> ATC:
    """ATC estimate of the current accuracy (see the module doc)."""
    ref, correct, cur = _check(ref_proba, ref_correct, cur_proba)
    s_ref, s_cur = confidence_scores(ref, score), confidence_scores(cur, score)
    threshold = atc_threshold(s_ref, correct.mean())

    def stat(ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
        t = _thresholds(s_ref[ri], correct[ri].mean(axis=1))
        return (s_cur[ci] >= t[:, None]).mean(axis=1)

    low, high = _bootstrap(stat, len(ref), len(cur), n_boot, seed, level)
    value = float((s_cur >= threshold).mean())
    return ATC(Estimate(value, low, high, len(cur), "percentile_bootstrap", level, n_boot),
               threshold, score)


def doc(ref_proba: Any, ref_correct: Any, cur_proba: Any, n_boot: int = N_BOOT, seed: int = 0,
        level: float = LEVEL) -> Estimate:
    """DoC estimate of the current accuracy (see the module doc)."""
    ref, correct, cur = _check(ref_proba, ref_correct, cur_proba)
    c_ref, c_cur = ref.max(axis=1), cur.max(axis=1)

    def stat(ri: np.ndarray, ci: np.ndarray) -> np.ndarray:
        return np.clip(correct[ri].mean(axis=1) - c_ref[ri].mean(axis=1)
                       + c_cur[ci].mean(axis=1), 0.0, 1.0)

    low, high = _bootstrap(stat, len(ref), len(cur), n_boot, seed, level)
    value = float(np.clip(correct.mean() - c_ref.mean() + c_cur.mean(), 0.0, 1.0))
    return Estimate(value, low, high, len(cur), "percentile_bootstrap", level, n_boot)


def versus_measured(ref_proba: Any, ref_correct: Any, cur_proba: Any, cur_correct: Any,
                    n_boot: int = N_BOOT, seed: int = 0) -> dict[str, Any]:
    """ATC and DoC of a labelled current sample beside its measured accuracy, and how far
    each misses (estimate - measured): how far to trust them on this kind of data."""
    measured = float(np.mean(np.asarray(cur_correct, dtype=bool)))
    atc_est = atc(ref_proba, ref_correct, cur_proba, n_boot=n_boot, seed=seed).estimate
    doc_est = doc(ref_proba, ref_correct, cur_proba, n_boot=n_boot, seed=seed)
    return {"measured": measured, "atc": atc_est.to_dict(), "doc": doc_est.to_dict(),
            "error": {"atc": atc_est.value - measured, "doc": doc_est.value - measured},
            "caveat": CAVEAT}
