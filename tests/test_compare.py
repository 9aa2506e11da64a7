"""shiftbench compare: runs of one suite side by side, mixes refused, differences paired
by example id and tested as the gate tests them, Holm over all of them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from shiftbench.cli import main
from shiftbench.evaluate import evaluate
from shiftbench.report import SCHEMA_VERSION, write_run
from shiftbench.split import Split

CLASSES = ["neg", "pos"]


def _proba(labels: list[int], correct: list[int]) -> np.ndarray:
    """Probabilities whose predicted class is the label exactly where ``correct`` is 1."""
    pred = [y if c else 1 - y for y, c in zip(labels, correct, strict=True)]
    return np.array([[0.9, 0.1] if p == 0 else [0.1, 0.9] for p in pred])


def write_run_dir(path: Path, correct: dict[str, list[int]], suite: str = "unit",
                  suite_hash: str = "h1", spec: str = "sklearn:tfidf",
                  created: str = "2024-05-01T12:00:00+00:00", reverse: bool = False) -> Path:
    """A finished run whose model is right on exactly the examples ``correct`` marks, per
    split: ``reference``, perturbations (same ids as the reference) and ``dom*`` domain
    splits (their own ids). ``reverse`` writes every split's rows in reverse id order."""
    def split(name: str, prefix: str, info: dict) -> tuple[Split, np.ndarray]:
        n = len(correct[name])
        order = list(reversed(range(n))) if reverse else list(range(n))
        labels = [i % 2 for i in order]
        made = Split(name, [f"{prefix}{i}" for i in order], [f"text {prefix}{i}" for i in order],
                     [CLASSES[y] for y in labels], info)
        return made, _proba(labels, [correct[name][i] for i in order])

    ref, ref_proba = split("reference", "e", {"kind": "reference"})
    shifted = [split(name, "d" if name.startswith("dom") else "e",
                     {"kind": "domain", "source": "x"} if name.startswith("dom") else
                     {"kind": "perturbation", "shift": name.split("@")[0], "severity": 1,
                      "params": {}})
               for name in correct if name != "reference"]
    records, frame = evaluate(ref, ref_proba, shifted, CLASSES, ["accuracy"], seed=1, n_boot=200)
    report = {
        "schema_version": SCHEMA_VERSION, "shiftbench_version": "0.1.0", "run_id": path.name,
        "created": created, "suite": {"name": suite, "path": f"{suite}.yaml", "hash": suite_hash},
        "model": {"adapter": "sklearn", "spec": spec, "fingerprint": f"sklearn-{path.name}",
                  "classes": CLASSES},
        "environment": {"device": "cpu", "precision": "fp32"}, "seed": 1, "timings": {},
        "runner": {}, "splits": records, "predictions_file": "predictions.parquet",
    }
    write_run(path, report, frame)
    return path


PAIRED = {  # by example id: e0 .. e7 (reference and typo@1), d0 .. d5 (dom)
    "A": {"reference": [1, 1, 1, 1, 1, 1, 0, 0], "typo@1": [1, 1, 1, 1, 0, 0, 0, 0],
          "dom": [1, 1, 1, 0, 0, 0]},
    "B": {"reference": [1, 1, 1, 1, 1, 1, 1, 1], "typo@1": [0, 1, 1, 1, 1, 1, 1, 1],
          "dom": [1, 1, 0, 0, 0, 0]},
}


