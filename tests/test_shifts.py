"""Noise shifts: determinism, id pairing, severity, robustness, parameter checks."""

from __future__ import annotations

import difflib
import json
import math
import os
import random
import re
import subprocess
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from statistics import mean

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shiftbench.errors import ShiftbenchError
from shiftbench.registry import SHIFTS
from shiftbench.shifts import Shift, apply_shift
from shiftbench.shifts.noise import (
    SEVERITY_RATES,
    NoiseShift,
    _misspellings,
    _seeded_global_random,
    _Words,
)
from shiftbench.split import Split

NOISE = [n for n in SHIFTS.names() if SHIFTS.target(n).startswith("shiftbench.shifts.noise:")]
WORD_LEVEL = ["spelling", "word_delete", "word_swap", "casing", "punctuation"]
CHAR_LEVEL = ["keyboard", "ocr", "char_insert", "char_substitute", "char_swap", "char_delete"]

SENTENCES = [
    "The flight was delayed for three hours and nobody at the gate could tell us why.",
    "I really loved this movie, although the ending felt rushed and a little silly.",
    "Customer service hung up on me twice before finally solving the billing problem.",
    "The battery lasts about two days with normal use, which is better than my old phone.",
    "Our waiter was friendly, but the soup arrived cold and the bread was stale.",
    "After a week of use the blender still works great and cleaning it is easy.",
    "The government announced new measures to reduce energy prices over the winter.",
    "Shares in the company fell sharply after it reported lower profits than expected.",
    "Thanks for the quick reply, the replacement part arrived this morning.",
    "This is the worst hotel I have ever stayed in, the room smelled of smoke.",
    "The plot is predictable, yet the actors make every scene worth watching.",
    "My bag was lost on the connecting flight and it took four days to get it back.",
    "The new update made the app slower and now it crashes every time I open it.",
    "She scored twice in the second half to give her team a well deserved victory.",
    "I would not recommend this book to anyone who enjoyed the first one in the series.",
    "The kitchen knife is sharp, well balanced and feels solid in the hand.",
    "Please let me know when the package will be delivered to my new address.",
    "Traffic was terrible this morning because of an accident on the main road.",
    "The soundtrack is beautiful and the photography is simply stunning throughout.",
    "They cancelled my reservation without telling me, so I had nowhere to sleep.",
    "Parliament will vote on the proposal next month after a long public debate.",
    "The charger stopped working after only two weeks, a complete waste of money.",
    "We had a lovely evening and the staff went out of their way to help us.",
    "It is a decent camera for the price, but the low light photos are very noisy.",
    "The museum was crowded, yet the new exhibition was well worth the long wait.",
    "Honestly the second season is much better than the first, give it a chance.",
    "The pilot kept us informed the whole time and we landed safely in the storm.",
    "I returned the shoes because they were too small and the colour looked different.",
    "Scientists say the new vaccine could be available to the public early next year.",
    "The coffee machine makes great espresso but it is far too loud in the morning.",
]


@pytest.fixture(scope="module")
def sample() -> Split:
    """90 examples: each sentence three times under different ids, so rngs differ."""
    texts = SENTENCES * 3
    ids = [f"ex-{i}" for i in range(len(texts))]
    labels = [random.Random(i).choice(["neg", "pos"]) for i in range(len(texts))]
    return Split("clean", ids, texts, labels)


def make(name: str, severity: int = 3, **params) -> Shift:
    return SHIFTS.load(name)(severity=severity, **params)


def change(a: str, b: str) -> float:
    return 1 - difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def test_registry_lists_all_noise_shifts() -> None:
    assert sorted(NOISE) == sorted(WORD_LEVEL + CHAR_LEVEL)
    for name in NOISE:
        assert SHIFTS.load(name).name == name


@pytest.mark.parametrize("name", NOISE)
def test_text_per_id_ignores_order_batch_and_instance(name: str, sample: Split) -> None:
    base = apply_shift(make(name), sample, seed=7)
    order = list(range(len(sample)))
    random.Random(0).shuffle(order)
    shuffled = Split("clean", [sample.ids[i] for i in order], [sample.texts[i] for i in order],
                     [sample.labels[i] for i in order])
    other = apply_shift(make(name), shuffled, seed=7)
    part = apply_shift(make(name), Split("clean", sample.ids[:7], sample.texts[:7]), seed=7)
    again = apply_shift(make(name), sample, seed=7)
    by_id = dict(zip(base.ids, base.texts, strict=True))
    assert dict(zip(other.ids, other.texts, strict=True)) == by_id
    assert all(by_id[i] == t for i, t in zip(part.ids, part.texts, strict=True))
    assert again.texts == base.texts
    # Equal texts under different ids draw different noise: the rng follows the id.
    assert sum(a != b for a, b in zip(base.texts[:30], base.texts[30:60], strict=True)) >= 15


