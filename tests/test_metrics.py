"""Metrics and intervals: hand-derived values, edge cases, and simulated coverage."""

import math
from statistics import NormalDist

import numpy as np
import pytest
from scipy.stats import binomtest, foldnorm
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


def test_calibration_gap_by_hand():
    # One bin at 0.8 with 8 of 10 right: no gap; each row's variance 0.8 * 0.2 = 0.16, so
    # the bin mean's sd is sqrt(0.16 / 10) and the plug-in's largest bias sqrt(2 / pi) sd.
    proba = _binary_proba([0.8] * 10)
    gap = M.calibration_gap(proba, np.array([0] * 8 + [1] * 2))
    sd = math.sqrt(0.16 / 10)
    assert gap.plug_in == pytest.approx(0.0, abs=1e-12) and gap.debiased == 0.0
    assert gap.se == pytest.approx(sd)
    assert gap.max_bias == pytest.approx(sd * math.sqrt(2 / math.pi))
    assert gap.bounds(0.95) == pytest.approx((0.0, Z * sd))
    # One bin at 0.9 with 60 of 100 right: gap -0.3; the accuracy's variance 0.6 * 0.4 beats
    # 0.9 * 0.1. Debiased: 2|gap| - E|N(gap, sd^2)| (scipy's folded normal).
    gap = M.calibration_gap(_binary_proba([0.9] * 100), np.array([0] * 60 + [1] * 40))
    sd = math.sqrt(0.24 / 100)
    assert gap.plug_in == pytest.approx(0.3)
    assert gap.debiased == pytest.approx(0.6 - foldnorm.mean(0.3 / sd, scale=sd))
    assert gap.bounds(0.95) == pytest.approx(
        (0.3 - sd * math.sqrt(2 / math.pi) - Z * sd, 0.3 + Z * sd))


def _calibration_sample(rng: np.random.Generator, n: int, gap: float) -> tuple[np.ndarray, ...]:
    """A binary model whose confidence c ~ U(0.5, 1) is right with probability c + gap, so
    its true ECE is |gap| (the same gap in every bin)."""
    conf = rng.uniform(0.5, 1.0, n)
    right = rng.random(n) < conf + gap
    return _binary_proba(conf), np.where(right, 0, 1)


def test_ece_estimate_is_inside_its_interval_and_needs_no_seed():
    rng = np.random.default_rng(11)
    for n in (1, 2, 7, 40, 300):
        for gap in (0.0, -0.05, -0.2):
            proba, y = _calibration_sample(rng, n, gap)
            est = M.estimate("ece", proba, y, rng=1)
            assert est == M.estimate("ece", proba, y, rng=2)
            assert 0 <= est.low <= est.value <= est.high <= 1
            assert est.method == "debiased_ece" and est.n_boot is None


def test_ece_interval_stays_within_zero_and_one_on_one_confident_error():
    """One row, wrong at probability 0.95: the normal bound alone would pass 1 (a user's
    1-row reference showed [0.000, 1.513])."""
    est = M.ece_ci(np.array([[0.95, 0.05]]), np.array([1]))
    gap = M.calibration_gap(np.array([[0.95, 0.05]]), np.array([1]))
    assert gap.plug_in + 1.96 * gap.se > 1  # what the clip guards against
    assert est.high == 1.0 and 0 <= est.low <= est.value <= 1


def test_debiased_ece_removes_most_of_the_plug_ins_bias():
    # Calibrated: per bin E|N(0, s^2)| = 0.80 s for the plug-in, 0.47 s debiased (2 * 0.80 s
    # - E|N(0, 2 s^2)| = (2 - sqrt 2) 0.80 s), so about 0.59 of the plug-in's bias remains.
    rng = np.random.default_rng(12)
    gaps = [M.calibration_gap(*_calibration_sample(rng, 200, 0.0)) for _ in range(300)]
    plug_in = np.mean([g.plug_in for g in gaps])
    debiased = np.mean([g.debiased for g in gaps])
    assert 0.5 * plug_in < debiased < 0.7 * plug_in
    # A clear gap in every bin: the debiased estimate is on target, the plug-in above it.
    gaps = [M.calibration_gap(*_calibration_sample(rng, 2000, -0.1)) for _ in range(100)]
    assert np.mean([g.debiased for g in gaps]) == pytest.approx(0.1, abs=0.004)


@pytest.mark.parametrize(("n", "gap"), [(100, 0.0), (500, 0.0), (100, -0.05), (500, -0.05),
                                        (2000, -0.1)])
def test_ece_interval_covers_the_true_ece(n, gap):
    # Each bound is one-sided 97.5% whatever the gaps; conservative where bins are calibrated.
    rng = np.random.default_rng(13)
    sims = 400
    covered = [(lambda e: e.low <= abs(gap) <= e.high)(M.ece_ci(*_calibration_sample(rng, n, gap)))
               for _ in range(sims)]
    assert np.mean(covered) >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / sims)


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


@pytest.mark.parametrize("metric", ["macro_f1", "nll"])
def test_bootstrap_estimates_are_seeded_and_bracket_the_point(metric):
    proba, y = _noisy_classifier(400, 3)
    a = M.estimate(metric, proba, y, rng=5, n_boot=300)
    b = M.estimate(metric, proba, y, rng=5, n_boot=300)
    c = M.estimate(metric, proba, y, rng=6, n_boot=300)
    assert a == b
    assert (a.low, a.high) != (c.low, c.high)
    assert a.low < a.high and a.n_boot == 300 and a.method == "percentile_bootstrap"
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
    est = M.paired_delta(ref, shift)
    assert est.value == pytest.approx(shift.mean() - ref.mean())
    assert est.low <= est.value <= est.high
    b, c = int(np.sum(ref & ~shift)), int(np.sum(~ref & shift))
    assert est.p_value == pytest.approx(binomtest(b, b + c, 0.5).pvalue)
    assert est.method == "tango_score" and est.n == 1000 and est.n_boot is None


