"""`shiftbench monitor check`: label-free accuracy estimates, the one-shot verdict and its
exit codes, calibration figures in the report, embeddings through the runner's cache, and
one-line errors for bad input.

Most CLI tests use precomputed embeddings (``--embedding-column``), so they run without
an encoder; one end-to-end test embeds texts with the tiny encoder from conftest.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_labelled, write_data_file

from shiftbench.cli import main
from shiftbench.detectors import Detector, load_detector
from shiftbench.errors import ShiftbenchError
from shiftbench.file_formats import FILE_FORMATS
from shiftbench.label_free import CAVEAT, atc, atc_threshold, confidence_scores, doc
from shiftbench.monitor.report import detector_rows
from shiftbench.monitor.verdict import RULE, verdict

DIM = 8
REPEATS = "20"


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-x))


# -- ATC and DoC ---------------------------------------------------------------------------


def test_atc_threshold_matches_its_definition() -> None:
    scores = np.random.default_rng(0).normal(size=1000)  # continuous: no ties
    for accuracy in (0.0, 0.37, 0.8, 0.9995, 1.0):
        t = atc_threshold(scores, accuracy)
        assert np.sum(scores >= t) == round(accuracy * len(scores))


def test_atc_is_exact_when_correctness_follows_the_score() -> None:
    """If a row is correct exactly when its confidence is >= 0.7, the threshold fitted on
    the reference sits at 0.7 (up to the gap between neighbouring scores), so the share of
    current rows above it is the current accuracy whatever the current distribution."""
    rng = np.random.default_rng(1)
    conf_ref, conf_cur = rng.uniform(0.5, 1.0, 4000), rng.uniform(0.5, 0.85, 2000)
    proba_ref = np.column_stack([conf_ref, 1 - conf_ref])
    proba_cur = np.column_stack([conf_cur, 1 - conf_cur])
    result = atc(proba_ref, conf_ref >= 0.7, proba_cur, score="max", n_boot=200)
    truth = np.mean(conf_cur >= 0.7)
    assert abs(result.threshold - 0.7) < 0.002
    assert abs(result.estimate.value - truth) < 0.005
    assert result.estimate.low <= truth <= result.estimate.high


def calibrated(n: int, mean: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A calibrated binary model under covariate shift: x ~ N(mean, 1), P(y=1|x) =
    sigmoid(3x), and the model outputs exactly that probability."""
    p1 = sigmoid(3 * rng.normal(mean, 1.0, n))
    y = rng.random(n) < p1
    return np.column_stack([1 - p1, p1]), (p1 >= 0.5) == y


def test_doc_is_near_the_truth_for_a_calibrated_model_and_both_see_the_drop() -> None:
    """Calibrated on both sides, E[accuracy] = E[max probability], so DoC = reference
    accuracy - (mean ref confidence - mean current confidence) is off only by sampling
    error (sd ~ 0.01 at these sizes). The current rows sit nearer the boundary, so the
    true accuracy drops (~0.93 -> ~0.84) and ATC must see a drop too."""
    rng = np.random.default_rng(2)
    proba_ref, correct_ref = calibrated(3000, 1.5, rng)
    proba_cur, correct_cur = calibrated(3000, 0.0, rng)
    truth, ref_acc = correct_cur.mean(), correct_ref.mean()
    assert ref_acc - truth > 0.05
    d = doc(proba_ref, correct_ref, proba_cur, n_boot=300)
    a = atc(proba_ref, correct_ref, proba_cur, n_boot=300)
    assert abs(d.value - truth) < 0.03
    assert d.low <= d.value <= d.high
    assert a.estimate.value < ref_acc - 0.05
    assert a.estimate.low <= a.estimate.value <= a.estimate.high


def test_entropy_and_max_scores_agree_for_two_classes() -> None:
    """With two classes, negative entropy is a monotone function of the max probability,
    so both scores put the same rows above the threshold."""
    rng = np.random.default_rng(3)
    proba_ref, correct = calibrated(500, 1.0, rng)
    proba_cur, _ = calibrated(300, 0.3, rng)
    by_entropy = atc(proba_ref, correct, proba_cur, "entropy", n_boot=50)
    by_max = atc(proba_ref, correct, proba_cur, "max", n_boot=50)
    assert by_entropy.estimate.value == by_max.estimate.value
    assert by_entropy.score == "entropy"
    np.testing.assert_allclose(confidence_scores(np.array([[0.5, 0.5]]), "entropy"), [-np.log(2)])


