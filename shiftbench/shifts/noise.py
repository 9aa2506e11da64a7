"""Noise shifts: typos, OCR errors, misspellings, word drops and swaps, casing, punctuation.

Severity sets two rates (one table for every shift, so results compare across shifts):

========  ==========================  ====================================
severity  word_rate: words changed    char_rate: characters changed
                                      in each changed word
========  ==========================  ====================================
1         5%                          10%
2         10%                         15%
3         20%                         20%
4         35%                         25%
5         50%                         30%
========  ==========================  ====================================

Counts are shares of all the text's words (characters of a word), rounded up, so a text
with an eligible word changes (bar coincidences such as swapping two equal letters); a
text with no eligible word comes back unchanged.
``word_rate`` and ``char_rate`` (numbers in (0, 1]) override the table, e.g.
``{shift: keyboard, severity: 2, params: {word_rate: 0.15}}``; ``char_rate`` only
applies to the character shifts.

Words are runs of non-whitespace; the whitespace between them (newlines included) is
kept exactly. Character shifts use nlpaug's augmenters (imported on first use) to pick
words and characters but make nlpaug's edits themselves, in time linear in the text's
length (nlpaug's edit loops are quadratic in a word's length). The word shifts, casing
and punctuation are plain Python, which spares the ~4 s that
``import nlpaug.augmenter.word`` spends importing transformers.

Determinism: every random choice comes from the per-example rng. nlpaug draws from the
global ``random`` rng, so each call seeds it from the example's rng and then restores
the caller's state (``nlpaug.util.Randomness.seed`` is not used: it also reseeds numpy
and torch for good, which would disturb a training loop that augments on the fly).
Spelling reads nlpaug's bundled dictionary into sorted tuples itself, because
nlpaug's ``SpellingAug`` orders candidates through a set, so its output changes with
``PYTHONHASHSEED``. Not thread-safe: nlpaug's rng is process-wide.
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
import string
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache, cached_property
from pathlib import Path
from typing import Any, ClassVar, NamedTuple, TypeVar

from shiftbench.errors import ShiftbenchError
from shiftbench.shifts import Shift


class Rates(NamedTuple):
    """What one severity changes: a share of words, and of characters in each of them."""

    word: float
    char: float


SEVERITY_RATES: dict[int, Rates] = {
    1: Rates(word=0.05, char=0.10),
    2: Rates(word=0.10, char=0.15),
    3: Rates(word=0.20, char=0.20),
    4: Rates(word=0.35, char=0.25),
    5: Rates(word=0.50, char=0.30),
}

_SPACE = re.compile(r"(\s+)")
_AFFIXES = re.compile(r"^(\W*)(.*?)(\W*)$", re.S)
_MARKS = ".,;:!?"


def _count(rate: float, total: int) -> int:
    """How many of ``total`` items a rate changes: rounded up, at least one."""
    return max(1, math.ceil(round(rate * total, 9)))


class _Words:
    """A text as words plus the exact whitespace around them, so edits keep its layout."""

    def __init__(self, text: str) -> None:
        core = text.strip()
        self.lead = text[: len(text) - len(text.lstrip())]
        self.trail = text[len(text.rstrip()) :]
        parts = _SPACE.split(core) if core else []
        self.words = parts[0::2]
        self.seps = parts[1::2]

    def pick(self, rng: random.Random, rate: float, eligible: list[int]) -> list[int]:
        """Indices of the words to change, in text order: ``rate`` of all words."""
        k = min(len(eligible), _count(rate, len(self.words)))
        return sorted(rng.sample(eligible, k))

    def delete(self, indices: list[int]) -> None:
        """Drop words with one adjacent separator each (the one after, or before the last)."""
        for i in sorted(indices, reverse=True):
            del self.words[i]
            del self.seps[min(i, len(self.seps) - 1)]

    def insert(self, index: int, word: str) -> None:
        """Put ``word`` before the word at ``index`` (at the end if ``index == len(words)``)."""
        self.words.insert(index, word)
        self.seps.insert(index, " ")

    def __str__(self) -> str:
        body = "".join(w + s for w, s in zip(self.words, [*self.seps, ""], strict=True))
        return self.lead + body + self.trail


class NoiseShift(Shift):
    """Shared by the noise shifts: the severity table, parameter checks, never-empty output."""

    rate_params: ClassVar[tuple[str, ...]] = ("word_rate",)

    def __init__(self, severity: int = 1, **params: Any) -> None:
        super().__init__(severity, **params)
        for key, value in params.items():
            if key not in self.rate_params:
                known = ", ".join(self.rate_params)
                raise ShiftbenchError(
                    f"shift {self.name!r}: unknown parameter {key!r}; known: {known}"
                )
            if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 1:
                raise ShiftbenchError(
                    f"shift {self.name!r}: {key} must be a number in (0, 1], got {value!r}"
                )

    @property
    def word_rate(self) -> float:
        return float(self.params.get("word_rate", SEVERITY_RATES[self.severity].word))

    @property
    def char_rate(self) -> float:
        return float(self.params.get("char_rate", SEVERITY_RATES[self.severity].char))

    def perturb(self, text: str, rng: random.Random) -> str:
        if not text.strip():
            return text
        out = self._noise(_Words(text), rng)
        return out if out.strip() else text

    def _noise(self, words: _Words, rng: random.Random) -> str:
        raise NotImplementedError


@contextmanager
def _seeded_global_random(seed: int) -> Iterator[None]:
    """Seed the global ``random`` rng for one text's character edits, then restore it.

    nlpaug 1.1.11's picks draw only through ``Augmenter.sample`` -> ``random.sample``,
    and the edits here draw the same way; its numpy draws (``prob``, ``sample`` of an
    int) are not on that path, and saving numpy's state would cost ~150 us a text. The
    tests check that the output depends on neither global rng.
    """
    saved = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(saved)


_T = TypeVar("_T")


def _draw(candidates: list[_T]) -> _T:
    """One candidate, drawn as nlpaug draws it (``random.sample(..., 1)``), so outputs match."""
    return random.sample(candidates, 1)[0]


def _only_mappable(augmenter: Any) -> Any:
    """Make a mapping augmenter (keyboard, OCR) pick only words it can change a char of.

    nlpaug otherwise spends some of ``word_rate`` on words it then leaves as they were.
    """
    chars = "".join(re.escape(c) for c in sorted(augmenter.model.model))
    augmenter.stopwords_regex = re.compile(f"^[^{chars}]*$")
    return augmenter


class _NlpaugChars(NoiseShift):
    """A character shift: nlpaug picks the words and characters, :meth:`_edit` changes them.

    The picks are nlpaug's own (``_get_aug_idxes``: its eligibility rules, counts and
    draws), and the edits replay its actions draw for draw, so texts come out exactly
    as ``augmenter.augment`` made them. nlpaug's edit loops are not used because they
    are quadratic: a list membership test per character, a list copy per swap, a list
    insert or delete per edit, and a slice of the whole text per word; a 100,000-char
    word took ~20 s. Here each text costs time linear in its length.
    """

    rate_params = ("word_rate", "char_rate")

    def _build(self) -> Any:
        raise NotImplementedError

    @cached_property
    def _augmenter(self) -> Any:
        return self._build()

    def _nlpaug_options(self) -> dict[str, Any]:
        """nlpaug settings shared by every character shift: our rates, no caps."""
        return {
            "aug_word_p": self.word_rate,
            "aug_word_min": 1,
            "aug_word_max": None,
            "aug_char_p": self.char_rate,
            "aug_char_min": 1,
            "aug_char_max": None,
            "min_char": 2,
        }

    def _edit(self, chars: list[str], picked: list[int]) -> list[str]:
        """``chars`` after this shift's edit at ``picked`` (nlpaug's draw order)."""
        raise NotImplementedError

    def _edit_word(self, word: str) -> str:
        aug = self._augmenter
        chars = list(word)
        picked = aug._get_aug_idxes(chars, aug.aug_char_min, aug.aug_char_max, aug.aug_char_p,
                                    "char")
        return "".join(self._edit(chars, picked))

    def _noise(self, words: _Words, rng: random.Random) -> str:
        aug = self._augmenter
        with _seeded_global_random(rng.getrandbits(64)):
            picked = set(aug._get_aug_idxes(words.words, aug.aug_word_min, aug.aug_word_max,
                                            aug.aug_word_p, "word"))
            edited = [self._edit_word(w) if i in picked else w for i, w in enumerate(words.words)]
        out = " ".join(w for w in edited if w)  # nlpaug's join, which drops emptied words
        new = out.split(" ")
        if len(new) != len(words.words):  # a word lost all its characters: keep nlpaug's text
            return out
        words.words = new
        return str(words)


class _MappedChars(_NlpaugChars):
    """Picked characters replaced by one of their mapped confusions (keyboard, OCR)."""

    def _edit(self, chars: list[str], picked: list[int]) -> list[str]:
        model = self._augmenter.model
        for i in sorted(picked):
            chars[i] = _draw(model.predict(chars[i]))
        return chars


class KeyboardTypos(_MappedChars):
    """Characters replaced by a neighbouring key on a QWERTY keyboard (nlpaug KeyboardAug).

    Replacements are neighbouring letters and digits; shifted keys (capitals, symbols) are
    left out, as a slip rarely presses shift too. Only words with a letter or digit on
    the map are picked, so ``word_rate`` is the share of words changed.
    """

    name = "keyboard"

    def _build(self) -> Any:
        from nlpaug.augmenter.char import KeyboardAug

        options = self._nlpaug_options()
        return _only_mappable(
            KeyboardAug(**options, include_upper_case=False, include_special_char=False)
        )


class OcrErrors(_MappedChars):
    """Characters an OCR engine confuses (o/0, l/1, r/k, ...; nlpaug OcrAug's mapping).

    Only words with a confusable character are picked, so ``word_rate`` is the share
    changed, but within a word only its confusable characters can change.
    """

    name = "ocr"

    def _build(self) -> Any:
        from nlpaug.augmenter.char import OcrAug

        return _only_mappable(OcrAug(**self._nlpaug_options()))


class _RandomChars(_NlpaugChars):
    """nlpaug RandomCharAug's picks; new characters are lower-case ASCII letters."""

    def _build(self) -> Any:
        from nlpaug.augmenter.char import RandomCharAug

        return RandomCharAug(candidates=list(string.ascii_lowercase), **self._nlpaug_options())


class CharInsert(_RandomChars):
    """A random letter inserted at ``char_rate`` of the positions of ``word_rate`` of words."""

    name = "char_insert"

    def _edit(self, chars: list[str], picked: list[int]) -> list[str]:
        letters = self._augmenter.model
        new = {i: _draw(letters) for i in sorted(picked, reverse=True)}
        return [new.get(i, "") + c for i, c in enumerate(chars)]


class CharSubstitute(_RandomChars):
    """``char_rate`` of the characters of ``word_rate`` of words replaced by random letters."""

    name = "char_substitute"

    def _edit(self, chars: list[str], picked: list[int]) -> list[str]:
        letters = self._augmenter.model
        for i in sorted(picked):
            chars[i] = _draw(letters)
        return chars


class CharSwap(_RandomChars):
    """``char_rate`` of the characters of ``word_rate`` of words swapped with a neighbour.

    Swaps run in the order picked, each on the result of the last; case stays with the
    position ("Ab" -> "Ba"), as in nlpaug.
    """

    name = "char_swap"

    def _edit(self, chars: list[str], picked: list[int]) -> list[str]:
        last = len(chars) - 1
        for i in picked:
            j = 1 if i == 0 else i - 1 if i == last else i + _draw([-1, 1])
            upper_i, upper_j = chars[i].isupper(), chars[j].isupper()
            chars[i], chars[j] = chars[j], chars[i]
            chars[i] = chars[i].upper() if upper_i else chars[i].lower()
            chars[j] = chars[j].upper() if upper_j else chars[j].lower()
            _draw(self._augmenter.model)  # nlpaug draws a letter per swap and drops it
        return chars


class CharDelete(_RandomChars):
    """``char_rate`` of the characters of ``word_rate`` of words deleted.

    With the table's rates a word keeps at least one character; an override of
    ``char_rate`` near 1 can empty words, and a text that would vanish stays as it was.
    """

    name = "char_delete"

    def _edit(self, chars: list[str], picked: list[int]) -> list[str]:
        gone = set(picked)
        return [c for i, c in enumerate(chars) if i not in gone]


@cache
def _misspellings() -> dict[str, tuple[str, ...]]:
    """nlpaug's bundled list of real misspellings: lower-case word -> sorted misspellings.

    Only correct -> misspelled (nlpaug also maps back, which would *fix* typos), and only
    alphabetic entries (the file also holds wiki markup such as ``[[th`` and ``&amp``).
    """
    spec = importlib.util.find_spec("nlpaug")
    if spec is None or not spec.submodule_search_locations:
        raise ShiftbenchError("shift 'spelling': needs nlpaug installed (its bundled dictionary)")
    path = Path(spec.submodule_search_locations[0], "res", "word", "spelling", "spelling_en.txt")
    found: dict[str, set[str]] = {}
    for line in path.read_text(encoding="utf-8").lower().splitlines():
        if not line.strip():
            continue
        word, *wrong = line.split()
        found.setdefault(word, set()).update(
            w for w in wrong if w != word and w.replace("'", "").isalpha()
        )
    return {word: tuple(sorted(wrong)) for word, wrong in found.items() if wrong}


def _match_case(source: str, word: str) -> str:
    if len(source) > 1 and source.isupper():
        return word.upper()
    if source[:1].isupper():
        return word[:1].upper() + word[1:]
    return word


class SpellingMistakes(NoiseShift):
    """``word_rate`` of words replaced by a real misspelling of theirs.

    Misspellings come from nlpaug's bundled dictionary (from Belinkov & Bisk 2018's
    corpus of natural errors); only words in it are picked. Surrounding punctuation and
    the word's capitalisation are kept.
    """

    name = "spelling"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        table = _misspellings()
        parts = [_AFFIXES.match(w).groups() for w in words.words]
        eligible = [i for i, (_, core, _) in enumerate(parts) if core.lower() in table]
        for i in words.pick(rng, self.word_rate, eligible):
            before, core, after = parts[i]
            wrong = rng.choice(table[core.lower()])
            words.words[i] = before + _match_case(core, wrong) + after
        return str(words)


class WordDelete(NoiseShift):
    """``word_rate`` of words deleted; at least one word always stays."""

    name = "word_delete"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        eligible = list(range(len(words.words)))
        chosen = words.pick(rng, self.word_rate, eligible)
        words.delete(chosen[: len(words.words) - 1])
        return str(words)


class WordSwap(NoiseShift):
    """``word_rate`` of words swapped with their right neighbour (in text order).

    A sentence-initial capital stays at the start: "The movie" -> "Movie the".
    """

    name = "word_swap"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        w = words.words
        for i in words.pick(rng, self.word_rate, list(range(len(w) - 1))):
            first, second = w[i], w[i + 1]
            if i == 0 and first[:1].isupper() and first[1:].islower() and second.islower():
                first, second = first[0].lower() + first[1:], second[0].upper() + second[1:]
            w[i], w[i + 1] = second, first
        return str(words)


class Casing(NoiseShift):
    """``word_rate`` of the words with letters re-cased: lower, UPPER or Capitalised."""

    name = "casing"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        w = words.words
        eligible = [i for i, word in enumerate(w) if word.lower() != word.upper()]
        for i in words.pick(rng, self.word_rate, eligible):
            styles = dict.fromkeys((w[i].lower(), w[i].upper(), w[i].capitalize()))
            w[i] = rng.choice([s for s in styles if s != w[i]])
        return str(words)


def _is_punct(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


class Punctuation(NoiseShift):
    """``word_rate`` of words get their trailing punctuation toggled.

    A word ending in punctuation loses it ("great!" -> "great"), one made only of
    punctuation becomes another mark, any other word gains one of ``. , ; : ! ?``.
    """

    name = "punctuation"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        w = words.words
        for i in words.pick(rng, self.word_rate, list(range(len(w)))):
            word = w[i]
            if all(_is_punct(c) for c in word):
                w[i] = rng.choice([m for m in _MARKS if m != word])
            elif _is_punct(word[-1]):
                w[i] = word.rstrip("".join(filter(_is_punct, word)))
            else:
                w[i] = word + rng.choice(_MARKS)
        return str(words)
