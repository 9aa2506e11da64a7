"""WordNet paraphrase shifts: known synonyms, negations kept, determinism, severity, errors."""

from __future__ import annotations

import difflib
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from statistics import mean

import pytest

from shiftbench.errors import ShiftbenchError
from shiftbench.registry import SHIFTS
from shiftbench.shifts import Shift, apply_shift
from shiftbench.shifts.synonyms import NEGATIONS, synonyms_of
from shiftbench.split import Split
from shiftbench.wordnet import ENV_VAR, load_wordnet


def _wordnet_missing() -> str | None:
    try:
        load_wordnet()
    except ShiftbenchError as error:
        return str(error)
    return None


_MISSING = _wordnet_missing()
needs_wordnet = pytest.mark.skipif(_MISSING is not None, reason=f"needs WordNet: {_MISSING}")

# WordNet 3.0's synset movie.n.01, the only sense of "movie".
MOVIE_SYNSET = {"film", "picture", "moving picture", "moving-picture show", "motion picture",
                "motion-picture show", "picture show", "pic", "flick"}

SENTENCES = [
    "The movie was not good and I would never recommend it to my children.",
    "No one could help us reduce the price of the car, so we did not buy it.",
    "The government did not reply, and nobody expected a victory for the team.",
    "I never use this phone: the reply from support was terrible, not helpful.",
    "Generally the film is fine, though the cars in it are not real.",
    "There is no chance the team wins, regardless of the price of tickets.",
    "The children were not happy with the movie, but the parents liked it.",
    "Without a doubt the government will reduce the price of energy this winter.",
    "My phone is not broken; it just needs a new part and a quick reply.",
    "She did not sleep at all, and the next morning she felt terrible.",
    "Zero cars were sold, and the team could not explain why to anyone.",
    "Nothing in this movie is worth the price, nor is the film's music.",
]


@pytest.fixture(scope="module")
def sample() -> Split:
    texts = SENTENCES * 4
    ids = [f"s{i}" for i in range(len(texts))]
    labels = [["neg", "pos"][i % 2] for i in range(len(texts))]
    return Split("clean", ids, texts, labels)


def make(name: str, severity: int = 3, **params) -> Shift:
    return SHIFTS.load(name)(severity=severity, **params)


def words_replaced(before: str, after: str) -> int:
    old = before.split()
    matcher = difflib.SequenceMatcher(None, old, after.split(), autojunk=False)
    return len(old) - sum(block.size for block in matcher.get_matching_blocks())


def negations(text: str) -> list[str]:
    return [w for w in re.findall(r"[\w']+", text.lower()) if w in NEGATIONS or w.endswith("n't")]


@needs_wordnet
def test_known_synonym_replaces_movie() -> None:
    shift = make("synonym", word_rate=1.0)
    seen = set()
    for seed in range(20):
        out = shift.perturb("the movie was good", random.Random(seed))
        match = re.fullmatch(r"the (.+) was good", out)
        assert match, out  # "good" alone in its most frequent sense: never replaced
        seen.add(match.group(1))
    assert seen <= MOVIE_SYNSET
    assert len(seen) > 1  # the rng picks among several synonyms


@needs_wordnet
def test_case_punctuation_and_whitespace_kept() -> None:
    shift = make("synonym", word_rate=1.0)
    out = shift.perturb("Movie,\tthe\n\nMOVIE!  ", random.Random(3))
    first, second = re.fullmatch(r"(.+),\tthe\n\n(.+)!  ", out).groups()
    assert first.lower() in MOVIE_SYNSET and first[0].isupper() and first[1:].islower()
    assert second.lower() in MOVIE_SYNSET and second.isupper()


@needs_wordnet
def test_article_agrees_with_synonym() -> None:
    shift = make("synonym", word_rate=1.0)
    text = "A doubt, an exit and a movie: an answer is a reply to a question."
    for seed in range(10):
        out = shift.perturb(text, random.Random(seed))
        pairs = re.findall(r"\b(an?) (\w)", out, flags=re.I)
        assert len(pairs) == 6
        for article, letter in pairs:
            assert (article.lower() == "an") == (letter.lower() in "aeiou"), out


@needs_wordnet
def test_plural_noun_gets_plural_synonym() -> None:
    out = make("synonym", word_rate=1.0).perturb("the movies", random.Random(0))
    assert out.removeprefix("the ") in {f"{s}s" for s in MOVIE_SYNSET}


@needs_wordnet
def test_ambiguous_words_and_names_stay() -> None:
    shift = make("synonym", word_rate=1.0)
    for seed in range(10):
        text = "it still works and I felt that the Film stars Movie"
        out = shift.perturb(text, random.Random(seed))
        assert " works " in out and " felt " in out  # also inflections of work / feel
        assert out.endswith("the Film stars Movie")  # capitalised inside a sentence: a name


