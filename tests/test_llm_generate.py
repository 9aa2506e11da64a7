"""``llm`` in generate mode (a tiny random GPT-2): batch invariance, the cache, stop strings,
a prompt cut inside its text slot, the model file's modes; and the suite seed of shots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import build_tiny_generator, make_labelled

from shiftbench.backbone import Backbone
from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.generation import Generations
from shiftbench.models import load_model
from shiftbench.models.llm import CausalLMClassifier, CausalLMGenerator, cut_at_stop
from shiftbench.runner import Runner
from shiftbench.split import Split
from shiftbench.testing import check_model_adapter

TEXTS, _ = make_labelled(12, seed=5)
PROMPT = "Review: {text}\nTitle:"


@pytest.fixture(scope="module")
def gpt_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_generator("causal", tmp_path_factory.mktemp("tiny-gpt"))


def runner(batch_size: int = 8, cache_dir: Path | None = None) -> Runner:
    return Runner(cache_dir=cache_dir, device="cpu", progress=False, batch_size=batch_size)


def write_model(folder: Path, **fields) -> str:
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump({"adapter": "llm", **fields}, sort_keys=False))
    return str(path)


def test_generate_mode_is_a_generator_invariant_to_batch_size(gpt_dir: Path,
                                                              tmp_path: Path) -> None:
    model = load_model(write_model(tmp_path, mode="generate", source=str(gpt_dir),
                                   prompt=PROMPT, max_new_tokens=6))
    assert isinstance(model, CausalLMGenerator) and model.task == "generation"
    batched = model.generate(TEXTS, runner(8))
    assert len(set(batched)) > 6  # outputs depend on the input
    assert model.generate(TEXTS, runner(1)) == batched
    check_model_adapter(model, texts=TEXTS[:5])


def test_a_cached_rerun_loads_no_weights_and_stop_decodes_nothing_again(
        gpt_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = CausalLMGenerator(str(gpt_dir), PROMPT, max_new_tokens=8)
    cold = model.generate(TEXTS[:6], runner(cache_dir=tmp_path))

    def no_loading(self, runner):
        raise AssertionError("a fully cached run loaded the model")

    monkeypatch.setattr(Backbone, "model", no_loading)
    stop = sorted({out[1] for out in cold if len(out) > 2})[0]  # a character some output holds
    stopped = CausalLMGenerator(str(gpt_dir), PROMPT, max_new_tokens=8, stop=[stop])
    warm = runner(cache_dir=tmp_path)
    assert stopped.generate(TEXTS[:6], warm) == [cut_at_stop(out, [stop]) for out in cold]
    assert warm.stats["cache_hits"] == 6 and stopped.fingerprint() != model.fingerprint()
    with pytest.raises(AssertionError, match="loaded the model"):
        CausalLMGenerator(str(gpt_dir), PROMPT, max_new_tokens=9).generate(
            TEXTS[:1], runner(cache_dir=tmp_path))


def test_cut_at_stop_takes_the_first_of_any_stop() -> None:
    assert cut_at_stop("Great book\nI loved it. Really", ["\n"]) == "Great book"
    assert cut_at_stop("Great. book\nx", ["\n", "."]) == "Great"
    assert cut_at_stop("no stop here", ["\n"]) == "no stop here"


def test_a_long_text_is_cut_inside_the_prompt(gpt_dir: Path) -> None:
    backbone = Backbone(str(gpt_dir), "AutoModelForCausalLM", 24)
    generations = Generations(backbone, CausalLMGenerator(str(gpt_dir), PROMPT).settings,
                              runner(), ("Review: ", "\nTitle:"))
    long_text = " ".join(TEXTS)
    filled = generations.filled(long_text)
    assert filled.startswith("Review: ") and filled.endswith("\nTitle:")
    kept = filled[len("Review: "):-len("\nTitle:")]
    assert long_text.startswith(kept) and len(kept) < len(long_text)
    assert len(backbone.tokenizer(filled)["input_ids"]) <= 24
    assert len(backbone.tokenizer(generations.filled(long_text[:len(kept) + 1]))["input_ids"]
               ) <= 24  # cut by the model's own tokens: one more character would not fit
    tiny = Generations(Backbone(str(gpt_dir), "AutoModelForCausalLM", 2), generations.settings,
                       runner(), ("Review: ", "\nTitle:"))
    with pytest.raises(ShiftbenchError, match="max_length 2 cannot hold the prompt"):
        tiny.filled("x")


@pytest.mark.parametrize(("fields", "message"), [
    ({"mode": "generate", "verbalizers": {"a": " x", "b": " y"}},
     "verbalizers is a field of mode: classify; mode: generate takes source, prompt, mode, "
     "max_new_tokens"),
    ({"mode": "generate", "calibrate": "content-free"}, "calibrate is a field of mode: classify"),
    ({"verbalizers": {"a": " x", "b": " y"}, "max_new_tokens": 4},
     "max_new_tokens is a field of mode: generate; mode: classify takes"),
    ({"mode": "translate"}, "mode: use classify or generate, got 'translate'"),
    ({"mode": "generate", "stop": [""]}, "stop: .*a stop string must not be empty"),
    ({"mode": "generate", "prompt": "Title:"}, "prompt: .*text slot"),
])
def test_fields_of_the_other_mode_are_one_line(tmp_path: Path, fields: dict,
                                               message: str) -> None:
    spec = write_model(tmp_path, **{"source": "somewhere", "prompt": PROMPT, **fields})
    with pytest.raises(ShiftbenchError, match=message) as caught:
        load_model(spec)
    assert "\n" not in str(caught.value) and "model.yaml" in str(caught.value)


def test_llm_without_a_model_file_asks_for_one(gpt_dir: Path, capsys) -> None:
    with pytest.raises(ShiftbenchError, match="an llm model needs a model YAML file: prompt "
                                              r"\+ verbalizers to classify, or mode: generate"):
        load_model(f"llm:{gpt_dir}")


def test_run_a_generation_suite_with_llm_generate(gpt_dir: Path, tmp_path: Path) -> None:
    texts, _ = make_labelled(30, seed=7)
    rows = [{"id": f"r{i}", "text": t, "title": " ".join(t.split()[:3])}
            for i, t in enumerate(texts)]
    (tmp_path / "reviews.jsonl").write_text("\n".join(map(json.dumps, rows)))
    suite = tmp_path / "titles.yaml"
    suite.write_text(yaml.safe_dump({
        "name": "titles", "task": "generation", "limit": 10,
        "data": {"kind": "jsonl", "path": "reviews.jsonl", "target": "title"},
        "reference": {"portion": [0.0, 0.6]}, "shifts": [{"shift": "keyboard", "severity": 2}]}))
    spec = write_model(tmp_path, mode="generate", source=str(gpt_dir), prompt=PROMPT,
                       max_new_tokens=4, stop=["\n"])
    assert main(["run", str(suite), "--model", spec, "--reports-dir", str(tmp_path / "reports"),
                 "--no-progress", "--no-movement", "--run-id", "r"]) == 0
    report = json.loads((tmp_path / "reports" / "titles" / "r" / "report.json").read_text())
    assert report["model"]["mode"] == "generate" and report["model"]["stop"] == ["\n"]
    assert [s["name"] for s in report["splits"]] == ["reference", "keyboard@2"]


def test_shots_follow_the_suite_seed_unless_the_model_file_sets_one(
        tiny_causal_lm_dir: Path, train_split: Split) -> None:
    def shots(suite_seed: int | None, **params) -> list[tuple[str, str]]:
        model = CausalLMClassifier(str(tiny_causal_lm_dir), "Review: {text}\nSentiment:",
                                   {"negative": " awful", "positive": " great"}, shots=3,
                                   **params)
        if suite_seed is not None:
            model.use_suite_seed(suite_seed)
        return model.fit(train_split, runner()).shots_

    assert shots(None) == shots(0) == shots(None, seed=0)  # no seed anywhere: 0
    assert shots(1) == shots(None, seed=1) != shots(0)  # the suite's seed draws them
    assert shots(1, seed=0) == shots(0)  # the model file's seed wins


def test_a_generation_suite_tests_output_length_drift(gpt_dir: Path, tmp_path: Path,
                                                      capsys) -> None:
    """output_length tests the outputs' word counts in a generation suite; a classification
    suite has no outputs, so naming it there is one line."""
    texts, _ = make_labelled(60, seed=7)
    rows = [{"id": f"r{i}", "text": t, "title": " ".join(t.split()[:3]), "label": "a"}
            for i, t in enumerate(texts)]
    (tmp_path / "reviews.jsonl").write_text("\n".join(map(json.dumps, rows)))
    suite = tmp_path / "titles.yaml"
    spec = {"name": "titles", "task": "generation",
            "data": {"kind": "jsonl", "path": "reviews.jsonl", "target": "title"},
            "reference": {"portion": [0.0, 0.6]},
            "shifts": [{"name": "rest", "portion": [0.6, 1.0]}],
            "detectors": [{"name": "output_length", "params": {"backend": "numpy"}}]}
    suite.write_text(yaml.safe_dump(spec))
    model = write_model(tmp_path, mode="generate", source=str(gpt_dir), prompt=PROMPT,
                        max_new_tokens=5)
    assert main(["run", str(suite), "--model", model, "--reports-dir",
                 str(tmp_path / "reports"), "--no-progress", "--no-movement",
                 "--run-id", "r"]) == 0
    report = json.loads((tmp_path / "reports" / "titles" / "r" / "report.json").read_text())
    [result] = report["drift"]["rest"]
    assert result["detector"] == "output_length" and 0 <= result["p_value"] <= 1
    assert result["details"]["n_dimensions"] == 1
    spec.update(task="classification", data={"kind": "jsonl", "path": "reviews.jsonl"})
    suite.write_text(yaml.safe_dump(spec))
    assert main(["run", str(suite), "--model", "sklearn:tfidf", "--reports-dir",
                 str(tmp_path / "reports"), "--no-progress"]) == 2
    assert "output_length tests a generator's output lengths" in capsys.readouterr().err


def test_monitor_check_of_a_generator_tests_output_length(gpt_dir: Path, tmp_path: Path,
                                                          capsys) -> None:
    """Inputs by embeddings, outputs by their word counts (calibrated against a control
    like every detector); no label-free accuracy estimate, with the reason."""
    texts, _ = make_labelled(90, seed=21)
    files = {}
    for name, part in (("reference", texts[:60]), ("current", texts[60:])):
        files[name] = tmp_path / f"{name}.jsonl"
        files[name].write_text("".join(json.dumps({"id": f"{name}{i}", "text": t}) + "\n"
                                       for i, t in enumerate(part)))
    model = write_model(tmp_path, mode="generate", source=str(gpt_dir), prompt=PROMPT,
                        max_new_tokens=5)
    args = ["monitor", "check", str(files["reference"]), str(files["current"]), "--model", model,
            "--calibrate-repeats", "5", "--control", "keyboard:2", "--device", "cpu",
            "--cache-dir", str(tmp_path / "cache"), "--no-progress"]
    code = main([*args, "--detector", "mmd", "--detector", "output_length",
                 "--out", str(tmp_path / "out")])
    result = json.loads((tmp_path / "out" / "monitor.json").read_text())
    assert code == result["verdict"]["exit_code"] and code in (0, 1)
    mmd, length = result["detectors"]
    assert mmd["input"] == "embeddings" and length["input"] == "output words"
    assert set(length["calibration"]["power"]) == {"keyboard@2"}
    assert length["n_reference"] == 60 and length["n_sample"] == 30
    accuracy = result["accuracy"]
    assert not accuracy["available"] and "the model generates text" in accuracy["reason"]
    capsys.readouterr()
    assert main([*args, "--detector", "bbsd", "--out", str(tmp_path / "o2")]) == 2
    assert "detector 'bbsd' tests a classifier's probabilities: give --model with one" in \
        capsys.readouterr().err
    assert main(["monitor", "check", str(files["reference"]), str(files["current"]),
                 "--detector", "output_length", "--out", str(tmp_path / "o3")]) == 2
    assert "tests a generator's output lengths: give --model" in capsys.readouterr().err
