"""The release gate: error rates by simulation, Holm, outputs, and the command end to end.

Simulated runs are built in memory: each example's correctness under baseline and
candidate is drawn from known shares of (both right, baseline only, candidate only,
both wrong), so the truth of every rule is known.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from importlib.metadata import EntryPoint
from pathlib import Path
from statistics import NormalDist
from typing import Literal

import numpy as np
import pytest
import yaml
from pydantic import Field

import shiftbench.registry
from shiftbench.cli import main
from shiftbench.config import DetectorSpec, validate
from shiftbench.detectors import Detector, Score
from shiftbench.drift import drift_tests
from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import ScoredSplit
from shiftbench.gate import stats
from shiftbench.gate.outputs import junit_xml, markdown, table
from shiftbench.gate.policy import Policy, RuleBase, Setup, Trial, load_policy
from shiftbench.gate.rules import evaluate_gate
from shiftbench.gate.runs import Run
from shiftbench.metrics import Resampled, holm
from shiftbench.registry import DETECTORS, GATE_RULES, METRICS
from shiftbench.split import Split
from shiftbench.testing import check_gate_rule, check_metric

CLASSES = ["neg", "pos"]


def split_from(name: str, kind: str, y: np.ndarray, correct: np.ndarray) -> ScoredSplit:
    pred = np.where(correct, y, 1 - y)
    proba = np.where(pred[:, None] == np.arange(2), 0.8, 0.2)
    return ScoredSplit(name, kind, [f"e{i}" for i in range(len(y))], y, proba)


def make_run(label: str, splits: list[ScoredSplit], suite_hash: str = "h0", drift=None) -> Run:
    return Run(label, "sim", suite_hash, {"adapter": "sim", "fingerprint": label,
                                          "classes": CLASSES},
               {s.name: s for s in splits}, label, drift)


def paired(rng: np.random.Generator, n: int, acc: float, worse: float,
           better: float) -> tuple[np.ndarray, np.ndarray]:
    """Correctness of baseline and candidate: the baseline is right with probability acc;
    P(baseline only right) = worse, P(candidate only right) = better."""
    u = rng.random(n)
    both = acc - worse
    base = u < acc
    cand = (u < both) | ((u >= acc) & (u < acc + better))
    return base, cand


def simulate(rng: np.random.Generator, n: int, names: dict[str, str], acc: float = 0.8,
             worse: float = 0.1, better: float = 0.1,
             planted: dict[str, float] | None = None) -> tuple[Run, Run]:
    """Baseline and candidate runs over ``names`` (split -> kind); ``planted`` moves that
    much probability from "candidate only right" to "baseline only right" on a split."""
    y = rng.integers(0, 2, n)
    base_splits, cand_splits = [], []
    for name, kind in names.items():
        shift = (planted or {}).get(name, 0.0)
        base, cand = paired(rng, n, acc, worse + shift / 2, better - shift / 2)
        base_splits.append(split_from(name, kind, y, base))
        cand_splits.append(split_from(name, kind, y, cand))
    return make_run("baseline", base_splits), make_run("candidate", cand_splits)


def policy(*rules: dict, **fields) -> Policy:
    return Policy.model_validate({"rules": list(rules), **fields})


SPLITS = {"reference": "reference", "keyboard@1": "perturbation", "keyboard@3": "perturbation",
          "kitchen": "domain"}


def mc_bound(rate: float, sims: int, z: float = 3.0) -> float:
    """Monte Carlo slack: z standard errors of a rate estimated from ``sims`` draws."""
    return z * math.sqrt(rate * (1 - rate) / sims)


# --- statistics


def test_exact_binomial_floor_false_fails_at_most_alpha_and_keeps_its_power() -> None:
    rng = np.random.default_rng(1)
    n, floor, alpha, sims = 200, 0.75, 0.05, 4000
    at_floor = rng.binomial(n, floor, sims)
    rate = np.mean([stats.binomial_test(int(k), n, floor, ">=", alpha, alpha, 0.8).p_value
                    <= alpha for k in at_floor])
    assert rate <= alpha  # exact test: at the boundary the rate is at most alpha (no slack)
    promise = stats.binomial_test(150, n, floor, ">=", alpha, alpha, 0.8).detectable
    assert 0.03 < promise < 0.15
    below = rng.binomial(n, floor - promise, sims)
    caught = np.mean([stats.binomial_test(int(k), n, floor, ">=", alpha, alpha, 0.8).p_value
                      <= alpha for k in below])
    assert caught >= 0.8 - mc_bound(0.8, sims)


def test_mcnemar_power_formula_matches_simulation() -> None:
    rng = np.random.default_rng(2)
    n, share, a, sims = 300, 0.2, 0.01, 3000
    delta = 0.08
    promised = stats.mcnemar_power(n, share, delta, a)
    counts = rng.multinomial(n, [(share + delta) / 2, (share - delta) / 2, 1 - share], sims)
    caught = np.mean([stats.mcnemar_p(int(w), int(b)) <= a for w, b, _ in counts])
    assert abs(caught - promised) <= mc_bound(promised, sims)
    assert stats.mcnemar_power(n, share, 0.0, a) <= a  # the null: at most its level


# --- the gate on simulated runs


def test_false_fail_rate_on_equivalent_models_is_at_most_alpha() -> None:
    """Equal models (McNemar) and a candidate exactly at the margin (bootstrap) are both
    on the boundary of H0 for every check: the gate may fail them at most alpha of the time."""
    rng = np.random.default_rng(3)
    sims, alpha = 300, 0.05
    exact = policy({"kind": "non_inferiority", "split": "*"}, n_boot=200)
    at_margin = policy({"kind": "non_inferiority", "split": "*", "margin": 0.03}, n_boot=400)
    fails = {"mcnemar": 0, "bootstrap": 0}
    for _ in range(sims):
        base, cand = simulate(rng, 300, SPLITS)
        fails["mcnemar"] += evaluate_gate(exact, base, cand).status == "fail"
        base, cand = simulate(rng, 300, SPLITS, worse=0.115, better=0.085)  # Δ = -0.03
        fails["bootstrap"] += evaluate_gate(at_margin, base, cand).status == "fail"
    for rate in (fails["mcnemar"] / sims, fails["bootstrap"] / sims):
        assert rate <= alpha + mc_bound(alpha, sims)



def calibration_run(rng: np.random.Generator, n: int, gap: float) -> Run:
    """A one-split run whose confidence c ~ U(0.5, 1) is right with probability c + gap:
    its true ECE is |gap| in every bin."""
    conf = rng.uniform(0.5, 1.0, n)
    y = np.where(rng.random(n) < conf + gap, 0, 1)
    proba = np.column_stack([conf, 1 - conf])
    return make_run("c", [ScoredSplit("reference", "reference", [f"e{i}" for i in range(n)], y,
                                    proba)])


@pytest.mark.parametrize(("n", "gap"), [(100, 0.0), (200, 0.0), (500, -0.05), (500, 0.05)])
def test_ece_ceiling_false_fails_at_most_alpha(n, gap):
    """A calibrated model, and one exactly at the ceiling, satisfy `ece <= 0.05`: failed
    at most alpha of the time (the plug-in's bootstrap failed them 41-100%)."""
    rng = np.random.default_rng(10)
    rule, sims = policy({"kind": "absolute", "metric": "ece", "max": 0.05}), 300
    fails = [evaluate_gate(rule, run, run).status == "fail"
             for run in (calibration_run(rng, n, gap) for _ in range(sims))]
    assert np.mean(fails) <= 0.05 + mc_bound(0.05, sims)


def test_ece_ceiling_keeps_its_promised_power():
    rng = np.random.default_rng(11)
    rule, n, sims = policy({"kind": "absolute", "metric": "ece", "max": 0.05}), 2000, 300
    gap = 0.1
    for _ in range(3):  # the promise is made from the data's spread: take it at the violation
        run = calibration_run(np.random.default_rng(0), n, -gap)
        verdict = evaluate_gate(rule, run, run).verdicts[0]
        gap = 0.05 + verdict.detectable
    assert verdict.method == "debiased ECE, worst-case bias bound"
    assert verdict.low <= verdict.estimate <= verdict.high
    caught = np.mean([evaluate_gate(rule, run, run).status == "fail"
                      for run in (calibration_run(rng, n, -gap) for _ in range(sims))])
    assert caught >= 0.8 - mc_bound(0.8, sims)


def test_the_ece_change_interval_stays_within_eces_range() -> None:
    """One row each side: the normal bounds alone would pass +1."""
    from shiftbench.metrics import calibration_gap

    before = calibration_gap(np.array([[0.6, 0.4]]), np.array([0]))
    after = calibration_gap(np.array([[0.95, 0.05]]), np.array([1]))
    assert after.plug_in - before.plug_in + before.max_bias > 0.9  # + z * sd passes 1
    change = stats.ece_change_test(before, after, 0.0, 0.05, None, 0.8, paired=True)
    assert -1 <= change.low <= change.value <= change.high == 1.0


def overconfident_proba(rng: np.random.Generator, conf: np.ndarray, gap) -> np.ndarray:
    """Probabilities for rows of label 0 from a model with confidence ``conf`` that is right
    with probability conf + gap(conf)."""
    right = rng.random(len(conf)) < conf + gap(conf)
    p_label = np.where(right, conf, 1 - conf)
    return np.column_stack([p_label, 1 - p_label])


def test_ece_change_false_fails_at_most_alpha_where_bias_differs_between_sides():
    """The candidate is better calibrated (true ECE 0.04 < 0.05) but only its top bins are
    off, so its other bins keep the most upward bias: a bootstrap of the debiased
    difference failed it 9% of the time at alpha 5%. Also the robustness rule on a domain
    split (unpaired: the reference overconfident everywhere, the domain in a few bins)."""
    rng = np.random.default_rng(12)
    everywhere, top_bins = (lambda c: -0.05 + 0 * c), (lambda c: np.where(c > 0.9, -0.2, 0.0))
    n, sims = 2000, 1000  # enough to tell 9% from 5%
    ids = [f"e{i}" for i in range(n)]
    y = np.zeros(n, dtype=np.int64)
    rules = policy({"kind": "non_inferiority", "metric": "ece", "split": "reference"},
                   {"kind": "robustness", "metric": "ece", "split": "kitchen", "max_drop": 0})
    fails = {"non_inferiority": 0, "robustness": 0}
    for _ in range(sims):
        conf = rng.uniform(0.5, 1.0, n)
        reference = overconfident_proba(rng, conf, everywhere)
        base = make_run("b", [ScoredSplit("reference", "reference", ids, y, reference),
                              ScoredSplit("kitchen", "domain", ids, y, reference)])
        cand = make_run("c", [
            ScoredSplit("reference", "reference", ids, y, overconfident_proba(rng, conf, top_bins)),
            ScoredSplit("kitchen", "domain", ids, y,
                      overconfident_proba(rng, rng.uniform(0.5, 1.0, n), top_bins))])
        result = evaluate_gate(rules, base, cand)
        for v in result.verdicts:
            fails[v.kind] += v.status == "fail"
            assert v.method == "debiased ECE change, worst-case bias bound"
            assert v.low <= v.estimate <= v.high
    for count in fails.values():
        assert count / sims <= 0.05 + mc_bound(0.05, sims)

@pytest.mark.parametrize(("margin", "method"), [(0.0, "exact McNemar"),
                                                (0.02, "paired score (Tango)")])
def test_planted_regression_fails_exactly_its_rule_with_the_promised_power(margin, method):
    rng = np.random.default_rng(4)
    rules = policy(
        {"name": "floor", "kind": "absolute", "min": 0.6},
        {"name": "no worse", "kind": "non_inferiority", "split": "*", "margin": margin},
        {"name": "robust", "kind": "robustness", "max_drop": 0.3},
        {"name": "stable", "kind": "flip_rate", "split": "keyboard@*", "max": 0.6},
        n_boot=1000)
    # The promise, on data whose discordant share is the truth (0.2), at level alpha / 10.
    base, cand = simulate(np.random.default_rng(0), 400, SPLITS)
    verdicts = evaluate_gate(rules, base, cand).verdicts
    target = next(v for v in verdicts if v.rule == "no worse" and v.split == "keyboard@3")
    assert target.family_size == 1 + 4 + 3 + 2 and target.method == method
    if method == "exact McNemar":
        promised = stats.mcnemar_power(400, 0.2, target.detectable, 0.05 / 10)
        assert promised == pytest.approx(0.8, abs=0.01)
    sims, caught, others = 300, 0, 0
    for _ in range(sims):
        base, cand = simulate(rng, 400, SPLITS,
                              planted={"keyboard@3": margin + target.detectable})
        result = evaluate_gate(rules, base, cand)
        failing = {(v.rule, v.split) for v in result.verdicts if v.status == "fail"}
        caught += ("no worse", "keyboard@3") in failing
        others += bool(failing - {("no worse", "keyboard@3")})
    assert caught / sims >= 0.8 - mc_bound(0.8, sims)
    assert others / sims <= 0.05 + mc_bound(0.05, sims)  # Holm: the checks that hold


def test_verdicts_carry_holm_and_reasons() -> None:
    rng = np.random.default_rng(5)
    base, cand = simulate(rng, 400, SPLITS, planted={"keyboard@1": 0.12, "keyboard@3": 0.12})
    rules = policy({"name": "no worse", "kind": "non_inferiority", "split": "*"},
                   {"name": "drop", "kind": "robustness", "max_drop": 0.0, "severity": "warn"},
                   n_boot=500)
    result = evaluate_gate(rules, base, cand)
    fail_family = [v for v in result.verdicts if v.severity == "fail"]
    assert [v.p_adjusted for v in fail_family] == pytest.approx(
        holm([v.p_value for v in fail_family]))
    bad = {v.split for v in fail_family if v.status == "fail"}
    assert bad == {"keyboard@1", "keyboard@3"} and result.status == "fail"
    for v in fail_family:
        assert v.method == "exact McNemar" and v.low <= v.estimate <= v.high
        if v.status == "fail":
            assert "worse than the baseline" in v.reason and "Holm p" in v.reason
    warns = [v for v in result.verdicts if v.severity == "warn"]
    assert len(warns) == 3 and all(v.status in ("pass", "warn") for v in warns)
    assert result.exit_code == 1


def test_not_significant_after_holm_passes_and_says_so() -> None:
    # Two checks whose raw one-sided p-values are both below alpha but not below alpha/2.
    y = np.zeros(200, dtype=np.int64)
    base_ok, cand_ok = np.ones(200, bool), np.ones(200, bool)
    cand_ok[:11] = False  # 11 worse pairs, 2 better: P(X >= 11 | 13, 1/2) = 0.0112
    base_ok[11:13] = False
    splits = {"reference": "reference", "ocr@1": "perturbation"}
    base = make_run("b", [split_from(s, k, y, base_ok) for s, k in splits.items()])
    cand = make_run("c", [split_from(s, k, y, cand_ok) for s, k in splits.items()])
    result = evaluate_gate(policy({"kind": "non_inferiority", "split": "*"}, alpha=0.02,
                                  n_boot=200), base, cand)
    for v in result.verdicts:
        assert v.p_value == pytest.approx(0.01123, abs=1e-4)
        assert v.p_adjusted == pytest.approx(2 * v.p_value)
        assert v.status == "pass" and "not significant after Holm over 2 checks" in v.reason
    assert result.status == "pass"


def test_point_decisions_ignore_noise_controls() -> None:
    y = np.zeros(100, dtype=np.int64)
    right = np.arange(100) >= 31  # 69% right
    run = make_run("c", [split_from("reference", "reference", y, right)])
    test = evaluate_gate(policy({"kind": "absolute", "min": 0.7}), run, run).verdicts[0]
    point = evaluate_gate(policy({"kind": "absolute", "min": 0.7, "decide": "point"}),
                          run, run).verdicts[0]
    assert test.status == "pass" and "within noise" in test.reason
    assert point.status == "fail" and point.p_adjusted is None and point.family_size == 0


def test_warnings_never_fail_the_gate() -> None:
    rng = np.random.default_rng(8)
    base, cand = simulate(rng, 300, SPLITS)
    result = evaluate_gate(policy({"kind": "flip_rate", "max": 0.02, "severity": "warn"},
                                  {"kind": "absolute", "min": 0.5}), base, cand)
    assert result.count("warn") == 2 and result.count("fail") == 0  # flips ~20% > 2%
    assert result.status == "pass" and result.exit_code == 0


def test_runs_pair_only_on_the_same_suite_and_examples() -> None:
    y = np.zeros(10, dtype=np.int64)
    ok = np.ones(10, bool)
    base = make_run("b", [split_from("reference", "reference", y, ok)])
    rules = policy({"kind": "non_inferiority"})
    other_suite = make_run("c", [split_from("reference", "reference", y, ok)], suite_hash="h1")
    with pytest.raises(ShiftbenchError, match="different suite specs"):
        evaluate_gate(rules, base, other_suite)
    fewer = split_from("reference", "reference", y[:8], ok[:8])
    with pytest.raises(ShiftbenchError, match="different examples .*--limit"):
        evaluate_gate(rules, base, make_run("c", [fewer]))
    relabelled = split_from("reference", "reference", 1 - y, ok)
    with pytest.raises(ShiftbenchError, match="disagree on labels"):
        evaluate_gate(rules, base, make_run("c", [relabelled]))
    texts = [ScoredSplit(s.name, s.kind, s.ids, s.y, s.proba, [f"t{i}" for i in range(10)])
             for s in base.splits.values()]
    edited = [ScoredSplit(s.name, s.kind, s.ids, s.y, s.proba, ["x"] + (s.texts or [])[1:])
              for s in texts]
    with pytest.raises(ShiftbenchError, match="1 of 10 examples have different texts"):
        evaluate_gate(rules, make_run("b", texts), make_run("c", edited))


def test_too_few_resamples_for_the_family_is_an_error() -> None:
    base, cand = simulate(np.random.default_rng(9), 50, SPLITS)
    rules = policy({"kind": "non_inferiority", "split": "*", "margin": 0.01}, alpha=0.01,
                   n_boot=200)  # 1/201 > 0.01/4: no check could ever fail
    with pytest.raises(ShiftbenchError, match="n_boot: 200 resamples .* use at least 400"):
        evaluate_gate(rules, base, cand)


def test_other_metrics_use_the_paired_bootstrap() -> None:
    rng = np.random.default_rng(6)
    base, cand = simulate(rng, 300, SPLITS, planted={"kitchen": 0.16})
    rules = policy({"kind": "non_inferiority", "metric": "macro_f1", "split": "*",
                    "margin": 0.02},
                   {"kind": "absolute", "metric": "ece", "max": 0.5, "split": "kitchen"},
                   n_boot=1000)
    result = evaluate_gate(rules, base, cand)
    f1 = {v.split: v for v in result.verdicts if v.metric == "macro_f1"}
    assert all(v.method == "paired bootstrap" for v in f1.values())
    assert f1["kitchen"].status == "fail" and f1["kitchen"].estimate < -0.1
    assert {s for s, v in f1.items() if v.status == "fail"} == {"kitchen"}
    (ece,) = [v for v in result.verdicts if v.metric == "ece"]
    assert ece.method == "debiased ECE, worst-case bias bound" and ece.status == "pass"
    assert ece.low <= ece.estimate <= ece.high


def test_drift_rules_read_the_candidate_run() -> None:
    y = np.zeros(50, dtype=np.int64)
    ok = np.ones(50, bool)
    drift = {"synonym@2": [{"method": "mmd", "statistic": 0.3, "p_value": 0.001,
                            "drifted": True, "n_sample": 25}],
             "ocr@2": [{"method": "mmd", "statistic": 0.01, "p_value": 0.6,
                        "drifted": False, "n_sample": 25}]}
    splits = [split_from(n, k, y, ok) for n, k in
              (("reference", "reference"), ("synonym@2", "perturbation"),
               ("ocr@2", "perturbation"))]
    run = make_run("c", splits, drift=drift)
    result = evaluate_gate(policy({"kind": "drift", "detector": "mmd"}), run, run)
    assert {v.split: v.status for v in result.verdicts} == {"synonym@2": "fail",
                                                             "ocr@2": "pass"}
    with pytest.raises(ShiftbenchError, match="rules.0.detector: .* has none named 'bbsd'"):
        evaluate_gate(policy({"kind": "drift", "detector": "bbsd"}), run, run)


# --- outputs


def small_result():
    rng = np.random.default_rng(7)
    base, cand = simulate(rng, 300, SPLITS, planted={"keyboard@3": 0.2})
    rules = policy({"name": "no worse", "kind": "non_inferiority", "split": "*"},
                   {"name": "flips", "kind": "flip_rate", "split": "keyboard@*", "max": 0.05,
                    "severity": "warn"},
                   n_boot=200)
    return evaluate_gate(rules, base, cand)


def test_junit_xml_has_one_testcase_per_check_and_marks_failures() -> None:
    result = small_result()
    root = ET.fromstring(junit_xml(result))
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(result.verdicts) == int(suite.get("tests")) == int(root.get("tests"))
    failed = [c for c in cases if c.find("failure") is not None]
    assert len(failed) == result.count("fail") == int(suite.get("failures")) >= 1
    assert [c.get("name") for c in failed] == ["no worse [keyboard@3]"]
    assert len({c.get("name") for c in cases}) == len(cases)
    for case in cases:
        assert case.get("classname") and float(case.get("time")) >= 0
        assert case.find("failure") is not None or case.find("system-out") is not None
    assert failed[0].find("failure").get("message").startswith("the candidate's accuracy")
    warned = [c for c in cases if c.find("system-out") is not None
              and c.find("system-out").text.startswith("WARN")]
    assert len(warned) == result.count("warn") >= 1


def test_table_and_markdown_show_every_check_on_one_line() -> None:
    result = small_result()
    text = table(result)
    assert text.splitlines()[0].startswith("gate FAIL: 1 of")
    for v in result.verdicts:
        (line,) = [ln for ln in text.splitlines() if f"{v.rule}  " in ln and f" {v.split} " in ln]
        assert v.status.upper() in line and v.reason in line
    md = markdown(result)
    rows = [ln for ln in md.splitlines() if ln.startswith("| ") and "❌" in ln]
    assert len(rows) == 1 and "keyboard@3" in rows[0] and "pp" in rows[0]


def test_outputs_name_models_as_given_and_warn_of_one_class_predictions() -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    base = make_run("baseline", [split_from("reference", "reference", y, rng.random(200) < 0.8)])
    constant = split_from("reference", "reference", y, y == 1)  # predicts 'pos' every time
    model = {"adapter": "sklearn", "spec": "models/new.yaml", "seed": 2, "train_fraction": 0.9,
             "fingerprint": "sklearn-026521b3aaaa", "classes": CLASSES}
    cand = Run("candidate", "sim", "h0", model, {"reference": constant}, "candidate")
    result = evaluate_gate(policy({"name": "floor", "kind": "absolute", "min": 0.4}), base, cand)
    label = "models/new.yaml (seed 2, train_fraction 0.9; sklearn-026521b3)"
    warning = "candidate reference: the model predicted 'pos' for 200 of 200 examples"
    text = table(result)
    assert f"candidate {label} vs baseline" in text.splitlines()[0]
    assert text.splitlines()[1].startswith(f"warning: {warning}")
    assert f"- {warning}" in markdown(result)
    assert f"warning: {warning}" in junit_xml(result)
    assert result.to_dict()["candidate"]["warnings"]["reference"][0].startswith(
        warning.removeprefix("candidate reference: "))
    assert result.to_dict()["baseline"]["warnings"] == {}


# --- policy files


@pytest.mark.parametrize(
    ("policy_yaml", "expected"),
    [
        ({"rules": [{"kind": "absolute", "min": 0.7, "splt": "x"}]},
         "rules.0.splt: unknown field (did you mean 'split'?)"),
        ({"rules": [{"kind": "floor", "min": 0.7}]}, "rules.0: each rule needs a kind"),
        ({"rules": [{"kind": "absolute", "min": 0.7, "max": 0.9}]}, "exactly one of min, max"),
        ({"rules": [{"kind": "absolute", "metric": "acc", "min": 0.7}]}, "metric"),
        ({"rules": [{"kind": "non_inferiority", "margin": 0.01, "method": "mcnemar"}]},
         "mcnemar tests accuracy with margin 0"),
        ({"rules": []}, "rules"),
        ({"alpha": 0.7, "rules": [{"kind": "flip_rate", "max": 0.1}]}, "alpha"),
        ({"rules": [{"kind": "flip_rate", "max": 0.1, "name": "a"},
                    {"kind": "flip_rate", "max": 0.2, "name": "a"}]}, "repeated: a"),
        # strict types
        ({"alpha": "0.05", "rules": [{"kind": "flip_rate", "max": 0.1}]},
         "alpha: Input should be a valid number (got '0.05')"),
        ({"n_boot": True, "rules": [{"kind": "flip_rate", "max": 0.1}]},
         "n_boot: Input should be a valid integer (got True)"),
        ({"rules": [{"kind": "robustness", "max_drop": "0.02"}]},
         "rules.0.max_drop: Input should be a valid number (got '0.02')"),
        # a typo is named first (not hidden behind the missing field it causes)
        ({"rules": [{"kind": "robustness", "max_dorp": 0.02}]},
         "rules.0.max_dorp: unknown field (did you mean 'max_drop'?) (+1 more)"),
        ({"rules": [{"kind": "absolute", "min": 0.7, "severity": "fial"}]},
         "rules.0.severity: Input should be 'fail' or 'warn' (got 'fial')"),
        # thresholds that could never be crossed, by the metric's bounds in the metric table
        ({"rules": [{"kind": "absolute", "min": 1.5}]},
         "rules.0.min: a bound on accuracy lies strictly between 0 and 1"),
        ({"rules": [{"kind": "non_inferiority", "margin": 2}]},
         "rules.0.margin: margin on accuracy must be below 1, the whole range of accuracy (0 to "
         "1): no change is larger, so the rule could never fail"),
        ({"rules": [{"kind": "robustness", "max_drop": 1}]},
         "rules.0.max_drop: max_drop on accuracy must be below 1, the whole range"),
        ({"rules": [{"kind": "non_inferiority", "metric": "ece", "margin": 1.0}]},
         "rules.0.margin: margin on ece must be below 1"),
        ({"rules": [{"kind": "non_inferiority", "metric": "chrf", "margin": 100}]},
         "rules.0.margin: margin on chrf must be below 100, the whole range of chrf (0 to 100)"),
        ({"rules": [{"kind": "robustness", "metric": "nll", "max_drop": math.inf}]},
         "rules.0.max_drop: max_drop on nll must be below inf"),
        ({"rules": [{"kind": "non_inferiority", "margin": -0.02}]},
         "rules.0.margin: Input should be greater than or equal to 0 (got -0.02)"),
    ],
)
def test_bad_policies_are_one_line_errors(tmp_path: Path, policy_yaml, expected) -> None:
    path = tmp_path / "p.gate.yaml"
    path.write_text(yaml.safe_dump(policy_yaml))
    with pytest.raises(ShiftbenchError) as info:
        load_policy(path)
    assert str(info.value).startswith(str(path)) and expected in str(info.value)
    assert "\n" not in str(info.value)


def test_allowances_short_of_the_metric_range_load(tmp_path: Path) -> None:
    """The refusal above is the metric's own range, not a fixed cap: chrF runs to 100, NLL
    has no top."""
    path = tmp_path / "p.gate.yaml"
    path.write_text(yaml.safe_dump({"rules": [
        {"kind": "non_inferiority", "margin": 0.99},
        {"kind": "non_inferiority", "metric": "chrf", "margin": 99},
        {"kind": "robustness", "metric": "nll", "max_drop": 50}]}))
    assert [rule.allowed for rule in load_policy(path).rules] == [0.99, 99, 50]


def test_policy_reads_exponents_and_refuses_duplicate_keys(tmp_path: Path) -> None:
    path = tmp_path / "p.gate.yaml"
    path.write_text("alpha: 1e-2\nrules:\n  - {kind: flip_rate, max: 0.1}\n")
    assert load_policy(path).alpha == 0.01
    path.write_text("alpha: 0.01\nrules:\n  - {kind: flip_rate, max: 0.1}\nalpha: 0.2\n")
    with pytest.raises(ShiftbenchError, match=r"p.gate.yaml: line 4: duplicate key 'alpha' "
                                              r"\(first at line 1\)"):
        load_policy(path)


def test_example_policy_loads_and_names_its_suite() -> None:
    root = Path(__file__).parents[1]
    example = load_policy(root / "suites" / "amazon-domains.gate.yaml")
    assert example.suite == "amazon-domains.yaml"
    assert (root / "suites" / example.suite).is_file()
    assert len(set(example.rule_names())) == len(example.rules)


# --- the command end to end on a tiny suite (real runs, sklearn:tfidf)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny suite, three models run on it (two alike, one crippled), and a policy."""
    root = tmp_path_factory.mktemp("gate")
    words = {"pos": ["great", "lovely", "excellent", "superb"],
             "neg": ["awful", "boring", "terrible", "dreadful"]}
    rows = []
    for i in range(400):
        label = ("pos", "neg")[i % 2]
        text = f"item {i} was {words[label][i % 4]} and {words[label][i // 4 % 4]}"
        rows.append({"id": f"r{i}", "text": text, "label": label})
    (root / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = {"name": "tiny", "seed": 1, "data": {"kind": "jsonl", "path": "data.jsonl"},
             "train": {"portion": [0, 0.5]}, "reference": {"portion": [0.5, 1]},
             "shifts": [{"shift": "keyboard", "severity": [2]}]}
    (root / "tiny.yaml").write_text(yaml.safe_dump(suite))
    (root / "alike.yaml").write_text("adapter: sklearn\nsource: tfidf\nC: 0.8\n")
    (root / "crippled.yaml").write_text("adapter: sklearn\nsource: tfidf\nmax_features: 1\n")
    paths = {"root": root, "suite": root / "tiny.yaml"}
    for name, spec in (("base", "sklearn:tfidf"), ("alike", str(root / "alike.yaml")),
                       ("crippled", str(root / "crippled.yaml"))):
        assert main(["run", str(paths["suite"]), "--model", spec, "--reports-dir",
                     str(root / "reports"), "--run-id", name, "--no-progress",
                     "--no-movement"]) == 0
        paths[name] = root / "reports" / "tiny" / name
    policy_doc = {"suite": "tiny.yaml", "rules": [
        {"name": "clean floor", "kind": "absolute", "min": 0.6},
        {"name": "no worse", "kind": "non_inferiority", "split": "*", "margin": 0.02},
        {"name": "typo flips", "kind": "flip_rate", "split": "keyboard@*", "max": 0.3,
         "severity": "warn"}]}
    paths["policy"] = root / "tiny.gate.yaml"
    paths["policy"].write_text(yaml.safe_dump(policy_doc))
    return paths


def gate(tiny: dict[str, Path], *args: str) -> int:
    return main(["gate", str(tiny["policy"]), *args])


def test_gate_passes_alike_models_and_writes_outputs(tiny, capsys) -> None:
    out = tiny["root"] / "out-pass"
    assert gate(tiny, "--baseline", str(tiny["base"]), "--candidate", str(tiny["alike"]),
                "--out", str(out)) == 0
    printed = capsys.readouterr().out
    assert "gate PASS" in printed and f"junit: {out / 'junit.xml'}" in printed
    report = json.loads((out / "gate.json").read_text())
    assert report["status"] == "pass" and report["counts"]["fail"] == 0
    assert {v["rule"] for v in report["verdicts"]} == {"clean floor", "no worse", "typo flips"}
    assert ET.parse(out / "junit.xml").getroot().tag == "testsuites"
    assert (out / "gate.md").read_text().startswith("## ✅")


def test_gate_fails_a_crippled_candidate_with_exit_1(tiny, capsys) -> None:
    assert gate(tiny, "--baseline", str(tiny["base"]), "--candidate",
                str(tiny["crippled"])) == 1
    report = json.loads((tiny["crippled"] / "gate" / "gate.json").read_text())
    failing = {(v["rule"], v["split"]) for v in report["verdicts"] if v["status"] == "fail"}
    assert ("no worse", "keyboard@2") in failing and ("clean floor", "reference") in failing
    assert "gate FAIL" in capsys.readouterr().out


def test_gate_runs_model_specs_on_the_policy_suite(tiny, capsys) -> None:
    reports = tiny["root"] / "reports-models"
    code = gate(tiny, "--baseline-model", "sklearn:tfidf", "--candidate-model",
                str(tiny["root"] / "crippled.yaml"), "--reports-dir", str(reports),
                "--no-progress", "--no-movement")
    assert code == 1
    (candidate,) = [d for d in (reports / "tiny").iterdir() if "sklearn" in d.name
                    and (d / "gate" / "gate.json").exists()]
    assert json.loads((candidate / "gate" / "gate.json").read_text())["status"] == "fail"
    assert "baseline: " in capsys.readouterr().err


def test_gate_of_a_model_against_itself_passes(tiny, capsys) -> None:
    reports = tiny["root"] / "reports-self"
    assert gate(tiny, "--baseline-model", "sklearn:tfidf", "--candidate-model", "sklearn:tfidf",
                "--reports-dir", str(reports), "--no-progress", "--no-movement") == 0
    runs = sorted(d.name for d in (reports / "tiny").iterdir())
    assert len(runs) == 2 and runs[1] == f"{runs[0]}-candidate"
    assert "gate PASS: 0 of" in capsys.readouterr().out


def write_policy(tiny, rules: list[dict], **fields) -> Path:
    path = tiny["root"] / "bad.gate.yaml"
    path.write_text(yaml.safe_dump({"rules": rules, **fields}))
    return path


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"rules": [{"kind": "absolute", "min": 0.7, "split": "keyboard@5"}]},
         "rules.0.split: no split 'keyboard@5' in the runs (splits: reference, keyboard@2)"),
        ({"rules": [{"kind": "robustness", "max_drop": 0.1, "split": "ocr@*"}]},
         "rules.0.split: 'ocr@*' matches no split"),
        ({"rules": [{"kind": "flip_rate", "max": 0.1, "split": "reference"}]},
         "flip rates need a perturbation"),
        ({"rules": [{"kind": "drift", "detector": "mmd"}]}, "no drift results"),
        ({"rules": [{"kind": "absolute", "min": 0.7, "metric": "recall"}]}, "rules.0"),
        ({"rules": [{"kind": "absolute", "min": 0.7, "severty": "warn"}]}, "unknown field"),
        ({"rules": [{"kind": "non_inferiority", "margin": 2}]},
         "rules.0.margin: margin on accuracy must be below 1"),
    ],
)
def test_bad_rules_exit_2_naming_the_field(tiny, capsys, change, expected) -> None:
    path = write_policy(tiny, **change)
    assert main(["gate", str(path), "--baseline", str(tiny["base"]), "--candidate",
                 str(tiny["alike"])]) == 2
    err = capsys.readouterr().err
    assert err.startswith("shiftbench: error: ") and expected in err