@needs_wordnet
def test_negation_synonyms_filtered() -> None:
    wordnet = load_wordnet()
    for word in ["generally", "zero", "regardless", "meritless"]:
        raw = wordnet.synonyms(word)
        assert any(NEGATIONS.intersection(s.replace("-", " ").split()) for s in raw), raw
        kept = synonyms_of(wordnet, word)
        assert not any(NEGATIONS.intersection(s.replace("-", " ").split()) for s in kept)
    for word in NEGATIONS:
        assert synonyms_of(wordnet, word) == ()


@needs_wordnet
@pytest.mark.parametrize("name", ["synonym", "synonym_insert"])
def test_negations_preserved(name: str, sample: Split) -> None:
    out = apply_shift(make(name, severity=5, word_rate=1.0), sample, seed=7)
    assert sum(a != b for a, b in zip(sample.texts, out.texts, strict=True)) >= len(sample) // 2
    for before, after in zip(sample.texts, out.texts, strict=True):
        assert negations(after) == negations(before), (before, after)


@needs_wordnet
def test_insert_keeps_the_original_words_in_order(sample: Split) -> None:
    wordnet = load_wordnet()
    out = apply_shift(make("synonym_insert", severity=4), sample, seed=1)
    for before, after in zip(sample.texts, out.texts, strict=True):
        old, new = before.split(), after.split()
        assert new[0] == old[0]
        rest = iter(new)
        assert all(word in rest for word in old)  # the original is a subsequence
        offered = {s for w in old for s in synonyms_of(wordnet, re.sub(r"\W", "", w.lower()))}
        added = Counter(new) - Counter(old)
        assert set(added) <= {part for s in offered for part in s.split()}, after


@needs_wordnet
def test_severity_is_monotonic(sample: Split) -> None:
    replaced, inserted = [], []
    for severity in range(1, 6):
        out = apply_shift(make("synonym", severity), sample, seed=0)
        replaced.append(mean(map(words_replaced, sample.texts, out.texts)))
        out = apply_shift(make("synonym_insert", severity), sample, seed=0)
        inserted.append(mean(
            len(y.split()) - len(x.split()) for x, y in zip(sample.texts, out.texts, strict=True)
        ))
    assert replaced == sorted(replaced) and replaced[-1] > replaced[0], replaced
    assert all(a < b for a, b in zip(inserted, inserted[1:], strict=False)), inserted


@needs_wordnet
@pytest.mark.parametrize("name", ["synonym", "synonym_insert"])
def test_ids_and_labels_pair(name: str, sample: Split) -> None:
    shift = make(name)
    out = apply_shift(shift, sample, seed=3)
    assert out.ids == sample.ids and out.labels == sample.labels
    assert out.info["shift"] == name and out.info["severity"] == 3
    assert any(a != b for a, b in zip(sample.texts, out.texts, strict=True))
    shuffled = Split("clean", sample.ids[::-1], sample.texts[::-1], sample.labels[::-1])
    again = apply_shift(shift, shuffled, seed=3)
    assert dict(zip(again.ids, again.texts, strict=True)) == dict(
        zip(out.ids, out.texts, strict=True)
    )


_SCRIPT = """
import json
from shiftbench.registry import SHIFTS
from shiftbench.shifts import apply_shift
from shiftbench.split import Split
texts = json.loads(input())
split = Split("clean", [f"s{i}" for i in range(len(texts))], texts)
print(json.dumps({n: apply_shift(SHIFTS.load(n)(severity=4), split, seed=11).texts
                  for n in ["synonym", "synonym_insert"]}))
"""


@needs_wordnet
def test_same_text_in_any_process() -> None:
    texts = SENTENCES[:6]
    split = Split("clean", [f"s{i}" for i in range(len(texts))], texts)
    here = {n: apply_shift(make(n, severity=4), split, seed=11).texts
            for n in ["synonym", "synonym_insert"]}
    for hash_seed in ["0", "4242"]:
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        done = subprocess.run([sys.executable, "-c", _SCRIPT], input=json.dumps(texts), env=env,
                              capture_output=True, text=True, check=True)
        assert json.loads(done.stdout) == here


@pytest.mark.parametrize("name", ["synonym", "synonym_insert"])
def test_missing_wordnet_names_the_install(name: str, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(ShiftbenchError, match="apt-get install wordnet-base") as caught:
        make(name).perturb("the movie was good", random.Random(0))
    assert str(tmp_path) in str(caught.value) and "index.noun" in str(caught.value)


@pytest.mark.parametrize("params", [{"word_rate": 0}, {"word_rate": 1.5}, {"char_rate": 0.2},
                                    {"rate": 0.1}])
def test_bad_params_rejected(params: dict) -> None:
    with pytest.raises(ShiftbenchError, match="synonym"):
        make("synonym", **params)


@needs_wordnet
def test_blank_and_synonymless_texts_unchanged() -> None:
    for name in ["synonym", "synonym_insert"]:
        shift = make(name, severity=5)
        for text in ["", "   \n", "good and bad and not great", "42 !!"]:
            assert shift.perturb(text, random.Random(0)) == text