def compare(capsys, *args) -> tuple[int, str, str]:
    code = main(["compare", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_differences_are_paired_by_example_id_as_computed_by_hand(tmp_path, capsys) -> None:
    a = write_run_dir(tmp_path / "a", PAIRED["A"])
    b = write_run_dir(tmp_path / "b", PAIRED["B"], reverse=True)  # rows in another order
    code, out, _ = compare(capsys, a, b, "--out", tmp_path / "out")
    assert code == 0 and "compare.html" in out
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    found = {(d["kind"], d["what"]): d for d in result["comparisons"]}
    # typo@1, B − A by id: e0 got worse, e4..e7 better: +3/8; exact McNemar on 1 vs 4
    # discordant pairs, two-sided: 2 P(X <= 1), X ~ Binomial(5, 1/2) = 2 * 6/32. Pairing
    # by row position instead (B reversed) would see 0 worse and 3 better.
    typo = found["split", "typo@1"]
    assert typo["value"] == pytest.approx(3 / 8) and typo["p_value"] == pytest.approx(12 / 32)
    assert typo["low"] <= typo["value"] <= typo["high"]
    assert found["split", "reference"]["p_value"] == pytest.approx(2 * 0.5 ** 2)  # 0 vs 2
    assert found["split", "dom"]["value"] == pytest.approx(-1 / 6)
    # The summary: A's typo Δ is mean(typo − reference) over ids = -2/8, B's -1/8; the
    # domain Δ is its accuracy minus the reference's: A 3/6 - 6/8, B 2/6 - 8/8.
    runs = result["summary"]["runs"]
    assert runs["A"]["perturbation_mean"]["value"] == pytest.approx(-0.25)
    assert runs["B"]["perturbation_worst"]["value"] == pytest.approx(-0.125)
    assert runs["B"]["perturbation_worst"]["split"] == "typo@1"
    assert runs["A"]["domain_mean"]["value"] == pytest.approx(0.5 - 0.75)
    assert runs["B"]["domain_mean"]["value"] == pytest.approx(2 / 6 - 1)
    assert found["summary", "perturbation_mean"]["value"] == pytest.approx(0.125)
    assert found["summary", "domain_mean"]["value"] == pytest.approx(2 / 6 - 1 - (0.5 - 0.75))
    for est in (e for run in runs.values() for e in run.values()):
        assert est["low"] <= est["value"] <= est["high"]
    # The summary's Δ of a perturbation is its report's Δ.
    report = json.loads((a / "report.json").read_text())
    typo_record = next(r for r in report["splits"] if r["name"] == "typo@1")
    assert typo_record["delta"]["accuracy"]["value"] == pytest.approx(-0.25)


def test_runs_of_different_suites_are_refused_in_one_line(tmp_path, capsys) -> None:
    a = write_run_dir(tmp_path / "a", PAIRED["A"])
    b = write_run_dir(tmp_path / "b", PAIRED["B"], suite="other", suite_hash="h2")
    code, out, err = compare(capsys, a, b)
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert all(part in err for part in (str(a), str(b), "unit h1", "other h2",
                                        "different suite specs"))


def test_runs_on_different_examples_are_refused(tmp_path, capsys) -> None:
    a = write_run_dir(tmp_path / "a", PAIRED["A"])
    fewer = {name: c[:6] for name, c in PAIRED["B"].items()}  # as with a smaller --limit
    b = write_run_dir(tmp_path / "b", fewer)
    code, _, err = compare(capsys, a, b)
    assert code == 2 and "evaluated different examples (8 vs 6 ids, 6 shared)" in err


def test_an_edited_report_is_refused_as_report_refuses_it(tmp_path, capsys) -> None:
    a = write_run_dir(tmp_path / "a", PAIRED["A"])
    b = write_run_dir(tmp_path / "b", PAIRED["B"])
    report = json.loads((b / "report.json").read_text())
    report["splits"][1]["metrics"]["accuracy"]["value"] = 0.9  # it is 7/8
    (b / "report.json").write_text(json.dumps(report))
    code, _, err = compare(capsys, a, b)
    assert code == 2
    assert "split 'typo@1', metrics.accuracy: report.json says 0.9, the predictions give 0.875" \
        in err
    code, _, err = compare(capsys, a, a)
    assert code == 2 and "given twice" in err


def test_holm_marks_only_the_differences_that_survive_it(tmp_path, capsys) -> None:
    """B beats A on typo@1 by 8 discordant pairs (two-sided exact p = 2 / 2^8) and on ocr@1
    by 6 (p = 2 / 2^6 = 0.031 < 0.05). The family is 3 splits + 2 summary quantities:
    Holm's adjusted p of typo@1 is at most 5 * 2/256 = 0.039; ocr@1's p ranks at best 4th
    of 5 (the reference, the same in both runs, has p = 1), so its adjusted p is at least
    2 * 0.031 = 0.0625: raw p below 0.05, yet not marked."""
    ref = [1] * 5 + [0] * 5
    a = write_run_dir(tmp_path / "a", {"reference": ref, "typo@1": [0] * 10,
                                       "ocr@1": [0] * 10})
    b = write_run_dir(tmp_path / "b", {"reference": ref, "typo@1": [1] * 8 + [0] * 2,
                                       "ocr@1": [1] * 6 + [0] * 4})
    code, out, _ = compare(capsys, a, b, "--out", tmp_path / "out")
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    found = {d["what"]: d for d in result["comparisons"]}
    assert result["settings"]["family_size"] == len(found) == 5
    assert result["settings"]["correction"] == "holm"
    assert found["typo@1"]["p_value"] == pytest.approx(2 / 2 ** 8)
    assert found["typo@1"]["significant"] and found["typo@1"]["p_holm"] <= 5 * 2 / 2 ** 8
    assert found["ocr@1"]["p_value"] == pytest.approx(2 / 2 ** 6)
    assert not found["ocr@1"]["significant"] and found["ocr@1"]["p_holm"] > 0.05
    md = (tmp_path / "out" / "compare.md").read_text()
    per_split = md.split("## Accuracy per split")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in per_split.splitlines()
            if line.startswith("| ")}
    assert rows["typo@1"].rstrip(" |").endswith("> A") and ">" not in rows["ocr@1"]
    assert "Holm's adjustment over all 5 comparisons" in md


def test_the_page_is_self_contained_with_a_forest_plot_per_split_and_trends(
        tmp_path, capsys) -> None:
    older = write_run_dir(tmp_path / "a", PAIRED["A"], created="2024-05-01T12:00:00+00:00")
    newer = write_run_dir(tmp_path / "b", PAIRED["B"], created="2024-06-01T12:00:00+00:00")
    other = write_run_dir(tmp_path / "c", PAIRED["B"], spec="probe")
    code, _, _ = compare(capsys, newer, older, other, "--out", tmp_path / "out")
    html = (tmp_path / "out" / "compare.html").read_text()
    assert code == 0 and "://" not in html and "<script" not in html
    titles = re.findall(r'<svg class="plot"[^>]*aria-label="([^"]*)"', html)
    forests = [t for t in titles if "intervals)" in t and "over time" not in t]
    assert [t.split(":")[0] for t in forests] == ["reference", "typo@1", "dom"]
    assert [t for t in titles if "over time" in t] == [
        "sklearn:tfidf: accuracy on reference over time (95% intervals)",
        "sklearn:tfidf: robustness over time (95% intervals)"]
    # the trend runs oldest first: B (older) then A, whatever the order given
    trend = html[html.index("<h2>Trends</h2>"):]
    assert re.findall(r'text-anchor="middle">([AB])</text>', trend)[:2] == ["B", "A"]


def write_generation_run(path: Path, outputs: list[str], metrics: list[str]) -> Path:
    """A finished generation run over four examples (reference and typo@1) whose targets
    are 'a b c d'."""
    from shiftbench.evaluate import evaluate_generation

    ids, texts, targets = ["e0", "e1", "e2", "e3"], ["x"] * 4, ["a", "b", "c", "d"]
    ref = Split("reference", ids, texts, info={"kind": "reference"}, targets=targets)
    typo = ref.derive("typo@1", texts, kind="perturbation", shift="typo", severity=1, params={})
    records, frame = evaluate_generation(ref, outputs, [(typo, ["a", "x", "x", "x"])], metrics,
                                         seed=0, n_boot=200)
    report = {"schema_version": SCHEMA_VERSION, "shiftbench_version": "0", "run_id": path.name,
              "created": "2024-01-01T00:00:00+00:00", "task": "generation",
              "suite": {"name": "titles", "hash": "g"},
              "model": {"adapter": "hf-seq2seq", "spec": path.name, "classes": []},
              "environment": {}, "seed": 0, "timings": {}, "runner": {}, "splits": records,
              "predictions_file": "predictions.parquet"}
    write_run(path, report, frame)
    return path


def test_generation_runs_compare_on_their_first_metric(tmp_path, capsys) -> None:
    """Exact match is a mean of per-example scores: A's typo@1 Δ is 1/4 - 4/4, B's 1/4 -
    2/4. Corpus BLEU is not: no summary, and the page says why."""
    runs = [write_generation_run(tmp_path / name, outputs, ["exact_match", "bleu"])
            for name, outputs in (("a", ["a", "b", "c", "d"]), ("b", ["a", "b", "x", "x"]))]
    assert compare(capsys, *runs, "--out", tmp_path / "out")[0] == 0
    result = json.loads((tmp_path / "out" / "compare.json").read_text())
    summary = result["summary"]["runs"]
    assert summary["A"]["perturbation_mean"]["value"] == pytest.approx(1 / 4 - 1)
    assert summary["B"]["perturbation_mean"]["value"] == pytest.approx(1 / 4 - 2 / 4)
    bleu = [write_generation_run(tmp_path / f"bleu-{name}", outputs, ["bleu", "exact_match"])
            for name, outputs in (("a", ["a", "b", "c", "d"]), ("b", ["a", "b", "x", "x"]))]
    code, out, _ = compare(capsys, *bleu, "--out", tmp_path / "bleu")
    assert code == 0 and "No robustness summary: bleu is not a mean of per-example scores" in out
