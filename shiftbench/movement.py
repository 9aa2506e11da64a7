"""How far each shift moved the text: embedding similarity and chrF against a basis.

An accuracy drop is the model's fault only if the text still means the same thing, so
every shifted split gets numbers for how much its text changed. A perturbed example is
compared with its own original (paired by id). A domain split has no originals, so each
example is compared with its nearest reference example by embedding: that puts a
1-severity typo and a new topic on one scale (the nearest clean text of a typo'd tweet
is usually its original; a new topic has none close). That search costs rows x reference
rows, so a domain split of more than ``NEAREST_ROWS`` rows is measured on a seeded random
sample of that many (each still against every reference row, exactly): cost grows
linearly with the reference, and the split's record says so (``sampled``, with the
sampling error of its numbers).

Examples most likely to have changed meaning are listed: the least similar ones, and,
for perturbations, those where a negation word was added or dropped ("not" -> "nit").
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.split import Split, sample_indices

Embed = Callable[[list[str]], np.ndarray]

BASIS_ORIGINAL = "original"
BASIS_NEAREST = "nearest reference"
# Fixed edges, so histograms of different splits and runs compare bin by bin.
HISTOGRAM_EDGES = [round(x, 2) for x in np.linspace(0.0, 1.0, 21)]
# Lower-cased, apostrophes removed; any word ending in "n't" counts too.
NEGATIONS = frozenset({
    "not", "no", "never", "none", "nobody", "nothing", "nowhere", "neither", "nor",
    "without", "cannot", "dont", "doesnt", "didnt", "isnt", "wasnt", "arent", "werent",
    "cant", "couldnt", "wouldnt", "shouldnt", "wont", "havent", "hasnt", "hadnt", "aint",
    "mustnt", "neednt",
})
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
NEAREST_ROWS = 10_000  # a domain split's rows searched against the reference (sampled above)
SAMPLE_ERROR = (f"a seeded random sample of {NEAREST_ROWS:,} of the split's rows: each "
                "percentile is within 1 percentile point of its rank in the whole split, each "
                "histogram share within 1 point, with 95% probability (binomial: "
                "1.96 * sqrt(0.25 / 10,000) < 0.01); the mean's standard error is the "
                "similarity's standard deviation / 100")
_QUERY_ROWS = 1024  # rows searched at once in the nearest-neighbour search
_BLOCK_CELLS = 1 << 22  # similarities held at once (32 MB), whatever the reference's size


def negations(text: str) -> Counter[str]:
    """Negation words in ``text`` without apostrophes, so "don't" and "dont" count alike."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    bare = (w.replace("'", "") for w in words if w.endswith("n't") or w.replace("'", "")
            in NEGATIONS)
    return Counter(bare)


def _shown(word: str) -> str:
    """'dont' -> "don't" for the reader (every negation ending in "nt" is a contraction)."""
    return f"{word[:-2]}n't" if word.endswith("nt") else word


def negation_change(original: str, shifted: str) -> str:
    """'negation dropped: not' / 'negation added: never' (both, '; '-joined), or ''."""
    before, after = negations(original), negations(shifted)
    parts = [f"negation {what}: {', '.join(_shown(w) for w in sorted(words))}"
             for what, words in (("dropped", before - after), ("added", after - before)) if words]
    return "; ".join(parts)


