"""Label-free accuracy of each served window, as ``monitor check`` estimates it.

With a trained model and a labelled reference, each window gets the ATC and DoC
estimates of the model's current accuracy beside its reference accuracy, and the
measured accuracy when every record of the window came with a label
(:func:`shiftbench.monitor.model.accuracy_estimates`, shared with ``check``). They go
into the window's ``extra["accuracy"]`` and the ``shiftbench_accuracy`` gauge. As in
``check``, their intervals cover sampling error only: under a real domain shift the
estimators themselves can miss by 10 pp or more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.split import Split

TEXT_FIELDS = ("caveat", "atc_score", "doc_confidence")  # the same in every window


class WindowAccuracy:
    """Called with a window's texts and labels (None unless every record has one)."""

    def __init__(self, model: ModelAdapter, reference: Split, runner: Runner,
                 seed: int = 0) -> None:
        if reference.labels is None:
            raise ShiftbenchError("accuracy estimates start from the reference accuracy: give "
                                  "the reference's --label-column")
        self.model = model
        self.reference = reference
        self.runner = runner
        self.seed = seed
        self.reference_proba = model.predict_proba(list(reference.texts), runner)

    def __call__(self, texts: Sequence[str], labels: Sequence[str] | None) -> dict[str, Any]:
        from shiftbench.monitor.model import accuracy_estimates
        from shiftbench.split import Split

        window = Split("window", [f"r{k}" for k in range(len(texts))], list(texts),
                       None if labels is None else list(labels))
        proba = self.model.predict_proba(list(texts), self.runner)
        result = accuracy_estimates(self.model, self.reference, window, self.reference_proba,
                                    proba, self.seed)
        return {key: value for key, value in result.items() if key not in TEXT_FIELDS}


def accuracy_values(accuracy: dict[str, Any]) -> dict[str, float]:
    """The point values of a window's ``extra["accuracy"]``: reference, atc, doc, and
    actual when measured."""
    if not accuracy.get("available"):
        return {}
    values = {"reference": accuracy["reference"]["value"],
              "atc": accuracy["atc"]["estimate"]["value"], "doc": accuracy["doc"]["value"]}
    if accuracy.get("actual"):
        values["actual"] = accuracy["actual"]["value"]
    return values