@pytest.mark.parametrize("name", NOISE)
def test_keeps_ids_labels_and_says_what_it_did(name: str, sample: Split) -> None:
    shifted = apply_shift(make(name, 2), sample, seed=0)
    assert shifted.ids == sample.ids and shifted.labels == sample.labels
    assert shifted.name == f"{name}@2"
    assert shifted.info == {"kind": "perturbation", "shift": name, "severity": 2, "params": {}}


@pytest.mark.parametrize("name", NOISE)
def test_different_seeds_give_different_noise(name: str, sample: Split) -> None:
    a = apply_shift(make(name), sample, seed=0).texts
    b = apply_shift(make(name), sample, seed=1).texts
    assert sum(x != y for x, y in zip(a, b, strict=True)) > len(a) / 2


@pytest.mark.parametrize("name", NOISE)
def test_more_severity_changes_more(name: str, sample: Split) -> None:
    changes = []
    for severity in range(1, 6):
        shifted = apply_shift(make(name, severity), sample, seed=3)
        changes.append(mean(change(a, b) for a, b in zip(sample.texts, shifted.texts, strict=True)))
    assert changes == sorted(changes) and len(set(changes)) == 5, changes


@pytest.mark.parametrize("name", NOISE)
def test_changes_most_texts_and_never_empties_them(name: str, sample: Split) -> None:
    for severity in range(2, 6):
        shifted = apply_shift(make(name, severity), sample, seed=5)
        assert all(t.strip() for t in shifted.texts)
        changed = sum(a != b for a, b in zip(sample.texts, shifted.texts, strict=True))
        assert changed >= 0.9 * len(sample), (severity, changed)


@pytest.mark.parametrize("name", NOISE)
def test_ignores_and_keeps_the_global_rngs(name: str) -> None:
    shift, text = make(name, 4), SENTENCES[0]
    outs = []
    for global_seed in (1, 2):
        random.seed(global_seed)
        np.random.seed(global_seed)
        before = random.getstate(), np.random.get_state()[1].copy()
        outs.append(shift.perturb(text, random.Random(99)))
        assert random.getstate() == before[0]
        assert (np.random.get_state()[1] == before[1]).all()
    assert outs[0] == outs[1] != text


ODD_TEXTS = ["", "   ", "\n", "a", "ok", "Hi!", "🙂", "😡😡 !!!", "日本語のテキスト",
             "https://example.com/a?b=1&c=%20d", "@united thanks 👍 #travel http://t.co/xyz",
             "Ünïcödé wörds—and “quotes” ‘here’…", "\t tabs\tand\nnewlines \n", "123 456.78"]


@pytest.mark.parametrize("name", NOISE)
def test_odd_texts_do_not_crash(name: str) -> None:
    shift = make(name, 5)
    for i, text in enumerate(ODD_TEXTS):
        out = shift.perturb(text, random.Random(i))
        assert isinstance(out, str)
        assert out == text if not text.strip() else out.strip(), (text, out)


words_and_noise = st.lists(
    st.one_of(st.sampled_from(SENTENCES[0].split() + ["😡", "https://x.io/p?q=1", "日本", "—"]),
              st.text(min_size=1, max_size=8)),
    min_size=1, max_size=25,
).map(" ".join)


@pytest.mark.parametrize("name", NOISE)
@settings(max_examples=25, deadline=None)
@given(text=st.one_of(st.text(max_size=60), words_and_noise), severity=st.integers(1, 5),
       seed=st.integers(0, 2**63 - 1))
def test_any_text_gives_a_deterministic_nonempty_text(name: str, text: str, severity: int,
                                                      seed: int) -> None:
    shift = make(name, severity)
    out = shift.perturb(text, random.Random(seed))
    assert isinstance(out, str)
    assert out.strip() if text.strip() else out == text
    assert make(name, severity).perturb(text, random.Random(seed)) == out


@pytest.mark.parametrize("name", CHAR_LEVEL + ["spelling", "casing"])
def test_word_edits_keep_whitespace_layout(name: str) -> None:
    text = "  The flight\twas delayed\n\nfor three hours and nobody could tell us why  "
    for seed in range(10):
        out = make(name, 5).perturb(text, random.Random(seed))
        assert re.findall(r"\s+", out) == re.findall(r"\s+", text)


def test_casing_changes_exactly_the_table_share_of_words_and_only_case() -> None:
    text = " ".join(f"word{i}" for i in range(23))  # 23 words: every count rounds up
    for severity, rates in SEVERITY_RATES.items():
        out = make("casing", severity).perturb(text, random.Random(severity))
        assert out.lower() == text
        changed = sum(a != b for a, b in zip(text.split(), out.split(), strict=True))
        assert changed == math.ceil(rates.word * 23)


