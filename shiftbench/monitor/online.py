"""Online MMD: an alarm threshold set so that false alarms come every ``ert`` windows.

The stream is cut into consecutive, non-overlapping windows of ``window`` rows. Each
window gets one statistic and an alarm when it exceeds a threshold fixed at fit:

- statistic T: the unbiased MMD^2 (RBF kernel, as in :mod:`shiftbench.detectors.mmd`)
  between the window and a fixed comparison set C, the reference less ``window`` rows
  set aside at random. The bandwidth is fixed at fit (median heuristic on the
  reference), so every window is scored by the same function;
- threshold h: B times, split the reference at random into ``window`` rows and the other
  n - window rows and compute the same statistic between them (same kernel, same sizes as
  in production); h is the k-th largest of the B values, k = round((B + 1) / ert).

Why that gives an expected run time (ERT) of ``ert`` windows between false alarms:

- with no drift, production rows are independent draws from the reference's
  distribution; windows that do not overlap are then independent given the reference,
  so the number of windows up to the first alarm is geometric with mean 1 / p, where p
  is the chance that one window's T exceeds h;
- a random split of the reference is the same experiment as a production window
  against C (n - window rows against window rows, all from one distribution). If T and
  the B simulated values were exchangeable, T would exceed the k-th largest of them with
  probability exactly k / (B + 1) (reported as ``alpha``; ``ert_effective`` is its
  inverse). They are exchangeable on average over reference samples, not for each one:
  for a given reference p scatters around k / (B + 1). Measured on Gaussian streams
  (n = 500 to 2,000 reference rows, windows of 20 to 200, ERT 50 and 100, 6 to 8
  references each): the rate averaged 1.0 to 1.2 / ERT; single references ranged from
  0.7 to 1.7 / ERT, Monte Carlo error included. Simulating from a held-out half
  of the reference instead (the obvious alternative) was worse: it estimates the
  no-drift centre of T less precisely than its spread allows, and halves C;
- the threshold is a Monte Carlo estimate: the chance of exceeding the k-th largest of
  B draws has relative standard deviation about 1 / sqrt(k); the default B = 50 * ert
  gives k = 50, about 14%.

Assumptions, stated because the ERT is only as good as they are: rows are independent
(bursts of near-duplicates, e.g. retries or bots, make alarms more frequent); the
reference is no-drift traffic embedded by the same embedder; every window has exactly
``window`` rows (h depends on the size). Alibi Detect's online MMD instead slides an
overlapping window one row at a time and needs a threshold per time step; tumbling
windows trade some delay for this simpler, checkable construction.

Saved as a folder: ``online.json`` (parameters, threshold, bandwidth, reference digest)
and ``arrays.npz`` (comparison set, centre, the B simulated statistics), in the
checksummed saved-folder format of :mod:`shiftbench.cache`: loading checks every field,
parameter, shape and checksum, and refuses a folder that fails (a zeroed or cut array of
simulated statistics would silently move the threshold).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from shiftbench.detectors import (
    DriftResult,
    Params,
    check_matrix,
    reference_digest,
    resolve_backend,
)
from shiftbench.detectors.mmd import kernel_sums, label_patterns, median_distance, mmd2_unbiased
from shiftbench.errors import ShiftbenchError

TAIL = 50  # simulated statistics above the threshold, by default
_PATTERN_BYTES = 64 << 20  # label patterns per batch of simulations


class OnlineMMD(Params):
    """Windowed MMD^2 with a threshold simulated on the reference for a chosen ERT."""

    name = "online_mmd"

    def __init__(self, ert: float = 500.0, window: int = 200, n_simulations: int | None = None,
                 bandwidth: float | None = None, max_reference: int = 4000,
                 backend: str = "auto", device: str = "auto", seed: int = 0) -> None:
        self.ert = ert
        self.window = window
        self.n_simulations = n_simulations
        self.bandwidth = bandwidth
        self.max_reference = max_reference
        self.backend = backend
        self.device = device
        self.seed = seed

    @property
    def min_sample(self) -> int:
        """Windows must have exactly this many rows: the threshold is for that size."""
        return self.window

    @property
    def simulations(self) -> int:
        return self.n_simulations or math.ceil(TAIL * self.ert) - 1

    def validate(self, n_rows: int) -> None:
        """Check the parameters for a reference of ``n_rows`` (before any costly work)."""
        if not self.ert > 1:
            raise ShiftbenchError(f"online mmd: ert must be > 1 window, got {self.ert}")
        if self.window < 2:
            raise ShiftbenchError(f"online mmd: window must be at least 2 rows, got {self.window}")
        if self.simulations + 1 < self.ert:
            raise ShiftbenchError(f"online mmd: {self.simulations} simulations cannot set a "
                                  f"threshold for ert {self.ert:g}: use at least "
                                  f"{math.ceil(self.ert) - 1}")
        if self.bandwidth is not None and not self.bandwidth > 0:
            raise ShiftbenchError(f"online mmd: bandwidth must be > 0, got {self.bandwidth}")
        if self.max_reference < 2 * self.window:
            raise ShiftbenchError(f"online mmd: max_reference {self.max_reference} is below "
                                  f"twice the window ({2 * self.window})")
        if n_rows < 2 * self.window:
            raise ShiftbenchError(f"online mmd: the reference has {n_rows} rows; windows of "
                                  f"{self.window} need at least {2 * self.window} (10x is "
                                  "better): lower the window or add reference rows")

    def fit(self, reference: Any) -> OnlineMMD:
        """Set aside the comparison set and simulate the threshold (seeded)."""
        ref = check_matrix(reference, "reference")
        self.validate(len(ref))
        self.reference_digest_ = reference_digest(ref)
        rng = np.random.default_rng(self.seed)
        if len(ref) > self.max_reference:
            ref = ref[np.sort(rng.choice(len(ref), self.max_reference, replace=False))]
        self.backend_, self.device_ = resolve_backend(self.backend, self.device)
        self.center_ = ref.mean(axis=0)
        z = (ref - self.center_).astype(np.float32)
        median = median_distance(z, rng)
        self.bandwidth_ = float(self.bandwidth) if self.bandwidth is not None else median
        # Kernel sums are centred on the kernel's value at the median distance (float32
        # accuracy, see the mmd module); MMD^2 is unchanged by that shift.
        self.offset_ = math.exp(-(median**2) / (2 * self.bandwidth_**2))
        self.comparison_ = z[np.sort(rng.permutation(len(z))[self.window:])]
        ones = np.ones((len(self.comparison_), 1), np.float32)
        self.comparison_sum_ = float(self._kernel_sums(self.comparison_, ones)[0][0])
        self.null_ = np.sort(self._simulate(z, rng))
        self._set_threshold()
        self.n_features_in_ = ref.shape[1]
        return self

    def _simulate(self, z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """T for B random splits of the reference into (n - window, window) rows."""
        n_rest = len(z) - self.window
        batch = max(1, _PATTERN_BYTES // (4 * len(z)))
        stats = []
        for start in range(0, self.simulations, batch):
            size = min(batch, self.simulations - start)
            patterns = label_patterns(n_rest, self.window, size, rng)[:, 1:]
            stats.append(self._mmd2(z, np.ascontiguousarray(patterns), n_rest))
        return np.concatenate(stats)

    def _mmd2(self, z: np.ndarray, patterns: np.ndarray, n_rest: int) -> np.ndarray:
        return mmd2_unbiased(*self._kernel_sums(z, patterns), n_rest, len(z) - n_rest)

    def _kernel_sums(self, z: np.ndarray, patterns: np.ndarray) -> tuple:
        gamma = 1 / (2 * self.bandwidth_**2)
        return kernel_sums(z, patterns, gamma, self.offset_, self.backend_, self.device_)

    def _set_threshold(self) -> None:
        b = len(self.null_)
        self.k_ = max(1, round((b + 1) / self.ert))
        self.threshold_ = float(self.null_[-self.k_])
        self.alpha_ = self.k_ / (b + 1)

    def score(self, window: Any) -> float:
        """The statistic T of one window (exactly ``window`` rows)."""
        if not hasattr(self, "null_"):
            raise ShiftbenchError("online mmd: call fit(reference) before testing windows")
        x = check_matrix(window, "window")
        if x.shape != (self.window, self.n_features_in_):
            raise ShiftbenchError(f"window has shape {x.shape}; the online detector was "
                                  f"calibrated for {self.window} rows x {self.n_features_in_} "
                                  "features")
        x = x - self.center_
        n, m = len(self.comparison_), self.window
        within = self._pair_sum(x, x) - m * (1 - self.offset_)  # off-diagonal pairs only
        cross = self._pair_sum(self.comparison_, x)
        return float(self.comparison_sum_ / (n * (n - 1)) + within / (m * (m - 1))
                     - 2 * cross / (n * m))

    def _pair_sum(self, a: np.ndarray, b: np.ndarray) -> float:
        """Sum over all row pairs of the centred kernel: O(len(a) len(b) d), so a window
        costs far less than the O(n^2 d) sums over the comparison set (done once at fit)."""
        from scipy.spatial.distance import cdist

        sq = cdist(a.astype(np.float64), b.astype(np.float64), "sqeuclidean")
        return float((np.exp(-sq / (2 * self.bandwidth_**2)) - self.offset_).sum())

    def test(self, window: Any) -> DriftResult:
        """Alarm when T exceeds the threshold; ``p_value`` is T's Monte Carlo p-value
        (1 + #{simulated >= T}) / (1 + B), so the alarm is ``p_value <= alpha``."""
        t = self.score(window)
        above = len(self.null_) - int(np.searchsorted(self.null_, t, side="left"))
        p = (1 + above) / (1 + len(self.null_))
        details = {
            "threshold": self.threshold_,
            "ert": self.ert,
            "ert_effective": 1 / self.alpha_,
            "n_simulations": len(self.null_),
            "bandwidth": self.bandwidth_,
        }
        return DriftResult(self.name, t, p, self.alpha_, t > self.threshold_,
                           len(self.comparison_), self.window, True, details)

    def describe(self) -> dict[str, Any]:
        """What makes two runs comparable (a stream resumed under other settings is not)."""
        return {"method": self.name, "ert": self.ert, "window": self.window}

    # -- save / load --------------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write ``online.json`` + ``arrays.npz`` into ``directory`` (created if needed)."""
        from shiftbench.cache import write_saved

        if not hasattr(self, "null_"):
            raise ShiftbenchError("online mmd: only a fitted detector can be saved")
        meta = {"detector": self.name, "params": self.get_params(),
                "bandwidth": self.bandwidth_, "offset": self.offset_,
                "comparison_sum": self.comparison_sum_,
                "threshold": self.threshold_, "k": self.k_,
                "alpha": self.alpha_, "n_features_in": self.n_features_in_,
                "reference_digest": self.reference_digest_}
        return write_saved(Path(directory), "online.json", meta,
                           {"comparison": self.comparison_, "center": self.center_,
                            "null": self.null_})


SAVED_FIELDS = {"detector": str, "params": dict, "bandwidth": float, "offset": float,
                "comparison_sum": float, "threshold": float, "k": int, "alpha": float,
                "n_features_in": int, "reference_digest": str}
SAVED_ARRAYS = {"comparison": 2, "center": 1, "null": 1}


def load_online(directory: str | Path) -> OnlineMMD:
    """An :class:`OnlineMMD` saved by ``save``, with its simulated threshold (no refit); a
    folder that fails a check (field, parameter, shape, checksum) is refused."""
    from shiftbench.cache import read_saved

    folder = Path(directory)
    where = folder / "online.json"
    meta, arrays = read_saved(folder, "online.json", "online detector", SAVED_FIELDS,
                              SAVED_ARRAYS)
    try:
        if meta["detector"] != OnlineMMD.name:
            raise ShiftbenchError(f"field 'detector' is {meta['detector']!r}, not "
                                  f"{OnlineMMD.name!r}")
        detector = OnlineMMD(**OnlineMMD.check_params(meta["params"], "field 'params'"))
        _check_saved_shapes(detector, meta, arrays)
        detector.validate(len(arrays["comparison"]) + detector.window)
    except ShiftbenchError as exc:
        raise ShiftbenchError(f"{where}: {exc}") from None
    detector.backend_, detector.device_ = resolve_backend(detector.backend, detector.device)
    detector.comparison_ = arrays["comparison"]
    detector.center_ = arrays["center"]
    detector.null_ = arrays["null"]
    detector.bandwidth_ = float(meta["bandwidth"])
    detector.offset_ = float(meta["offset"])
    detector.comparison_sum_ = float(meta["comparison_sum"])
    detector.n_features_in_ = meta["n_features_in"]
    detector.reference_digest_ = meta["reference_digest"]
    detector._set_threshold()
    if (detector.threshold_, detector.k_, detector.alpha_) != (meta["threshold"], meta["k"],
                                                                meta["alpha"]):
        raise ShiftbenchError(f"{where}: fields 'threshold', 'k' and 'alpha' do not match the "
                              "simulated statistics in array 'null'")
    return detector


def _check_saved_shapes(detector: OnlineMMD, meta: dict[str, Any],
                        arrays: dict[str, np.ndarray]) -> None:
    """The saved arrays agree with the saved fields and parameters."""
    d = meta["n_features_in"]
    comparison, center, null = arrays["comparison"], arrays["center"], arrays["null"]
    if comparison.shape[1] != d or center.shape != (d,):
        raise ShiftbenchError(f"arrays 'comparison' {comparison.shape} and 'center' "
                              f"{center.shape} must have n_features_in = {d} columns")
    if len(null) != detector.simulations or np.any(np.diff(null) < 0):
        raise ShiftbenchError(f"array 'null' must hold the {detector.simulations} simulated "
                              f"statistics in increasing order; it has {len(null)}")
    if not meta["bandwidth"] > 0:
        raise ShiftbenchError(f"field 'bandwidth' must be > 0, got {meta['bandwidth']}")