def test_bad_inputs_exit_2(tiny, capsys) -> None:
    assert gate(tiny, "--candidate", str(tiny["alike"])) == 2
    assert "missing baseline: give --baseline RUN_DIR or --baseline-model" in \
        capsys.readouterr().err
    assert gate(tiny, "--baseline", str(tiny["root"] / "nope"), "--candidate",
                str(tiny["alike"])) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert gate(tiny, "--baseline", str(tiny["root"] / "nope"), "--candidate-model",
                "sklearn:tfidf", "--reports-dir", str(tiny["root"] / "unused")) == 2
    assert "run directory not found" in capsys.readouterr().err
    assert not (tiny["root"] / "unused").exists()  # failed before running the candidate
    # a run of another suite spec (same data, one more shift)
    spec = yaml.safe_load(tiny["suite"].read_text())
    spec["shifts"].append({"shift": "ocr"})
    other = tiny["root"] / "other.yaml"
    other.write_text(yaml.safe_dump(spec))
    assert main(["run", str(other), "--model", "sklearn:tfidf", "--reports-dir",
                 str(tiny["root"] / "reports"), "--run-id", "other", "--no-progress",
                 "--no-movement"]) == 0
    capsys.readouterr()
    plain = write_policy(tiny, [{"kind": "absolute", "min": 0.6}])
    assert main(["gate", str(plain), "--baseline", str(tiny["base"]), "--candidate",
                 str(tiny["root"] / "reports" / "tiny" / "other")]) == 2
    assert "come from different suite specs" in capsys.readouterr().err
    assert gate(tiny, "--suite", str(other), "--baseline-model", "sklearn:tfidf",
                "--candidate-model", "sklearn:tfidf") == 2
    assert f"--suite: {other} is not the suite" in capsys.readouterr().err
    # the policy's own suite: runs must be of its current spec
    assert gate(tiny, "--baseline", str(tiny["root"] / "reports" / "tiny" / "other"),
                "--candidate", str(tiny["root"] / "reports" / "tiny" / "other")) == 2
    assert "suite: run" in capsys.readouterr().err


