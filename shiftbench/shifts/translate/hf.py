"""Any Hugging Face seq2seq translation model (MarianMT and alike) as a translation engine.

``forward`` translates English into the pivot and ``backward`` back; each is a local
model directory or a hub id (fetched only if the user has network). Models load on
first use, on the runner's device and precision, and run under its inference context.
Decoding is greedy (one beam, no sampling), so a text's translation depends only on the
model files: it is cached by their hash. Sentences are batched by token length (less
padding) and a batch that runs out of CUDA memory is retried in halves.

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
        model = self._model(source, target)
        return by_sentences(texts, lambda units: self._generate(model, units))

    def _model(self, source: str, target: str) -> Backbone:
        if (source, target) not in self.models:
            raise ShiftbenchError(f"engine 'hf': no model for {source} -> {target}")
        return self.models[(source, target)]

    def _generate(self, model: Backbone, units: list[str]) -> list[str]:
        """Greedy translations of ``units``, longest first, halving the batch on CUDA OOM."""
        import torch

        ids = model.tokenizer(units, truncation=True, max_length=model.max_length_)["input_ids"]
        order = sorted(range(len(units)), key=lambda i: len(ids[i]), reverse=True)
        batches = model.batch_fn(self.runner, lambda net, inputs: _greedy(net, inputs, model))
        out = [""] * len(units)
        size, done = max(1, self.sentences_per_batch), 0
        while done < len(order):
            batch = order[done:done + size]
            try:
                tokens = batches([ids[i] for i in batch]).astype(np.int64)
            except torch.cuda.OutOfMemoryError:
                if size == 1:
                    raise ShiftbenchError(f"{model.directory}: out of GPU memory with one "
                                          "sentence; lower max_length or use --device cpu"
                                          ) from None
                size //= 2
                torch.cuda.empty_cache()
                continue
            # row = decoder start token + new tokens: keep bound - 1 of them (see above)
            rows = [row[:_bound(len(ids[i]), model.max_length_)]
                    for i, row in zip(batch, tokens, strict=True)]
            decoded = model.tokenizer.batch_decode(rows, skip_special_tokens=True)
            for i, text in zip(batch, decoded, strict=True):
                out[i] = text.strip()
            done += len(batch)
        return out


def _greedy(net: Any, inputs: dict[str, Any], model: Backbone) -> Any:
    """Token ids of greedy translations (the runner's batch function turns them to floats,
    exactly: ids stay far below 2**24)."""
    bound = _bound(inputs["input_ids"].shape[1], model.max_length_)
    return net.generate(**inputs, num_beams=1, do_sample=False, max_new_tokens=bound)
