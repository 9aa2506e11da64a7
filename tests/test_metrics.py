"""Metrics and intervals: hand-derived values, edge cases, and simulated coverage."""

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binomtest
from sklearn.metrics import f1_score

from shiftbench import metrics as M
from shiftbench.errors import ShiftbenchError

Z = NormalDist().inv_cdf(0.975)


# --- Wilson -----------------------------------------------------------------------------

def test_wilson_bounds_are_where_the_score_test_is_exactly_z():
    # The Wilson interval is {p0 : |p_hat - p0| / sqrt(p0 (1 - p0) / n) <= z}; its ends
    # solve the equality, which is checkable without the closed form.
    k, n = 3, 10
    est = M.wilson(k, n)
    for p0 in (est.low, est.high):
        assert abs(k / n - p0) / math.sqrt(p0 * (1 - p0) / n) == pytest.approx(Z, rel=1e-9)
    assert est.low < k / n < est.high
    assert est.value == 0.3 and est.n == 10 and est.method == "wilson"


def test_wilson_at_k_zero_and_k_n():
    # p_hat = 0: the score equation gives p0 = z^2 / (n + z^2) as the upper end; by
    # symmetry k = n gives n / (n + z^2) as the lower end.
    n = 20
    zero, full = M.wilson(0, n), M.wilson(n, n)
    assert zero.low == 0.0 and zero.value == 0.0
    assert zero.high == pytest.approx(Z**2 / (n + Z**2))
    assert full.high == 1.0 and full.value == 1.0
    assert full.low == pytest.approx(n / (n + Z**2))


def test_wilson_rejects_empty_and_impossible_counts():
    with pytest.raises(ShiftbenchError, match="0 examples"):
        M.wilson(0, 0)
    with pytest.raises(ValueError):
        M.wilson(5, 4)
    with pytest.raises(ValueError):
        M.wilson(1, 4, level=1.5)


def test_wilson_covers_about_95_percent_in_simulation():
    rng = np.random.default_rng(1)
    n = 60
    p = rng.uniform(0.1, 0.9, size=2000)
    ks = rng.binomial(n, p)
    intervals = [M.wilson(int(k), n) for k in ks]
    covered = [e.low <= pi <= e.high for e, pi in zip(intervals, p, strict=True)]
    # 2,000 replicates: the standard error of a 95% share is ~0.005; allow 4 of them.
    assert abs(np.mean(covered) - 0.95) < 0.02


# --- point metrics ----------------------------------------------------------------------

def test_macro_f1_by_hand():
    # class 0: tp 1, 2 true, 1 predicted -> 2/3; class 1: tp 2, 2 true, 3 predicted -> 4/5
    assert M.macro_f1([0, 0, 1, 1], [0, 1, 1, 1]) == pytest.approx((2 / 3 + 4 / 5) / 2)


def test_macro_f1_counts_classes_in_labels_or_predictions_only():
    # Class 2 is never seen: it does not dilute the mean. Class 3 is only predicted: F1 0.
    assert M.macro_f1([0, 1, 0, 1], [0, 1, 0, 1]) == 1.0
    assert M.macro_f1([0, 1, 0, 1], [0, 1, 0, 3]) == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_macro_f1_matches_scikit_learn_on_random_data():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 500)
    pred = np.where(rng.random(500) < 0.6, y, rng.integers(0, 4, 500))
    assert M.macro_f1(y, pred) == pytest.approx(f1_score(y, pred, average="macro"))


def _binary_proba(conf_of_predicted_class0: list[float]) -> np.ndarray:
    c = np.asarray(conf_of_predicted_class0)
    return np.column_stack([c, 1 - c])


def test_ece_is_zero_when_each_bin_is_calibrated():
    # 10 rows at confidence 0.8 with 8 correct, 10 rows at 0.6 with 6 correct.
    proba = _binary_proba([0.8] * 10 + [0.6] * 10)
    y = np.array([0] * 8 + [1] * 2 + [0] * 6 + [1] * 4)
    assert M.expected_calibration_error(proba, y) == pytest.approx(0.0, abs=1e-12)


def test_ece_known_value():
    # Bin at 0.9 with 6/10 correct: gap 0.3 over half the rows; bin at 0.7 is calibrated.
    proba = _binary_proba([0.9] * 10 + [0.7] * 10)
    y = np.array([0] * 6 + [1] * 4 + [0] * 7 + [1] * 3)
    assert M.expected_calibration_error(proba, y) == pytest.approx(0.5 * 0.3)


def test_ece_uses_15_equal_width_bins():
    # 0.55 and 0.58 share the bin (8/15, 9/15]: their gaps (+0.45, -0.58) partly cancel.
    # 0.55 and 0.62 fall in different bins: no cancelling.
    y = np.array([0] * 10 + [1] * 10)  # first ten correct, last ten wrong
    same = M.expected_calibration_error(_binary_proba([0.55] * 10 + [0.58] * 10), y)
    apart = M.expected_calibration_error(_binary_proba([0.55] * 10 + [0.62] * 10), y)
    assert same == pytest.approx(abs(10 * 0.45 - 10 * 0.58) / 20)
    assert apart == pytest.approx((10 * 0.45 + 10 * 0.62) / 20)


def test_nll_by_hand_with_clipping():
    proba = np.array([[0.7, 0.3], [0.2, 0.8], [0.0, 1.0]])
    y = np.array([0, 0, 0])
    expected = (-math.log(0.7) - math.log(0.2) - math.log(1e-12)) / 3
    assert M.nll(proba, y) == pytest.approx(expected)