def test_accuracy_estimates_refuse_mismatched_inputs() -> None:
    proba = np.full((4, 2), 0.5)
    with pytest.raises(ShiftbenchError, match="3 classes in the current"):
        doc(proba, [True] * 4, np.full((4, 3), 1 / 3))
    with pytest.raises(ShiftbenchError, match="NaN or inf"):
        atc(proba, [True] * 4, np.array([[np.nan, 1.0]]))
    with pytest.raises(ShiftbenchError, match="score 'margin'"):
        atc(proba, [True] * 4, proba, score="margin")


# -- the verdict -----------------------------------------------------------------------------


def record(method: str, p: float | None, flagged: bool = False) -> dict:
    return {"method": method, "p_value": p,
            "calibration": {"flagged": flagged} if p is not None else None}


def test_verdict_counts_only_unflagged_tests_and_controls_the_family() -> None:
    records = [record("mmd", 0.03), record("ks", 0.04), record("evidently:mmd", None),
               record("classifier", 0.001, flagged=True)]
    decision = verdict(records, 0.05)
    # deciding: mmd and ks; Holm: 2 * 0.03 = 0.06 >= 0.05, so no drift although each is < 0.05
    assert decision["status"] == "no drift" and decision["exit_code"] == 0
    assert decision["deciding"] == ["mmd", "ks"] and decision["rule"] == RULE
    assert [r["decides"] for r in records] == [True, True, False, False]
    assert verdict([record("mmd", 0.01), record("ks", 0.5)], 0.05)["exit_code"] == 1
    undecided = verdict([record("evidently:mmd", None), record("mmd", 0.01, True)], 0.05)
    assert undecided["status"] == "undecided" and undecided["exit_code"] == 2



def test_table_marks_drift_by_the_holm_adjusted_p_as_the_verdict_does() -> None:
    # Raw p 0.03 and 0.04 are each below alpha (the detectors' own decision: drift) but
    # Holm's 0.06 is not: the table must not say "drift" under a "no drift" verdict.
    records = [{**record(m, p), "input": "embeddings", "statistic": 1.0, "drifted": True}
               for m, p in (("mmd", 0.03), ("ks", 0.04))] + [
        {**record("evidently:mmd", None), "input": "embeddings", "statistic": 0.3,
         "drifted": True}]
    decision = verdict(records, 0.05)
    header, rows = detector_rows({"settings": {"alpha": 0.05}, "detectors": records})
    column = header.index("drift (Holm)")
    assert decision["status"] == "no drift"
    assert [row[column] for row in rows] == ["no", "no", "–"]
    assert [row[header.index("Holm p")] for row in rows] == ["0.060", "0.060", "–"]

# -- the one-shot CLI on precomputed embeddings ---------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def vector_rows(n: int, seed: int, shift: float = 0.0, dim: int = DIM,
                prefix: str = "r") -> list[dict]:
    rng = np.random.default_rng(seed)
    return [{"id": f"{prefix}{i}", "text": f"message {i}",
             "emb": (rng.normal(size=dim) + shift).tolist()} for i in range(n)]


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "reference": write_jsonl(tmp_path / "reference.jsonl", vector_rows(300, seed=1)),
        "same": write_jsonl(tmp_path / "same.jsonl", vector_rows(120, seed=2)),
        "shifted": write_jsonl(tmp_path / "shifted.jsonl", vector_rows(120, seed=3, shift=0.5)),
    }


def check(reference: Path, current: Path, out: Path, *extra: str) -> int:
    return main(["monitor", "check", str(reference), str(current), "--embedding-column", "emb",
                 "--out", str(out), "--calibrate-repeats", REPEATS, "--no-progress", *extra])


