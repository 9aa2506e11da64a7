"""Maximum mean discrepancy with an RBF kernel and a permutation test.

What is computed, stated once:

- statistic: the unbiased MMD^2 (U-statistic, Gretton et al. 2012) with kernel
  k(x, y) = exp(-|x - y|^2 / (2 sigma^2));
- sigma: given, or the median heuristic: the median Euclidean distance between distinct
  rows of the pooled sample (reference + sample; at most 1,000 rows drawn with the seed).
  The pooled sample is the same set under every permutation, so the test stays exact;
- null: ``n_permutations`` random relabellings of the pooled sample (not resamples of
  the reference), p = (1 + #{T_b >= T}) / (1 + B), never 0;
- size: each side larger than ``max_rows`` (default 10,000) is replaced by a random
  subset of that many rows, drawn with the seed independently of the data, so the test
  stays exact but uses fewer rows (``details["rows_used"]``); ``max_rows=None`` uses
  all. Time is O(N^2 (d + B)) for N pooled rows: at n = m = 20,000, d = 384, B = 1,000,
  all rows took 188 s against 36 s for 10,000 per side on 2 busy CPU cores, 2.1 s
  against 0.8 s on an H100 (tests/benchmarks/drift_detectors.py).

Every permutation needs sums of the pooled kernel matrix K over its label pattern s:
s'Ks and s'K1 give all three blocks of MMD^2. K is never stored: it is computed in row
blocks, and each block is multiplied at once by the (N x (B+1)) matrix of 0/1 label
patterns (the observed one first). Memory is that matrix plus one block (~64 MB on CPU,
~1 GB on GPU); time is O(N^2 (d + B)).

Precision: kernel values and their products are float32, the sums over rows float64.
The off-diagonal kernel values are centred first (minus the kernel's value at the
median distance): MMD^2's weights sum to zero, so the shift cancels exactly, and the
float32 sums of small centred values are ~20x more accurate (~1e-9 at n = 3,000).
Backends (numpy, torch) implement only these sums; bandwidth, permutations and p-value
are shared code. The two backends' statistics agree to float32 rounding, so their
p-values for a seed are equal unless a permutation's statistic lies within that
rounding of the observed one.
"""

from __future__ import annotations

import math

import numpy as np

from shiftbench.detectors import Detector, Score, check_backend, resolve_backend
from shiftbench.errors import ShiftbenchError

MEDIAN_ROWS = 1000
Sums = tuple[np.ndarray, np.ndarray, float]  # s'Ks and s'K1 per pattern s, 1'K1
_BLOCK_BYTES = {"cpu": 64 << 20, "cuda": 1 << 30}
_PATTERN_CHUNK = 100  # permutations drawn at a time


def median_distance(z: np.ndarray, rng: np.random.Generator) -> float:
    """Median distance between distinct rows of (at most MEDIAN_ROWS rows of) ``z``."""
    from scipy.spatial.distance import pdist

    rows = rng.choice(len(z), size=min(len(z), MEDIAN_ROWS), replace=False)
    dist = pdist(z[np.sort(rows)].astype(np.float64))
    dist = dist[dist > 0]
    return float(np.median(dist)) if len(dist) else 1.0


def label_patterns(n: int, m: int, n_permutations: int, rng: np.random.Generator) -> np.ndarray:
    """(n + m, 1 + B) float32 0/1 columns: the observed split (reference rows = 1), then
    B random relabellings of the pooled rows."""
    observed = np.r_[np.ones(n, np.float32), np.zeros(m, np.float32)]
    out = np.empty((n + m, 1 + n_permutations), np.float32)
    out[:, 0] = observed
    for start in range(0, n_permutations, _PATTERN_CHUNK):  # chunks: no second full copy
        stop = min(start + _PATTERN_CHUNK, n_permutations)
        out[:, 1 + start:1 + stop] = rng.permuted(
            np.broadcast_to(observed, (stop - start, n + m)), axis=1).T
    return out


