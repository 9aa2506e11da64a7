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
    half_a = {i for i in reference.ids if not in_half_b(i)}
    half_b = set(reference.ids) - half_a
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
            held_out = half_b if split.info.get("kind") == "perturbation" else None
            result = detector.test(_rows(split, inputs[split.name], held_out))
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
