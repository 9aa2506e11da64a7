"""Word-level paraphrase shifts from WordNet: synonym replacement and insertion (EDA).

No part-of-speech tagger is available offline, so synonyms are chosen to be safe
without one, trading coverage for meaning (about one word in nine has synonyms here):

- only content words: three letters or more (hyphens allowed), not a stopword, never a
  negation (not, no, never, nor, ...), and not a capitalised word inside a sentence,
  which is likely a name ("Apple", "Delta");
- only words that are WordNet lemmas as written and not also an inflection of another
  lemma, so "felt" (felt/feel), "works" (works/work) or "left" (left/leave), whose part
  of speech only the context tells, are left alone; a plural that can only be a noun's
  ("actors") gets its noun's synonyms in the plural ("players"); other inflections
  (verbs in -ed, -ing, -s) are left alone, as re-inflecting a synonym is guesswork;
- synonyms come from the word's single most frequent sense over all its parts of
  speech, by the tag counts of WordNet's ``cntlist.rev``, and only those lemmas that
  were themselves tagged with that sense: "movie" -> film, motion picture, picture,
  but not "flick" or "pic"; a word whose most frequent sense has no such lemma
  (WordNet keeps "good", "great", "bad" alone in theirs) stays, since rarer senses
  change the meaning ("good" -> "full");
- a synonym is never a negation or a phrase holding one (WordNet lists "not bad" among
  the words similar to "good"), a stopword, a name, a number ("three" -> "3") or an
  abbreviation shorter than three letters ("year" -> "yr").

Synonyms keep the replaced word's capitalisation and surrounding punctuation; lemmas of
several words come with spaces. The share of words comes from the noise shifts'
severity table (``word_rate``, of all the text's words); a text with fewer eligible
words changes all of them, so high severities change fewer words than their rate.
Determinism: candidates are sorted and every choice comes from the per-example rng.
"""

from __future__ import annotations

import random
import re
from functools import cache

from shiftbench.shifts.noise import _AFFIXES, NoiseShift, _count, _match_case, _Words
from shiftbench.wordnet import WordNet, load_wordnet

NEGATIONS = frozenset(
    {
        "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor", "cannot",
        "without", "hardly", "scarcely", "barely",
    }
)
STOPWORDS = frozenset(
    {
        "a", "about", "above", "after", "again", "against", "all", "also", "am", "an", "and",
        "any", "are", "as", "at", "be", "because", "been", "before", "being", "below",
        "between", "both", "but", "by", "can", "could", "did", "do", "does", "doing", "down",
        "during", "each", "even", "ever", "few", "for", "from", "further", "had", "has",
        "have", "having", "he", "her", "here", "hers", "herself", "him", "himself", "his",
        "how", "i", "if", "in", "into", "is", "it", "its", "itself", "just", "let", "me",
        "more", "most", "much", "must", "my", "myself", "off", "on", "once", "only", "or",
        "other", "ought", "our", "ours", "ourselves", "out", "over", "own", "please", "quite",
        "rather", "really", "same", "shall", "she", "should", "so", "some", "such", "than",
        "that", "the", "their", "theirs", "them", "themselves", "then", "there", "these",
        "they", "this", "those", "through", "thus", "to", "too", "under", "until", "up",
        "upon", "us", "very", "was", "we", "were", "what", "when", "where", "whether", "which",
        "while", "who", "whom", "whose", "why", "will", "with", "would", "yet", "you", "your",
        "yours", "yourself", "yourselves",
    }
)
_CONTENT_WORD = re.compile(r"[a-z]{3,}(?:-[a-z]+)*|[a-z]+(?:-[a-z]+)+")
_PLAIN_SYNONYM = re.compile(r"[a-z]{3,}(?:[- ][a-z]+)*")  # no digits, names or "yr"
_SENTENCE_END = re.compile(r"[.!?][\"')\]]*$")


def _plain(synonyms: list[str]) -> list[str]:
    """Drop synonyms a reader would not take for the word: negations, stopwords, "3", "yr"."""
    return [
        s for s in synonyms
        if _PLAIN_SYNONYM.fullmatch(s)
        and s not in STOPWORDS
        and not NEGATIONS.intersection(s.replace("-", " ").split())
    ]


@cache
def synonyms_of(wordnet: WordNet, word: str) -> tuple[str, ...]:
    """Sorted synonyms that may replace the lower-case ``word``; empty if it should stay.

    A lemma that inflects no other lemma gets the synonyms of its most frequent sense;
    a plural that can only be a noun's ("movies") gets the plurals of its noun's ("films").
    """
    if not _CONTENT_WORD.fullmatch(word) or word in STOPWORDS or word in NEGATIONS:
        return ()
    analyses = wordnet.analyses(word)
    if not analyses:
        return tuple(_plain(wordnet.synonyms(word)))
    if len(analyses) == 1 and analyses[0][0] == "noun" and not wordnet.is_lemma(word):
        found = _plain(wordnet.synonyms(analyses[0][1], parts=("noun",)))
        return tuple(sorted(filter(None, map(wordnet.plural, found))))
    return ()


def _options(words: _Words) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """Each word as (leading punctuation, core, trailing punctuation, its synonyms)."""
    wordnet = load_wordnet()
    options = []
    for i, word in enumerate(words.words):
        before, core, after = _AFFIXES.match(word).groups()
        name_like = (
            i > 0 and core[:1].isupper() and not core.isupper()
            and not _SENTENCE_END.search(words.words[i - 1])
        )
        found = () if name_like else synonyms_of(wordnet, core.lower())
        options.append((before, core, after, found))
    return options


def _fix_article(words: _Words, i: int) -> None:
    """Make an "a"/"an" before word ``i`` agree with the word's new first letter.

    "a doubt" -> "an uncertainty". It goes by spelling, so a synonym like "hour" or
    "unit" would get the wrong article.
    """
    if i == 0:
        return
    article = words.words[i - 1]
    if article.lower() not in ("a", "an"):
        return
    first = _AFFIXES.match(words.words[i]).group(2)[:1].lower()
    wanted = "an" if first in "aeiou" else "a"
    if article.lower() != wanted:
        words.words[i - 1] = _match_case(article, wanted)


class SynonymReplace(NoiseShift):
    """``word_rate`` of the words replaced by a common WordNet synonym.

    Which words and synonyms: see the module notes. An "a"/"an" before a replaced word
    is fixed to fit the synonym.
    """

    name = "synonym"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        options = _options(words)
        eligible = [i for i, option in enumerate(options) if option[3]]
        for i in words.pick(rng, self.word_rate, eligible):
            before, core, after, synonyms = options[i]
            words.words[i] = before + _match_case(core, rng.choice(synonyms)) + after
            _fix_article(words, i)
        return str(words)


class SynonymInsert(NoiseShift):
    """EDA's random insertion: a synonym of a random eligible word put at a random place.

    It inserts ``word_rate`` of the text's word count (rounded up), each time a synonym
    of a word drawn again from the original text, placed after a random word (never
    before the first, so the text's opening stays); a text with no eligible word comes
    back unchanged. Wei & Zou 2019, "EDA: Easy Data Augmentation Techniques".
    """

    name = "synonym_insert"

    def _noise(self, words: _Words, rng: random.Random) -> str:
        choices = [option[3] for option in _options(words) if option[3]]
        if not choices:
            return str(words)
        for _ in range(_count(self.word_rate, len(words.words))):
            synonym = rng.choice(rng.choice(choices))
            words.insert(rng.randint(1, len(words.words)), synonym)
        return str(words)
