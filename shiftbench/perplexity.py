"""Perplexity under shift: how surprising each split's texts are to a causal LM (not the
model under test), in bits per byte and token perplexity, with the change from the
reference.

Per split, over the texts with at least one token (empty texts have no bits per byte:
they are left out and counted as ``excluded``):

- bits per byte = total nats / total UTF-8 bytes / ln 2 (corpus bpb: a long text weighs
  by its length), token perplexity = exp(total nats / total tokens), word perplexity =
  exp(total nats / total whitespace words); each with a 95% percentile bootstrap
  interval over texts (seeded by the suite's seed; the same resamples for all three).
- change of bpb from the reference: a perturbed split, on the ids it shares with the
  reference, is paired (both sides' corpus bpb over the same resampled ids); a domain
  split shares no texts, so each side is resampled on its own (``unpaired_bootstrap``).

Every interval is widened, if need be, to hold its own point estimate. Cost: one LM pass
over every text of every split (through the runner: deduplicated and cached per LM).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import LEVEL, N_BOOT, Estimate, percentile_interval, resample_chunks

if TYPE_CHECKING:
    from shiftbench.config import PerplexitySpec
    from shiftbench.models.rolling import RollingLM, TextScores
    from shiftbench.runner import Runner
    from shiftbench.split import Split

BITS_PER_BYTE = "bits_per_byte"
LN2 = math.log(2)


def perplexity_lm(spec: PerplexitySpec | None, override: str | None) -> RollingLM | None:
    """The suite's LM, its ``lm`` replaced by ``--lm`` (an ``llm:`` source, the prefix
    optional; with the suite's other settings, or the defaults); None without either."""
    from shiftbench.config import PerplexitySpec, validate
    from shiftbench.models.rolling import RollingLM

    if override is not None:
        source = override.removeprefix("llm:")
        fields = {**(spec.model_dump(exclude_none=True) if spec else {}), "lm": source}
        fields.pop("gguf_file", None)
        spec = validate(PerplexitySpec, fields, "--lm")
    if spec is None:
        return None
    return RollingLM(spec.lm, spec.max_length, spec.stride, spec.gguf_file)


def _held(estimate: Estimate) -> Estimate:
    """The interval widened to hold its point estimate."""
    return replace(estimate, low=min(estimate.low, estimate.value),
                   high=max(estimate.high, estimate.value))


def _ratio_draws(parts: list[tuple[np.ndarray, np.ndarray]], gen: np.random.Generator,
                 n_boot: int) -> list[np.ndarray]:
    """Bootstrap draws of sum(num) / sum(den) for each (num, den), over the same resamples."""
    n = len(parts[0][0])
    draws: list[list[np.ndarray]] = [[] for _ in parts]
    for size in resample_chunks(n_boot, n):
        idx = gen.integers(0, n, size=(size, n))
        for out, (num, den) in zip(draws, parts, strict=True):
            out.append(num[idx].sum(axis=1) / den[idx].sum(axis=1))
    return [np.concatenate(d) for d in draws]


def _corpus(scores: TextScores, gen: np.random.Generator, n_boot: int) -> dict[str, Estimate]:
    nats = -scores.nats
    parts = [(nats / LN2, scores.bytes), (nats, scores.tokens), (nats, scores.words)]
    draws = _ratio_draws(parts, gen, n_boot)
    out = {}
    for name, (num, den), d, transform in zip(
            (BITS_PER_BYTE, "token_perplexity", "word_perplexity"), parts, draws,
            (float, math.exp, math.exp), strict=True):
        low, high = percentile_interval(d, LEVEL)
        value = float(num.sum() / den.sum()) if den.sum() > 0 else math.inf
        out[name] = _held(Estimate(transform(value), transform(low), transform(high),
                                   len(num), "percentile_bootstrap", LEVEL, n_boot))
    return out


def _bpb(scores: TextScores) -> float:
    return float(-scores.nats.sum() / LN2 / scores.bytes.sum())


def _take(scores: TextScores, rows: Any) -> TextScores:
    return type(scores)(scores.nats[rows], scores.tokens[rows], scores.bytes[rows],
                        scores.words[rows])


