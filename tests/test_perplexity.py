"""Perplexity under shift: rolling log-likelihoods of whole texts, bits per byte per split
with intervals and paired changes, the bpb drift detector, and their bad inputs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import yaml

from shiftbench.cli import main
from shiftbench.errors import ShiftbenchError
from shiftbench.models.rolling import RollingLM, windows
from shiftbench.perplexity import perplexity_section
from shiftbench.runner import Runner
from shiftbench.split import Split

LONG = "the book was great and i would say the plot felt boring again. " * 6


def _runner(**kwargs) -> Runner:
    return Runner(device="cpu", progress=False, **kwargs)


def _hand_logprobs(directory: Path, text: str, context: int) -> tuple[float, int]:
    """Sum over the text's tokens of log p(token | at most ``context`` tokens before it,
    the BOS first), one forward pass per token: independent of the windowing code."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = [tokenizer.bos_token_id, *tokenizer(text, add_special_tokens=False)["input_ids"]]
    total = 0.0
    with torch.no_grad():
        for j in range(1, len(ids)):
            row = ids[max(0, j - context):j]
            total += model(torch.tensor([row])).logits[0, -1].log_softmax(-1)[ids[j]].item()
    return total, len(ids) - 1


@pytest.mark.parametrize(("n", "length", "stride"), [(0, 4, 2), (3, 4, 2), (4, 4, 4), (10, 4, 2),
                                                     (9, 4, 4), (50, 7, 3), (20, 5, 1)])
def test_windows_score_every_token_once_with_its_context_inside(n: int, length: int,
                                                                stride: int) -> None:
    spans = windows(n, length, stride)
    targets = [j for _, first, end in spans for j in range(first, end)]
    assert targets == list(range(1, n + 1))
    for start, first, end in spans:
        assert 0 <= start < first and end - 1 - start <= length
        assert first - start >= min(first, length - stride + 1)  # left context kept


def test_a_text_that_fits_one_window_is_its_exact_log_likelihood(tiny_causal_lm_dir: Path
                                                                 ) -> None:
    text = "the movie was great."
    expected, n_tokens = _hand_logprobs(tiny_causal_lm_dir, text, context=10**6)
    scores = RollingLM(str(tiny_causal_lm_dir), max_length=128).score([text], _runner())
    assert scores.tokens.tolist() == [n_tokens]
    assert scores.nats[0] == pytest.approx(expected, abs=1e-4)
    assert scores.bytes.tolist() == [20] and scores.words.tolist() == [4]


def test_long_text_windows_count_each_token_once(tiny_causal_lm_dir: Path) -> None:
    """Covered by one window: the exact sum; stride 1: each token sees exactly the
    max_length tokens before it (a sliding window), computed token by token."""
    exact, n_tokens = _hand_logprobs(tiny_causal_lm_dir, LONG, context=10**6)
    assert 16 < n_tokens < 128
    runner = _runner()
    whole = RollingLM(str(tiny_causal_lm_dir), max_length=128).score([LONG], runner)
    assert whole.nats[0] == pytest.approx(exact, abs=1e-3)
    sliding, _ = _hand_logprobs(tiny_causal_lm_dir, LONG, context=8)
    windowed = RollingLM(str(tiny_causal_lm_dir), max_length=8, stride=1).score([LONG], runner)
    assert windowed.tokens.tolist() == [n_tokens]
    assert windowed.nats[0] == pytest.approx(sliding, abs=1e-3)
    assert abs(windowed.nats[0] - exact) > 1e-2  # less context: another number


def test_scores_do_not_depend_on_batch_size_and_are_cached(tiny_causal_lm_dir: Path,
                                                           sentences: list[str],
                                                           tmp_path: Path) -> None:
    lm = RollingLM(str(tiny_causal_lm_dir), max_length=16, stride=8)
    texts = [*sentences[:12], LONG, ""]
    first = lm.score(texts, _runner(batch_size=1))
    cached = _runner(batch_size=5, cache_dir=tmp_path)
    second = lm.score(texts, cached)
    np.testing.assert_allclose(second.nats, first.nats, rtol=0, atol=1e-4)
    assert second.tokens.tolist() == first.tokens.tolist() and second.tokens[-1] == 0
    again = lm.score(texts, cached)
    assert cached.stats["computed"] == len(set(texts))
    np.testing.assert_array_equal(again.nats, second.nats)


