"""Online detectors: the contract, and the online MMD whose alarm threshold is set so
that false alarms come every ``ert`` windows.

:class:`OnlineDetector` is what the stream monitor needs of a detector: fit once on a
reference, then test consecutive windows of exactly ``window`` rows, each giving a
:class:`~shiftbench.detectors.DriftResult` whose ``drifted`` is an alarm; a description
that a resumed stream must keep; and a saved folder. Online detectors are registered in
:data:`shiftbench.registry.ONLINE_DETECTORS` (entry-point group
``shiftbench.online_detectors``).

Online MMD. The stream is cut into consecutive, non-overlapping windows of ``window`` rows. Each
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

Saved as a folder: ``online.json`` (registry name, parameters, the detector's fields,
reference digest; for the online MMD: threshold, bandwidth, ...) and ``arrays.npz`` (for
the online MMD: comparison set, centre, the B simulated statistics), in the checksummed
saved-folder format of :mod:`shiftbench.cache`: loading checks every field, parameter,
shape and checksum, and refuses a folder that fails (a zeroed or cut array of simulated
statistics would silently move the threshold). Nothing is ever unpickled.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from shiftbench.arrays import check_matrix
from shiftbench.detectors import DriftResult, Params, reference_digest, resolve_backend
from shiftbench.detectors.mmd import kernel_sums, label_patterns, median_distance, mmd2_unbiased
from shiftbench.errors import ShiftbenchError

SAVED_JSON = "online.json"
TAIL = 50  # simulated statistics above the threshold, by default
_PATTERN_BYTES = 64 << 20  # label patterns per batch of simulations


class OnlineDetector(Params, ABC):
    """The online detector contract: fit once on a reference, then test windows of exactly
    ``window`` rows.

    Every online detector takes the parameter ``window`` (its threshold holds for that
    size) and stores its parameters under their own names (:class:`Params`). Subclasses
    set ``name`` (the registry name) and ``saved_fields`` / ``saved_arrays`` (their
    fitted state, as saved), and implement ``_fit``, ``_test``, :meth:`describe`,
    ``_state`` and ``_restore``; the checks, the reference digest and the saved folder
    live here once. ``drifted`` is ``p_value <= alpha`` where a p-value is given.
    """

    name: ClassVar[str]
    saved_fields: ClassVar[Mapping[str, Any]]  # field -> JSON types, beyond the shared ones
    saved_arrays: ClassVar[Mapping[str, int]]  # array -> number of dimensions
    window: int

    def validate(self, n_rows: int) -> None:
        """Check the parameters for a reference of ``n_rows`` (before any costly work)."""

    def fit(self, reference: Any) -> OnlineDetector:
        """Fit on ``reference`` (rows x features); ``reference_digest_`` says which one."""
        ref = check_matrix(reference, "reference")
        self.validate(len(ref))
        self.reference_digest_ = reference_digest(ref)
        self._fit(ref)
        self.n_features_in_ = ref.shape[1]
        return self

    def test(self, window: Any) -> DriftResult:
        """Test one window of exactly ``window`` rows (features as in the reference)."""
        if not hasattr(self, "n_features_in_"):
            raise ShiftbenchError(f"{self.name}: call fit(reference) before testing windows")
        x = check_matrix(window, "window")
        if x.shape != (self.window, self.n_features_in_):
            raise ShiftbenchError(f"window has shape {x.shape}; the online detector was "
                                  f"calibrated for {self.window} rows x {self.n_features_in_} "
                                  "features")
        return self._test(x)

    @abstractmethod
    def describe(self) -> dict[str, Any]:
        """What makes two runs comparable (a stream resumed under other settings is not):
        ``method`` and the parameters that decide the results, JSON-ready."""

    @abstractmethod
    def _fit(self, reference: np.ndarray) -> None:
        """Learn the threshold from a checked reference (seeded by the parameters)."""

    @abstractmethod
    def _test(self, window: np.ndarray) -> DriftResult:
        """The result of a checked window of ``window`` rows."""

    # -- save / load --------------------------------------------------------------------------

    @abstractmethod
    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """The fitted state to save: ``saved_fields`` values and ``saved_arrays``."""

    @abstractmethod
    def _restore(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """Set the fitted state from a saved folder's checked fields and arrays; refuse
        (ShiftbenchError naming the field) what does not fit the parameters."""

    def save(self, directory: str | Path) -> Path:
        """Write ``online.json`` + ``arrays.npz`` into ``directory`` (created if needed)."""
        from shiftbench.cache import write_saved

        if not hasattr(self, "n_features_in_"):
            raise ShiftbenchError(f"{self.name}: only a fitted detector can be saved")
        fields, arrays = self._state()
        meta = {"detector": self.name, "params": self.get_params(), **fields,
                "n_features_in": self.n_features_in_, "reference_digest": self.reference_digest_}
        return write_saved(Path(directory), SAVED_JSON, meta, arrays)

    @classmethod
    def load(cls, directory: str | Path) -> OnlineDetector:
        """A detector saved by :meth:`save`, as fitted (no refit); a folder that fails a
        check (field, parameter, shape, checksum) is refused."""
        from shiftbench.cache import read_saved

        folder = Path(directory)
        fields = {"detector": str, "params": dict, **cls.saved_fields, "n_features_in": int,
                  "reference_digest": str}
        meta, arrays = read_saved(folder, SAVED_JSON, "online detector", fields,
                                  cls.saved_arrays)
        try:
            if meta["detector"] != cls.name:
                raise ShiftbenchError(f"field 'detector' is {meta['detector']!r}, not "
                                      f"{cls.name!r}")
            detector = cls(**cls.check_params(meta["params"], "field 'params'"))
            detector._restore(meta, arrays)
        except ShiftbenchError as exc:
            raise ShiftbenchError(f"{folder / SAVED_JSON}: {exc}") from None
        detector.n_features_in_ = meta["n_features_in"]
        detector.reference_digest_ = meta["reference_digest"]
        return detector


class OnlineMMD(OnlineDetector):
    """Windowed MMD^2 with a threshold simulated on the reference for a chosen ERT."""

    name = "online_mmd"
    saved_fields = {"bandwidth": float, "offset": float, "comparison_sum": float,
                    "threshold": float, "k": int, "alpha": float}
    saved_arrays = {"comparison": 2, "center": 1, "null": 1}

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
    def simulations(self) -> int:
        return self.n_simulations or math.ceil(TAIL * self.ert) - 1

    def validate(self, n_rows: int) -> None:
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

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, "ert": self.ert, "window": self.window}

    def _fit(self, ref: np.ndarray) -> None:
        """Set aside the comparison set and simulate the threshold (seeded)."""
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

    def _statistic(self, x: np.ndarray) -> float:
        """The statistic T of one checked window."""
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

    def _test(self, window: np.ndarray) -> DriftResult:
        """Alarm when T exceeds the threshold; ``p_value`` is T's Monte Carlo p-value
        (1 + #{simulated >= T}) / (1 + B), so the alarm is ``p_value <= alpha``."""
        t = self._statistic(window)
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

    # -- save / load --------------------------------------------------------------------------

    def _state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        fields = {"bandwidth": self.bandwidth_, "offset": self.offset_,
                  "comparison_sum": self.comparison_sum_, "threshold": self.threshold_,
                  "k": self.k_, "alpha": self.alpha_}
        return fields, {"comparison": self.comparison_, "center": self.center_,
                        "null": self.null_}

    def _restore(self, meta: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
        """The saved simulation, checked against the fields and parameters (no refit)."""
        d = meta["n_features_in"]
        comparison, center, null = arrays["comparison"], arrays["center"], arrays["null"]
        if comparison.shape[1] != d or center.shape != (d,):
            raise ShiftbenchError(f"arrays 'comparison' {comparison.shape} and 'center' "
                                  f"{center.shape} must have n_features_in = {d} columns")
        if len(null) != self.simulations or np.any(np.diff(null) < 0):
            raise ShiftbenchError(f"array 'null' must hold the {self.simulations} simulated "
                                  f"statistics in increasing order; it has {len(null)}")
        if not meta["bandwidth"] > 0:
            raise ShiftbenchError(f"field 'bandwidth' must be > 0, got {meta['bandwidth']}")
        self.validate(len(comparison) + self.window)
        self.backend_, self.device_ = resolve_backend(self.backend, self.device)
        self.comparison_, self.center_, self.null_ = comparison, center, null
        self.bandwidth_ = float(meta["bandwidth"])
        self.offset_ = float(meta["offset"])
        self.comparison_sum_ = float(meta["comparison_sum"])
        self._set_threshold()
        if (self.threshold_, self.k_, self.alpha_) != (meta["threshold"], meta["k"],
                                                       meta["alpha"]):
            raise ShiftbenchError("fields 'threshold', 'k' and 'alpha' do not match the "
                                  "simulated statistics in array 'null'")