def test_same_distribution_exits_0_with_report_and_calibration(files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert check(files["reference"], files["same"], out) == 0
    printed = capsys.readouterr().out
    result = json.loads((out / "monitor.json").read_text())
    html = (out / "monitor.html").read_text()
    assert result["verdict"]["status"] == "no drift" and result["verdict"]["deciding"] == [
        "mmd", "ks"]
    assert [r["detector"] for r in result["detectors"]] == ["mmd", "ks"]
    for r in result["detectors"]:
        cal = r["calibration"]
        assert cal["n_repeats"] == int(REPEATS) and cal["window"] == 120 and cal["n_fit"] == 150
        fa = cal["false_alarm"]
        assert fa["low"] <= fa["value"] <= fa["high"] and fa["method"] == "wilson"
        assert f"{fa['value']:.3f} [{fa['low']:.3f}, {fa['high']:.3f}]" in printed
        assert cal["power"] == {}  # no positive controls with precomputed vectors
    assert "false alarms at α=0.05" in printed and "verdict: no drift (exit 0)" in printed
    assert f"rule: {RULE}" in printed
    assert f"report: {out / 'monitor.html'}" in printed
    assert html.startswith("<!DOCTYPE html>") and "<svg" in html and "Drift check: no drift" in html
    assert result["accuracy"] == {"available": False, "reason": result["accuracy"]["reason"]}
    assert "accuracy: unavailable: no model" in printed


def test_obvious_shift_exits_1_and_saves_calibrated_detectors(files, tmp_path, capsys) -> None:
    out = tmp_path / "out"
    assert check(files["reference"], files["shifted"], out, "--detector", "mmd",
                 "--evidently-report") == 1
    assert "<html" in (out / "evidently.html").read_text().lower()
    assert "verdict: DRIFT (exit 1)" in capsys.readouterr().out
    result = json.loads((out / "monitor.json").read_text())
    (mmd,) = result["detectors"]
    assert mmd["drifted"] and mmd["p_value"] < 0.05 and mmd["holm_p"] == mmd["p_value"]
    saved = load_detector(out / "detectors" / "mmd")
    assert saved.calibration_ is not None
    assert saved.calibration_.to_dict() == mmd["calibration"]
    assert saved.reference_.shape == (300, DIM)


def test_a_second_check_reuses_the_saved_detectors(files, tmp_path, capsys,
                                                  monkeypatch) -> None:
    saved = tmp_path / "detectors"
    reuse = ("--detectors-dir", str(saved), "--detector", "mmd")
    assert check(files["reference"], files["shifted"], tmp_path / "first", *reuse) == 1
    first = json.loads((tmp_path / "first" / "monitor.json").read_text())
    assert [p.name for p in saved.iterdir()] == ["mmd"]
    assert not (tmp_path / "first" / "detectors").exists()

    def no_calibration(*args, **kwargs):
        raise AssertionError("calibrated again")

    monkeypatch.setattr(Detector, "calibrate", no_calibration)
    capsys.readouterr()
    assert check(files["reference"], files["shifted"], tmp_path / "second", *reuse) == 1
    printed = capsys.readouterr().out
    second = json.loads((tmp_path / "second" / "monitor.json").read_text())
    for a, b in zip(first["detectors"], second["detectors"], strict=True):
        assert (a["statistic"], a["p_value"], a["calibration"], a["saved"]) == (
            b["statistic"], b["p_value"], b["calibration"], b["saved"])
        assert not a["reused"] and b["reused"]
    assert second["verdict"] == first["verdict"]
    assert "detectors mmd reused from" in printed and f"detectors: {saved}" in printed
    assert not any(key.endswith("_calibrate_s") for key in second["timings"])

    # a detector asked for the first time is fitted and saved beside the reused ones
    monkeypatch.undo()
    assert check(files["reference"], files["shifted"], tmp_path / "third", *reuse,
                 "--detector", "ks") == 1
    third = json.loads((tmp_path / "third" / "monitor.json").read_text())
    assert [r["reused"] for r in third["detectors"]] == [True, False]
    assert (saved / "ks" / "detector.json").is_file()


@pytest.mark.parametrize("reference, extra, message", [
    ("other", [], "saved by a check with another reference (its rows differ)"),
    ("reference", ["--alpha", "0.01"], "with other detector parameters"),
    ("reference", ["--window", "60"], "with other calibration settings"),
    ("reference", ["--calibrate-repeats", "0"], "with other calibration settings"),
    ("reference", ["--seed", "1"], "with other detector parameters"),
])
def test_saved_detectors_are_refused_for_another_reference_or_settings(
        files, tmp_path, capsys, reference, extra, message) -> None:
    saved = tmp_path / "detectors"
    assert check(files["reference"], files["same"], tmp_path / "first", "--detectors-dir",
                 str(saved)) == 0
    files["other"] = write_jsonl(tmp_path / "other.jsonl", vector_rows(300, seed=9))
    capsys.readouterr()
    assert check(files[reference], files["same"], tmp_path / "second", "--detectors-dir",
                 str(saved), *extra) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"shiftbench: error: {saved / 'mmd'}: ") and message in err
    assert "\n" not in err and not (tmp_path / "second" / "monitor.json").exists()


