"""Metrics of generated texts against their targets, one score per example, so a shift's
change pairs with the reference by example id (rows of the metric table with
``task = "generation"``).

Inputs are two aligned arrays of texts: what the model generated and the target (the
reference output). Conventions, stated once:

- ``bleu``: corpus BLEU (sacrebleu, 13a tokenisation, exp smoothing) from the summed
  n-gram statistics of the examples; its interval is a percentile bootstrap over
  examples (each resample re-sums the statistics), and a paired change resamples the
  same examples on both sides.
- ``sentence_bleu``: mean sentence BLEU (sacrebleu's effective-order, exp smoothing).
- ``chrf``: mean sentence chrF (sacrebleu defaults: character 6-grams, beta 2).
- ``rouge1``, ``rouge2``, ``rougeL``: mean ROUGE F1 (Google's ``rouge-score``, Porter
  stemming; its tokenizer keeps ASCII letters and digits only, so it suits English).
- ``exact_match``: share of outputs equal to their target after case folding and
  whitespace folding (a proportion: Wilson interval, exact tests in the gate).

The mean-score metrics' intervals are percentile bootstraps over examples (seeded); a
change against the reference is a paired bootstrap over example ids.
"""

from __future__ import annotations

from abc import abstractmethod
from functools import cache
from typing import Any, ClassVar

import numpy as np

from shiftbench.metrics import Proportion, Resampled, Stat


def _texts(values: Any) -> list[str]:
    return [str(v) for v in np.asarray(values, dtype=object)]


class TextMetric(Resampled):
    """The mean of a per-example score of generated texts against their targets."""

    task = "generation"
    higher_is_better = True

    @abstractmethod
    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """One float per example, aligned with the inputs."""

    def stat(self, outputs: np.ndarray, targets: np.ndarray) -> Stat:
        scores = self.per_example(outputs, targets)
        return lambda idx: scores[idx].mean(axis=1)


@cache
def _bleu(effective_order: bool) -> Any:
    from sacrebleu.metrics import BLEU

    return BLEU(effective_order=effective_order)


def _bleu_counts(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Per example: output length, target length, matching and total n-grams (n = 1..4)."""
    bleu = _bleu(True)
    rows = []
    for output, target in zip(_texts(outputs), _texts(targets), strict=True):
        s = bleu.sentence_score(output, [target])
        rows.append([s.sys_len, s.ref_len, *s.counts, *s.totals])
    return np.asarray(rows, dtype=np.int64).reshape(len(rows), 10)


def corpus_bleu(sums: np.ndarray) -> float:
    """Corpus BLEU from summed statistics (as :func:`_bleu_counts` orders them)."""
    from sacrebleu.metrics import BLEU

    counts = [int(c) for c in sums]
    return float(BLEU.compute_bleu(counts[2:6], counts[6:10], counts[0], counts[1],
                                   smooth_method="exp").score)


class CorpusBleu(Resampled):
    """Corpus BLEU (0-100) of the outputs against the targets; bootstrap over examples."""

    name = "bleu"
    label = "BLEU"
    task = "generation"
    higher_is_better = True
    bounds = (0.0, 100.0)

    def stat(self, outputs: np.ndarray, targets: np.ndarray) -> Stat:
        counts = _bleu_counts(outputs, targets)
        return lambda idx: np.array([corpus_bleu(counts[rows].sum(axis=0)) for rows in idx])


class SentenceBleu(TextMetric):
    """Mean sentence BLEU (0-100; effective order, exp smoothing), bootstrap over examples."""

    name = "sentence_bleu"
    label = "sentence BLEU"
    bounds = (0.0, 100.0)

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        bleu = _bleu(True)
        return np.array([bleu.sentence_score(o, [t]).score
                         for o, t in zip(_texts(outputs), _texts(targets), strict=True)])


class ChrF(TextMetric):
    """Mean sentence chrF (0-100), bootstrap over examples."""

    name = "chrf"
    label = "chrF"
    bounds = (0.0, 100.0)

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        from sacrebleu.metrics import CHRF

        chrf = CHRF()
        return np.array([chrf.sentence_score(o, [t]).score
                         for o, t in zip(_texts(outputs), _texts(targets), strict=True)])


@cache
def _rouge_scorer() -> Any:
    from rouge_score.rouge_scorer import RougeScorer

    return RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)


class Rouge(TextMetric):
    """Mean ROUGE F1 (0-1) of one variant, bootstrap over examples."""

    variant: ClassVar[str]
    bounds = (0.0, 1.0)

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        scorer = _rouge_scorer()
        return np.array([scorer.score(t, o)[self.variant].fmeasure
                         for o, t in zip(_texts(outputs), _texts(targets), strict=True)])


class Rouge1(Rouge):
    """Mean ROUGE-1 F1 (unigram overlap), bootstrap over examples."""

    name = variant = "rouge1"
    label = "ROUGE-1"


class Rouge2(Rouge):
    """Mean ROUGE-2 F1 (bigram overlap), bootstrap over examples."""

    name = variant = "rouge2"
    label = "ROUGE-2"


class RougeL(Rouge):
    """Mean ROUGE-L F1 (longest common subsequence), bootstrap over examples."""

    name = variant = "rougeL"
    label = "ROUGE-L"


def _folded(text: str) -> str:
    return " ".join(text.casefold().split())


class ExactMatch(Proportion):
    """Share of outputs equal to their target (case and whitespace folded), Wilson interval."""

    name = "exact_match"
    label = "exact match"
    task = "generation"

    def outcome(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return np.array([_folded(o) == _folded(t)
                         for o, t in zip(_texts(outputs), _texts(targets), strict=True)],
                        dtype=bool)

    def per_example(self, outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
        return self.outcome(outputs, targets).astype(float)


def output_words(outputs: Any) -> np.ndarray:
    """Words per generated text (whitespace split): how long the outputs run."""
    return np.array([len(text.split()) for text in _texts(outputs)], dtype=float)
