"""Generation suites: targets in suites and splits, the generator contract (hf-seq2seq on a
tiny random T5, the shared loop on a tiny random GPT-2) and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import build_tiny_generator, make_labelled

from shiftbench.backbone import Backbone
from shiftbench.cli import main
from shiftbench.config import Suite, validate
from shiftbench.errors import ShiftbenchError
from shiftbench.generation import GenerationSettings, generate_batches
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
