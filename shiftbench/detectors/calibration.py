"""Measured, not assumed: a detector's false-alarm rate and power at a window size.

Each repeat splits the reference at random into two halves, fits a fresh copy of the
detector on one half and tests a ``window``-row sample drawn from the other: under no
drift, how often it fires is the false-alarm rate. In the same repeat it also tests a
``window``-row sample of each positive control (e.g. the suite's typos at severity 2,
embedded): how often it fires is its power against that shift.

Positive controls are, by default, row-aligned with the reference (row i is reference
row i, shifted): their windows then use the same held-out rows as the null window, so
no tested row is a shifted copy of a row the detector was fitted on, and null and
shifted windows differ only by the shift. With ``paired=False`` they are independent
samples and their windows are drawn from all their rows.

Rates carry 95% Wilson intervals. A detector is flagged when the interval of its
false-alarm rate lies wholly above alpha: it fires more often than alpha by more than
the sampling error of the measurement. Alpha itself is never adjusted here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from shiftbench.arrays import check_matrix
from shiftbench.errors import ShiftbenchError
from shiftbench.metrics import Estimate, wilson

if TYPE_CHECKING:
    from shiftbench.detectors import Detector

T = TypeVar("T")
CallEach = Callable[[Callable[..., T], list[tuple[Any, ...]], str], list[T]]
"""Runs whole jobs (``fn(*args)`` per ``args``) and returns their results in call order,
such as :meth:`shiftbench.runner.Runner.call_each` (in-process, or as Ray tasks)."""

REPEATS_PER_CALL = 10
"""Calibration repeats per job: enough to outweigh a Ray task's overhead, few enough to
spread 50 repeats over several workers."""


@dataclass(frozen=True)
class Repeat:
    """One repeat's random draws, made in the driver: rows to fit on, held-out window
    rows, the fresh copy's seed (None when the detector takes none), and each unpaired
    control's window rows."""

    fit_rows: np.ndarray
    held: np.ndarray
    seed: int | None
    picked: dict[str, np.ndarray]