def test_metrics_reject_empty_input():
    with pytest.raises(ShiftbenchError):
        M.nll(np.zeros((0, 2)), [])
    with pytest.raises(ShiftbenchError):
        M.estimate("macro_f1", np.zeros((0, 2)), [])
    with pytest.raises(ShiftbenchError, match="unknown metric"):
        M.estimate("auc", np.eye(2), [0, 1])


# --- bootstrap intervals ----------------------------------------------------------------

def _noisy_classifier(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(size=(n, 3))
    logits[np.arange(n), y] += 1.5
    proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    return proba, y


@pytest.mark.parametrize("metric", ["macro_f1", "ece", "nll"])
def test_bootstrap_estimates_are_seeded_and_bracket_the_point(metric):
    proba, y = _noisy_classifier(400, 3)
    a = M.estimate(metric, proba, y, rng=5, n_boot=300)
    b = M.estimate(metric, proba, y, rng=5, n_boot=300)
    c = M.estimate(metric, proba, y, rng=6, n_boot=300)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.high and a.n_boot == 300 and a.method == "percentile_bootstrap"
    if metric != "ece":  # ECE's bootstrap is biased upward; its point may sit below
        assert a.low <= a.value <= a.high


def test_bootstrap_interval_narrows_like_one_over_root_n():
    small, y_small = _noisy_classifier(200, 4)
    large, y_large = _noisy_classifier(3200, 4)
    w_small = M.nll_ci(small, y_small, rng=0).high - M.nll_ci(small, y_small, rng=0).low
    w_large = M.nll_ci(large, y_large, rng=0).high - M.nll_ci(large, y_large, rng=0).low
    assert w_small / w_large == pytest.approx(4, rel=0.25)


# --- paired / unpaired comparisons ------------------------------------------------------

def _correlated(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    ref = rng.random(n) < 0.8
    flip = rng.random(n) < 0.06
    shift = np.where(flip, ~ref, ref) & (rng.random(n) > 0.03)
    return ref, shift


def test_paired_delta_value_and_mcnemar():
    ref, shift = _correlated(1000, 7)
    est = M.paired_delta(ref, shift, rng=0)
    assert est.value == pytest.approx(shift.mean() - ref.mean())
    assert est.low <= est.value <= est.high
    b, c = int(np.sum(ref & ~shift)), int(np.sum(~ref & shift))
    assert est.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert est.method == "paired_bootstrap" and est.n == 1000


@pytest.mark.parametrize("b, c", [(0, 0), (5, 5), (0, 7), (3, 12), (40, 25), (1, 0)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert M.mcnemar_exact(b, c) == pytest.approx(expected)


def test_paired_interval_is_narrower_than_unpaired_on_correlated_pairs():
    ref, shift = _correlated(1000, 8)
    paired = M.paired_delta(ref, shift, rng=0)
    unpaired = M.unpaired_delta(ref, shift, rng=0)
    assert paired.value == pytest.approx(unpaired.value)
    assert (paired.high - paired.low) < 0.6 * (unpaired.high - unpaired.low)


def test_paired_delta_agrees_with_resampling_the_pairs_directly():
    # The multinomial shortcut must give the same interval as resampling indices.
    ref, shift = _correlated(500, 9)
    est = M.paired_delta(ref, shift, rng=1, n_boot=4000)
    rng = np.random.default_rng(2)
    d = shift.astype(float) - ref.astype(float)
    idx = rng.integers(0, len(d), size=(4000, len(d)))
    low, high = np.quantile(d[idx].mean(axis=1), [0.025, 0.975])
    assert est.low == pytest.approx(low, abs=0.004)
    assert est.high == pytest.approx(high, abs=0.004)


def test_unpaired_interval_matches_the_normal_approximation():
    rng = np.random.default_rng(10)
    ref, shift = rng.random(800) < 0.85, rng.random(500) < 0.7
    est = M.unpaired_delta(ref, shift, rng=0, n_boot=4000)
    p1, p2 = ref.mean(), shift.mean()
    sd = math.sqrt(p1 * (1 - p1) / 800 + p2 * (1 - p2) / 500)
    assert est.value == pytest.approx(p2 - p1)
    assert est.high - est.low == pytest.approx(2 * Z * sd, rel=0.1)
    assert est.n == 500 and est.p_value is None


def test_comparisons_reject_bad_input():
    with pytest.raises(ValueError):
        M.paired_delta([1, 0, 1], [1, 0])
    with pytest.raises(ValueError):
        M.paired_delta([1, 2], [1, 0])
    with pytest.raises(ShiftbenchError):
        M.unpaired_delta([], [1, 0])


def test_flip_rate_is_the_wilson_share_of_changed_predictions():
    ref = np.array([0, 1, 2, 0, 1, 2, 0, 1])
    shift = np.array([0, 1, 1, 0, 2, 2, 0, 1])
    est = M.flip_rate(ref, shift)
    assert est == M.wilson(2, 8)
    assert est.value == 0.25


def test_estimate_to_dict_is_plain():
    d = M.wilson(3, 10).to_dict()
    assert set(d) == {"value", "low", "high", "n", "method", "level", "n_boot", "p_value"}
    assert all(type(d[k]) is float for k in ("value", "low", "high"))
