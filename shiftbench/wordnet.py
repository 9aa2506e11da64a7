"""WordNet 3.0 read straight from its database files (``man 5 wndb``), without nltk.

It answers what the synonym shifts ask: the common lemmas of a word's most frequent
sense, which lemmas a word may be an inflection of, and a noun's plural. Reading the
index, count and exception files takes ~0.3 s once per process; synset lines are then
read on demand from the data files by byte offset, as WordNet's own tools do. Nothing
is copied or downloaded (nltk would need the files laid out anew, plus a ``lexnames``
table Debian omits), and every answer is sorted, so results never depend on set or
dict order.

The files are found in ``$SHIFTBENCH_WORDNET_DIR`` if set, else in Debian's
``/usr/share/wordnet`` (package ``wordnet-base``); any WordNet 3.0 ``dict`` folder,
nltk's ``corpora/wordnet`` included, has the same files.
"""

from __future__ import annotations

import os
import re
from functools import cache
from pathlib import Path

from shiftbench.errors import ShiftbenchError

ENV_VAR = "SHIFTBENCH_WORDNET_DIR"
DEFAULT_DIR = Path("/usr/share/wordnet")
INSTALL_HINT = (
    f"install it with `apt-get install wordnet-base wordnet-sense-index`, or set {ENV_VAR} "
    "to a WordNet 3.0 dict folder"
)

POS = ("noun", "verb", "adj", "adv")  # also the tie-break order between equally frequent senses
_SS_TYPE_POS = {"1": "noun", "2": "verb", "3": "adj", "4": "adv", "5": "adj"}
REQUIRED = (
    *(f"index.{p}" for p in POS),
    *(f"data.{p}" for p in POS),
    *(f"{p}.exc" for p in POS),
    "cntlist.rev",
)