def paired_change(ref: TextScores, shift: TextScores, gen: np.random.Generator,
                  n_boot: int) -> Estimate:
    """Corpus bpb of the shifted texts minus that of their originals (aligned by row):
    both over the same resampled rows (a pair bootstrap)."""
    boot_shift, boot_ref = _ratio_draws([(-shift.nats / LN2, shift.bytes),
                                         (-ref.nats / LN2, ref.bytes)], gen, n_boot)
    low, high = percentile_interval(boot_shift - boot_ref, LEVEL)
    return _held(Estimate(_bpb(shift) - _bpb(ref), low, high, len(ref.nats),
                          "paired_bootstrap", LEVEL, n_boot))


def unpaired_change(ref: TextScores, shift: TextScores, gen: np.random.Generator,
                    n_boot: int) -> Estimate:
    """Corpus bpb of the shifted split minus the reference's, each resampled on its own."""
    (boot_shift,) = _ratio_draws([(-shift.nats / LN2, shift.bytes)], gen, n_boot)
    (boot_ref,) = _ratio_draws([(-ref.nats / LN2, ref.bytes)], gen, n_boot)
    low, high = percentile_interval(boot_shift - boot_ref, LEVEL)
    return _held(Estimate(_bpb(shift) - _bpb(ref), low, high, len(shift.nats),
                          "unpaired_bootstrap", LEVEL, n_boot))


def per_text_bpb(scores: TextScores) -> np.ndarray:
    """Each text's bits per byte as an (n, 1) column; NaN for a text without a token (an
    empty text has none), which the bpb detector leaves out."""
    column = np.full((len(scores.nats), 1), np.nan)
    scored = scores.tokens > 0
    column[scored, 0] = -scores.nats[scored] / LN2 / scores.bytes[scored]
    return column


def _kept(split: Split, scores: TextScores) -> np.ndarray:
    """Rows with a token to score; a split without any is an error naming it."""
    kept = np.flatnonzero(scores.tokens > 0)
    if not len(kept):
        raise ShiftbenchError(f"perplexity: split {split.name!r} has no text with a token to "
                              f"score ({len(split)} empty text(s)): bits per byte is undefined")
    return kept


def perplexity_section(lm: RollingLM, reference: Split, shifted: list[Split], runner: Runner,
                       seed: int, n_boot: int = N_BOOT
                       ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The report's ``perplexity`` section (see the module doc) and each split's per-text
    bits per byte as an (n, 1) column (NaN for an empty text), what the bpb detector tests."""
    splits = [reference, *shifted]
    everything = lm.score([text for split in splits for text in split.texts], runner)
    section: dict[str, Any] = {"lm": lm.describe(), "precision": runner.precision_,
                               "splits": {}}
    per_text: dict[str, np.ndarray] = {}
    start, ref_rows = 0, {}
    for index, split in enumerate(splits):
        scores = _take(everything, slice(start, start + len(split)))
        start += len(split)
        kept = _kept(split, scores)
        per_text[split.name] = per_text_bpb(scores)
        gen = np.random.default_rng([seed, index])
        used = _take(scores, kept)
        record: dict[str, Any] = {
            "n": len(kept), "excluded": len(split) - len(kept),
            "excluded_ids": [split.ids[i] for i in np.flatnonzero(scores.tokens == 0)[:5]],
            "tokens": int(used.tokens.sum()), "bytes": int(used.bytes.sum()),
            "words": int(used.words.sum()),
            **{k: e.to_dict() for k, e in _corpus(used, gen, n_boot).items()}}
        if index == 0:
            ref_rows = {split.ids[i]: i for i in kept}
            ref_scores = scores
        else:
            record["delta_bits_per_byte"] = _change(split, scores, kept, ref_scores, ref_rows,
                                                    gen, n_boot)
        section["splits"][split.name] = record
    return section, per_text


def _change(split: Split, scores: TextScores, kept: np.ndarray, ref: TextScores,
            ref_rows: dict[str, int], gen: np.random.Generator, n_boot: int
            ) -> dict[str, Any] | None:
    """The bpb change from the reference: paired on shared ids for a perturbation."""
    if split.info.get("kind") != "perturbation":
        return unpaired_change(_take(ref, list(ref_rows.values())), _take(scores, kept),
                               gen, n_boot).to_dict()
    pairs = [(ref_rows[split.ids[i]], i) for i in kept if split.ids[i] in ref_rows]
    if not pairs:
        return None
    ref_at, shift_at = zip(*pairs, strict=True)
    return paired_change(_take(ref, list(ref_at)), _take(scores, list(shift_at)), gen,
                         n_boot).to_dict()