@dataclass(frozen=True)
class Calibration:
    """A detector's measured false-alarm rate and power (fractions of ``n_repeats``)."""

    method: str
    alpha: float
    window: int
    n_fit: int
    n_repeats: int
    false_alarm: Estimate
    flagged: bool
    power: dict[str, Estimate] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "alpha": self.alpha, "window": self.window,
                "n_fit": self.n_fit, "n_repeats": self.n_repeats,
                "false_alarm": self.false_alarm.to_dict(), "flagged": self.flagged,
                "power": {name: est.to_dict() for name, est in self.power.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Calibration:
        return cls(data["method"], data["alpha"], data["window"], data["n_fit"],
                   data["n_repeats"], Estimate(**data["false_alarm"]), data["flagged"],
                   {name: Estimate(**est) for name, est in data["power"].items()})

    def summary(self) -> str:
        """Printable lines: false-alarm rate against alpha, then power per control."""
        fa = self.false_alarm
        lines = [f"{self.method}: false-alarm rate {fa.value:.3f} [{fa.low:.3f}, {fa.high:.3f}] "
                 f"at alpha {self.alpha:g} ({self.n_repeats} reference halves of "
                 f"{self.n_fit} rows, window {self.window})"]
        if self.flagged:
            lines.append(f"  FLAGGED: false-alarm rate above alpha {self.alpha:g} beyond "
                         "sampling error; its alarms are not trustworthy at this alpha")
        lines += [f"  power vs {name}: {est.value:.3f} [{est.low:.3f}, {est.high:.3f}]"
                  for name, est in self.power.items()]
        return "\n".join(lines)


def calibrate(detector: Detector, reference: Any, window: int,
              positives: Mapping[str, Any] | None = None, n_repeats: int = 100, seed: int = 0,
              paired: bool = True, call_each: CallEach | None = None) -> Calibration:
    """Measure ``detector``'s false-alarm rate and power on random halves of ``reference``.

    ``detector`` only supplies parameters: each repeat fits a fresh copy (with its own
    seed, when it takes one) on half of the reference. The draws are made here; the
    repeats run in jobs of :data:`REPEATS_PER_CALL` through ``call_each`` (default: in
    this process), and their alarms are summed here.
    """
    ref = check_matrix(reference, "reference")
    controls = {name: check_matrix(x, f"positive control {name!r}")
                for name, x in (positives or {}).items()}
    n_fit = len(ref) // 2
    if n_repeats < 1:
        raise ShiftbenchError(f"calibration: n_repeats must be >= 1, got {n_repeats}")
    if window < 1 or window > len(ref) - n_fit:
        raise ShiftbenchError(f"calibration: window {window} must be between 1 and half the "
                              f"reference ({len(ref) - n_fit} of {len(ref)} rows)")
    for name, x in controls.items():
        if x.shape[1] != ref.shape[1]:
            raise ShiftbenchError(f"positive control {name!r} has {x.shape[1]} features, the "
                                  f"reference has {ref.shape[1]}")
        if paired and len(x) != len(ref):
            raise ShiftbenchError(f"positive control {name!r} has {len(x)} rows; paired "
                                  f"controls are row-aligned with the {len(ref)} reference "
                                  "rows (or pass paired=False)")
        if len(x) < window:
            raise ShiftbenchError(f"positive control {name!r} has {len(x)} rows, fewer than "
                                  f"the window ({window})")

    repeats = draw_repeats(detector, ref, controls, window, n_repeats, seed, paired)
    chunks = [(detector.clone(), ref, controls, repeats[i:i + REPEATS_PER_CALL])
              for i in range(0, n_repeats, REPEATS_PER_CALL)]
    counts = (call_each or _in_process)(run_repeats, chunks, f"{detector.name} calibration")
    alarms = sum(chunk_alarms for chunk_alarms, _ in counts)
    hits = {name: sum(chunk_hits[name] for _, chunk_hits in counts) for name in controls}
    false_alarm = wilson(alarms, n_repeats)
    return Calibration(detector.method_name, detector.alpha, window, n_fit, n_repeats,
                       false_alarm, false_alarm.low > detector.alpha,
                       {name: wilson(k, n_repeats) for name, k in hits.items()})


def draw_repeats(detector: Detector, ref: np.ndarray, controls: Mapping[str, np.ndarray],
                 window: int, n_repeats: int, seed: int, paired: bool) -> list[Repeat]:
    """Every repeat's random draws, in the order one sequential loop makes them, so the
    numbers do not depend on how the repeats are then spread over workers."""
    rng = np.random.default_rng(seed)
    takes_seed = "seed" in detector.get_params()
    n_fit = len(ref) // 2
    repeats = []
    for _ in range(n_repeats):
        rows = rng.permutation(len(ref))
        fit_seed = int(rng.integers(2**31)) if takes_seed else None
        picked = {} if paired else {name: rng.choice(len(x), size=window, replace=False)
                                    for name, x in controls.items()}
        repeats.append(Repeat(rows[:n_fit], rows[n_fit:n_fit + window], fit_seed, picked))
    return repeats


def run_repeats(detector: Detector, ref: np.ndarray, controls: Mapping[str, np.ndarray],
                repeats: list[Repeat]) -> tuple[int, dict[str, int]]:
    """Alarms on the null windows and hits per control over ``repeats``; each repeat fits
    a fresh copy of ``detector`` (a whole job: it runs where the executor puts it)."""
    alarms = 0
    hits = dict.fromkeys(controls, 0)
    for repeat in repeats:
        seed_override = {} if repeat.seed is None else {"seed": repeat.seed}
        copy = detector.clone(**seed_override).fit(ref[repeat.fit_rows])
        alarms += copy.test(ref[repeat.held]).drifted
        for name, x in controls.items():
            hits[name] += copy.test(x[repeat.picked.get(name, repeat.held)]).drifted
    return alarms, hits


def _in_process(fn: Callable[..., T], calls: list[tuple[Any, ...]], desc: str) -> list[T]:
    """Whole jobs run one after another in this process."""
    return [fn(*args) for args in calls]