@pytest.mark.parametrize("severity", [1, 3, 5])
def test_word_delete_drops_the_table_share_and_keeps_order(severity: int) -> None:
    words = [f"w{i}" for i in range(37)]
    out = make("word_delete", severity).perturb(" ".join(words), random.Random(0)).split()
    assert len(words) - len(out) == math.ceil(SEVERITY_RATES[severity].word * 37)
    assert out == [w for w in words if w in set(out)]


def test_word_delete_keeps_at_least_one_word() -> None:
    assert make("word_delete", 5).perturb("Fine.", random.Random(0)) == "Fine."
    out = make("word_delete", 5, word_rate=1.0).perturb("one two three four", random.Random(0))
    assert len(out.split()) == 1 and out in "one two three four"


def test_char_delete_of_whole_words_never_empties_the_text() -> None:
    shift = make("char_delete", 1, word_rate=1.0, char_rate=1.0)
    assert shift.perturb("ab cd", random.Random(0)) == "ab cd"  # all would vanish: keep it
    assert shift.perturb("a  bc\nde", random.Random(0)) == "a"  # "a" is too short to pick


def test_word_swap_keeps_the_words_and_the_leading_capital() -> None:
    text = "The movie was long but the music was wonderful"
    for seed in range(20):
        out = make("word_swap", 5).perturb(text, random.Random(seed))
        assert sorted(out.lower().split()) == sorted(text.lower().split())
        assert out[0].isupper() and sum(c.isupper() for c in out) == 1


def test_punctuation_only_touches_punctuation() -> None:
    def letters(s: str) -> str:
        return "".join(c for c in s if not unicodedata.category(c).startswith("P"))

    for seed, text in enumerate(SENTENCES):
        out = make("punctuation", 4).perturb(text, random.Random(seed))
        assert letters(out) == letters(text) and out != text


def test_spelling_uses_real_misspellings_and_keeps_case_and_affixes() -> None:
    table = _misspellings()
    assert all(wrong == tuple(sorted(wrong)) and word not in wrong for word, wrong in table.items())
    text = "The Weather was really GREAT, wasn't it?"
    for seed in range(20):
        out = make("spelling", 5).perturb(text, random.Random(seed))
        for old, new in zip(text.split(), out.split(), strict=True):
            if old != new:
                core_old, core_new = old.strip(",?"), new.strip(",?")
                assert old.replace(core_old, "") == new.replace(core_new, "")
                assert core_new.lower() in table[core_old.lower()]
                assert core_new[0].isupper() == core_old[0].isupper()


def test_character_shifts_keep_the_word_count() -> None:
    for name in CHAR_LEVEL:
        for seed, text in enumerate(SENTENCES):
            out = make(name, 5).perturb(text, random.Random(seed))
            assert len(out.split()) == len(text.split())


def nlpaug_augment(shift: Shift) -> Callable[[str, random.Random], str]:
    """``shift.perturb`` as it ran until it made its own edits: nlpaug's ``augment`` (whose
    edit loops are quadratic in a word's length) on the words, with the same picks."""
    aug = shift._build()
    aug.tokenizer, aug.reverse_tokenizer = str.split, " ".join
    aug.action = {"char_insert": "insert", "char_swap": "swap", "char_delete": "delete"}.get(
        shift.name, "substitute")

    def perturb(text: str, rng: random.Random) -> str:
        if not text.strip():
            return text
        words = _Words(text)
        with _seeded_global_random(rng.getrandbits(64)):
            out = aug.augment(" ".join(words.words))[0]
        new = out.split(" ")
        if len(new) == len(words.words):
            words.words = new
            out = str(words)
        return out if out.strip() else text

    return perturb


MIXED_TEXTS = [*SENTENCES[:10], *ODD_TEXTS, "ÄRGER über Straße ǅemal İstanbul", "ab" * 1500,
               "MiXeD CaSe WoRdS, A b C dE! 0o1l 8s 2z", "k" * 3 + " " + "Qx9" * 900]


@pytest.mark.parametrize("name", CHAR_LEVEL)
def test_character_shifts_edit_exactly_as_nlpaug_did(name: str) -> None:
    """Cached perturbed texts stay valid: every pick and edit is nlpaug's, draw for draw."""
    for severity, params in [(1, {}), (3, {}), (5, {}), (1, {"word_rate": 1.0, "char_rate": 1.0})]:
        shift = make(name, severity, **params)
        old = nlpaug_augment(shift)
        for seed, text in enumerate(MIXED_TEXTS):
            assert shift.perturb(text, random.Random(seed)) == old(text, random.Random(seed))


LONG = 100_000
LONG_TOKENS = {  # a character every edit visibly changes
    "keyboard": "x", "ocr": "o", "char_substitute": "X", "char_insert": "x", "char_delete": "x",
}


