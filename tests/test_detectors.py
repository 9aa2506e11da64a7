"""Drift detectors: valid p-values under no drift, power under an obvious shift, backend
agreement, save/load, measured false-alarm rate, bad input.

Null replicates are seeded, so a pass or fail never depends on the run.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import resave
from scipy import stats

from shiftbench.detectors import (
    Detector,
    DriftResult,
    Score,
    load_detector,
    make_detector,
    resolve_backend,
)
from shiftbench.detectors import mmd as mmd_module
from shiftbench.detectors.calibration import Calibration, calibrate
from shiftbench.detectors.evidently import html_report
from shiftbench.detectors.ks import EXACT_CELLS, correct, ecdf_gaps, ks_pvalues, rejected
from shiftbench.detectors.mmd import kernel_sums, label_patterns, mmd2_unbiased
from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import wilson
from shiftbench.registry import DETECTORS

ALPHA = 0.05

# id: (name, params, n = m, d, null replicates, exact). ``exact``: p-values uniform on the
# permutation grid; otherwise the correction (Bonferroni over dimensions or folds) or the
# discreteness of KS makes them conservative, and only "never too small" is checked.
CASES = {
    "mmd": ("mmd", {"n_permutations": 99, "backend": "numpy"}, 30, 3, 200, True),
    "ks-bonferroni": ("ks", {"backend": "numpy"}, 40, 3, 200, False),
    "ks-bh": ("ks", {"correction": "bh", "backend": "numpy"}, 40, 3, 200, False),
    "bbsd": ("bbsd", {"backend": "numpy"}, 40, 3, 200, False),
    "classifier": ("classifier", {}, 40, 20, 150, False),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Problems here are tiny: BLAS/OpenMP threads only add waiting at their barriers,
    badly so on a busy machine (t-SNE on 120 rows: 0.8 s alone, 30 s beside other work)."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        yield


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def draw(name: str, rng: np.random.Generator, n: int, d: int, shift: float = 0.0) -> np.ndarray:
    """n rows of N(0, I_d) shifted by ``shift`` in every dimension; for bbsd, the softmax
    of such rows taken as logits, with the shift on the first class only."""
    x = rng.normal(size=(n, d))
    if name != "bbsd":
        return x + shift
    x[:, 0] += shift
    return softmax(x)


def seeded(name: str, params: dict, seed: int) -> Detector:
    """The detector, with its own permutation/fold seed when it takes one."""
    det = make_detector(name, **params)
    return det.clone(seed=seed) if "seed" in det.get_params() else det


@pytest.fixture(scope="module")
def null_p_values() -> dict[str, np.ndarray]:
    """Null p-values per case: two samples of the same distribution, many times."""
    out = {}
    for case, (name, params, n, d, replicates, _) in CASES.items():
        rng = np.random.default_rng(7)
        out[case] = np.array([seeded(name, params, i).fit(draw(name, rng, n, d))
                              .test(draw(name, rng, n, d)).p_value for i in range(replicates)])
    return out


@pytest.mark.parametrize("case", CASES)
def test_null_p_values_are_valid(null_p_values, case) -> None:
    p = null_p_values[case]
    assert p.min() > 0 and p.max() <= 1
    # Never anti-conservative: the p-values' CDF does not rise above the uniform's, and at
    # no level does the false-alarm rate exceed the level beyond sampling error.
    assert stats.kstest(p, "uniform", alternative="greater").pvalue > 0.01
    for level in (ALPHA, 0.1, 0.2):
        assert wilson(int(np.sum(p < level)), len(p)).low <= level
    if CASES[case][-1]:  # exact
        assert stats.kstest(p, "uniform").pvalue > 0.01
        rate = wilson(int(np.sum(p < ALPHA)), len(p))
        assert rate.low <= ALPHA <= rate.high


@pytest.mark.parametrize("case", CASES)
def test_power_against_an_obvious_shift(case) -> None:
    name, params, *_ = CASES[case]
    rng = np.random.default_rng(3)
    hits = [make_detector(name, **params).fit(draw(name, rng, 40, 3))
            .test(draw(name, rng, 40, 3, shift=1.5)).drifted for _ in range(20)]
    assert np.mean(hits) > 0.9


def test_permutation_p_value_counts_the_observed_split() -> None:
    """Far apart samples: no relabelling beats the observed split, so p = 1/(1 + B)."""
    rng = np.random.default_rng(0)
    det = make_detector("mmd", n_permutations=99, backend="numpy").fit(rng.normal(size=(20, 2)))
    result = det.test(rng.normal(size=(20, 2)) + 10)
    assert result.p_value == pytest.approx(1 / 100)
    assert result.drifted


def test_mmd_caps_rows_per_side_with_a_seeded_subset() -> None:
    rng = np.random.default_rng(18)
    ref, smp = rng.normal(size=(50, 2)), rng.normal(size=(30, 2))
    capped = make_detector("mmd", max_rows=20, n_permutations=50, backend="numpy").fit(ref)
    result = capped.test(smp)
    assert result.details["rows_used"] == {"reference": 20, "sample": 20}
    assert (result.n_reference, result.n_sample) == (50, 30)
    assert capped.test(smp) == result
    whole = make_detector("mmd", max_rows=None, n_permutations=50, backend="numpy").fit(ref)
    assert whole.test(smp).details["rows_used"] == {"reference": 50, "sample": 30}


def test_mmd_sums_match_a_dense_float64_computation() -> None:
    rng = np.random.default_rng(1)
    n, m, gamma = 25, 17, 0.1
    z = rng.normal(size=(n + m, 4))
    kernel = np.exp(-gamma * ((z[:, None] - z[None]) ** 2).sum(-1))
    patterns = label_patterns(n, m, 4, rng)
    for backend in ("numpy", "torch"):
        # The offset cancels exactly: any value gives the same MMD^2.
        quad, cross, total = kernel_sums(z.astype(np.float32), patterns, gamma, 0.4, backend)
        got = mmd2_unbiased(quad, cross, total, n, m)
        for b in range(patterns.shape[1]):
            x = patterns[:, b] == 1
            want = ((kernel[np.ix_(x, x)].sum() - n) / (n * (n - 1))
                    + (kernel[np.ix_(~x, ~x)].sum() - m) / (m * (m - 1))
                    - 2 * kernel[np.ix_(x, ~x)].mean())
            assert got[b] == pytest.approx(want, abs=1e-6)


def test_mmd_blocks_do_not_change_the_sums(monkeypatch) -> None:
    rng = np.random.default_rng(2)
    z = rng.normal(size=(50, 3)).astype(np.float32)
    patterns = label_patterns(30, 20, 9, rng)
    whole = kernel_sums(z, patterns, 0.2, 0.5)
    monkeypatch.setitem(mmd_module._BLOCK_BYTES, "cpu", 4 * 50 * 7)  # 7 rows per block
    blocked = kernel_sums(z, patterns, 0.2, 0.5)
    np.testing.assert_allclose(blocked[0], whole[0], rtol=1e-6)
    np.testing.assert_allclose(blocked[1], whole[1], rtol=1e-6)


@pytest.mark.parametrize("name", ["mmd", "ks"])
@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_numpy_and_torch_backends_agree(name, shift) -> None:
    rng = np.random.default_rng(4)
    ref, smp = rng.normal(size=(80, 5)), rng.normal(size=(60, 5)) + shift
    results = [make_detector(name, backend=backend, device="cpu").fit(ref).test(smp)
               for backend in ("numpy", "torch")]
    assert results[0].statistic == pytest.approx(results[1].statistic, abs=1e-5)
    assert results[0].p_value == results[1].p_value
    assert [r.details["backend"] for r in results] == ["numpy", "torch"]


@pytest.mark.parametrize("name", ["mmd", "ks"])
def test_torch_on_cuda_agrees_with_numpy(name) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA GPU")
    rng = np.random.default_rng(17)
    ref, smp = rng.normal(size=(3000, 64)), rng.normal(size=(2000, 64)) + 0.02
    cpu, gpu = (make_detector(name, backend=backend, device=device).fit(ref).test(smp)
                for backend, device in (("numpy", "cpu"), ("torch", "cuda")))
    assert gpu.details["backend"] == "torch"
    assert gpu.statistic == pytest.approx(cpu.statistic, abs=1e-5)
    assert gpu.p_value == cpu.p_value


def test_same_seed_same_p_value_and_seed_matters() -> None:
    rng = np.random.default_rng(5)
    ref, smp = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    p = [make_detector("mmd", n_permutations=200, seed=s, backend="numpy").fit(ref).test(smp)
         .p_value for s in (1, 1, 2)]
    assert p[0] == p[1]
    assert p[0] != p[2]


@pytest.mark.parametrize(("n", "m"), [(30, 30), (500, 500), (40, 23), (20, 15), (300, 120),
                                    (400, 150)])
def test_ks_matches_scipy(n, m) -> None:
    """Exact p-values for equal sizes and for unequal ones up to EXACT_CELLS (the limit was
    0.026 below the exact p at 20 x 15), the finite-size limit beyond."""
    rng = np.random.default_rng(n + m)
    a, b = rng.normal(size=(n, 4)), rng.normal(size=(m, 4)) + 0.15
    a[:6, 0] = b[:4, 0] = 0.0  # ties across the samples
    gaps = ecdf_gaps(a, b)
    exact = n == m or n * m <= EXACT_CELLS
    want = stats.ks_2samp(a, b, axis=0, method="exact" if exact else "asymp")
    np.testing.assert_allclose(gaps / (n * m), want.statistic, atol=1e-12)
    np.testing.assert_allclose(ks_pvalues(gaps, n, m), want.pvalue, rtol=1e-8)


def test_corrections() -> None:
    p = np.array([0.01, 0.04, 0.03, 0.2])
    # Bonferroni: 4 * 0.01; Simes: min(4*0.01/1, 4*0.03/2, 4*0.04/3, 4*0.2/4) = 0.04.
    assert correct(p, "bonferroni") == pytest.approx(0.04)
    assert correct(p, "bh") == pytest.approx(0.04)
    assert rejected(p, "bh", 0.05).tolist() == [0]
    # BH thresholds 0.0125, 0.025, 0.0375, 0.05: all four pass; Bonferroni only the first.
    p = np.array([0.035, 0.001, 0.03, 0.02])
    assert rejected(p, "bh", 0.05).tolist() == [0, 1, 2, 3]
    assert rejected(p, "bonferroni", 0.05).tolist() == [1]
    assert correct(p, "bh") == pytest.approx(0.004)


def test_ks_result_names_its_correction_and_dimensions() -> None:
    rng = np.random.default_rng(6)
    ref, smp = rng.normal(size=(100, 4)), rng.normal(size=(100, 4))
    smp[:, 2] += 1.5
    for correction in ("bonferroni", "bh"):
        result = make_detector("ks", correction=correction, backend="numpy").fit(ref).test(smp)
        assert result.details["correction"] == correction
        assert result.details["drifted_dimensions"] == [2]
        assert result.details["p_value_method"] == "exact"


def test_bbsd_tests_one_column_for_two_classes() -> None:
    assert DETECTORS.load("bbsd").input == "probabilities"
    assert DETECTORS.load("ks").input == "embeddings"
    rng = np.random.default_rng(8)
    ref, smp = draw("bbsd", rng, 50, 2), draw("bbsd", rng, 50, 2)
    assert make_detector("bbsd", backend="numpy").fit(ref).test(smp) \
        .details["n_dimensions"] == 1


def test_classifier_scores_only_held_out_rows() -> None:
    """Each fold is a valid test of its own rows; the AUC is over out-of-fold scores."""
    rng = np.random.default_rng(9)
    ref, smp = rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 2
    result = make_detector("classifier").fit(ref).test(smp)
    assert len(result.details["fold_p_values"]) == 5
    assert result.p_value == pytest.approx(min(1.0, 5 * min(result.details["fold_p_values"])))
    assert result.statistic > 0.9


@pytest.mark.parametrize(("name", "params"), [
    ("mmd", {"n_permutations": 50, "backend": "numpy"}), ("ks", {"backend": "numpy"}),
    ("bbsd", {"backend": "numpy"}), ("classifier", {})])
def test_save_load_round_trip(tmp_path, name, params) -> None:
    rng = np.random.default_rng(10)
    ref, smp = draw(name, rng, 60, 3), draw(name, rng, 30, 3, shift=0.3)
    det = make_detector(name, **params).fit(ref)
    det.calibrate(window=20, positives={"shifted": draw(name, rng, 60, 3, shift=1.0)},
                  n_repeats=5)
    det.save(tmp_path / "det")
    loaded = load_detector(tmp_path / "det")
    assert type(loaded) is type(det) and loaded.get_params() == det.get_params()
    assert loaded.calibration_ == det.calibration_
    assert loaded.test(smp) == det.test(smp)
    result = loaded.test(smp).to_dict()
    assert json.loads(json.dumps(result)) == result


def test_load_rejects_a_folder_that_is_not_a_saved_detector(tmp_path) -> None:
    with pytest.raises(ShiftbenchError, match="detector.json: missing"):
        load_detector(tmp_path)
    (tmp_path / "detector.json").write_text("{}", encoding="utf-8")
    np.savez(tmp_path / "arrays.npz", reference=np.zeros((3, 2)))
    with pytest.raises(ShiftbenchError, match="not a saved detector of format 2"):
        load_detector(tmp_path)


def saved_mmd(folder) -> None:
    rng = np.random.default_rng(11)
    det = make_detector("mmd", n_permutations=20, backend="numpy").fit(rng.normal(size=(40, 3)))
    det.calibrate(window=10, n_repeats=3)
    det.save(folder)


def edit_json(folder, change) -> None:
    meta = json.loads((folder / "detector.json").read_text())
    change(meta)
    (folder / "detector.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("change, message", [
    (lambda m: m.pop("n_reference"), "field 'n_reference' is missing"),
    (lambda m: m.update(n_features_in="3"), "field 'n_features_in' must be integer"),
    (lambda m: m.update(extra=1), "unknown field 'extra'"),
    (lambda m: m["params"].update(alpha=0.5), "does not match its checksum"),
    (lambda m: m["calibration"]["false_alarm"].update(value=0.0), "does not match its checksum"),
])
def test_an_edited_saved_detector_is_refused(tmp_path, change, message: str) -> None:
    saved_mmd(tmp_path)
    edit_json(tmp_path, change)
    with pytest.raises(ShiftbenchError, match=message) as err:
        load_detector(tmp_path)
    assert str(tmp_path / "detector.json") in str(err.value)


def test_edited_reference_rows_are_refused(tmp_path) -> None:
    saved_mmd(tmp_path)
    with np.load(tmp_path / "arrays.npz") as data:
        reference = data["reference"]
    np.savez(tmp_path / "arrays.npz", reference=reference[:30])  # rows cut
    with pytest.raises(ShiftbenchError, match="array 'reference' does not match its checksum"):
        load_detector(tmp_path)


@pytest.mark.parametrize("change, message", [
    (lambda m, a: m["params"].update(kernel="rbf"), "field 'params': unknown parameter 'kernel'"),
    (lambda m, a: m["params"].pop("seed"), "field 'params': parameter 'seed' is missing"),
    (lambda m, a: m["params"].update(n_permutations="20"),
     "parameter 'n_permutations' must be integer"),
    (lambda m, a: m["params"].update(n_permutations=2.5),
     "parameter 'n_permutations' must be integer"),
    (lambda m, a: m["params"].update(bandwidth=True),
     "parameter 'bandwidth' must be number or null"),
    (lambda m, a: m["params"].update(alpha=2.0), "alpha must be in"),
    (lambda m, a: m.update(detector="nope"), "unknown detector 'nope'"),
    (lambda m, a: a.update(reference=a["reference"][:, :2]), "array 'reference' has shape"),
    (lambda m, a: m.update(calibration={"method": "mmd"}), "field 'calibration' is malformed"),
])
def test_a_hand_made_saved_detector_is_checked_beyond_its_checksum(tmp_path, change,
                                                                   message: str) -> None:
    saved_mmd(tmp_path)
    resave(tmp_path, "detector.json", change)
    with pytest.raises(ShiftbenchError, match=message) as err:
        load_detector(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "detector.json"))


def test_params_clone_and_registry() -> None:
    assert set(DETECTORS.names()) >= {"mmd", "ks", "classifier", "bbsd", "evidently"}
    det = make_detector("mmd", alpha=0.01, seed=3)
    assert det.get_params()["alpha"] == 0.01
    twin = det.clone(seed=4)
    assert twin.get_params() == {**det.get_params(), "seed": 4}
    assert not hasattr(twin, "reference_")
    assert repr(det).startswith("MMDDetector(alpha=0.01, ")
    with pytest.raises(ShiftbenchError, match="unknown detector 'nope'"):
        make_detector("nope")


# -- measured false-alarm rate and power ------------------------------------------------------


class UniformP(Detector):
    """A test that ignores the data: p ~ U(0, top). top = 1 is valid; top < 1 is not."""

    name = "uniform-p"

    def __init__(self, alpha: float = 0.05, top: float = 1.0, seed: int = 0) -> None:
        self.alpha = alpha
        self.top = top
        self.seed = seed

    def _score(self, sample: np.ndarray) -> Score:
        p = float(np.random.default_rng(self.seed).uniform(0, self.top))
        return Score(p, max(p, 1e-12), {})


def test_calibration_measures_false_alarms_and_power() -> None:
    rng = np.random.default_rng(11)
    ref = rng.normal(size=(200, 3))
    det = make_detector("mmd", n_permutations=99, backend="numpy").fit(ref)
    cal = det.calibrate(window=40, positives={"shifted": ref + 1.0}, n_repeats=150, seed=1)
    assert det.calibration_ is cal
    assert cal.n_fit == 100 and cal.window == 40 and cal.n_repeats == 150
    assert cal.false_alarm.low <= ALPHA <= cal.false_alarm.high
    assert not cal.flagged
    assert cal.power["shifted"].value > 0.9
    assert "power vs shifted" in cal.summary()
    assert Calibration.from_dict(json.loads(json.dumps(cal.to_dict()))) == cal


def test_calibration_flags_an_anti_conservative_detector() -> None:
    ref = np.random.default_rng(12).normal(size=(100, 2))
    honest = calibrate(UniformP(), ref, window=20, n_repeats=200)
    liar = calibrate(UniformP(top=0.25), ref, window=20, n_repeats=200)
    assert not honest.flagged
    assert liar.flagged and liar.false_alarm.value > 0.1
    assert "FLAGGED" in liar.summary() and "FLAGGED" not in honest.summary()


def test_calibration_paired_controls_use_held_out_rows() -> None:
    """A 'shift' that is the reference itself cannot be told apart when paired windows
    come from held-out rows: its power is the false-alarm rate, window for window."""
    ref = np.random.default_rng(13).normal(size=(120, 2))
    cal = calibrate(make_detector("ks", backend="numpy"), ref, window=30,
                    positives={"same": ref.copy()}, n_repeats=30)
    assert cal.power["same"].value == cal.false_alarm.value


def sequential_counts(detector, ref: np.ndarray, controls: dict, window: int, n_repeats: int,
                      seed: int) -> tuple[int, dict[str, int]]:
    """The one-loop calibration shiftbench ran before repeats were drawn up front and run
    in jobs (unpaired controls, a detector that takes a seed: every kind of draw)."""
    rng = np.random.default_rng(seed)
    alarms, hits = 0, dict.fromkeys(controls, 0)
    for _ in range(n_repeats):
        rows = rng.permutation(len(ref))
        fit_rows, held = rows[:len(ref) // 2], rows[len(ref) // 2:len(ref) // 2 + window]
        copy = detector.clone(seed=int(rng.integers(2**31))).fit(ref[fit_rows])
        alarms += copy.test(ref[held]).drifted
        for name, x in controls.items():
            hits[name] += copy.test(x[rng.choice(len(x), size=window, replace=False)]).drifted
    return alarms, hits


def test_calibration_in_jobs_counts_what_one_sequential_loop_counted() -> None:
    rng = np.random.default_rng(14)
    ref = rng.normal(size=(80, 2))
    controls = {"near": rng.normal(0.3, size=(50, 2)), "far": rng.normal(1.0, size=(40, 2))}
    det = make_detector("mmd", n_permutations=39, backend="numpy")
    jobs: list[int] = []

    def call_each(fn, calls, desc):
        jobs.append(len(calls))
        return [fn(*args) for args in reversed(calls)][::-1]

    cal = calibrate(det, ref, window=15, positives=controls, n_repeats=25, seed=5, paired=False,
                    call_each=call_each)
    alarms, hits = sequential_counts(det, ref, controls, 15, 25, seed=5)
    assert jobs == [3]  # 25 repeats in jobs of 10, 10 and 5
    assert cal.false_alarm == wilson(alarms, 25)
    assert cal.power == {name: wilson(k, 25) for name, k in hits.items()}
    assert 0 < hits["near"] < hits["far"]  # the counts compared are not all zero


def test_calibration_bad_input() -> None:
    ref = np.zeros((100, 2)) + np.arange(100)[:, None]
    det = make_detector("ks", backend="numpy")
    with pytest.raises(ShiftbenchError, match="window 60 must be between 1 and half"):
        calibrate(det, ref, window=60)
    with pytest.raises(ShiftbenchError, match="row-aligned"):
        calibrate(det, ref, window=20, positives={"typos": ref[:50]})
    with pytest.raises(ShiftbenchError, match="has 3 features"):
        calibrate(det, ref, window=20, positives={"typos": np.zeros((100, 3))})
    with pytest.raises(ShiftbenchError, match="fit\\(reference\\) before calibrate"):
        det.calibrate(window=20)


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("reference", "sample", "message"), [
    (np.zeros((0, 3)), None, "reference is empty"),
    (np.zeros(10), None, "expected a 2-D array"),
    (np.array([["a", "b"]]), None, "expected numbers"),
    (np.zeros((10, 0)), None, "0 features"),
    (np.r_[np.zeros((9, 2)), [[np.nan, 1]]], None, "1 NaN or infinite values \\(first at row 9"),
    (np.ones((1, 2)), None, "reference: 1 rows, fewer than the 2"),
    (np.ones((10, 3)), np.ones((10, 4)), "sample has 4 features, the reference has 3"),
    (np.ones((10, 3)), np.full((10, 3), np.inf), "sample: 30 NaN or infinite"),
    (np.ones((10, 3)), np.ones((1, 3)), "sample: 1 rows, fewer than the 2 the mmd detector"),
])
def test_bad_input_is_a_clear_error(reference, sample, message) -> None:
    with pytest.raises(ShiftbenchError, match=message):
        det = make_detector("mmd", backend="numpy").fit(reference)
        det.test(sample)


def test_bad_parameters_and_order() -> None:
    x = np.random.default_rng(14).normal(size=(30, 3))
    with pytest.raises(ShiftbenchError, match="fit\\(reference\\) before test"):
        make_detector("ks").test(x)
    with pytest.raises(ShiftbenchError, match="correction 'holm'"):
        make_detector("ks", correction="holm").fit(x)
    with pytest.raises(ShiftbenchError, match="backend 'jax'"):
        resolve_backend("jax", "auto")
    with pytest.raises(ShiftbenchError, match="alpha must be in"):
        make_detector("ks", alpha=1.5).fit(x)
    with pytest.raises(ShiftbenchError, match="smallest possible p-value 1/20"):
        make_detector("mmd", alpha=0.01, n_permutations=19).fit(x)
    with pytest.raises(ShiftbenchError, match="sample: 9 rows, fewer than the 10"):
        make_detector("classifier").fit(x).test(x[:9])
    with pytest.raises(ShiftbenchError, match="bbsd expects class probabilities"):
        make_detector("bbsd").fit(x)


def test_results_are_records() -> None:
    rng = np.random.default_rng(15)
    result = make_detector("ks", backend="numpy").fit(rng.normal(size=(30, 2))) \
        .test(rng.normal(size=(30, 2)))
    assert isinstance(result, DriftResult)
    record = result.to_dict()
    assert record["method"] == "ks" and record["calibrated"] is True
    assert record["drifted"] == (record["p_value"] < record["alpha"])
    assert record["n_reference"] == record["n_sample"] == 30


# -- Evidently (optional extra) --------------------------------------------------------------


def test_evidently_is_labelled_uncalibrated_and_round_trips(tmp_path) -> None:
    pytest.importorskip("evidently")
    rng = np.random.default_rng(16)
    ref, smp = rng.normal(size=(60, 4)), rng.normal(size=(40, 4)) + 1.0
    det = make_detector("evidently", method="mmd", bootstrap=True).fit(ref)
    result = det.test(smp)
    assert result.method == "evidently:mmd" and result.p_value is None
    assert result.calibrated is False and result.drifted
    det.save(tmp_path)
    assert load_detector(tmp_path).test(smp) == result
    with pytest.raises(ShiftbenchError, match="method 'knn'"):
        make_detector("evidently", method="knn").fit(ref)


def test_evidently_html_report_on_a_sample(tmp_path) -> None:
    pytest.importorskip("evidently")
    rng = np.random.default_rng(19)
    path = html_report(rng.normal(size=(300, 4)), rng.normal(size=(80, 4)),
                       tmp_path / "drift.html", max_rows=60)
    html = path.read_text(encoding="utf-8")
    assert "Drift in embeddings" in html and "Drift detection method: mmd" in html


def test_ks_p_value_is_never_zero_for_completely_separated_unequal_samples() -> None:
    from math import comb

    n, m = 15, 20
    assert ks_pvalues(np.array([n * m]), n, m)[0] == pytest.approx(2 / comb(n + m, n))
    assert 0 < ks_pvalues(np.array([3000 * 4000]), 3000, 4000)[0] < 1e-300


def test_a_split_with_too_few_rows_to_test_is_named() -> None:
    """check_sizes counts what drift_tests will test: half B of a perturbation's ids, all
    of a domain's rows."""
    from shiftbench.config import DetectorSpec
    from shiftbench.drift import check_sizes, in_half_b
    from shiftbench.split import Split

    ids = [f"r{i}" for i in range(40)]
    reference = Split("reference", ids, [f"text {i}" for i in ids])
    in_b = [i for i in ids if in_half_b(i)]
    typo = reference.subset([ids.index(in_b[0])] + [ids.index(i) for i in ids
                                                     if not in_half_b(i)][:5])
    typo = typo.derive("typo@1", typo.texts, kind="perturbation")
    domain = Split("other", ["d1", "d2"], ["x", "y"], info={"kind": "domain"})
    check_sizes(reference, [domain], [DetectorSpec(name="mmd")])
    with pytest.raises(ShiftbenchError) as err:
        check_sizes(reference, [domain, typo], [DetectorSpec(name="mmd")])
    assert str(err.value) == ("detector mmd: split 'typo@1' has 1 rows to test (those in the "
                              "reference's other half), fewer than the 2 it needs; use more "
                              "rows (--limit)")
    with pytest.raises(ShiftbenchError, match="split 'other' has 2 rows to test, fewer than "
                                              "the 10"):
        check_sizes(reference, [domain], [DetectorSpec(name="classifier")])