def test_a_given_run_is_checked_against_the_suite_before_any_model_runs(tiny, capsys) -> None:
    """A stored run of another suite spec, or one with more examples on a split than the
    run to be made evaluates, is refused at once: the other side's model is never loaded
    (a missing model file would be another error) and no run folder is made."""
    plain = write_policy(tiny, [{"kind": "absolute", "min": 0.6}])
    spec = {**yaml.safe_load(tiny["suite"].read_text()), "seed": 2}
    reseeded = tiny["root"] / "reseeded.yaml"
    reseeded.write_text(yaml.safe_dump(spec))
    missing, reports = str(tiny["root"] / "no-such-model.yaml"), tiny["root"] / "unrun"
    assert main(["gate", str(plain), "--suite", str(reseeded), "--baseline-model", missing,
                 "--candidate", str(tiny["alike"]), "--reports-dir", str(reports)]) == 2
    assert (f"error: baseline run of {reseeded} and candidate {tiny['alike']} come from "
            "different suite specs") in capsys.readouterr().err
    assert main(["gate", str(plain), "--suite", str(tiny["suite"]), "--baseline",
                 str(tiny["base"]), "--candidate-model", missing, "--limit", "50",
                 "--reports-dir", str(reports)]) == 2
    n = json.loads((tiny["base"] / "report.json").read_text())["splits"][0]["n"]
    assert (f"error: baseline {tiny['base']}: split 'reference' has {n} examples, more than "
            f"the run of {tiny['suite']} evaluates (limit 50); run both with the same --limit"
            ) in capsys.readouterr().err
    assert not reports.exists()
    # a run that pairs passes the checks: the other side runs and is gated against it
    assert main(["gate", str(plain), "--suite", str(tiny["suite"]), "--baseline",
                 str(tiny["base"]), "--candidate-model", str(tiny["root"] / "alike.yaml"),
                 "--limit", str(n), "--reports-dir", str(reports), "--no-progress",
                 "--no-movement"]) == 0
    assert "gate PASS" in capsys.readouterr().out