def _bpb(scores) -> float:
    return -scores.nats.sum() / math.log(2) / scores.bytes.sum()


def _split(name: str, ids: list[str], texts: list[str], kind: str) -> Split:
    return Split(name, ids, texts, info={"kind": kind})


def test_section_is_corpus_bits_per_byte_with_paired_and_unpaired_changes(
        tiny_causal_lm_dir: Path, sentences: list[str]) -> None:
    """Corpus bpb from the per-text scores; a perturbation's change pairs by id (its
    empty text left out and counted), a domain split's is unpaired; intervals hold values."""
    lm = RollingLM(str(tiny_causal_lm_dir), max_length=32)
    texts = sentences[:20]
    reference = _split("reference", [f"r{i}" for i in range(20)], texts, "reference")
    typos = _split("typos@1", reference.ids[:15], [t.upper() for t in texts[:14]] + [""],
                   "perturbation")
    domain = _split("other", [f"d{i}" for i in range(10)], sentences[30:40], "domain")
    runner = _runner()
    section, per_text = perplexity_section(lm, reference, [typos, domain], runner, seed=1,
                                           n_boot=300)
    scores = lm.score(texts, runner)
    ref = section["splits"]["reference"]
    assert ref["bits_per_byte"]["value"] == pytest.approx(_bpb(scores), rel=1e-9)
    assert ref["token_perplexity"]["value"] == pytest.approx(
        math.exp(-scores.nats.sum() / scores.tokens.sum()), rel=1e-9)
    assert ref["n"] == 20 and ref["excluded"] == 0 and ref["bytes"] == scores.bytes.sum()
    np.testing.assert_allclose(per_text["reference"][:, 0],
                               -scores.nats / math.log(2) / scores.bytes)
    shifted = section["splits"]["typos@1"]
    assert shifted["n"] == 14 and shifted["excluded"] == 1
    assert shifted["excluded_ids"] == ["r14"] and np.isnan(per_text["typos@1"][14, 0])
    delta = shifted["delta_bits_per_byte"]
    upper = lm.score(typos.texts[:14], runner)
    assert delta["method"] == "paired_bootstrap" and delta["n"] == 14
    assert delta["value"] == pytest.approx(_bpb(upper) - _bpb(lm.score(texts[:14], runner)))
    assert section["splits"]["other"]["delta_bits_per_byte"]["method"] == "unpaired_bootstrap"
    for record in section["splits"].values():
        for key in ("bits_per_byte", "token_perplexity", "delta_bits_per_byte"):
            if record.get(key):
                assert record[key]["low"] <= record[key]["value"] <= record[key]["high"]
    again, _ = perplexity_section(lm, reference, [typos, domain], runner, seed=1, n_boot=300)
    assert again == section


def test_a_split_of_empty_texts_is_an_error_naming_it(tiny_causal_lm_dir: Path) -> None:
    lm = RollingLM(str(tiny_causal_lm_dir), max_length=32)
    reference = _split("reference", ["a", "b"], ["the movie was great.", "the book."],
                       "reference")
    empty = _split("blank", ["c"], [""], "domain")
    with pytest.raises(ShiftbenchError, match="split 'blank' has no text with a token"):
        perplexity_section(lm, reference, [empty], _runner(), seed=0)


def test_bpb_detector_tests_one_column() -> None:
    from shiftbench.detectors import make_detector

    rng = np.random.default_rng(0)
    detector = make_detector("bpb").fit(rng.lognormal(size=(40, 1)))
    assert detector.input == "bits_per_byte"
    assert detector.test(rng.lognormal(mean=1.0, size=(40, 1))).drifted
    with pytest.raises(ShiftbenchError, match="bpb tests one column"):
        make_detector("bpb").fit(rng.lognormal(size=(40, 2)))