def _unit(vectors: np.ndarray, n: int) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or vectors.shape[0] != n:
        raise ShiftbenchError(f"movement: the embedding function returned shape "
                              f"{vectors.shape} for {n} texts; expected ({n}, dim)")
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _nearest(vectors: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row of the most similar reference vector for each vector, and that cosine.

    Computed in blocks of rows x reference rows, keeping each row's running best, so
    memory is one block whatever the sizes; a tie goes to the first reference row, as
    one argmax over the whole row would give it.
    """
    columns = max(1, _BLOCK_CELLS // _QUERY_ROWS)
    best_rows = np.zeros(len(vectors), dtype=np.int64)
    best_sims = np.full(len(vectors), -np.inf)
    for start in range(0, len(vectors), _QUERY_ROWS):
        queries = vectors[start:start + _QUERY_ROWS]
        rows, sims = best_rows[start:start + _QUERY_ROWS], best_sims[start:start + _QUERY_ROWS]
        for first in range(0, len(reference), columns):
            block = queries @ reference[first:first + columns].T
            best = block.argmax(axis=1)
            value = block[np.arange(len(best)), best]
            better = value > sims
            rows[better] = best[better] + first
            sims[better] = value[better]
    return best_rows, best_sims


def _chrf(shifted: list[str], originals: list[str]) -> np.ndarray:
    """Sentence chrF (0-100) of each shifted text against its basis text."""
    from sacrebleu.metrics import CHRF

    metric = CHRF()
    # sacrebleu scores two empty strings 0; unchanged text has moved nowhere.
    return np.array([100.0 if s == o else metric.sentence_score(s, [o]).score
                     for s, o in zip(shifted, originals, strict=True)])


def _summary(values: np.ndarray, digits: int) -> dict[str, float]:
    p10, median, p90 = np.percentile(values, [10, 50, 90])
    return {k: round(float(v), digits) for k, v in
            (("mean", values.mean()), ("median", median), ("p10", p10), ("p90", p90))}


def _flagged(split: Split, rows: np.ndarray, reference: Split, matches: np.ndarray,
             sims: np.ndarray, chrf: np.ndarray, reasons: list[str], top_k: int
             ) -> list[dict[str, Any]]:
    """The ``top_k`` least similar changed examples, plus up to ``top_k`` with a negation
    change, least similar first."""
    order = np.argsort(sims, kind="stable")
    changed = [i for i in order if split.texts[rows[i]] != reference.texts[matches[i]]]
    lowest = set(changed[:top_k])
    negated = [i for i in order if reasons[i]][:top_k]
    out = []
    for i in sorted(lowest.union(negated), key=lambda i: (sims[i], i)):
        why = "; ".join(r for r in ("lowest similarity" if i in lowest else "", reasons[i]) if r)
        out.append({"id": split.ids[rows[i]], "reference_id": reference.ids[matches[i]],
                    "original": reference.texts[matches[i]], "shifted": split.texts[rows[i]],
                    "similarity": round(float(sims[i]), 4), "chrf": round(float(chrf[i]), 2),
                    "reason": why})
    return out


def _pairs(split: Split, reference: Split, ref_rows: dict[str, int]
           ) -> tuple[np.ndarray, np.ndarray]:
    """Rows of ``split`` whose id is in the reference, and the reference row of each."""
    rows = [j for j, ex_id in enumerate(split.ids) if ex_id in ref_rows]
    if not rows:
        raise ShiftbenchError(
            f"split {split.name!r}: no example id matches the reference split "
            f"{reference.name!r}; a perturbation must keep the original ids"
        )
    return np.array(rows), np.array([ref_rows[split.ids[j]] for j in rows])


def _split_movement(split: Split, vectors: np.ndarray, reference: Split,
                    ref_vectors: np.ndarray, ref_rows: dict[str, int], top_k: int, seed: int
                    ) -> dict[str, Any]:
    if len(split) == 0:
        raise ShiftbenchError(f"split {split.name!r} has no examples")
    domain = split.info.get("kind") == "domain"
    if domain:
        rows = np.array(sample_indices(split.ids, seed, NEAREST_ROWS), dtype=np.int64)
        matches, sims = _nearest(vectors[rows], ref_vectors)
    else:
        rows, matches = _pairs(split, reference, ref_rows)
        sims = np.einsum("ij,ij->i", vectors[rows], ref_vectors[matches])
    sims = np.clip(sims, -1.0, 1.0)
    shifted = [split.texts[j] for j in rows]
    originals = [reference.texts[i] for i in matches]
    chrf = _chrf(shifted, originals)
    # A nearest neighbour is no original: a negation "change" against it means nothing.
    reasons = ([""] * len(rows) if domain
               else [negation_change(o, s) for o, s in zip(originals, shifted, strict=True)])
    n_negated = sum(map(bool, reasons))
    counts, _ = np.histogram(np.clip(sims, 0.0, 1.0), bins=HISTOGRAM_EDGES)
    return {
        "basis": BASIS_NEAREST if domain else BASIS_ORIGINAL,
        "n": len(rows),
        "sampled": ({"rows": len(rows), "of": len(split), "seed": seed, "error": SAMPLE_ERROR}
                    if len(rows) < len(split) and domain else None),
        "similarity": {**_summary(sims, 4),
                       "histogram": {"bins": HISTOGRAM_EDGES, "counts": counts.tolist()}},
        "chrf": _summary(chrf, 2),
        "negation_changed": None if domain else {"count": n_negated,
                                                 "share": round(n_negated / len(rows), 4)},
        "flagged": _flagged(split, rows, reference, matches, sims, chrf, reasons, top_k),
    }


def text_movement(reference: Split, shifted: list[Split], embed: Embed, top_k: int = 5,
                  seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per shifted split (by name): how far its text moved from its basis.

    ``embed`` maps texts to one vector per text (normalised here, so any scale works);
    it is called once with every text, so a batched, cached embedder does one pass.
    Similarity is the cosine of the two embeddings; its histogram uses fixed edges over
    [0, 1] (a negative cosine counts in the first bin). chrF is sacrebleu's sentence
    chrF of the shifted text against the basis text, 0-100. ``flagged`` holds up to
    ``top_k`` of the least similar changed examples plus up to ``top_k`` with a negation
    change (perturbations only), least similar first. A domain split of more than
    ``NEAREST_ROWS`` rows is measured on a sample of them drawn with ``seed`` (``sampled``
    says how many of how many, and the error; None when every row was measured).
    """
    if not shifted:
        return {}
    if len(reference) == 0:
        raise ShiftbenchError(f"split {reference.name!r} has no examples")
    texts = [*reference.texts, *(t for split in shifted for t in split.texts)]
    vectors = _unit(embed(texts), len(texts))
    ref_vectors = vectors[:len(reference)]
    ref_rows = {ex_id: i for i, ex_id in enumerate(reference.ids)}
    out, start = {}, len(reference)
    for split in shifted:
        part = vectors[start:start + len(split)]
        start += len(split)
        out[split.name] = _split_movement(split, part, reference, ref_vectors, ref_rows, top_k,
                                          seed)
    return out