@pytest.mark.parametrize("name", CHAR_LEVEL)
@pytest.mark.parametrize("severity", [2, 5])
def test_a_long_token_gets_the_char_rate_deterministically(name: str, severity: int) -> None:
    """A 100,000-character token (a base64 blob, a URL) is edited at the table's rate, and
    by its id alone (it took ~20 s a text while nlpaug's edit loops were quadratic)."""
    text = "ab" * (LONG // 2) if name == "char_swap" else LONG_TOKENS[name] * LONG
    edits = math.ceil(SEVERITY_RATES[severity].char * LONG)
    out = make(name, severity).perturb(text, random.Random(0))
    if name == "char_insert":
        assert len(out) == LONG + edits
    elif name == "char_delete":
        assert len(out) == LONG - edits
    else:
        changed = sum(a != b for a, b in zip(text, out, strict=True))
        if name == "char_swap":  # a swap moves two characters, a later one may move them back
            assert Counter(out) == Counter(text) and edits <= changed <= 2 * edits
        else:
            assert changed == edits
    split = Split("clean", ["short", "long"], [SENTENCES[0], text])
    alone = apply_shift(make(name, severity), Split("clean", ["long"], [text]), seed=3)
    assert apply_shift(make(name, severity), split, seed=3).texts[1] == alone.texts[0] != text


SPELLING_SCRIPT = """
import json, random, sys
from shiftbench.shifts.noise import SpellingMistakes
texts = json.loads(sys.stdin.read())
shift = SpellingMistakes(severity=4)
out = [shift.perturb(t, random.Random(i)) for i, t in enumerate(texts)]
print(json.dumps({"out": out, "heavy": sorted({"torch", "nlpaug"} & set(sys.modules))}))
"""


def test_spelling_is_the_same_under_any_hash_seed() -> None:
    runs = []
    for hash_seed in ("0", "1", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", SPELLING_SCRIPT], input=json.dumps(SENTENCES),
                              capture_output=True, text=True, env=env, check=True,
                              cwd=Path(__file__).resolve().parents[1], timeout=60)
        runs.append(json.loads(done.stdout))
    assert runs[0]["heavy"] == []
    assert runs[0]["out"] == runs[1]["out"] == runs[2]["out"]
    assert sum(a != b for a, b in zip(runs[0]["out"], SENTENCES, strict=True)) == len(SENTENCES)


@pytest.mark.parametrize("severity", [0, 6, -1, "3", 2.0, True, None])
def test_bad_severity_is_a_user_error(severity) -> None:
    with pytest.raises(ShiftbenchError, match="severity"):
        make("keyboard", severity)


@pytest.mark.parametrize("name", NOISE)
def test_unknown_param_names_the_shift_and_param(name: str) -> None:
    with pytest.raises(ShiftbenchError, match=rf"shift '{name}'.*'rate'"):
        make(name, 2, rate=0.5)


@pytest.mark.parametrize("value", [0, -0.1, 1.5, "0.2", True, None])
def test_bad_rate_is_a_user_error(value) -> None:
    with pytest.raises(ShiftbenchError, match="word_rate must be a number"):
        make("ocr", 2, word_rate=value)


def test_char_rate_only_for_character_shifts() -> None:
    assert make("keyboard", 2, char_rate=0.5).char_rate == 0.5
    with pytest.raises(ShiftbenchError, match="'char_rate'"):
        make("word_swap", 2, char_rate=0.5)


def test_rate_override_replaces_the_table_and_the_key(sample: Split) -> None:
    plain, strong = make("keyboard", 1), make("keyboard", 1, word_rate=0.5, char_rate=0.3)
    assert isinstance(plain, NoiseShift) and plain.word_rate == SEVERITY_RATES[1].word
    assert plain.key != strong.key
    texts = sample.texts
    mild = apply_shift(plain, sample, seed=0).texts
    hard = apply_shift(strong, sample, seed=0).texts
    assert mean(map(change, texts, hard)) > 2 * mean(map(change, texts, mild))


def test_example_seed_is_the_sha256_of_seed_key_and_id() -> None:
    """Per-example seeds live beside the split hashing and never changed value: the top
    63 bits of sha256("seed\\x1fkey\\x1fid"), as every saved run was made with."""
    import hashlib

    from shiftbench.split import example_seed, unit_hash

    digest = hashlib.sha256(b"7\x1fkeyboard@2:{}\x1fid-3").digest()
    assert example_seed(7, "keyboard@2:{}", "id-3") == int.from_bytes(digest[:8], "big") >> 1
    assert unit_hash(7, "keyboard@2:{}", "id-3") == int.from_bytes(digest[:8], "big") / 2**64
