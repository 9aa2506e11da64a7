"""The before/after report of `shiftbench mitigate`, on hand-made inputs: the pooled
interval counts each example once, however many seeds saw it; every metric per model;
the training curves read (and checked) from the models' logs, drawn in mitigate.html."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import ScoredSplit
from shiftbench.metrics import metric_named, nll, paired_delta, paired_score_interval
from shiftbench.mitigate.curves import MAX_POINTS, read_log, seed_curves, training_curves
from shiftbench.mitigate.report import (
    INTERVALS,
    deltas,
    describe_metrics,
    drop_change,
    markdown,
    model_metrics,
    pooled_delta,
    split_records,
    write_report,
)
from shiftbench.report import svg

METRICS = ("accuracy", "macro_f1", "ece", "nll")
DANN_STEP_VALUES = ("classification", "domain", "lambda", "domain_accuracy")


def outcomes(*rows: list[int]) -> list[dict[str, bool]]:
    """One id -> correct dict per seed, ids e0, e1, ..."""
    return [{f"e{i}": bool(v) for i, v in enumerate(row)} for row in rows]


def test_identical_seeds_give_the_one_seed_interval_which_is_tangos() -> None:
    rng = np.random.default_rng(0)
    base = rng.random(60) < 0.8
    method = np.where(rng.random(60) < 0.1, ~base, base)
    one = deltas(outcomes(base), outcomes(method))["pooled"]
    three = deltas(outcomes(base), outcomes(method, method, method))["pooled"]
    tango = paired_delta(base, method)
    assert three["n"] == one["n"] == 60
    for pooled in (one, three):  # not sqrt(3) narrower, as n x seeds pairs would be
        assert (pooled["value"], pooled["low"], pooled["high"]) == pytest.approx(
            (tango.value, tango.low, tango.high), abs=1e-9)


def test_each_example_is_averaged_over_seeds_before_pairing() -> None:
    base = outcomes([1, 1, 0, 0])
    method = outcomes([1, 0, 1, 0], [1, 1, 1, 0])  # per example: 1, 1/2, 1, 0
    pooled = pooled_delta(base, method)  # differences 0, -1/2, +1, 0
    assert pooled.value == pytest.approx(0.5 / 4) and pooled.n == 4
    assert (pooled.low, pooled.high) == pytest.approx(paired_score_interval(0.5, 1, 4))
    erm = outcomes([1, 0, 0, 0], [1, 1, 0, 1])  # per example: 1, 1/2, 0, 1/2
    versus_erm = pooled_delta(erm, method)  # differences 0, 0, +1, -1/2
    assert versus_erm.value == pytest.approx(0.5 / 4)
    assert (versus_erm.low, versus_erm.high) == pytest.approx(paired_score_interval(0.5, 1, 4))


def test_the_drop_change_pairs_each_model_with_itself_on_the_reference() -> None:
    reference = {"base": outcomes([1, 1, 1, 1]), "erm": outcomes([1, 1, 1, 1]),
                 "method": outcomes([1, 1, 1, 0], [1, 1, 1, 1])}
    shifted = {"base": outcomes([1, 0, 0, 1]), "erm": outcomes([1, 1, 0, 1]),
               "method": outcomes([1, 1, 0, 0], [1, 0, 0, 1])}
    change = drop_change(reference, shifted)
    # per example, seeds averaged: base drops 0, -1, -1, 0; ERM 0, 0, -1, 0;
    # the method 0, -1/2, -1, -1/2 + 1/2 = 0 (e3: reference 1/2, shifted 1/2)
    assert change["n"] == 4
    assert change["drop"] == pytest.approx({"base": -0.5, "erm": -0.25, "method": -0.375})
    versus_base, versus_erm = change["method_vs_base"], change["method_vs_erm"]
    assert versus_base["value"] == pytest.approx(0.5 / 4)  # differences 0, +1/2, 0, 0
    assert versus_erm["value"] == pytest.approx(-0.5 / 4)  # differences 0, -1/2, 0, 0
    # the interval is Tango's on the halved differences, scaled back
    low, high = paired_score_interval(0, 0.25, 4)
    assert (versus_base["low"], versus_base["high"]) == pytest.approx((2 * low, 2 * high))
    assert versus_base["low"] < 0 < versus_base["high"]  # 4 examples decide nothing


def test_a_method_equal_to_the_base_changes_no_drop() -> None:
    rng = np.random.default_rng(1)
    reference, shifted = rng.random(80) < 0.8, rng.random(80) < 0.7
    same = {name: outcomes(reference) for name in ("base", "erm", "method")}
    change = drop_change(same, {name: outcomes(shifted) for name in ("base", "erm", "method")})
    assert change["drop"]["method"] == pytest.approx(shifted.mean() - reference.mean())
    assert change["method_vs_base"]["value"] == 0
    low, high = change["method_vs_base"]["low"], change["method_vs_base"]["high"]
    assert low == pytest.approx(-high) and 0 < high < 0.2  # no discordant pair: symmetric


def test_examples_pair_by_id_whatever_their_order() -> None:
    base = [{"a": True, "b": False, "c": True}]
    method = [{"c": True, "b": True, "a": True}, {"b": True, "a": False, "c": True}]
    pooled = deltas(base, method)["pooled"]  # differences: a -1/2, b +1, c 0
    assert pooled["value"] == pytest.approx(0.5 / 3) and pooled["n"] == 3


def test_the_pooled_interval_covers_where_few_examples_change() -> None:
    """Where 2% of examples change and a few more depend on the seed, the interval still
    covers the population's mean difference (a t-interval covered ~85% here)."""
    rng = np.random.default_rng(7)
    size, n, seeds = 20_000, 100, 3
    base = rng.random(size) < 0.9
    method = np.repeat(np.where(rng.random(size) < 0.02, ~base, base)[:, None], seeds, 1)
    fickle = rng.random(size) < 0.03
    method[fickle] = rng.random((int(fickle.sum()), seeds)) < 0.5
    truth = (method.mean(1) - base).mean()
    covered = 0
    for _ in range(200):
        rows = rng.integers(0, size, n)
        estimate = pooled_delta(outcomes(base[rows]), outcomes(*method[rows].T))
        covered += estimate.low <= truth <= estimate.high
    assert covered / 200 >= 0.94


