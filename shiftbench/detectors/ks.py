"""Kolmogorov-Smirnov test per dimension, corrected for the number of dimensions; BBSD.

The backends (numpy, torch) compute only the statistic: per dimension, the largest gap
between the two empirical CDFs as an exact integer ``|c_ref * m - c_sample * n|`` (counts
at or below each pooled value, read at the last of tied values), so both give the same
statistic bit for bit. P-values then come from one shared function:

- equal sizes (n = m): exact, P(D >= h/n) = 2 sum_k (-1)^(k+1) C(2n, n-kh) / C(2n, n)
  (Gnedenko-Korolyuk; scipy's ``method="exact"`` gives the same values);
- unequal sizes with n * m up to :data:`EXACT_CELLS`: exact, one minus the share of the
  C(n + m, n) orderings of the pooled values whose ECDF gap stays below the observed one
  (paths on the n x m lattice; scipy's ``method="exact"`` gives the same values). Smirnov's
  limit is below the exact p there (0.074 against 0.100 at n = 20, m = 15);
- larger unequal sizes: Smirnov's limit with scipy's finite-size correction,
  ``kstwo.sf(D, round(nm / (n + m)))`` (scipy's ``method="asymp"``).

Correction across the d dimensions (named in the result):

- ``bonferroni`` (default): p = min(1, d * min_j p_j); valid under any dependence.
- ``bh``: p = min_j d * p_(j) / j (Simes), the smallest Benjamini-Hochberg adjusted p, so
  ``p < alpha`` exactly when BH rejects some dimension. Valid when dimensions are
  independent or positively dependent (PRDS).

BBSD (black-box shift detection, Lipton et al. 2018) is the same test on a model's
class probabilities instead of embeddings.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from shiftbench.detectors import Detector, Score, check_backend, resolve_backend
from shiftbench.errors import ShiftbenchError

CORRECTIONS = ("bonferroni", "bh")
EXACT_CELLS = 40_000  # unequal sizes with n * m up to this get exact p-values
_BLOCK_CELLS = 1 << 22  # pooled cells per column block (~32 MB per int64 array)


def ecdf_gaps(reference: np.ndarray, sample: np.ndarray, backend: str = "numpy",
              device: str = "cpu") -> np.ndarray:
    """Per column, max over x of |#{ref <= x} * m - #{sample <= x} * n| (int64)."""
    n, m = len(reference), len(sample)
    pooled = np.concatenate([reference, sample])
    step = max(1, _BLOCK_CELLS // len(pooled))
    gap = _gaps_torch if backend == "torch" else _gaps_numpy
    return np.concatenate([gap(pooled[:, j:j + step], n, m, device)
                           for j in range(0, pooled.shape[1], step)])


def _gaps_numpy(pooled: np.ndarray, n: int, m: int, device: str) -> np.ndarray:
    order = np.argsort(pooled, axis=0, kind="stable")
    values = np.take_along_axis(pooled, order, axis=0)
    walk = np.cumsum(np.where(order < n, m, -n), axis=0)
    last = np.ones(values.shape, dtype=bool)
    last[:-1] = values[1:] != values[:-1]
    return np.where(last, np.abs(walk), 0).max(axis=0)


def _gaps_torch(pooled: np.ndarray, n: int, m: int, device: str) -> np.ndarray:
    import torch

    values, order = torch.sort(torch.from_numpy(pooled).to(device), dim=0, stable=True)
    walk = torch.cumsum(torch.where(order < n, m, -n), dim=0)
    last = torch.ones_like(values, dtype=torch.bool)
    last[:-1] = values[1:] != values[:-1]
    return torch.where(last, walk.abs(), 0).amax(dim=0).cpu().numpy()


def ks_pvalues(gaps: np.ndarray, n: int, m: int) -> np.ndarray:
    """Two-sided KS p-values from :func:`ecdf_gaps` (exact when n == m, see module doc)."""
    from scipy.special import gammaln
    from scipy.stats import kstwo

    gaps = np.asarray(gaps, dtype=np.int64)
    if n != m:
        # No p-value is below the chance that the two samples separate completely,
        # 2 / C(n + m, n) (floored at the smallest float): the asymptotic tail reaches 0 at
        # D = 1, and the exact one loses its last digits to rounding there.
        floor = max(np.exp(np.log(2) - gammaln(n + m + 1) + gammaln(n + 1) + gammaln(m + 1)),
                    np.finfo(float).tiny)
        if n * m <= EXACT_CELLS:
            unique, position = np.unique(gaps, return_inverse=True)
            p = _exact_unequal(unique, n, m)[position]
        else:
            p = kstwo.sf(gaps / (n * m), round(n * m / (n + m)))
        return np.clip(p, floor, 1.0)
    p = np.ones(len(gaps))
    for h in np.unique(gaps // n):  # h = n * D: ECDF steps apart
        if h == 0:
            continue
        k = np.arange(1, n // h + 1)
        terms = np.exp(2 * gammaln(n + 1) - gammaln(n - k * h + 1) - gammaln(n + k * h + 1))
        p[gaps // n == h] = min(1.0, 2 * np.sum(terms * np.where(k % 2 == 1, 1, -1)))
    return p


def _exact_unequal(gaps: np.ndarray, n: int, m: int) -> np.ndarray:
    """Per gap, P(max_x |#ref <= x * m - #sample <= x * n| >= gap) under H0 (no ties): one
    minus the share of lattice paths from (0, 0) to (n, m) (a step in i per reference
    value, in j per sample value, in pooled order) that keep |i * m - j * n| < gap. A
    cell in the band is reached from the one below or the one before it, and a row's band
    is one run of j: each row is a running sum of the row below, masked to the band."""
    from scipy.special import comb

    j = np.arange(m + 1)
    paths = np.zeros((len(gaps), m + 1))
    paths[:, 0] = 1.0  # the start, below row 0: its running sum carries it along the band
    for i in range(n + 1):
        band = np.abs(i * m - j * n)[None, :] < gaps[:, None]
        paths = np.cumsum(paths * band, axis=1) * band
    return 1.0 - paths[:, m] / comb(n + m, n)


def correct(p: np.ndarray, correction: str) -> float:
    """One p-value for 'no dimension drifted' from per-dimension p-values."""
    d = len(p)
    if correction == "bonferroni":
        return float(min(1.0, d * p.min()))
    return float(min(1.0, (d * np.sort(p) / np.arange(1, d + 1)).min()))


def rejected(p: np.ndarray, correction: str, alpha: float) -> np.ndarray:
    """Indices of the dimensions the correction rejects at ``alpha``."""
    d = len(p)
    if correction == "bonferroni":
        return np.flatnonzero(p < alpha / d)
    order = np.argsort(p, kind="stable")
    below = np.flatnonzero(p[order] < alpha * np.arange(1, d + 1) / d)
    return np.sort(order[:below[-1] + 1]) if len(below) else np.array([], dtype=np.int64)


class KSDetector(Detector):
    """Two-sample KS test on every dimension, with Bonferroni or BH correction."""

    name = "ks"

    def __init__(self, alpha: float = 0.05, correction: str = "bonferroni",
                 backend: str = "auto", device: str = "auto") -> None:
        self.alpha = alpha
        self.correction = correction
        self.backend = backend
        self.device = device

    def _validate(self) -> None:
        if self.correction not in CORRECTIONS:
            raise ShiftbenchError(f"{self.name}: correction {self.correction!r}: use "
                                  f"{', '.join(CORRECTIONS)}")
        check_backend(self.backend)

    def _fit(self, reference: np.ndarray) -> None:
        self.backend_, self.device_ = resolve_backend(self.backend, self.device)

    def _columns(self, x: np.ndarray) -> np.ndarray:
        """The columns tested (all of them; BBSD drops a redundant one)."""
        return x

    def _score(self, sample: np.ndarray) -> Score:
        ref, smp = self._columns(self.reference_), self._columns(sample)
        dtype = np.result_type(ref, smp)
        n, m = len(ref), len(smp)
        gaps = ecdf_gaps(ref.astype(dtype), smp.astype(dtype), self.backend_, self.device_)
        p = ks_pvalues(gaps, n, m)
        details: dict[str, Any] = {
            "correction": self.correction,
            "n_dimensions": len(p),
            "min_p_uncorrected": float(p.min()),
            "drifted_dimensions": rejected(p, self.correction, self.alpha).tolist(),
            "p_value_method": "exact" if n == m else "asymptotic (Smirnov, finite-size)",
            "statistic": "largest KS distance over dimensions",
            "backend": self.backend_,
            "device": self.device_,
        }
        return Score(float(gaps.max() / (n * m)), correct(p, self.correction), details)


class BBSDDetector(KSDetector):
    """Black-box shift detection: KS per class on a model's predicted probabilities.

    With two classes only the first column is tested: the second is 1 minus it, so it
    would give the same test and only double the Bonferroni factor.
    """

    name = "bbsd"
    input = "probabilities"

    def _check(self, x: Any, name: str, min_rows: int) -> np.ndarray:
        arr = super()._check(x, name, min_rows)
        sums = arr.sum(axis=1)
        bad = np.flatnonzero((arr.min(axis=1) < 0) | (arr.max(axis=1) > 1)
                             | (np.abs(sums - 1) > 1e-3))
        if len(bad):
            raise ShiftbenchError(f"{name}: bbsd expects class probabilities (rows in [0, 1] "
                                  f"summing to 1); row {bad[0]} sums to {sums[bad[0]]:.4g}. "
                                  "Pass predict_proba output, not logits")
        return arr

    def _columns(self, x: np.ndarray) -> np.ndarray:
        return x[:, :1] if x.shape[1] == 2 else x



class UnivariateKS(KSDetector):
    """KS test on one column of per-text values (no correction across dimensions)."""

    what: ClassVar[str]  # the column, as an error names it

    def _check(self, x: Any, name: str, min_rows: int) -> np.ndarray:
        arr = super()._check(x, name, min_rows)
        if arr.shape[1] != 1:
            raise ShiftbenchError(f"{name}: {self.name} tests one column ({self.what}), "
                                  f"got {arr.shape[1]}")
        return arr


class BitsPerByteDetector(UnivariateKS):
    """KS test on per-text bits per byte under a suite's perplexity LM (one column): do
    the shifted texts surprise the LM more (or less) than the reference's? Runs in suites
    that name an LM (``perplexity:`` or ``--lm``)."""

    name = "bpb"
    input = "bits_per_byte"
    what = "bits per byte per text"


class OutputLengthDetector(UnivariateKS):
    """KS test on a generator's output lengths in words (one column): do the outputs grow
    or shrink? Runs where a generator's outputs are at hand (generation suites, and
    ``monitor check --model`` with a generator)."""

    name = "output_length"
    input = "output_words"
    what = "words per generated output"