# --- plug-ins: a rule kind, a metric and a detector found through their entry-point groups


class ConfidentShare(RuleBase):
    """At least ``min`` of the candidate's predictions on a split have a top probability
    of ``confidence`` or more (a plug-in rule kind for these tests)."""

    kind: Literal["confident_share"]
    min: float = Field(gt=0, lt=1)
    confidence: float = 0.9

    def ineligible(self, split: ScoredSplit, candidate: Run) -> str | None:
        return "other domains are not checked" if split.kind == "domain" else None

    def setup(self, split: str, candidate: Run, where: str) -> Setup:
        return Setup("confident share", "%", ">=", self.min)

    def evidence(self, trial: Trial) -> stats.Evidence:
        split = trial.candidate.splits[trial.split]
        confident = int(np.sum(split.proba.max(axis=1) >= self.confidence))
        return stats.binomial_test(confident, len(split.ids), self.min, ">=", trial.alpha,
                                   trial.a, trial.power)

    def violation(self, split: str, setup: Setup) -> str:
        return f"fewer than {setup.threshold:.0%} of the predictions on {split} are confident"


class Brier(Resampled):
    """Brier score: mean squared distance of the probabilities from the one-hot label (a
    plug-in metric for these tests)."""

    name = "brier"
    label = "Brier"
    higher_is_better = False
    bounds = (0.0, 2.0)

    def stat(self, proba: np.ndarray, y: np.ndarray):
        loss = ((proba - np.eye(proba.shape[1])[y]) ** 2).sum(axis=1)
        return lambda idx: loss[idx].mean(axis=1)