# --- every metric per model


def scored_model(accuracy: float, seed: int, n: int = 40) -> list[ScoredSplit]:
    """A model's scored reference and perturbed splits (same ids, labels 0/1)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    splits = []
    for name, kind, drop in [("reference", "reference", 0.0), ("typo@1", "perturbation", 0.1)]:
        right = rng.random(n) < accuracy - drop
        p_true = np.where(right, rng.uniform(0.55, 0.95, n), rng.uniform(0.05, 0.45, n))
        proba = np.column_stack([np.where(y == 0, p_true, 1 - p_true),
                                 np.where(y == 1, p_true, 1 - p_true)])
        splits.append(ScoredSplit(name, kind, [f"e{i}" for i in range(n)], y, proba))
    return splits


SCORED = {"base": [scored_model(0.8, 0)], "erm": [scored_model(0.85, 1), scored_model(0.83, 2)],
          "method": [scored_model(0.86, 3), scored_model(0.9, 4)]}


def test_every_metric_of_every_model_is_reported_per_seed_and_averaged() -> None:
    table = {name: metric_named(name) for name in METRICS}
    metrics = model_metrics(SCORED, 1, table, seed=0)
    for model, seeds in SCORED.items():
        assert set(metrics[model]) == set(METRICS)
        nlls = [nll(splits[1].proba, splits[1].y) for splits in seeds]  # the metric code's
        entry = metrics[model]["nll"]
        assert [e["value"] for e in entry["seeds"]] == pytest.approx(nlls)
        assert entry["mean"] == pytest.approx(np.mean(nlls))
        assert all(e["low"] <= e["value"] <= e["high"] for e in entry["seeds"])
    record = split_records(SCORED, table, 0)[1]
    assert record["metrics"] == metrics and record["name"] == "typo@1" and record["n"] == 40
    assert [e["value"] for e in record["metrics"]["erm"]["accuracy"]["seeds"]] == \
        pytest.approx(record["accuracy"]["erm"]["seeds"])


# --- training curves


def write_model(folder: Path, n_steps: int, names: tuple[str, ...], epochs: int = 3) -> Path:
    """A training's log as the trainer leaves it: log.jsonl, a row per step, then a row
    per epoch."""
    folder.mkdir(parents=True)
    per_epoch = n_steps // epochs
    steps = [{"step": k, "epoch": k // per_epoch + 1, "loss": 1 / (k + 1),
              **{name: 0.5 + 0.4 * k / n_steps for name in names}} for k in range(n_steps)]
    rows = [{"epoch": e, "loss": 0.7 / e, **dict.fromkeys(names, 0.5), "val_loss": 0.6 + 0.01 * e,
             "val_accuracy": 0.7 + 0.05 * e} for e in range(1, epochs + 1)]
    (folder / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in steps + rows))
    return folder


def make_report(tmp_path: Path) -> dict:
    table = {name: metric_named(name) for name in METRICS}
    folders = {"erm": [(write_model(tmp_path / "erm" / f"seed{k}", 30, ("classification",)), 2)
                       for k in range(2)],
               "method": [(write_model(tmp_path / "dann" / f"seed{k}", 450, DANN_STEP_VALUES),
                           2 + k) for k in range(2)]}
    return {"suite": {"name": "tiny", "path": "tiny.yaml", "hash": "abc"},
            "base": "probe", "method": {"method": "dann", "penalty": 1.0},
            "training": {"max_epochs": 3, "seed": [0, 1]}, "selection": "source validation",
            "target": {"splits": ["food"], "n_target_train": 10, "n_evaluated": {"food": 9}},
            "models": {kind: [str(f) for f, _ in seeds] for kind, seeds in folders.items()},
            "intervals": INTERVALS, "metrics": describe_metrics(table),
            "splits": split_records(SCORED, table, 0), "curves": training_curves(folders),
            "gate": [{"seed": 0, "status": "fail", "result": {
                "policy": "gate.yaml", "counts": {"pass": 0, "warn": 0, "fail": 1},
                "verdicts": [{"rule": "no drop", "split": "typo@1", "status": "fail",
                              "estimate": -0.05, "low": -0.1, "high": 0.0, "unit": "pp",
                              "reason": "dropped <b>5 pp</b>"}]}}]}


def charts(html: str) -> list[str]:
    return re.findall(r"<svg .*?</svg>", html, re.S)


def y_ticks(chart: str) -> list[str]:
    return re.findall(r'text-anchor="end">([^<]*)</text>', chart)


def test_html_draws_each_curve_of_each_seed_and_rings_the_kept_epoch(tmp_path: Path) -> None:
    report = make_report(tmp_path)
    write_report(tmp_path / "out", report)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "mitigate.html", "mitigate.json", "mitigate.md"]  # no temp file left
    html = (tmp_path / "out" / "mitigate.html").read_text()
    assert "://" not in html and "<script" not in html  # self-contained
    assert "&lt;b&gt;5 pp&lt;/b&gt;" in html and "fail" in html  # the gate, escaped
    assert html.count("<td>typo@1</td><td>1</td>") == 1  # each seed's deltas, seed 1
    found = charts(html)
    titles = [re.search(r'aria-label="([^"]*)"', c).group(1) for c in found]
    epoch_titles = ["training loss (epoch mean)", "validation loss", "validation accuracy"]
    assert titles == [*(f"ERM: {t}" for t in epoch_titles), "ERM: classification per step",
                      *(f"dann: {t}" for t in epoch_titles),
                      *(f"dann: {name} per step" for name in DANN_STEP_VALUES)]
    for title, chart in zip(titles, found, strict=True):
        lines = re.findall(r'<polyline points="([^"]*)"', chart)
        assert len(lines) == 2  # one per seed
        sizes = {len(line.split()) for line in lines}
        if "per step" not in title:
            assert sizes == {3}  # every epoch
            kept = re.findall(r'class="mark"[^>]*><title>([^<]*)</title>', chart)
            expected = {"ERM": ["epoch 2", "epoch 2"], "dann": ["epoch 2", "epoch 3"]}
            assert [re.search(r"epoch \d+", k).group(0) for k in kept] == \
                expected[title.split(":")[0]]
            assert all(k.endswith("(kept)") for k in kept) and chart.count(">kept<") >= 1
        else:
            assert sizes == ({30} if title.startswith("ERM") else {MAX_POINTS})
    assert y_ticks(found[1])[0] == "0"  # a loss axis starts at 0
    assert [y_ticks(found[2])[i] for i in (0, -1)] == ["0%", "100%"]  # accuracy: all of [0, 1]
    md = (tmp_path / "out" / "mitigate.md").read_text()
    assert all(label in md for label in ("macro-F1", "ECE", "NLL", "mitigate.html"))
    assert "Gate (gate.yaml), dann seed 0 vs base: fail" in md
    assert json.loads((tmp_path / "out" / "mitigate.json").read_text())["curves"] == \
        report["curves"]


def test_the_markdown_says_what_the_pooled_interval_covers(tmp_path: Path) -> None:
    md = markdown(make_report(tmp_path))
    assert "each example's correctness averaged over seeds" in md
    assert "Seed-to-seed training spread is not in it" in md


def test_long_step_curves_are_means_over_windows(tmp_path: Path) -> None:
    curves = seed_curves(write_model(tmp_path / "m", 1000, ("lambda",)), 1)
    assert curves["kept_epoch"] == 1 and curves["n_steps"] == 1000
    lam = curves["steps"]["lambda"]  # 200 windows of 5 steps
    assert len(lam["x"]) == MAX_POINTS and lam["x"][:2] == [2.0, 7.0]
    assert lam["y"][0] == pytest.approx(0.5 + 0.4 * 2 / 1000)
    short = seed_curves(write_model(tmp_path / "s", 30, ("lambda",)), 1)["steps"]["lambda"]
    assert short["x"] == list(range(30))


STEP = '{"step": 0, "epoch": 1, "loss": 0.7, "domain": 0.6}'
EPOCH = '{"epoch": 1, "loss": 0.7, "val_loss": 0.6, "val_accuracy": 0.8}'


@pytest.mark.parametrize("text, message", [
    ("{not json\n" + EPOCH, "line 1: not a JSON object"),
    ("[1, 2]\n" + EPOCH, "line 1: not a JSON object"),
    ('{"step": 0, "epoch": 1, "loss": "high"}\n' + EPOCH, "loss='high' is not a finite number"),
    ('{"step": 0, "epoch": 1, "loss": NaN}\n' + EPOCH, "loss=nan is not a finite number"),
    (STEP + '\n{"step": 1, "epoch": 1, "loss": 0.5}\n' + EPOCH, "line 2: no domain"),
    (STEP + '\n{"epoch": 1, "loss": 0.7, "val_accuracy": 0.8}', "line 2: no val_loss"),
    (STEP, "no epoch rows"),
    ("", "no epoch rows"),
    (b"\xff\xfe", "cannot read the training log"),
    (None, "cannot read the training log"),
])
def test_a_garbled_or_missing_log_is_one_line_naming_the_file(
        tmp_path: Path, text: str | bytes | None, message: str) -> None:
    path = tmp_path / "log.jsonl"
    if isinstance(text, bytes):
        path.write_bytes(text)
    elif text is not None:
        path.write_text(text)
    with pytest.raises(ShiftbenchError) as error:
        read_log(path)
    assert str(path) in str(error.value) and message in str(error.value)
    assert "\n" not in str(error.value)


def test_a_kept_epoch_missing_from_the_log_is_an_error(tmp_path: Path) -> None:
    folder = write_model(tmp_path / "m", 30, ())
    with pytest.raises(ShiftbenchError, match=r"log.jsonl: no row for epoch 5"):
        seed_curves(folder, 5)


# --- the charts' scales


def test_a_scale_from_zero_still_shows_negative_values_and_long_x_axes_get_round_ticks() -> None:
    line = [svg.Point(x, v, v, v) for x, v in zip(range(0, 1000, 10), np.linspace(-0.5, 2, 100),
                                                  strict=True)]
    chart = svg.line_chart({"seed 0": line}, None, "t", "step", "loss", svg.FROM_ZERO, dots=False)
    assert "<circle" not in chart
    # the axis starts at the data (-0.5), below 0: the line's first point lies under the
    # 0 grid line and inside the plot area (above the x tick labels)
    zero = float(re.search(r'y2="([\d.]+)"/><text class="tick" x="[\d.]+" y="[\d.]+" '
                           r'text-anchor="end">0</text>', chart).group(1))
    first_y = float(re.search(r'<polyline points="[\d.]+,([\d.]+)', chart).group(1))
    x_tick_y = float(re.search(r'y="([\d.]+)" text-anchor="middle"', chart).group(1))
    assert zero < first_y < x_tick_y - 10
    x_ticks = [float(t) for t in re.findall(r'text-anchor="middle">([^<]*)</text>', chart)
               if t.replace(".", "").isdigit()]
    assert 3 <= len(x_ticks) <= svg.MANY_X and all(t % 100 == 0 for t in x_ticks)


def test_the_target_line_names_the_split_and_both_counts_or_says_there_is_none(
        tmp_path: Path) -> None:
    report = make_report(tmp_path)
    assert "Target: 10 unlabelled rows from food; evaluated rows of each target split: food 9" \
        in markdown(report)
    report["target"] = {"splits": [], "n_target_train": 0, "n_evaluated": {}}
    assert "Target: none (the method trains on no unlabelled target)." in markdown(report)