def test_paired_score_interval_with_no_disagreeing_pair_is_not_a_point():
    # No discordant pair: for delta > 0 the restricted MLE of P(worse) is 0, so
    # z = -sqrt(n delta / (1 - delta)), and |z| = z_0.975 at delta = z^2 / (n + z^2).
    est = M.paired_delta(np.ones(100, bool), np.ones(100, bool))
    assert est.value == 0 and est.p_value == 1.0
    assert (est.low, est.high) == pytest.approx((-Z**2 / (100 + Z**2), Z**2 / (100 + Z**2)))
    # Every pair better: the MLE puts P(worse) = (1 - delta) / 2 and no pair concordant,
    # so z = sqrt(n (1 - delta) / (1 + delta)): the bound is (n - z^2) / (n + z^2).
    all_better = M.paired_delta(np.zeros(30, bool), np.ones(30, bool))
    assert all_better.value == 1.0 == all_better.high
    assert all_better.low == pytest.approx((30 - Z**2) / (30 + Z**2))


@pytest.mark.parametrize(("worse", "better", "n"), [(3, 0, 50), (2, 9, 200), (40, 10, 60)])
def test_paired_score_bounds_are_where_the_score_is_z(worse, better, n):
    from scipy.optimize import minimize_scalar

    low, high = M.paired_score_interval(worse, better, n)
    assert M.paired_score_z(worse, better, n, low) == pytest.approx(Z, rel=1e-6)
    assert M.paired_score_z(worse, better, n, high) == pytest.approx(-Z, rel=1e-6)
    # The variance uses the maximum-likelihood P(worse) given delta: check it numerically.
    d = (low + high) / 2 + 0.01
    loglik = lambda q: -(worse * np.log(q) + better * np.log(q + d)  # noqa: E731
                         + (n - worse - better) * np.log(1 - 2 * q - d))
    q = minimize_scalar(loglik, bounds=(max(0, -d) + 1e-12, (1 - d) / 2 - 1e-12),
                        method="bounded", options={"xatol": 1e-12}).x
    expected = (better - worse - n * d) / math.sqrt(n * (2 * q + d - d * d))
    assert M.paired_score_z(worse, better, n, d) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(("worse", "better"), [(0.01, 0.01), (0.02, 0.0), (0.03, 0.01),
                                               (0.0, 0.0)])
def test_paired_interval_covers_with_few_disagreeing_pairs(worse, better):
    # n = 100 with 2-4% disagreeing pairs: the pair bootstrap covered ~87% here.
    rng = np.random.default_rng(14)
    sims, n = 1000, 100
    counts = rng.multinomial(n, [worse, better, 1 - worse - better], sims)
    covered = [(lambda lo_hi: lo_hi[0] <= better - worse <= lo_hi[1])(
        M.paired_score_interval(int(w), int(b), n)) for w, b, _ in counts]
    assert np.mean(covered) >= 0.95 - 3 * math.sqrt(0.95 * 0.05 / sims)


@pytest.mark.parametrize("b, c", [(0, 0), (5, 5), (0, 7), (3, 12), (40, 25), (1, 0)])
def test_mcnemar_exact_matches_scipy_binomtest(b, c):
    expected = 1.0 if b + c == 0 else binomtest(b, b + c, 0.5).pvalue
    assert M.mcnemar_exact(b, c) == pytest.approx(expected)


def test_paired_interval_is_narrower_than_unpaired_on_correlated_pairs():
    ref, shift = _correlated(1000, 8)
    paired = M.paired_delta(ref, shift)
    unpaired = M.unpaired_delta(ref, shift, rng=0)
    assert paired.value == pytest.approx(unpaired.value)
    assert (paired.high - paired.low) < 0.6 * (unpaired.high - unpaired.low)


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


# --- Holm -------------------------------------------------------------------------------

def test_holm_matches_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 = 0.04 -> running max 0.06
    assert M.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert M.holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])
    assert M.holm([]) == []


def test_holm_sits_between_raw_and_bonferroni():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random(int(rng.integers(1, 12))) ** 3
        adjusted = np.array(M.holm(list(p)))
        assert np.all(adjusted >= p - 1e-15)
        assert np.all(adjusted <= np.minimum(1, p * len(p)) + 1e-15)
        order = np.argsort(p)
        assert np.all(np.diff(adjusted[order]) >= -1e-15)  # monotone in the raw order


@pytest.mark.parametrize("paired", [True, False])
def test_bootstrap_in_small_chunks_gives_identical_intervals(monkeypatch, paired) -> None:
    """Resamples are drawn a few at a time (bounded memory at any n) from one generator,
    so one resample per chunk and all at once give the same draws, hence equal intervals."""
    rng = np.random.default_rng(4)
    values, before, after = rng.random(300), rng.random(300) < 0.7, rng.random(300) < 0.6

    def intervals():
        stat = lambda x: (lambda idx: x[idx].mean(axis=1))  # noqa: E731
        return (M.mean_ci(values, rng=1, n_boot=200),
                M.bootstrap_delta(stat(before), 300, stat(after), 300, paired, rng=2, n_boot=200))

    monkeypatch.setattr(M, "_CHUNK", 10**9)
    whole = intervals()
    monkeypatch.setattr(M, "_CHUNK", 300)  # one resample per chunk
    assert intervals() == whole
    assert len(list(M.resample_chunks(200, 300))) == 200
