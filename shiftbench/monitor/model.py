"""The model of ``shiftbench monitor check``: trained here when it needs training, and
its current accuracy estimated without labels (ATC, DoC) beside the reference accuracy.

A model that needs training (``probe``, ``sklearn:tfidf``) is fitted on a stable half of
the labelled reference (by id hash); the other half is the reference for everything
else, so no detector or estimate ever compares training rows with new ones.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from shiftbench.errors import ShiftbenchError
from shiftbench.labels import class_indices

if TYPE_CHECKING:
    import numpy as np

    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.split import Split


def prepare_model(spec: str, reference: Split, runner: Runner,
                  notes: list[str]) -> tuple[ModelAdapter, Split]:
    """Load the model; one that needs training is fitted on a stable half of the labelled
    reference. Returns the model and the reference to monitor with (the other half)."""
    from shiftbench.models import load_model
    from shiftbench.split import unit_hash

    model = load_model(spec)
    if not model.needs_training:
        return model, reference
    if reference.labels is None:
        raise ShiftbenchError(f"--model {spec} trains on the labelled reference: give "
                              "--label-column")
    in_train = [unit_hash("monitor-train", i) < 0.5 for i in reference.ids]
    train = reference.subset([k for k, t in enumerate(in_train) if t])
    held = reference.subset([k for k, t in enumerate(in_train) if not t])
    if len(train) == 0 or len(held) == 0:
        raise ShiftbenchError(f"--model {spec} trains on half the reference; "
                              f"{len(reference)} rows are too few to split")
    model.fit(train, runner)
    notes.append(f"--model {spec} was trained on {len(train)} rows of the labelled reference "
                 f"(a stable half by id); the other {len(held)} rows are the reference for "
                 "the detectors and the accuracy estimates")
    return model, held


def accuracy_estimates(model: ModelAdapter | None, reference: Split, current: Split,
                       ref_proba: np.ndarray | None, cur_proba: np.ndarray | None,
                       seed: int) -> dict[str, Any]:
    """Reference accuracy, ATC and DoC estimates of the current accuracy, and the actual
    current accuracy when the current file has labels."""
    from shiftbench.label_free import CAVEAT, atc, doc
    from shiftbench.metrics import accuracy_ci

    if model is not None and model.task == "generation":
        return {"available": False, "reason": "the model generates text: ATC and DoC "
                                              "estimate a classifier's accuracy from its "
                                              "class probabilities, which a generator has not"}
    if model is None or ref_proba is None or cur_proba is None:
        return {"available": False, "reason": "no model (--model): the estimates need the "
                                              "model's probabilities"}
    if reference.labels is None:
        return {"available": False, "reason": "the reference has no labels (--label-column): "
                                              "ATC and DoC start from the reference accuracy"}
    y_ref = class_indices(reference.labels, model.classes_, reference.ids,
                          str(reference.info.get("source")))
    correct = ref_proba.argmax(axis=1) == y_ref
    ref_acc = accuracy_ci(y_ref, ref_proba.argmax(axis=1))
    atc_est = atc(ref_proba, correct, cur_proba, seed=seed)
    doc_est = doc(ref_proba, correct, cur_proba, seed=seed)
    actual, why_not = None, "the current file has no labels"
    if current.labels is not None:
        try:  # labels on current data are a bonus: a class the model lacks is a finding
            y_cur = class_indices(current.labels, model.classes_, current.ids,
                                  str(current.info.get("source")))
            actual = accuracy_ci(y_cur, cur_proba.argmax(axis=1)).to_dict()
        except ShiftbenchError as exc:
            why_not = str(exc)
    return {"available": True, "reference": ref_acc.to_dict(), "atc": atc_est.to_dict(),
            "doc": doc_est.to_dict(), "actual": actual,
            "actual_unavailable": None if actual else why_not,
            "estimated_change": {"atc": atc_est.estimate.value - ref_acc.value,
                                 "doc": doc_est.value - ref_acc.value},
            "atc_score": "negative entropy of the predicted probabilities",
            "doc_confidence": "max predicted probability", "caveat": CAVEAT}