def kernel_sums(z: np.ndarray, patterns: np.ndarray, gamma: float, offset: float = 0.0,
                backend: str = "numpy", device: str = "cpu") -> Sums:
    """s'Ks and s'K1 per pattern column s, and 1'K1 (float64), for the off-diagonal
    kernel K_ij = exp(-gamma |z_i - z_j|^2) - offset, K_ii = 0; in row blocks of K."""
    budget = _BLOCK_BYTES["cuda" if device.startswith("cuda") else "cpu"]
    rows = max(1, budget // (4 * len(z)))
    sums = _sums_torch if backend == "torch" else _sums_numpy
    return sums(z, patterns, gamma, offset, rows, device)


def _sums_numpy(z: np.ndarray, patterns: np.ndarray, gamma: float, offset: float, rows: int,
                device: str) -> Sums:
    sq = np.einsum("ij,ij->i", z, z)
    quad = np.zeros(patterns.shape[1])
    cross = np.zeros(patterns.shape[1])
    total = 0.0
    for start in range(0, len(z), rows):
        stop = min(start + rows, len(z))
        block = z[start:stop] @ z.T
        block *= -2
        block += sq[start:stop, None]
        block += sq[None, :]
        np.maximum(block, 0, out=block)
        block *= -gamma
        np.exp(block, out=block)
        block -= offset
        block[np.arange(stop - start), np.arange(start, stop)] = 0.0
        row_sums = block.sum(axis=1, dtype=np.float64)
        total += row_sums.sum()
        cross += row_sums @ patterns[start:stop]
        quad += np.einsum("ib,ib->b", block @ patterns, patterns[start:stop], dtype=np.float64)
    return quad, cross, float(total)


def _sums_torch(z: np.ndarray, patterns: np.ndarray, gamma: float, offset: float, rows: int,
                device: str) -> Sums:
    import torch

    with torch.inference_mode():
        zt = torch.from_numpy(z).to(device)
        pt = torch.from_numpy(patterns).to(device)
        sq = (zt * zt).sum(dim=1)
        quad = torch.zeros(pt.shape[1], dtype=torch.float64, device=device)
        cross = torch.zeros_like(quad)
        total = torch.zeros((), dtype=torch.float64, device=device)
        for start in range(0, len(z), rows):
            stop = min(start + rows, len(z))
            block = torch.addmm(sq[None, :], zt[start:stop], zt.T, alpha=-2)
            block += sq[start:stop, None]
            block.clamp_(min=0).mul_(-gamma).exp_().sub_(offset)
            index = torch.arange(stop - start, device=device)
            block[index, index + start] = 0.0
            row_sums = block.sum(dim=1, dtype=torch.float64)
            total += row_sums.sum()
            cross += row_sums @ pt[start:stop].double()
            quad += ((block @ pt).double() * pt[start:stop]).sum(dim=0)
        return quad.cpu().numpy(), cross.cpu().numpy(), float(total)


def mmd2_unbiased(quad: np.ndarray, cross: np.ndarray, total: float, n: int,
                  m: int) -> np.ndarray:
    """Unbiased MMD^2 per pattern from s'Ks (``quad``), s'K1 (``cross``) and 1'K1 of a
    kernel matrix with a zero diagonal."""
    xx = quad
    yy = total - 2 * cross + quad
    xy = cross - quad
    return xx / (n * (n - 1)) + yy / (m * (m - 1)) - 2 * xy / (n * m)


def _at_most(x: np.ndarray, rows: int | None, rng: np.random.Generator) -> np.ndarray:
    """``x``, or a random subset of ``rows`` of its rows (in their original order)."""
    if rows is None or len(x) <= rows:
        return x
    return x[np.sort(rng.choice(len(x), size=rows, replace=False))]


class MMDDetector(Detector):
    """Kernel two-sample test (RBF, unbiased MMD^2) with a permutation p-value."""

    name = "mmd"

    def __init__(self, alpha: float = 0.05, n_permutations: int = 1000,
                 bandwidth: float | None = None, max_rows: int | None = 10_000,
                 backend: str = "auto", device: str = "auto", seed: int = 0) -> None:
        self.alpha = alpha
        self.n_permutations = n_permutations
        self.bandwidth = bandwidth
        self.max_rows = max_rows
        self.backend = backend
        self.device = device
        self.seed = seed

    def _validate(self) -> None:
        if self.n_permutations < 1:
            raise ShiftbenchError(f"mmd: n_permutations must be >= 1, got {self.n_permutations}")
        if 1 / (1 + self.n_permutations) >= self.alpha:
            raise ShiftbenchError(f"mmd: alpha {self.alpha} is not above the smallest possible "
                                  f"p-value 1/{1 + self.n_permutations}: raise n_permutations")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ShiftbenchError(f"mmd: bandwidth must be > 0, got {self.bandwidth}")
        if self.max_rows is not None and self.max_rows < 2:
            raise ShiftbenchError(f"mmd: max_rows must be >= 2 or None, got {self.max_rows}")
        check_backend(self.backend)

    def _fit(self, reference: np.ndarray) -> None:
        self.backend_, self.device_ = resolve_backend(self.backend, self.device)
        self.center_ = reference.mean(axis=0)

    def _score(self, sample: np.ndarray) -> Score:
        rng = np.random.default_rng(self.seed)
        ref, smp = (_at_most(x, self.max_rows, rng) for x in (self.reference_, sample))
        n, m = len(ref), len(smp)
        # Distances do not change under a shift of origin; centring keeps float32 accurate.
        z = (np.concatenate([ref, smp]) - self.center_).astype(np.float32)
        median = median_distance(z, rng)
        if self.bandwidth is None:
            sigma = median
            how = (f"median heuristic: median distance between distinct rows of "
                   f"{min(n + m, MEDIAN_ROWS)} rows drawn from the pooled sample")
        else:
            sigma, how = float(self.bandwidth), "fixed (given)"
        gamma = 1 / (2 * sigma**2)
        patterns = label_patterns(n, m, self.n_permutations, rng)
        quad, cross, total = kernel_sums(z, patterns, gamma, math.exp(-gamma * median**2),
                                         self.backend_, self.device_)
        stats = mmd2_unbiased(quad, cross, total, n, m)
        p = (1 + int(np.sum(stats[1:] >= stats[0]))) / (1 + self.n_permutations)
        details = {
            "statistic": "unbiased MMD^2, RBF kernel exp(-|x-y|^2 / (2 bandwidth^2))",
            "bandwidth": sigma,
            "bandwidth_method": how,
            "n_permutations": self.n_permutations,
            "rows_used": {"reference": n, "sample": m},
            "null": "permutations of the pooled sample; p = (1 + #{T_b >= T}) / (1 + B)",
            "backend": self.backend_,
            "device": self.device_,
        }
        return Score(float(stats[0]), p, details)
