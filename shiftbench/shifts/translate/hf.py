"""Any Hugging Face seq2seq translation model (MarianMT and alike) as a translation engine.

``forward`` translates English into the pivot and ``backward`` back; each is a local
model directory or a hub id (fetched only if the user has network). Models load on
first use, on the runner's device and precision, and run under its inference context.
Decoding is greedy (one beam, no sampling), so a text's translation depends only on the
model files: it is cached by their hash. Sentences go through the runner's batched pass
too (:meth:`~shiftbench.runner.Runner.map` with texts): each distinct sentence once,
cached, batched by token length (less padding), a batch that runs out of CUDA memory
retried in halves.

A sentence's translation may run to ``1.5 * its tokens + 10`` new tokens (and never past
``max_length``). generate() takes one bound per batch, so the batch runs to its longest
sentence's bound and each output is then cut to its own: greedy decoding makes the
first k tokens the same however many follow, so a translation does not depend on which
sentences share its batch, even when a model never stops by itself. The last allowed
token is dropped too: Marian models force an end token there when generate() stops
them, which a longer batch would not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.backbone import Backbone
from shiftbench.errors import ShiftbenchError
from shiftbench.shifts.translate.engines import SEGMENTER, Engine, by_sentences

if TYPE_CHECKING:
    from shiftbench.runner import Runner

GROWTH = 1.5  # new tokens allowed per input token (plus 10): translations run a bit longer


def _bound(n_tokens: int, max_length: int) -> int:
    """How many new tokens a sentence of ``n_tokens`` may get."""
    return min(max_length, int(GROWTH * n_tokens) + 10)


class HFTranslate(Engine):
    """English -> pivot with ``forward``, pivot -> English with ``backward``; the pivot is
    only a label (for the cache and the report)."""

    name = "hf"
    default_pivot = "pivot"

    def __init__(self, forward: str, backward: str, pivot: str, runner: Runner,
                 batch_size: int = 32, max_length: int = 256) -> None:
        self.runner = runner
        self.sentences_per_batch = batch_size
        self.models = {("en", pivot): Backbone(forward, "AutoModelForSeq2SeqLM", max_length),
                       (pivot, "en"): Backbone(backward, "AutoModelForSeq2SeqLM", max_length)}

    @classmethod
    def check_pivot(cls, pivot: str) -> str | None:
        ok = pivot[:1].isalpha() and pivot.replace("-", "").replace("_", "").isalnum()
        return None if ok else "a label of letters, digits, - and _"

    def fingerprint(self, source: str, target: str) -> str:
        model = self._model(source, target)
        return f"{self.name}/{model.files_hash[:16]}/max{model.max_length}/{SEGMENTER}"

    def translate(self, texts: list[str], source: str, target: str) -> list[str]:
        from shiftbench.runner import TEXTS

        model = self._model(source, target)
        namespace = f"{self.fingerprint(source, target)}/{source}-{target}/sentences"
        fn = GreedyTranslation(model, self.runner)
        return by_sentences(texts, lambda units: self.runner.map(
            namespace, units, fn, f"{self.name} {source}->{target} sentences", codec=TEXTS,
            batch_size=self.sentences_per_batch))

    def _model(self, source: str, target: str) -> Backbone:
        if (source, target) not in self.models:
            raise ShiftbenchError(f"engine 'hf': no model for {source} -> {target}")
        return self.models[(source, target)]


class GreedyTranslation:
    """The runner's batch function of one direction: token ids in, greedy translations out
    (the model loads only when a batch needs it)."""

    def __init__(self, model: Backbone, runner: Runner) -> None:
        self.model = model
        self.tokens = model.batch_fn(runner, lambda net, inputs: _greedy(net, inputs, model))

    def encode(self, units: list[str]) -> list[list[int]]:
        return self.tokens.encode(units)

    def __call__(self, batch: list[list[int]]) -> list[str]:
        tokens = self.tokens(batch).astype(np.int64)
        # row = decoder start token + new tokens: keep bound - 1 of them (see above)
        rows = [row[:_bound(len(ids), self.model.max_length_)]
                for ids, row in zip(batch, tokens, strict=True)]
        decoded = self.model.tokenizer.batch_decode(rows, skip_special_tokens=True)
        return [text.strip() for text in decoded]


def _greedy(net: Any, inputs: dict[str, Any], model: Backbone) -> Any:
    """Token ids of greedy translations (the runner's batch function turns them to floats,
    exactly: ids stay far below 2**24)."""
    bound = _bound(inputs["input_ids"].shape[1], model.max_length_)
    return net.generate(**inputs, num_beams=1, do_sample=False, max_new_tokens=bound)
