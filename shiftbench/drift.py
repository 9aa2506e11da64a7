"""Drift tests inside a suite run: is each shifted split detectably different?

A perturbed split holds the same examples as the reference, so testing it against the
whole reference would break the two-sample tests' independence (every shifted row has
its own original in the reference). The reference's ids are therefore halved by a
stable hash: detectors are fitted on half A of the reference and test only the rows
of each shifted split whose ids fall in half B. Out-of-domain splits share no
examples with the reference, so all their rows are tested (against half A too, so
every split faces the same fitted detector).

Each result names its detector as the suite does (``detector``: the registry name, e.g.
``evidently``) beside the ``method`` it ran (``evidently:mmd``), so gate rules can name
either.

Many splits x detectors are many tests: each result keeps its raw p-value and its own
decision (``drifted``, at the detector's alpha) and gains ``holm_p``, the p-value after
Holm's adjustment over every split x detector test of the run that has a p-value
(``holm_family`` of them), and ``drifted_holm`` (``holm_p`` below the detector's alpha),
so the chance of marking any undrifted split stays at alpha (as in monitor and gate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.errors import ShiftbenchError
from shiftbench.split import unit_hash

if TYPE_CHECKING:
    from shiftbench.config import DetectorSpec
    from shiftbench.split import Split

Embed = Callable[[list[str]], np.ndarray]


def in_half_b(example_id: str) -> bool:
    return unit_hash("drift-half", example_id) >= 0.5


def _halves(reference: Split) -> tuple[set[str], set[str]]:
    """The reference's ids in half A (detectors fit on it) and in half B."""
    half_a = {i for i in reference.ids if not in_half_b(i)}
    return half_a, set(reference.ids) - half_a


def _held_out(split: Split, half_b: set[str]) -> set[str] | None:
    """The ids of ``split`` a detector tests: half B of a perturbation, all of a domain."""
    return half_b if split.info.get("kind") == "perturbation" else None


def check_sizes(reference: Split, shifted: Sequence[Split],
                specs: Sequence[DetectorSpec]) -> None:
    """Every detector has rows enough to fit on (half A of the reference) and to test in
    each shifted split; checked once the splits exist, before any inference, so a small
    ``--limit`` fails at once and says which half is short."""
    from shiftbench.detectors import make_detector

    half_a, half_b = _halves(reference)
    for spec in specs:
        detector = make_detector(spec.name, **spec.params)
        if len(half_a) < detector.min_reference:
            raise ShiftbenchError(
                f"detector {spec.name}: fits on half of the reference's rows (the other half "
                f"is tested in the perturbed splits): {len(half_a)} of {len(reference)}, fewer "
                f"than the {detector.min_reference} it needs; use more reference rows "
                "(--limit)")
        for split in shifted:
            held_out = _held_out(split, half_b)
            n = len(split.ids) if held_out is None else sum(i in held_out for i in split.ids)
            if n < detector.min_sample:
                where = " (those in the reference's other half)" if held_out else ""
                raise ShiftbenchError(
                    f"detector {spec.name}: split {split.name!r} has {n} rows to test{where}, "
                    f"fewer than the {detector.min_sample} it needs; use more rows (--limit)")


def _rows(split: Split, vectors: np.ndarray, held_out: set[str] | None) -> np.ndarray:
    """The rows of ``split`` in ``held_out`` (all when None) that have a value (an empty
    text has no bits per byte: NaN, left out)."""
    keep = [k for k, i in enumerate(split.ids) if (held_out is None or i in held_out)
            and np.isfinite(vectors[k]).all()]
    return vectors[keep]


def drift_tests(reference: Split, shifted: Sequence[Split], specs: Sequence[DetectorSpec],
                embed: Embed, proba: dict[str, np.ndarray],
                bits_per_byte: dict[str, np.ndarray] | None = None,
                output_words: dict[str, np.ndarray] | None = None
                ) -> dict[str, list[dict[str, Any]]]:
    """One list of detector results per shifted split (see the module docstring).

    ``proba`` maps split names (the reference included) to the model's probabilities,
    the input of detectors that test outputs (``input == "probabilities"``, e.g. BBSD);
    ``bits_per_byte`` maps them to per-text bits per byte under the suite's LM (one
    column, ``input == "bits_per_byte"``); ``output_words`` to a generator's output lengths
    in words (one column, ``input == "output_words"``); the others test ``embed``'s
    vectors. Detectors
    draw their permutations from their own ``seed`` parameter, so results repeat run
    after run.
    """
    from shiftbench.detectors import make_detector

    if not specs:
        return {}
    half_a, half_b = _halves(reference)
    vectors = {split.name: embed(split.texts) for split in (reference, *shifted)}
    results: dict[str, list[dict[str, Any]]] = {split.name: [] for split in shifted}
    for spec in specs:
        detector = make_detector(spec.name, **spec.params)
        inputs = {"probabilities": proba, "bits_per_byte": bits_per_byte,
                  "output_words": output_words}.get(detector.input, vectors)
        if inputs is None:
            raise ShiftbenchError(f"detector {spec.name!r} tests bits per byte under a "
                                  "language model: name one (suite perplexity: or --lm)")
        detector.fit(_rows(reference, inputs[reference.name], half_a))
        for split in shifted:
            result = detector.test(_rows(split, inputs[split.name], _held_out(split, half_b)))
            results[split.name].append({**result.to_dict(), "detector": spec.name})
    adjust_for_multiplicity(results)
    return results


def adjust_for_multiplicity(results: dict[str, list[dict[str, Any]]]) -> None:
    """Add ``holm_p``, ``holm_family`` and ``drifted_holm`` to every result (see the module
    doc); results without a p-value (uncalibrated detectors) get None."""
    from shiftbench.metrics import holm

    everything = [r for split_results in results.values() for r in split_results]
    tested = [r for r in everything if r["p_value"] is not None]
    for r in everything:
        r.update(holm_p=None, holm_family=len(tested), drifted_holm=None)
    for r, adjusted in zip(tested, holm([r["p_value"] for r in tested]), strict=True):
        r.update(holm_p=adjusted, drifted_holm=adjusted < r["alpha"])
