"""Coverage of shiftbench's intervals and false-fail rates of its gate rules, by simulation,
where they are weakest: ECE near zero and on small samples, and paired accuracy changes
with few disagreeing pairs. Each is printed beside the method it replaced.

    python tests/benchmarks/interval_coverage.py [--sims 2000] [--seed 0]

ECE: a binary model whose confidence c (uniform on [0.5, 1], or "confident":
0.5 + 0.5 * Beta(5, 1)) is right with probability c + gap(c); the true ECE is the
population value of the 15-bin formula (from 2 million rows). Rows: mean plug-in and
shiftbench's debiased estimate, the coverage of its 95% interval (and how often the
truth fell below / above it), its width, and the coverage of the plug-in's percentile
bootstrap (B = 200) that it replaced.

Gate: the rule ``absolute ece max 0.05`` (alpha 0.05) on models that satisfy it (true
ECE 0 or exactly 0.05): the share failed (must be <= alpha), and that of the plug-in's
percentile-bootstrap test it replaced. ``non_inferiority ece`` (margin 0): candidates no
worse calibrated than their baseline, the hardest being one whose miscalibration sits in
a few bins (its calibrated bins keep some upward bias) against a baseline miscalibrated
everywhere; beside it, the paired bootstrap of the debiased ECE difference that was
tried first and failed that case too often.

Paired accuracy change: pairs worse / better with the given probabilities; coverage of
Tango's score interval and of the pair bootstrap (B = 1000) it replaced.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from shiftbench import metrics as M
from shiftbench.evaluate import ScoredSplit
from shiftbench.gate.policy import Policy
from shiftbench.gate.rules import evaluate_gate
from shiftbench.gate.runs import Run

GAPS = {
    "calibrated": lambda c: 0.0 * c,
    "over 0.05": lambda c: -0.05 + 0.0 * c,
    "under 0.05": lambda c: 0.05 + 0.0 * c,
    "over 0.10": lambda c: -0.10 + 0.0 * c,
    "mixed ±0.05": lambda c: np.where(c < 0.75, 0.05, -0.05),
    "top bins -0.2": lambda c: np.where(c > 0.9, -0.2, 0.0),
}
CONFIDENCES = {
    "uniform": lambda rng, n: rng.uniform(0.5, 1.0, n),
    "confident": lambda rng, n: 0.5 + 0.5 * rng.beta(5, 1, n),
}


def sample(rng, n, conf_kind, gap_kind):
    conf = CONFIDENCES[conf_kind](rng, n)
    right = rng.random(n) < np.clip(conf + GAPS[gap_kind](conf), 0, 1)
    return np.column_stack([conf, 1 - conf]), np.where(right, 0, 1)


def true_ece(conf_kind, gap_kind):
    conf = CONFIDENCES[conf_kind](np.random.default_rng(123), 2_000_000)
    gap = np.clip(conf + GAPS[gap_kind](conf), 0, 1) - conf
    bins = np.clip(np.ceil(conf * M.ECE_BINS).astype(int) - 1, 0, M.ECE_BINS - 1)
    return float(np.abs(np.bincount(bins, weights=gap, minlength=M.ECE_BINS)).sum() / len(conf))


def plug_in_draws(proba, y, rng, n_boot=200):
    """The replaced method: the plug-in ECE of each bootstrap resample."""
    conf, right = proba.max(axis=1), proba.argmax(axis=1) == y
    bins = np.clip(np.ceil(conf * M.ECE_BINS).astype(int) - 1, 0, M.ECE_BINS - 1)
    idx = rng.integers(0, len(y), (n_boot, len(y)))
    key = bins[idx] + (np.arange(n_boot) * M.ECE_BINS)[:, None]
    sums = np.bincount(key.ravel(), weights=(right - conf)[idx].ravel(),
                       minlength=n_boot * M.ECE_BINS)
    return np.abs(sums.reshape(n_boot, M.ECE_BINS)).sum(axis=1) / len(y)


def ece_coverage(sims, rng):
    print("ECE: 95% intervals (truth below/above the interval), and the replaced percentile "
          "bootstrap of the plug-in")
    print(f"{'confidence':10} {'gap':14} {'n':>5} {'true':>6} {'plug-in':>8} {'debiased':>8} "
          f"{'covered':>8} {'below':>6} {'above':>6} {'width':>6} {'old cov':>8}")
    for conf_kind in CONFIDENCES:
        for gap_kind in GAPS:
            truth = true_ece(conf_kind, gap_kind)
            for n in (100, 200, 500, 2000):
                plug, deb, below, above, width, old = [], [], 0, 0, [], 0
                for _ in range(sims):
                    proba, y = sample(rng, n, conf_kind, gap_kind)
                    gap = M.calibration_gap(proba, y)
                    est = M.ece_ci(proba, y)
                    plug.append(gap.plug_in)
                    deb.append(est.value)
                    below += truth < est.low
                    above += truth > est.high
                    width.append(est.high - est.low)
                    low, high = np.quantile(plug_in_draws(proba, y, rng), [0.025, 0.975])
                    old += low <= truth <= high
                print(f"{conf_kind:10} {gap_kind:14} {n:5d} {truth:6.3f} {np.mean(plug):8.3f} "
                      f"{np.mean(deb):8.3f} {1 - (below + above) / sims:8.3f} "
                      f"{below / sims:6.3f} {above / sims:6.3f} {np.mean(width):6.3f} "
                      f"{old / sims:8.3f}", flush=True)


def one_split_run(label, proba, y, kind="reference", name="reference"):
    ids = [f"e{i}" for i in range(len(y))]
    return Run(label, "sim", "h", {"adapter": "sim", "fingerprint": label, "classes": ["a", "b"]},
               {name: ScoredSplit(name, kind, ids, y, proba)}, label, None)


def plug_in_gate_fails(proba, y, threshold, alpha, rng, n_boot=1000):
    """The replaced test: p = (1 + #resamples with plug-in <= threshold) / (1 + B)."""
    draws = plug_in_draws(proba, y, rng, n_boot)
    return (1 + np.sum(draws <= threshold)) / (1 + n_boot) <= alpha


def proba_of_label_0(rng, conf, gap_kind):
    """Probabilities of a model with confidence ``conf`` on rows whose label is class 0."""
    right = rng.random(len(conf)) < np.clip(conf + GAPS[gap_kind](conf), 0, 1)
    p_true = np.where(right, conf, 1 - conf)
    return np.column_stack([p_true, 1 - p_true])


def gate_false_fails(sims, rng):
    alpha, ceiling = 0.05, 0.05
    rule = Policy.model_validate({"rules": [{"kind": "absolute", "metric": "ece",
                                             "max": ceiling}], "alpha": alpha})
    print(f"\nGate `absolute ece max {ceiling}` (alpha {alpha}) on models that satisfy it: "
          "share failed (must be <= alpha)")
    print(f"{'confidence':10} {'gap':14} {'n':>5} {'true':>6} {'now':>6} {'before':>7}")
    for conf_kind, gap_kind, n in (("uniform", "calibrated", 100), ("uniform", "calibrated", 200),
                                   ("uniform", "calibrated", 500), ("uniform", "over 0.05", 500),
                                   ("uniform", "over 0.05", 2000),
                                   ("confident", "over 0.05", 500),
                                   ("uniform", "mixed ±0.05", 500),
                                   ("uniform", "top bins -0.2", 2000)):
        fails, before = 0, 0
        for _ in range(sims):
            proba, y = sample(rng, n, conf_kind, gap_kind)
            run = one_split_run("c", proba, y)
            fails += evaluate_gate(rule, run, run).status == "fail"
            before += plug_in_gate_fails(proba, y, ceiling, alpha, rng)
        print(f"{conf_kind:10} {gap_kind:14} {n:5d} {true_ece(conf_kind, gap_kind):6.3f} "
              f"{fails / sims:6.3f} {before / sims:7.3f}", flush=True)

    print("\nThe same rule on models that violate it: share failed (power; the price of "
          "holding alpha whatever the bins look like)")
    print(f"{'confidence':10} {'gap':14} {'n':>5} {'true':>6} {'now':>6} {'before':>7}")
    for gap_kind, n in (("over 0.10", 500), ("over 0.10", 2000)):
        fails, before = 0, 0
        for _ in range(sims // 4):
            proba, y = sample(rng, n, "uniform", gap_kind)
            run = one_split_run("c", proba, y)
            fails += evaluate_gate(rule, run, run).status == "fail"
            before += plug_in_gate_fails(proba, y, ceiling, alpha, rng)
        print(f"{'uniform':10} {gap_kind:14} {n:5d} {true_ece('uniform', gap_kind):6.3f} "
              f"{fails / (sims // 4):6.3f} {before / (sims // 4):7.3f}", flush=True)

    rule = Policy.model_validate({"rules": [{"kind": "non_inferiority", "metric": "ece",
                                             "split": "*"}], "alpha": alpha})
    print(f"\nGate `non_inferiority ece` (margin 0, {sims // 4} runs per row): share failed of "
          "candidates no worse calibrated than the baseline; beside it, a paired bootstrap "
          "of the debiased ECE difference")
    print(f"{'baseline':14} {'candidate':14} {'n':>5} {'failed':>7} {'bootstrap':>9}")
    for base_gap, cand_gap, n in (("calibrated", "calibrated", 200),
                                  ("calibrated", "calibrated", 1000),
                                  ("over 0.05", "over 0.05", 500),
                                  ("over 0.05", "mixed ±0.05", 500),
                                  ("over 0.05", "top bins -0.2", 500),
                                  ("over 0.05", "top bins -0.2", 2000)):
        fails, boot, runs = 0, 0, sims // 4  # the bootstrap beside it is slow
        for _ in range(runs):
            conf = rng.uniform(0.5, 1.0, n)
            y = np.zeros(n, dtype=np.int64)
            base, cand = (proba_of_label_0(rng, conf, g) for g in (base_gap, cand_gap))
            fails += evaluate_gate(rule, one_split_run("b", base, y),
                                   one_split_run("c", cand, y)).status == "fail"
            boot += debiased_bootstrap_fails(base, cand, y, alpha, rng)
        truths = f"(true ECE {true_ece('uniform', base_gap):.3f} vs " \
                 f"{true_ece('uniform', cand_gap):.3f})"
        print(f"{base_gap:14} {cand_gap:14} {n:5d} {fails / runs:7.3f} {boot / runs:9.3f}  "
              f"{truths}", flush=True)


def debiased_bootstrap_fails(base, cand, y, alpha, rng, n_boot=200):
    """The approach tried first: p = (1 + #paired resamples with debiased ECE(cand) -
    debiased ECE(base) <= 0) / (1 + B)."""
    idx = rng.integers(0, len(y), (n_boot, len(y)))
    draws = [M.calibration_gap(cand[i], y[i]).debiased - M.calibration_gap(base[i], y[i]).debiased
             for i in idx]
    return (1 + np.sum(np.array(draws) <= 0)) / (1 + n_boot) <= alpha


def paired_coverage(sims, rng):
    print("\nPaired accuracy change: 95% coverage of Tango's score interval and of the pair "
          "bootstrap it replaced")
    print(f"{'n':>5} {'P(worse)':>8} {'P(better)':>9} {'Tango':>7} {'width':>6} "
          f"{'bootstrap':>9} {'zero-width':>10}")
    for n, worse, better in ((100, 0.01, 0.01), (100, 0.02, 0.0), (100, 0.03, 0.01),
                             (100, 0.0, 0.0),
                             (50, 0.02, 0.02), (300, 0.005, 0.005), (1000, 0.002, 0.001),
                             (100, 0.1, 0.1), (500, 0.05, 0.02)):
        truth = better - worse
        counts = rng.multinomial(n, [worse, better, 1 - worse - better], sims)
        tango, boot, zero, width = 0, 0, 0, []
        for w, b, _ in counts:
            low, high = M.paired_score_interval(int(w), int(b), n)
            tango += low <= truth <= high
            width.append(high - low)
            draws = rng.multinomial(n, np.array([w, n - w - b, b]) / n, 1000)
            blow, bhigh = np.quantile((draws[:, 2] - draws[:, 0]) / n, [0.025, 0.975])
            boot += blow <= truth <= bhigh
            zero += bhigh == blow
        print(f"{n:5d} {worse:8.3f} {better:9.3f} {tango / sims:7.3f} {np.mean(width):6.3f} "
              f"{boot / sims:9.3f} {zero / sims:10.3f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sims", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    mc = 1.96 * math.sqrt(0.95 * 0.05 / args.sims)
    print(f"{args.sims} simulations per row (Monte Carlo 95% margin on a 95% coverage: "
          f"±{mc:.3f})\n")
    ece_coverage(args.sims, rng)
    gate_false_fails(args.sims, rng)
    paired_coverage(args.sims, rng)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