class MeanShift(Detector):
    """z-test of the first feature's mean; its results name the method otherwise than the
    suite names the detector, as Evidently's do (a plug-in detector for these tests)."""

    name = "mean_shift"

    @property
    def method_name(self) -> str:
        return "mean_shift:z"

    def _score(self, sample: np.ndarray) -> Score:
        ref, cur = self.reference_[:, 0], sample[:, 0]
        se = math.sqrt(ref.var(ddof=1) / len(ref) + cur.var(ddof=1) / len(cur))
        z = abs(cur.mean() - ref.mean()) / se
        return Score(float(z), 2 * NormalDist().cdf(-z), {})


@pytest.fixture
def plugins(monkeypatch) -> None:
    """This module's plug-ins, registered through entry points as an installed package's
    would be (and gone after the test)."""
    found = {registry.group: [EntryPoint(name, f"{__name__}:{cls.__name__}", registry.group)]
             for registry, name, cls in ((GATE_RULES, "confident_share", ConfidentShare),
                                         (METRICS, "brier", Brier),
                                         (DETECTORS, "mean_shift", MeanShift))}
    monkeypatch.setattr(shiftbench.registry, "entry_points", lambda group: found.get(group, []))
    for registry in (GATE_RULES, METRICS, DETECTORS):
        monkeypatch.setattr(registry, "_targets", dict(registry._targets))
        monkeypatch.setattr(registry, "_plugins_read", False)


