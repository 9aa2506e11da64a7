"""Generation suites: targets in suites and splits, the generator contract (hf-seq2seq on a
tiny random T5, the shared loop on a tiny random GPT-2) and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import build_tiny_generator, make_labelled

from shiftbench.backbone import Backbone
from shiftbench.cli import main
from shiftbench.config import Suite, validate
from shiftbench.errors import ShiftbenchError
from shiftbench.evaluate import evaluate_generation
from shiftbench.generation import GenerationSettings, generate_batches
from shiftbench.metrics import metric_named
from shiftbench.models import load_model
from shiftbench.models.seq2seq import HFSeq2Seq
from shiftbench.runner import Runner
from shiftbench.split import Split

TEXTS, _ = make_labelled(16, seed=5)


def runner(batch_size: int = 8, cache_dir: Path | None = None) -> Runner:
    return Runner(cache_dir=cache_dir, device="cpu", progress=False, batch_size=batch_size)


def write_data(folder: Path, n: int = 40, **changes: dict) -> Path:
    """Reviews with a title each (row ``i`` changed by ``changes[i]``)."""
    texts, labels = make_labelled(n, seed=7)
    rows = [{"id": f"r{i}", "text": text, "title": " ".join(text.split()[:3]), "label": label,
             **changes.get(str(i), {})}
            for i, (text, label) in enumerate(zip(texts, labels, strict=True))]
    path = folder / "reviews.jsonl"
    path.write_text("\n".join(json.dumps(row) for row in rows), encoding="utf-8")
    return path


def suite_data(**changes) -> dict:
    data = {"name": "titles", "task": "generation", "limit": 12,
            "data": {"kind": "jsonl", "path": "reviews.jsonl", "target": "title"},
            "reference": {"portion": [0.0, 0.6]},
            "shifts": [{"shift": "keyboard", "severity": 2},
                       {"name": "rest", "portion": [0.6, 1.0]}]}
    return {**data, **changes}


def write_suite(folder: Path, **changes) -> Path:
    path = folder / "titles.yaml"
    path.write_text(yaml.safe_dump(suite_data(**changes)), encoding="utf-8")
    return path


def run_cli(suite: Path, model: str, capsys=None) -> int:
    return main(["run", str(suite), "--model", model, "--reports-dir",
                 str(suite.parent / "reports"), "--no-progress", "--no-movement"])


# -- suites and splits ------------------------------------------------------------------------


def test_generation_suite_defaults_to_generation_metrics() -> None:
    suite = validate(Suite, suite_data(), "s.yaml")
    assert suite.task == "generation" and suite.data.target == "title"
    assert "accuracy" not in suite.metrics and "rougeL" in suite.metrics
    classic = validate(Suite, {"name": "c", "data": {"kind": "jsonl", "path": "d.jsonl"}}, "c")
    assert classic.metrics == ["accuracy", "macro_f1", "ece", "nll"]


@pytest.mark.parametrize(("changes", "message"), [
    ({"data": {"kind": "jsonl", "path": "reviews.jsonl"}},
     "s.yaml: data: a generation suite names the column of reference outputs in its sources"),
    ({"shifts": [{"name": "other", "source": {"kind": "jsonl", "path": "x.jsonl"}}]},
     "s.yaml: shifts: other: a generation suite names the column"),
    ({"metrics": ["rougeL", "accuracy"]},
     "s.yaml: metrics: accuracy is a classification metric; this suite's task is generation"),
    ({"task": "classification"}, "s.yaml: data: only a suite with task: generation reads"),
])
def test_suite_errors_name_the_field(changes: dict, message: str) -> None:
    with pytest.raises(ShiftbenchError) as err:
        validate(Suite, suite_data(**changes), "s.yaml")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_targets_follow_subsets_and_shifts() -> None:
    split = Split("s", ["a", "b", "c"], ["x", "y", "z"], targets=["A", "B", "C"])
    assert split.subset([2, 0]).targets == ["C", "A"]
    shifted = split.derive("s@1", ["x!", "y!", "z!"], kind="perturbation")
    assert shifted.targets == split.targets and shifted.ids == split.ids
    with pytest.raises(ValueError, match="2 targets for 3 ids"):
        Split("s", ["a", "b", "c"], ["x", "y", "z"], targets=["A", "B"])


@pytest.mark.parametrize(("title", "problem"), [("  ", "empty or missing target"),
                                                (None, "empty or missing target"),
                                                (7, "the target is not text (got 7)")])
def test_a_row_without_a_target_is_named(tmp_path: Path, capsys, title, problem) -> None:
    data = write_data(tmp_path, **{"3": {"title": title}})
    suite = write_suite(tmp_path, limit=None)
    assert run_cli(suite, "hf-seq2seq:nowhere") == 2
    err = capsys.readouterr().err.strip()
    assert err == f"shiftbench: error: {data}: row 4 (id r3): {problem}"


def test_task_and_model_must_match(tmp_path: Path, tiny_seq2seq_dir: Path,
                                   tiny_classifier_dir: Path, capsys) -> None:
    write_data(tmp_path)
    suite = write_suite(tmp_path)
    assert run_cli(suite, f"hf:{tiny_classifier_dir}") == 2
    err = capsys.readouterr().err
    assert "task: the suite is a generation task but model" in err and "does classification" in err
    classic = write_suite(tmp_path, task="classification",
                          data={"kind": "jsonl", "path": "reviews.jsonl"})
    assert run_cli(classic, f"hf-seq2seq:{tiny_seq2seq_dir}") == 2
    err = capsys.readouterr().err
    assert "the suite is a classification task but model" in err and "does generation" in err


# -- the generator contract -------------------------------------------------------------------


def test_outputs_do_not_depend_on_batch_size(tiny_seq2seq_dir: Path) -> None:
    model = HFSeq2Seq(str(tiny_seq2seq_dir), max_new_tokens=12)
    batched = model.generate(TEXTS, runner(8))
    assert len(set(batched)) > 4  # the outputs depend on the input
    assert model.generate(TEXTS, runner(1)) == batched
    assert [model.generate([t], runner(1))[0] for t in TEXTS[:4]] == batched[:4]


def test_decoder_only_models_pad_left_and_keep_only_new_tokens(tmp_path: Path) -> None:
    """The shared loop serves causal LMs too: left padding makes outputs batch-invariant,
    and the prompt is not part of the output."""
    directory = build_tiny_generator("causal", tmp_path / "gpt")
    backbone = Backbone(str(directory), "AutoModelForCausalLM", 64)
    settings = GenerationSettings(max_new_tokens=6)
    batched = generate_batches(backbone, TEXTS, settings, runner(8), "tiny-gpt")
    assert len(set(batched)) > 4
    assert generate_batches(backbone, TEXTS, settings, runner(1), "tiny-gpt") == batched
    words = [len(backbone.tokenizer(out, add_special_tokens=False)["input_ids"])
             for out in batched]
    assert max(words) <= 2 * 6  # new tokens only (re-tokenised, an output may split more)
    assert not any(out.startswith(text[:12]) for out, text in zip(batched, TEXTS, strict=True))


def test_generations_are_cached_by_settings(tiny_seq2seq_dir: Path, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = HFSeq2Seq(str(tiny_seq2seq_dir), max_new_tokens=8, prefix="title: ")
    cold = model.generate(TEXTS[:6] * 2, runner(cache_dir=tmp_path))

    def no_loading(self, runner):
        raise AssertionError("a fully cached run loaded the model")

    monkeypatch.setattr(Backbone, "model", no_loading)
    warm_runner = runner(cache_dir=tmp_path)
    assert model.generate(TEXTS[:6], warm_runner) == cold[:6]
    assert warm_runner.stats["cache_hits"] == 6
    other = HFSeq2Seq(str(tiny_seq2seq_dir), max_new_tokens=9, prefix="title: ")
    assert other.fingerprint() != model.fingerprint()
    with pytest.raises(AssertionError, match="loaded the model"):
        other.generate(TEXTS[:1], runner(cache_dir=tmp_path))


def test_model_file_and_bad_parameters(tmp_path: Path, tiny_seq2seq_dir: Path) -> None:
    spec = tmp_path / "t5.yaml"
    spec.write_text(yaml.safe_dump({"adapter": "hf-seq2seq", "source": str(tiny_seq2seq_dir),
                                    "max_new_tokens": 5, "num_beams": 2, "prefix": "summarize: "}))
    model = load_model(str(spec))
    assert model.describe()["num_beams"] == 2 and model.task == "generation"
    assert len(model.generate(TEXTS[:3], runner())) == 3
    assert model.embed(TEXTS[:3], runner()).shape == (3, 16)
    spec.write_text(yaml.safe_dump({"adapter": "hf-seq2seq", "source": "x", "num_beams": 0}))
    with pytest.raises(ShiftbenchError, match="num_beams: Input should be greater than"):
        load_model(str(spec))
    with pytest.raises(ShiftbenchError, match="generates text; it has no class probabilities"):
        model.predict_proba(TEXTS[:1], runner())


def test_a_decoder_only_model_is_refused_by_hf_seq2seq(tmp_path: Path) -> None:
    directory = build_tiny_generator("causal", tmp_path / "gpt")
    with pytest.raises(ShiftbenchError, match="a gpt2 model is not an encoder-decoder"):
        HFSeq2Seq(str(directory)).generate(TEXTS[:1], runner())


# -- metrics ----------------------------------------------------------------------------------

OUTPUTS = np.array(["the cat sat on the mat", "a dog barked", "Hello  World", "great blender"],
                   dtype=object)
TARGETS = np.array(["the cat sat on a mat", "the dog barked loudly", "hello world",
                    "awful blender"], dtype=object)


def test_corpus_bleu_is_sacrebleus_and_scores_pair_by_example() -> None:
    import sacrebleu

    bleu = metric_named("bleu").estimate(OUTPUTS, TARGETS, rng=0, n_boot=200)
    assert bleu.value == pytest.approx(
        sacrebleu.corpus_bleu(list(OUTPUTS), [list(TARGETS)]).score)
    assert bleu.low <= bleu.value <= bleu.high
    em = metric_named("exact_match")
    assert em.outcome(OUTPUTS, TARGETS).tolist() == [False, False, True, False]  # case folded
    chrf = metric_named("chrf")
    assert chrf.per_example(OUTPUTS, OUTPUTS).tolist() == [100.0] * 4
    assert chrf.per_example(OUTPUTS, TARGETS)[2] < 100.0  # chrF, unlike exact match, sees case
    rouge = metric_named("rougeL").per_example(OUTPUTS, TARGETS)
    assert rouge[2] == 1.0 and rouge[3] == pytest.approx(0.5)  # "blender" of two words


def test_an_unchanged_input_changes_nothing(tiny_seq2seq_dir: Path) -> None:
    """A perturbation that leaves every text as it was: each bootstrapped paired change is
    exactly 0 with a zero-width interval (exact match's Tango interval keeps its width when
    no pair disagrees); a domain of other examples is compared unpaired."""
    texts, _ = make_labelled(10, seed=9)
    ids = [f"e{i}" for i in range(10)]
    targets = [" ".join(t.split()[:2]) for t in texts]
    ref = Split("reference", ids, texts, info={"kind": "reference"}, targets=targets)
    same = ref.derive("noop@1", texts, kind="perturbation")
    other = Split("other", ids[:6], texts[4:], info={"kind": "domain"}, targets=targets[4:])
    model = HFSeq2Seq(str(tiny_seq2seq_dir), max_new_tokens=4)
    outputs = model.generate(texts, runner())
    records, frame = evaluate_generation(ref, outputs, [(same, outputs),
                                                        (other, outputs[4:])],
                                         ["rougeL", "bleu", "exact_match"], seed=0, n_boot=200)
    for name in ("rougeL", "bleu"):
        delta = records[1]["delta"][name]
        assert (delta["value"], delta["low"], delta["high"]) == (0.0, 0.0, 0.0)
        assert records[2]["delta"][name]["method"] == "unpaired_bootstrap"
    match = records[1]["delta"]["exact_match"]
    assert match["value"] == 0 and match["low"] < 0 < match["high"]
    assert match["method"] == "tango_score"
    assert records[1]["n_paired"] == 10 and records[1]["flip_rate"] is None
    assert records[0]["output_words"]["value"] == pytest.approx(
        np.mean([len(o.split()) for o in outputs]))
    assert set(frame.columns) >= {"target", "output", "rougeL", "exact_match"}
    assert "bleu" not in frame.columns  # corpus BLEU has no per-example score


# -- run, report, gate ------------------------------------------------------------------------


def test_a_generation_run_reports_and_gates(tmp_path: Path, tiny_seq2seq_dir: Path,
                                            capsys) -> None:
    write_data(tmp_path)
    suite = write_suite(tmp_path, metrics=["rougeL", "chrf", "bleu"])
    model = f"hf-seq2seq:{tiny_seq2seq_dir}"
    reports = tmp_path / "reports"
    for run_id in ("base", "cand"):
        assert main(["run", str(suite), "--model", model, "--reports-dir", str(reports),
                     "--no-progress", "--no-movement", "--run-id", run_id]) == 0
    run_dir = reports / "titles" / "base"
    report = json.loads((run_dir / "report.json").read_text())
    assert report["task"] == "generation" and report["model"]["classes"] == []
    names = [r["name"] for r in report["splits"]]
    assert names == ["reference", "keyboard@2", "rest"]
    summary = (run_dir / "summary.md").read_text()
    assert "Δ ROUGE-L" in summary and "output words" in summary
    assert "flip rate" not in summary and "accuracy" not in summary.split("\n\n")[1]
    assert "ROUGE-L per split" in (run_dir / "report.html").read_text()
    assert main(["report", str(run_dir)]) == 0
    edited = json.loads((run_dir / "report.json").read_text())
    edited["splits"][0]["metrics"]["rougeL"]["value"] += 0.5
    edited["splits"][0]["metrics"]["rougeL"]["high"] += 0.5
    (run_dir / "report.json").write_text(json.dumps(edited))
    assert main(["report", str(run_dir)]) == 2
    assert "metrics.rougeL: report.json says" in capsys.readouterr().err
    (run_dir / "report.json").write_text(json.dumps(report))

    policy = tmp_path / "policy.yaml"

    def gate(rules: list[dict]) -> tuple[int, str]:
        policy.write_text(yaml.safe_dump({"n_boot": 400, "rules": rules}))
        code = main(["gate", str(policy), "--baseline", str(run_dir), "--candidate",
                     str(reports / "titles" / "cand"), "--out", str(tmp_path / "gate")])
        captured = capsys.readouterr()
        return code, captured.out + captured.err

    passing = [{"kind": "non_inferiority", "metric": "rougeL", "split": "*", "margin": 0.05},
               {"kind": "robustness", "metric": "chrf", "split": "keyboard@*", "max_drop": 50}]
    code, _ = gate(passing)
    assert code == 0
    verdicts = json.loads((tmp_path / "gate" / "gate.json").read_text())["verdicts"]
    assert [v["status"] for v in verdicts] == ["pass"] * 4
    assert verdicts[0]["quantity"] == "Δ rougeL (candidate − baseline)"
    assert verdicts[0]["method"] == "paired bootstrap"
    code, _ = gate([{"kind": "absolute", "metric": "chrf", "split": "reference", "min": 60,
                     "decide": "point"}])
    assert code == 1  # the random model's chrF is far below 60
    code, out = gate([{"kind": "absolute", "metric": "accuracy", "min": 0.5}])
    assert code == 2 and "accuracy is a classification metric; the runs are of a generation" in out
    code, out = gate([{"kind": "flip_rate", "split": "keyboard@2", "max": 0.2}])
    assert code == 2 and "flip rates need class predictions" in out


def test_a_generation_run_shows_the_examples_whose_score_changed(tmp_path: Path,
                                                                  tiny_seq2seq_dir: Path) -> None:
    """The failure browser of a generation run compares the first metric that scores
    examples one by one (chrF; corpus BLEU does not): its counts agree with the scores in
    the predictions, and the page and summary show them."""
    import pandas as pd

    write_data(tmp_path)
    suite = write_suite(tmp_path, metrics=["bleu", "chrf"], limit=20)
    assert main(["run", str(suite), "--model", f"hf-seq2seq:{tiny_seq2seq_dir}", "--reports-dir",
                 str(tmp_path / "reports"), "--no-progress", "--no-movement", "--run-id",
                 "g"]) == 0
    run_dir = tmp_path / "reports" / "titles" / "g"
    failures = json.loads((run_dir / "report.json").read_text())["failures"]
    frame = pd.read_parquet(run_dir / "predictions.parquet")
    chrf = {split: dict(zip(part["id"], part["chrf"], strict=True))
            for split, part in frame.groupby("split")}
    ref, typo = chrf["reference"], chrf["keyboard@2"]
    worse = sum(typo[i] < ref[i] - 1e-9 for i in typo)
    better = sum(typo[i] > ref[i] + 1e-9 for i in typo)
    mean = sum(ref.values()) / len(ref)
    low = sum(score < mean for score in chrf["rest"].values())
    assert failures["metric"] == "chrf" and worse + better > 0 and low > 0
    assert failures["groups"] == {"keyboard@2": {"n": len(typo), "worse": worse,
                                                 "better": better},
                                  "rest": {"n": len(chrf["rest"]), "low": low}}
    html = (run_dir / "report.html").read_text()
    assert "Failures: the examples whose chrF changed" in html
    assert html.count('class="fb-row fb-worse"') == worse
    assert html.count('class="fb-row fb-low"') == low and 'id="fb-class"' not in html
    assert f"keyboard@2: {worse} score fell, {better} score rose of {len(typo)}" in \
        (run_dir / "summary.md").read_text()
    assert main(["report", str(run_dir)]) == 0  # re-rendered from report.json


# -- the shipped suite on the shared Amazon data ----------------------------------------------

ROOT = Path(__file__).parents[1]
SUITES = ROOT / "suites"
# shared/ lies beside the repository (as the suite's data_dir says), or beside the folder
# of a git worktree
DATA = next((d for d in (ROOT.parent / "shared" / "data", ROOT.parents[1] / "shared" / "data")
             if (d / "amazon-multidomain" / "books.jsonl").is_file()), None)


@pytest.mark.integration
@pytest.mark.skipif(DATA is None, reason="needs shared/data/amazon-multidomain")
def test_amazon_titles_runs_offline(tmp_path: Path, tiny_seq2seq_dir: Path) -> None:
    """suites/amazon-titles.yaml end to end on the real reviews and titles. The model is a
    tiny random T5 (no title generator installs offline): this proves the path (data,
    targets, shifts on the input only, generation, metrics, report), not a score; a user with
    network runs suites/models/flan-t5-small-titles.yaml instead."""
    reports = tmp_path / "reports"
    assert main(["run", str(SUITES / "amazon-titles.yaml"), "--model",
                 f"hf-seq2seq:{tiny_seq2seq_dir}", "--limit", "20", "--data-dir", str(DATA),
                 "--reports-dir",
                 str(reports), "--no-progress", "--no-movement", "--run-id", "t"]) == 0
    report = json.loads((reports / "amazon-titles" / "t" / "report.json").read_text())
    assert [r["name"] for r in report["splits"]] == ["reference", "keyboard@1", "keyboard@3",
                                                     "ocr@2", "kitchen"]
    assert all(r["n"] == 20 and set(r["metrics"]) == {"rougeL", "chrf", "bleu"}
               for r in report["splits"])
    import pandas as pd

    frame = pd.read_parquet(reports / "amazon-titles" / "t" / "predictions.parquet")
    lines = (DATA / "amazon-multidomain" / "books.jsonl").read_text().splitlines()
    books = {row["id"]: row for row in map(json.loads, lines)}
    shifted = frame[frame["split"] == "keyboard@3"]
    assert all(books[i]["title"] == t for i, t in zip(shifted["id"], shifted["target"],
                                                       strict=True))
    assert (shifted["text"] != [books[i]["text"] for i in shifted["id"]]).any()