# Morphy's detachment rules (``man 7 morphy``): inflected ending -> base ending.
_DETACH: dict[str, tuple[tuple[str, str], ...]] = {
    "noun": (("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"),
             ("shes", "sh"), ("men", "man"), ("ies", "y")),
    "verb": (("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""),
             ("ing", "e"), ("ing", "")),
    "adj": (("er", ""), ("est", ""), ("er", "e"), ("est", "e")),
    "adv": (),
}
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def wordnet_dir() -> Path:
    """Where WordNet is looked for: ``$SHIFTBENCH_WORDNET_DIR``, else Debian's folder."""
    configured = os.environ.get(ENV_VAR)
    return Path(configured).expanduser() if configured else DEFAULT_DIR


def load_wordnet() -> WordNet:
    """The WordNet in :func:`wordnet_dir`, read once per process (and per folder).

    Raises ShiftbenchError naming the missing files and how to install them.
    """
    return _load(wordnet_dir())


@cache
def _load(directory: Path) -> WordNet:
    missing = [name for name in REQUIRED if not (directory / name).is_file()]
    if missing:
        more = f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        shown = ", ".join(missing[:3]) + more
        raise ShiftbenchError(f"WordNet not found in {directory} (no {shown}); {INSTALL_HINT}")
    return WordNet(directory)


def _entries(path: Path) -> list[list[str]]:
    """A WordNet file's lines as fields, without the license header (lines starting "  ")."""
    text = path.read_text(encoding="latin-1")
    return [line.split() for line in text.splitlines() if line and not line.startswith(" ")]


class WordNet:
    """Lemma lookups over one WordNet folder; lemmas are lower-case with ``_`` for spaces."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # pos -> lemma -> its index line's fields; offsets are converted on demand
        self._index = {
            pos: {fields[0]: fields for fields in _entries(directory / f"index.{pos}")}
            for pos in POS
        }
        # (lemma, pos, sense number) -> times tagged in the semantic concordances; 0 if absent
        self._counts: dict[tuple[str, str, int], int] = {}
        for key, sense_number, count in _entries(directory / "cntlist.rev"):
            lemma, _, rest = key.partition("%")
            self._counts[(lemma, _SS_TYPE_POS[rest[0]], int(sense_number))] = int(count)
        self._exceptions = {
            pos: {fields[0]: fields[1:] for fields in _entries(directory / f"{pos}.exc")}
            for pos in POS
        }
        self._plurals: dict[str, str] = {}  # lemma -> its first irregular plural
        for plural, *lemmas in sorted(_entries(directory / "noun.exc")):
            for lemma in lemmas:
                self._plurals.setdefault(lemma, plural)
        self._data: dict[str, bytes] = {}

    def is_lemma(self, word: str) -> bool:
        return any(word in self._index[pos] for pos in POS)

    def analyses(self, word: str) -> list[tuple[str, str]]:
        """(pos, lemma) pairs that ``word`` inflects, other than itself, sorted.

        "felt" -> [(verb, feel)]; "works" -> [(noun, work), (verb, work)]. Found through
        the exception lists and Morphy's detachment rules, as WordNet's own search does.
        """
        found = set()
        for pos in POS:
            found.update((pos, base) for base in self._exceptions[pos].get(word, ()))
            for ending, base in _DETACH[pos]:
                if word.endswith(ending) and len(word) > len(ending):
                    candidate = word[: len(word) - len(ending)] + base
                    if candidate in self._index[pos]:
                        found.add((pos, candidate))
        return sorted((pos, base) for pos, base in found if base != word)

    def plural(self, noun: str) -> str | None:
        """The plural of a noun lemma (spaces, not ``_``), or None where it is a guess.

        Only the last word is inflected. Irregular plurals come from the noun exception
        list (the alphabetically first, where it has several); regular ones from the
        spelling rules (-es, -ies, -s). A "-man" noun that the list does not name is
        left out: the list omits "policemen" (Morphy's rule finds it) but also "humans".
        """
        cut = max(noun.rfind(" "), noun.rfind("-")) + 1
        head, last = noun[:cut], noun[cut:]
        if last in self._plurals:
            return head + self._plurals[last]
        if last.endswith("man"):
            return None
        if last.endswith(("s", "x", "z", "ch", "sh")):
            return head + last + "es"
        if last.endswith("y") and last[-2:-1] not in "aeiou":
            return head + last[:-1] + "ies"
        return head + last + "s"

    def _offsets(self, lemma: str, pos: str) -> list[int]:
        """Byte offsets of the lemma's senses in ``data.<pos>``, most frequent first."""
        fields = self._index[pos].get(lemma)
        return [int(f) for f in fields[-int(fields[2]) :]] if fields else []

    def sense_count(self, lemma: str, pos: str, offset: int) -> int:
        """How often ``lemma`` was tagged with the synset at ``offset``; 0 if never or unknown."""
        offsets = self._offsets(lemma, pos)
        if offset not in offsets:
            return 0
        return self._counts.get((lemma, pos, offsets.index(offset) + 1), 0)

    def most_frequent_sense(
        self, lemma: str, parts: tuple[str, ...] = POS
    ) -> tuple[str, int] | None:
        """(pos, offset) of the lemma's most tagged sense over the parts of speech ``parts``.

        Each part of speech lists its most frequent sense first; between them, ties
        (untagged words included) go to the first in noun, verb, adj, adv order.
        """
        firsts = {pos: self._offsets(lemma, pos)[0] for pos in parts if lemma in self._index[pos]}
        if not firsts:
            return None
        pos = min(firsts, key=lambda p: (-self.sense_count(lemma, p, firsts[p]), POS.index(p)))
        return pos, firsts[pos]

    def synset_lemmas(self, pos: str, offset: int) -> list[str]:
        """The lemmas of one synset as the data file spells them (markers such as (p) dropped)."""
        data = self._data.get(pos)
        if data is None:
            data = self._data[pos] = (self.directory / f"data.{pos}").read_bytes()
        line = data[offset : data.find(b"\n", offset)].decode("latin-1")
        fields = line.split(" ")
        if fields[0] != f"{offset:08d}":
            raise ShiftbenchError(
                f"WordNet file {self.directory / f'data.{pos}'} has no synset at byte {offset}; "
                "its index and data files do not match"
            )
        count = int(fields[3], 16)
        return [_ADJ_MARKER.sub("", word) for word in fields[4 : 4 + 2 * count : 2]]

    def synonyms(self, lemma: str, parts: tuple[str, ...] = POS) -> list[str]:
        """Common other names of ``lemma``'s most frequent sense, sorted, spaces for ``_``.

        Common: tagged with that sense at least once in the semantic concordances, which
        keeps "film" and "picture" for "movie" but drops "hebdomad" for "week" and
        "courser" (a horse) for "charger".
        """
        sense = self.most_frequent_sense(lemma, parts)
        if sense is None:
            return []
        names = {
            name.replace("_", " ")
            for name in self.synset_lemmas(*sense)
            if name.lower() != lemma and self.sense_count(name.lower(), *sense) > 0
        }
        return sorted(names)