def test_a_damaged_saved_detector_is_refused(files, tmp_path, capsys) -> None:
    saved = tmp_path / "detectors"
    assert check(files["reference"], files["same"], tmp_path / "first", "--detectors-dir",
                 str(saved)) == 0
    np.savez(saved / "ks" / "arrays.npz", reference=np.zeros((150, DIM)))
    capsys.readouterr()
    assert check(files["reference"], files["same"], tmp_path / "second", "--detectors-dir",
                 str(saved)) == 2
    err = capsys.readouterr().err.strip()
    assert str(saved / "ks" / "arrays.npz") in err and "does not match its checksum" in err


def bad_rows(kind: str) -> list[dict]:
    rows = vector_rows(120, seed=2)
    if kind == "nan":
        rows[7]["emb"][3] = float("nan")
    elif kind == "inf":
        rows[7]["emb"][0] = float("inf")
    elif kind == "dims":
        rows = vector_rows(120, seed=2, dim=6)
    elif kind == "ragged":
        rows[4]["emb"] = rows[4]["emb"][:5]
    elif kind == "tiny":
        rows = rows[:4]
    return rows


@pytest.mark.parametrize(("current", "extra", "message"), [
    ("nan", [], "row 8 (id r7): embedding holds NaN or infinite values"),
    ("inf", [], "row 8 (id r7): embedding holds NaN or infinite values"),
    ("dims", [], "embeddings have 6 dimensions, the reference's have 8"),
    ("ragged", [], "row 5 (id r4): embedding has 5 numbers, the first row has 8"),
    ("tiny", ["--detector", "classifier"], "needs at least 10 rows; the current sample "
                                           "(CURRENT) has 4"),
    ("same", ["--detector", "classifier", "--window", "6"],
     "needs at least 10 rows; the calibration window is 6"),
    ("same", ["--window", "151"], "--window 151: calibration tests windows drawn from the "
                                  "held-out half of the reference; use 1 to 150"),
    ("same", ["--text-column", "body"], "no column 'body' for the text"),
    ("same", ["--detector", "telepathy"], "unknown detector 'telepathy'"),
    ("same", ["--detector", "bbsd"], "detector 'bbsd' tests a classifier's probabilities"),
    ("same", ["--control", "keyboard:2"], "precomputed vectors (--embedding-column) cannot"),
    ("same", ["--alpha", "1.5"], "--alpha must be in (0, 1)"),
])
def test_bad_input_is_one_line_and_exit_2(files, tmp_path, capsys, current, extra,
                                          message) -> None:
    path = files.get(current) or write_jsonl(tmp_path / f"{current}.jsonl", bad_rows(current))
    assert check(files["reference"], path, tmp_path / "out", *extra) == 2
    err = capsys.readouterr().err.strip()
    message = message.replace("CURRENT", str(path))
    assert err.startswith("shiftbench: error:") and message in err and "\n" not in err
    assert not (tmp_path / "out" / "monitor.json").exists()


@pytest.mark.parametrize(("name", "content", "message"), [
    ("empty.jsonl", "", "empty file; the reference has no rows"),
    ("header.csv", "id,text,emb\n", "header.csv: empty file (no rows)"),
    ("reference.txt", "hello\n", "unknown file type '.txt'"),
    ("reference", "hello\n", "unknown file type (no suffix); use .jsonl, .ndjson, .json"),
    ("missing.jsonl", None, "missing.jsonl: reference file not found"),
])
def test_empty_or_unknown_reference_is_an_error(files, tmp_path, capsys, name, content,
                                                message) -> None:
    reference = tmp_path / name
    if content is not None:
        reference.write_text(content)
    assert check(reference, files["same"], tmp_path / "out") == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


@pytest.mark.parametrize("suffix", FILE_FORMATS)
def test_every_file_format_is_read_alike(tmp_path: Path, suffix: str) -> None:
    """One table of file formats: `check` reads each suffix `stream` reads, labels and
    embeddings (JSON text in delimited files) included."""
    import pandas as pd

    from shiftbench.monitor.inputs import read_sample

    rows = vector_rows(6, seed=1, dim=3)
    frame = pd.DataFrame({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows],
                          "label": ["a", "b"] * 3,
                          "emb": [json.dumps(r["emb"]) if suffix in (".csv", ".tsv")
                                  else r["emb"] for r in rows]})
    sample = read_sample(write_data_file(frame, tmp_path / f"ref{suffix}"), "reference",
                         "text", "label", "emb", need_labels=True)
    assert sample.split.texts == [r["text"] for r in rows]
    assert sample.split.labels == ["a", "b"] * 3
    np.testing.assert_allclose(sample.vectors, [r["emb"] for r in rows])