def test_a_plugin_rule_kind_is_checked_like_the_builtins(plugins) -> None:
    check_gate_rule("confident_share", ConfidentShare)
    base, cand = simulate(np.random.default_rng(3), 100, SPLITS)  # top probability 0.8
    result = evaluate_gate(policy({"kind": "confident_share", "min": 0.5, "split": "*"},
                                  {"kind": "confident_share", "min": 0.5, "confidence": 0.75,
                                   "split": "*"}), base, cand)
    assert [(v.rule, v.split, v.status) for v in result.verdicts] == [
        (f"confident_share confident_share #{i}", split, status)
        for i, status in ((0, "fail"), (1, "pass"))
        for split in ("reference", "keyboard@1", "keyboard@3")]
    failed = result.verdicts[0]
    assert failed.method == "exact binomial" and failed.estimate == 0.0
    assert "fewer than 50% of the predictions on reference are confident" in failed.reason
    assert 'classname="shiftbench.gate.confident_share"' in junit_xml(result)
    with pytest.raises(ShiftbenchError, match="rules.0.split: 'kitchen': other domains"):
        evaluate_gate(policy({"kind": "confident_share", "min": 0.5, "split": "kitchen"}),
                      base, cand)
    with pytest.raises(ShiftbenchError, match=r"rules.0.confidance: unknown field \(did you "
                                              r"mean 'confidence'\?\)"):
        validate(Policy, {"rules": [{"kind": "confident_share", "min": 0.5,
                                     "confidance": 0.7}]}, "p")
    with pytest.raises(ShiftbenchError, match=r"rules.0: each rule needs a kind: absolute \| "
                                              r"confident_share .*did you mean 'confident_share'"):
        validate(Policy, {"rules": [{"kind": "confident_shares", "min": 0.5}]}, "p")