def _suite(tmp_path: Path, **extra) -> Path:
    rows = [{"id": f"ex{i}", "text": f"the movie number {i} was {'great' if i % 2 else 'awful'}"
             " and the plot too", "label": "positive" if i % 2 else "negative",
             "topic": "film" if i < 60 else "food"} for i in range(80)]
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    suite = {"name": "ppl", "seed": 2, "data": {"kind": "jsonl", "path": "data.jsonl"},
             "train": {"filters": [{"column": "topic", "equals": "film"}], "portion": [0, 0.5]},
             "reference": {"filters": [{"column": "topic", "equals": "film"}],
                           "portion": [0.5, 1]},
             "shifts": [{"shift": "keyboard", "severity": 3},
                        {"name": "food", "filters": [{"column": "topic", "equals": "food"}]}],
             **extra}
    path = tmp_path / "ppl.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def _run(suite: Path, *extra: str) -> int:
    return main(["run", str(suite), "--model", "sklearn:tfidf", "--reports-dir",
                 str(suite.parent / "reports"), "--no-progress", "--no-movement", *extra])


def test_run_reports_perplexity_and_bpb_drift(tiny_causal_lm_dir: Path, tmp_path: Path,
                                              capsys) -> None:
    suite = _suite(tmp_path, perplexity={"lm": str(tiny_causal_lm_dir), "max_length": 16},
                   detectors=[{"name": "bpb"}])
    assert _run(suite, "--run-id", "a") == 0
    run_dir = tmp_path / "reports" / "ppl" / "a"
    report = json.loads((run_dir / "report.json").read_text())
    section = report["perplexity"]
    assert section["lm"]["max_length"] == 16 and section["lm"]["stride"] == 8
    assert list(section["splits"]) == ["reference", "keyboard@3", "food"]
    assert section["splits"]["keyboard@3"]["delta_bits_per_byte"]["method"] == "paired_bootstrap"
    assert [r["detector"] for r in report["drift"]["food"]] == ["bpb"]
    assert "perplexity_s" in report["timings"]
    assert "## Perplexity under shift" in (run_dir / "summary.md").read_text()
    assert "Perplexity under shift" in (run_dir / "report.html").read_text()
    # --lm on a suite without perplexity: the same LM, default settings
    plain = _suite(tmp_path)
    assert _run(plain, "--run-id", "b", "--lm", f"llm:{tiny_causal_lm_dir}") == 0
    other = json.loads((tmp_path / "reports" / "ppl" / "b" / "report.json").read_text())
    assert other["perplexity"]["lm"]["max_length"] == 512


@pytest.mark.parametrize(("change", "flags", "message"), [
    ({"detectors": [{"name": "bpb"}]}, [], "detector 'bpb' tests bits per byte"),
    ({"perplexity": {"lm": "x", "max_length": 0}}, [], "perplexity.max_length: Input should be"),
    ({"perplexity": {"lm": "x", "max_length": 8, "stride": 9}}, [], "stride 9 is above"),
    ({"perplexity": {"lm": "x", "window": 9}}, [], "perplexity.window: unknown field"),
    ({}, ["--lm", "BERT"], "a bert model is not a causal"),
])
def test_bad_perplexity_input_is_one_line(tmp_path: Path, tiny_classifier_dir: Path,
                                          change: dict, flags: list[str], message: str,
                                          capsys) -> None:
    suite = _suite(tmp_path, **change)
    flags = [str(tiny_classifier_dir) if f == "BERT" else f for f in flags]
    assert _run(suite, *flags) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def _texts_file(path: Path, texts: list[str]) -> Path:
    path.write_text("".join(json.dumps({"id": f"t{i}", "text": t}) + "\n"
                            for i, t in enumerate(texts)))
    return path


def _garbled(texts: list[str], seed: int) -> list[str]:
    """Each text's characters shuffled: the same bytes, made unlike the LM's corpus."""
    rng = np.random.default_rng(seed)
    return ["".join(rng.permutation(list(t))) for t in texts]


def _monitor(tmp_path: Path, current: Path, lm: Path | None, encoder: Path, out: str,
             *extra: str) -> int:
    return main(["monitor", "check", str(tmp_path / "reference.jsonl"), str(current),
                 *(["--lm", str(lm)] if lm is not None else []), "--detector", "bpb",
                 "--encoder", str(encoder), "--calibrate-repeats", "20", "--window", "25",
                 "--device", "cpu", "--cache-dir", str(tmp_path / "cache"),
                 "--out", str(tmp_path / out), "--no-progress", *extra])