def test_a_crash_exits_2_not_1(files, tmp_path, monkeypatch, capsys) -> None:
    """Exit 1 means drift, so an unexpected exception must not exit 1 as Python does."""
    import shiftbench.monitor.check

    def boom(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr(shiftbench.monitor.check, "run_check", boom)
    assert check(files["reference"], files["same"], tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert "RuntimeError: bug" in err and "no verdict" in err


def test_monitor_help_imports_nothing_heavy() -> None:
    code = ("import sys\nfrom shiftbench.cli import main\n"
            "try:\n    main(['monitor', 'check', '--help'])\nexcept SystemExit:\n    pass\n"
            "print(sorted(m for m in ('torch', 'transformers', 'nlpaug', 'evidently', 'sklearn',"
            " 'pandas') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=Path(__file__).parents[1], check=True).stdout
    assert "--embedding-column" in out and out.strip().splitlines()[-1] == "[]"


# -- texts: embeddings through the runner, a trained model, controls, accuracy --------------


def test_text_embedder_goes_through_the_cache(tiny_encoder_dir, tmp_path) -> None:
    from shiftbench.models.embed import text_embedder
    from shiftbench.runner import Runner

    texts, _ = make_labelled(12, seed=5)
    embedder = text_embedder(str(tiny_encoder_dir))
    first = embedder(texts, Runner(cache_dir=tmp_path, device="cpu", progress=False))
    runner = Runner(cache_dir=tmp_path, device="cpu", progress=False)
    again = embedder(texts, runner)
    assert first.shape == (12, 32) and np.array_equal(first, again)
    assert runner.stats["computed"] == 0 and runner.stats["cache_hits"] == len(set(texts))
    with pytest.raises(ShiftbenchError, match="give --model"):
        text_embedder("model")


def labelled_rows(n: int, seed: int, shout: bool = False) -> list[dict]:
    texts, labels = make_labelled(n, seed)
    return [{"id": f"s{seed}-{i}", "text": t.upper() + " !!! #deal" if shout else t, "label": y}
            for i, (t, y) in enumerate(zip(texts, labels, strict=True))]


def test_texts_with_a_trained_probe_end_to_end(tiny_encoder_dir, tmp_path, capsys) -> None:
    reference = write_jsonl(tmp_path / "reference.jsonl", labelled_rows(160, seed=11))
    current = write_jsonl(tmp_path / "current.jsonl", labelled_rows(60, seed=12, shout=True))
    args = ["monitor", "check", str(reference), str(current), "--label-column", "label",
            "--model", f"probe:{tiny_encoder_dir}", "--calibrate-repeats", "10",
            "--control", "keyboard:2", "--control", "word_delete:4", "--device", "cpu",
            "--detector", "mmd", "--detector", "ks", "--detector", "bbsd",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    code = main([*args, "--out", str(tmp_path / "one")])
    printed = capsys.readouterr().out
    result = json.loads((tmp_path / "one" / "monitor.json").read_text())
    assert code == result["verdict"]["exit_code"] and code in (0, 1)
    # the probe trains on a stable half of the reference; the rest is the reference
    n_used = result["reference"]["n_used"]
    assert 0 < n_used < 160 and result["model"]["trained_here"]
    assert any("trained on" in note for note in result["notes"])
    assert result["embeddings"]["dim"] == 32 and result["embeddings"]["source"].startswith("model")
    assert [r["input"] for r in result["detectors"]] == ["embeddings", "embeddings",
                                                         "model probabilities"]
    for r in result["detectors"]:
        assert set(r["calibration"]["power"]) == {"keyboard@2", "word_delete@4"}
        assert r["n_reference"] == n_used and r["n_sample"] == 60
    acc = result["accuracy"]
    assert acc["available"] and acc["reference"]["n"] == n_used and acc["actual"]["n"] == 60
    for est in (acc["reference"], acc["atc"]["estimate"], acc["doc"], acc["actual"]):
        assert 0 <= est["low"] <= est["value"] <= est["high"] <= 1
    assert "current, ATC estimate" in printed and "power vs word_delete@4" in printed
    assert "Does it hurt?" in (tmp_path / "one" / "monitor.html").read_text()
    # wherever the estimates are shown, so is what their intervals do not cover
    assert acc["caveat"] == CAVEAT and CAVEAT in printed
    assert "cover sampling error only" in (tmp_path / "one" / "monitor.html").read_text()

    # a second check of the same data embeds and predicts nothing: all from the cache
    assert main([*args, "--out", str(tmp_path / "two")]) == code
    again = json.loads((tmp_path / "two" / "monitor.json").read_text())
    assert again["runner"]["computed"] == 0 and again["detectors"] == [
        {**r, "saved": r["saved"].replace("one", "two")} for r in result["detectors"]]


def test_probe_without_labels_is_an_error(tiny_encoder_dir, tmp_path, capsys) -> None:
    reference = write_jsonl(tmp_path / "reference.jsonl", labelled_rows(40, seed=11))
    assert main(["monitor", "check", str(reference), str(reference), "--model",
                 f"probe:{tiny_encoder_dir}", "--out", str(tmp_path / "out")]) == 2
    assert "trains on the labelled reference: give --label-column" in capsys.readouterr().err


def test_tfidf_model_with_vectors_bbsd_and_a_new_current_class(tmp_path, capsys) -> None:
    """A model trained here, precomputed vectors for mmd, its probabilities for bbsd; a
    current label the model does not know leaves the actual accuracy out, not the check."""
    rng = np.random.default_rng(4)
    reference = [{**row, "emb": rng.normal(size=DIM).tolist()}
                 for row in labelled_rows(200, seed=21)]
    current = [{**row, "emb": rng.normal(size=DIM).tolist(),
                "label": "neutral" if i == 3 else row["label"]}
               for i, row in enumerate(labelled_rows(60, seed=22))]
    code = main(["monitor", "check", str(write_jsonl(tmp_path / "ref.jsonl", reference)),
                 str(write_jsonl(tmp_path / "cur.jsonl", current)), "--embedding-column", "emb",
                 "--label-column", "label", "--model", "sklearn:tfidf", "--detector", "mmd",
                 "--detector", "bbsd", "--calibrate-repeats", "10", "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "cache")])
    result = json.loads((tmp_path / "o" / "monitor.json").read_text())
    assert code == result["verdict"]["exit_code"]
    mmd, bbsd = result["detectors"]
    assert mmd["input"] == "embeddings" and bbsd["input"] == "model probabilities"
    assert mmd["n_reference"] == bbsd["n_reference"] == result["reference"]["n_used"] < 200
    acc = result["accuracy"]
    assert acc["available"] and acc["actual"] is None
    assert "label 'neutral' is not one the model knows" in acc["actual_unavailable"]
    assert "label 'neutral'" in capsys.readouterr().out
    assert result["model"]["spec"] == "sklearn:tfidf"
    assert "sklearn:tfidf (sklearn-" in (tmp_path / "o" / "monitor.html").read_text()


def test_phase_lines_say_what_the_check_is_doing(files, tmp_path, capsys) -> None:
    assert main(["monitor", "check", str(files["reference"]), str(files["same"]),
                 "--embedding-column", "emb", "--out", str(tmp_path / "out"),
                 "--calibrate-repeats", REPEATS]) == 0
    lines = [line.split(" (")[0] for line in capsys.readouterr().err.splitlines()]
    calibration = f"test and {REPEATS} calibration repeats"
    assert lines == ["shiftbench: [1/5] reading data", "shiftbench: [2/5] embedding: reference",
                     "shiftbench: [2/5] embedding: current",
                     f"shiftbench: [3/5] detector mmd: {calibration}",
                     f"shiftbench: [4/5] detector ks: {calibration}",
                     "shiftbench: [5/5] accuracy estimates"]
    timings = json.loads((tmp_path / "out" / "monitor.json").read_text())["timings"]
    assert set(timings) == {"read_s", "embed_s", "detector_mmd_s", "detector_ks_s",
                            "accuracy_s", "total_s"}


def test_an_unwritable_out_folder_fails_before_reading(files, tmp_path, capsys) -> None:
    (tmp_path / "taken").write_text("a file")
    assert check(files["reference"], files["same"], tmp_path / "taken" / "out") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"shiftbench: error: {tmp_path / 'taken'}: is not a folder; cannot create " \
                  f"{tmp_path / 'taken' / 'out'}"