def test_a_plugin_metric_works_in_a_suite_its_report_and_the_gate(plugins, tiny,
                                                                   capsys) -> None:
    check_metric("brier", Brier)
    root = tiny["root"]
    spec = {**yaml.safe_load(tiny["suite"].read_text()), "metrics": ["accuracy", "brier"]}
    (root / "brier.yaml").write_text(yaml.safe_dump(spec))
    runs = {}
    for name, model in (("base", "sklearn:tfidf"), ("alike", str(root / "alike.yaml"))):
        assert main(["run", str(root / "brier.yaml"), "--model", model, "--reports-dir",
                     str(root / "reports-brier"), "--run-id", name, "--no-progress",
                     "--no-movement"]) == 0
        runs[name] = root / "reports-brier" / "tiny" / name
    report = json.loads((runs["base"] / "report.json").read_text())
    brier = report["splits"][0]["metrics"]["brier"]
    assert brier["method"] == "percentile_bootstrap" and brier["low"] <= brier["value"]
    summary = (runs["base"] / "summary.md").read_text()
    assert "| Brier [95% CI] |" in summary and f"{brier['value']:.3f} [" in summary
    policy_path = root / "brier.gate.yaml"
    policy_path.write_text(yaml.safe_dump({"suite": "brier.yaml", "rules": [
        {"kind": "non_inferiority", "metric": "brier", "split": "*", "margin": 0.1},
        {"kind": "absolute", "metric": "brier", "max": 0.9},
        {"kind": "confident_share", "min": 0.01, "confidence": 0.5, "split": "*"}]}))
    assert main(["gate", str(policy_path), "--baseline", str(runs["base"]), "--candidate",
                 str(runs["alike"]), "--out", str(root / "gate-brier")]) == 0
    verdicts = json.loads((root / "gate-brier" / "gate.json").read_text())["verdicts"]
    assert [(v["metric"], v["method"], v["unit"]) for v in verdicts] == [
        ("brier", "paired bootstrap", "Δnum"), ("brier", "paired bootstrap", "Δnum"),
        ("brier", "percentile bootstrap", "num"),
        ("confident_share", "exact binomial", "%"), ("confident_share", "exact binomial", "%")]
    assert verdicts[0]["op"] == "<=" and verdicts[0]["threshold"] == 0.1  # lower is better
    policy_path.write_text(yaml.safe_dump({"rules": [
        {"kind": "absolute", "metric": "brier", "max": 2.5}]}))
    assert main(["gate", str(policy_path), "--baseline", str(runs["base"]), "--candidate",
                 str(runs["alike"])]) == 2
    assert "a bound on brier lies strictly between 0 and 2" in capsys.readouterr().err
    with pytest.raises(ShiftbenchError, match="margin on brier must be below 2, the whole range "
                                              r"of brier \(0 to 2\)"):
        validate(Policy, {"rules": [{"kind": "non_inferiority", "metric": "brier",
                                     "margin": 2}]}, "p")