def test_monitor_tests_bits_per_byte_under_the_lm(tiny_causal_lm_dir: Path, tiny_encoder_dir,
                                                  tmp_path: Path, capsys) -> None:
    from conftest import build_tiny_causal_lm, make_labelled

    _texts_file(tmp_path / "reference.jsonl", make_labelled(160, seed=31)[0])
    clean = _texts_file(tmp_path / "clean.jsonl", make_labelled(50, seed=32)[0])
    garbled = _texts_file(tmp_path / "garbled.jsonl",
                          _garbled(make_labelled(50, seed=33)[0], seed=33))
    assert _monitor(tmp_path, clean, tiny_causal_lm_dir, tiny_encoder_dir, "clean",
                    "--detectors-dir", str(tmp_path / "saved")) == 0
    result = json.loads((tmp_path / "clean" / "monitor.json").read_text())
    (record,) = result["detectors"]
    assert record["detector"] == "bpb" and record["input"] == "bits per byte"
    assert 0.05 <= record["p_value"] <= 1
    assert record["n_reference"] == 160 and record["n_sample"] == 50
    calibration = record["calibration"]
    assert calibration["n_repeats"] == 20 and set(calibration["power"]) == {"keyboard@2"}
    false_alarm = calibration["false_alarm"]
    assert 0 <= false_alarm["low"] <= false_alarm["value"] <= false_alarm["high"] <= 1
    assert result["lm"]["source"] == str(tiny_causal_lm_dir)
    assert "bpb" in capsys.readouterr().out

    assert _monitor(tmp_path, garbled, tiny_causal_lm_dir, tiny_encoder_dir, "garbled") == 1
    (record,) = json.loads((tmp_path / "garbled" / "monitor.json").read_text())["detectors"]
    assert record["drifted"] and record["p_value"] < 0.05

    # the saved detector is reused with the same LM, refused with another one
    assert _monitor(tmp_path, clean, tiny_causal_lm_dir, tiny_encoder_dir, "again",
                    "--detectors-dir", str(tmp_path / "saved")) == 0
    other = build_tiny_causal_lm(tmp_path / "other-lm", seed=1)
    capsys.readouterr()
    assert _monitor(tmp_path, clean, other, tiny_encoder_dir, "other",
                    "--detectors-dir", str(tmp_path / "saved")) == 2
    err = capsys.readouterr().err.strip()
    assert "another embedder, model or LM" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize(("lm", "detector", "message"), [
    (False, "bpb", "detector 'bpb' tests bits per byte under a language model: give --lm"),
    (True, "ks", "--lm scores the texts for the bpb detector: add --detector bpb"),
])
def test_monitor_bpb_and_lm_go_together(tiny_causal_lm_dir: Path, tmp_path: Path, capsys,
                                        lm: bool, detector: str, message: str) -> None:
    data = _texts_file(tmp_path / "data.jsonl", ["a text", "another text"])
    code = main(["monitor", "check", str(data), str(data), "--detector", detector,
                 *(["--lm", str(tiny_causal_lm_dir)] if lm else []),
                 "--out", str(tmp_path / "out"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1


def test_monitor_leaves_out_texts_without_bits_per_byte(tmp_path: Path) -> None:
    """A text the LM cannot score (NaN) leaves the reference with its shifted copies, so
    the controls stay row-aligned; the current sample loses only its own."""
    from shiftbench.monitor.check import CheckOptions, Inputs, _Check

    check = _Check(CheckOptions(), runner=None, out_dir=tmp_path, phases=None)
    column = np.arange(6, dtype=float)[:, None]
    ref = Inputs(np.zeros((6, 2)), bits_per_byte=np.where(column == 1, np.nan, column))
    control = Inputs(np.zeros((6, 2)), bits_per_byte=np.where(column == 4, np.nan, column + 10))
    cur = Inputs(np.zeros((3, 2)), bits_per_byte=np.array([[np.nan], [7.0], [8.0]]))
    ref, cur, positives = check.drop_unscored(ref, cur, {"typo@2": control})
    assert ref.bits_per_byte[:, 0].tolist() == [0, 2, 3, 5]
    assert positives["typo@2"].bits_per_byte[:, 0].tolist() == [10, 12, 13, 15]
    assert cur.bits_per_byte[:, 0].tolist() == [7, 8] and ref.embeddings.shape == (6, 2)
    assert check.notes == ["bits per byte leaves out texts the LM cannot score (empty): 2 of "
                           "the reference, 1 of the current (rows of the reference, or of its "
                           "shifted copies)"]
