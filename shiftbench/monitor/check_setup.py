"""What a ``shiftbench monitor check`` runs, built and checked before any work: the
detectors (by registry name), the positive controls they are calibrated against, the
calibration window and the sizes each detector needs; and the detectors an earlier
check saved, reused only when fitted for the same reference, inputs and settings.

Positive controls are the reference texts under shiftbench's own shifts, row-aligned,
so each control window is the null window shifted.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError
from shiftbench.perplexity import BITS_PER_BYTE

if TYPE_CHECKING:
    from shiftbench.detectors import Detector

DEFAULT_DETECTORS = ("mmd", "ks")
DEFAULT_CONTROLS = ("keyboard:2",)
DEFAULT_SEVERITY = 2
# detector input -> (the model task that gives it, what it is)
OUTPUTS = {"probabilities": ("classification", "a classifier's probabilities"),
           "output_words": ("generation", "a generator's output lengths")}


def build_detectors(names: tuple[str, ...], alpha: float, seed: int, device: str,
                    model_task: str | None, has_lm: bool = False) -> dict[str, Detector]:
    """Unfitted detectors by registry name; seed and device go to those that take them.
    Each is saved in a folder of its name, so the name must be a safe folder name; one
    that tests model outputs needs a model (``model_task``) that gives them, one that
    tests bits per byte an LM (``has_lm``: --lm), which serves nothing else."""
    from shiftbench.paths import safe_component
    from shiftbench.registry import DETECTORS

    if not names:
        raise ShiftbenchError("no detector: name at least one with --detector")
    detectors: dict[str, Detector] = {}
    for name in dict.fromkeys(names):
        cls = DETECTORS.load(name)
        safe_component(name, "--detector")
        needs = OUTPUTS.get(cls.input)
        if needs is not None and model_task != needs[0]:
            raise ShiftbenchError(f"detector {name!r} tests {needs[1]}: give --model with "
                                  f"one (a {needs[0]} model)")
        if cls.input == BITS_PER_BYTE and not has_lm:
            raise ShiftbenchError(f"detector {name!r} tests bits per byte under a language "
                                  "model: give --lm (a causal LM, as in `run --lm`)")
        accepted = inspect.signature(cls).parameters
        extra = {k: v for k, v in (("seed", seed), ("device", device)) if k in accepted}
        detectors[name] = cls(alpha=alpha, **extra)
    if has_lm and not any(d.input == BITS_PER_BYTE for d in detectors.values()):
        raise ShiftbenchError("--lm scores the texts for the bpb detector: add --detector bpb "
                              "(or drop --lm)")
    return detectors


def control_label(name: str, severity: int) -> str:
    """How a positive control is named in results, e.g. ``keyboard@2``."""
    return f"{name}@{severity}"


def parse_control(spec: str) -> tuple[str, int]:
    """``NAME[:SEVERITY]`` (severity 1-5, default 2) -> (registry name, severity)."""
    from shiftbench.registry import SHIFTS

    name, _, severity = spec.partition(":")
    SHIFTS.target(name)
    if not severity:
        return name, DEFAULT_SEVERITY
    if not severity.isdigit() or not 1 <= int(severity) <= 5:
        raise ShiftbenchError(f"--control {spec!r}: severity must be 1-5, as in keyboard:2")
    return name, int(severity)


def parse_controls(specs: tuple[str, ...] | None, precomputed: bool) -> list[tuple[str, int]]:
    """The positive controls asked for (None: the default, none with precomputed vectors,
    which cannot be shifted), each once."""
    if specs is None:
        specs = () if precomputed else DEFAULT_CONTROLS
    return [parse_control(spec) for spec in dict.fromkeys(specs)]


def calibration_window(window: int | None, n_reference: int, n_current: int,
                       notes: list[str]) -> int:
    """The window the false-alarm rate and power are measured at: ``window`` (--window),
    else the current sample's size, capped at the held-out half of the reference."""
    held = n_reference - n_reference // 2
    if window is not None:
        if not 1 <= window <= held:
            raise ShiftbenchError(f"--window {window}: calibration tests windows drawn "
                                  f"from the held-out half of the reference; use 1 to {held}")
        return window
    if n_current > held:
        notes.append(f"calibration window capped at {held} rows (half the reference); the "
                     f"test on the current sample uses all {n_current} rows")
        return held
    return n_current


def check_sizes(detectors: dict[str, Detector], n_reference: int, n_current: int,
                window: int | None, files: tuple[Path, Path]) -> None:
    """Fail before any embedding when a detector cannot work at these sizes (``files``: the
    reference's and the current sample's, named in the error)."""
    for name, det in detectors.items():
        checks = [(n_reference, det.min_reference, f"the reference ({files[0]}) has"),
                  (n_current, det.min_sample, f"the current sample ({files[1]}) has")]
        if window is not None:
            checks += [(n_reference // 2, det.min_reference,
                        "calibration fits on half the reference:"),
                       (window, det.min_sample, "the calibration window is")]
        for have, need, what in checks:
            if have < need:
                raise ShiftbenchError(f"detector {name!r} needs at least {need} rows; {what} "
                                      f"{have}")


REUSE_DIFFERENCES = {"detector": "another detector", "params": "other detector parameters",
                     "reference": "another reference (its rows differ)",
                     "inputs": "another embedder, model or LM",
                     "calibration": "other calibration settings"}


def reuse_detector(folder: Path, detector: Detector, context: dict[str, Any]) -> Detector:
    """The detector an earlier check saved in ``folder``, fitted and calibrated; refused
    with a one-line error naming what differs unless it is ``detector`` (same parameters)
    fitted for the same ``context`` (reference digest, inputs, calibration settings)."""
    from shiftbench.detectors import load_detector

    saved = load_detector(folder)
    found = json.loads(json.dumps({"detector": saved.name, "params": saved.get_params(),
                                   **(saved.context_ or {})}))
    wanted = json.loads(json.dumps({"detector": detector.name, "params": detector.get_params(),
                                    **context}))
    for key, value in wanted.items():
        if found.get(key) != value:
            values = "" if key == "reference" else (f" ({json.dumps(found.get(key))[:80]} "
                                                    f"saved, {json.dumps(value)[:80]} now)")
            raise ShiftbenchError(f"{folder}: saved by a check with {REUSE_DIFFERENCES[key]}"
                                  f"{values}; give another --detectors-dir")
    return saved