# --- drift rules name detectors as suites do (regression: `detector: evidently` failed)


def _drift(detector: str | None, method: str, p_value: float) -> dict:
    record = {"method": method, "statistic": 0.1, "p_value": p_value, "drifted": p_value < 0.05,
              "n_sample": 25}
    return record if detector is None else {**record, "detector": detector}


def test_drift_rules_match_the_suite_name_or_the_method() -> None:
    y, ok = np.zeros(50, dtype=np.int64), np.ones(50, bool)
    splits = [split_from("reference", "reference", y, ok),
              split_from("synonym@2", "perturbation", y, ok)]
    one = make_run("c", splits, drift={"synonym@2": [_drift("evidently", "evidently:mmd", 0.01),
                                                     _drift("mmd", "mmd", 0.5)]})
    for name in ("evidently", "evidently:mmd"):
        (verdict,) = evaluate_gate(policy({"kind": "drift", "detector": name}), one, one).verdicts
        assert verdict.status == "fail" and verdict.estimate == 0.1
    old = make_run("c", splits, drift={"synonym@2": [_drift(None, "evidently:mmd", 0.01)]})
    assert evaluate_gate(policy({"kind": "drift", "detector": "evidently:mmd"}), old,
                         old).status == "fail"  # runs recorded before the suite name
    two = make_run("c", splits, drift={"synonym@2": [_drift("evidently", "evidently:mmd", 0.01),
                                                     _drift("evidently", "evidently:ks", 0.5)]})
    with pytest.raises(ShiftbenchError) as info:
        evaluate_gate(policy({"kind": "drift", "detector": "evidently"}), two, two)
    assert str(info.value) == (
        "policy: rules.0.detector: the candidate run runs it more than once named 'evidently' "
        "(detectors: evidently (evidently:mmd), evidently (evidently:ks))")
    assert evaluate_gate(policy({"kind": "drift", "detector": "evidently:ks"}), two,
                         two).status == "pass"


def test_suite_drift_records_carry_the_detector_name(plugins) -> None:
    rng = np.random.default_rng(0)
    ids = [f"e{i}" for i in range(120)]
    reference = Split("reference", ids, ids, ["neg"] * 120)
    moved = reference.derive("typo@1", [f"{i}!" for i in ids], kind="perturbation")
    vectors = {"reference": rng.normal(size=(120, 3)), "typo@1": rng.normal(2.0, 1, (120, 3))}
    drift = drift_tests(reference, [moved], [DetectorSpec(name="mean_shift")],
                        lambda texts: vectors["typo@1" if texts[0].endswith("!") else "reference"],
                        {})
    (record,) = drift["typo@1"]
    assert (record["detector"], record["method"]) == ("mean_shift", "mean_shift:z")
    splits = [split_from(s.name, s.info.get("kind", "reference"), np.zeros(120, np.int64),
                         np.ones(120, bool)) for s in (reference, moved)]
    run = make_run("c", splits, drift=drift)
    (verdict,) = evaluate_gate(policy({"kind": "drift", "detector": "mean_shift"}), run,
                               run).verdicts
    assert verdict.status == "fail" and verdict.method == "mean_shift drift test"
