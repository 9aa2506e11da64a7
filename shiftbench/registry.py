"""Name -> component lookup that imports heavy modules only when a component is used.

Built-ins are registered as "module:attr" strings; plugins add their own through the
entry-point groups ``shiftbench.shifts`` and ``shiftbench.models``.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from shiftbench.errors import ShiftbenchError


class Registry:
    """A lazy map from a name to a "module:attr" target."""

    def __init__(self, kind: str, group: str, builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self._targets = dict(builtins)

    def register(self, name: str, target: str) -> None:
        self._targets[name] = target

    def names(self) -> list[str]:
        self._add_entry_points()
        return sorted(self._targets)

    def target(self, name: str) -> str:
        self._add_entry_points()
        if name not in self._targets:
            known = ", ".join(sorted(self._targets))
            raise ShiftbenchError(f"unknown {self.kind} {name!r}; known: {known}")
        return self._targets[name]

    def load(self, name: str) -> Any:
        module, _, attr = self.target(name).partition(":")
        return getattr(importlib.import_module(module), attr)

    def _add_entry_points(self) -> None:
        for ep in entry_points(group=self.group):
            self._targets.setdefault(ep.name, ep.value)


SHIFTS = Registry(
    "shift",
    "shiftbench.shifts",
    {
        "keyboard": "shiftbench.shifts.noise:KeyboardTypos",
        "ocr": "shiftbench.shifts.noise:OcrErrors",
        "char_insert": "shiftbench.shifts.noise:CharInsert",
        "char_substitute": "shiftbench.shifts.noise:CharSubstitute",
        "char_swap": "shiftbench.shifts.noise:CharSwap",
        "char_delete": "shiftbench.shifts.noise:CharDelete",
        "spelling": "shiftbench.shifts.noise:SpellingMistakes",
        "word_delete": "shiftbench.shifts.noise:WordDelete",
        "word_swap": "shiftbench.shifts.noise:WordSwap",
        "casing": "shiftbench.shifts.noise:Casing",
        "punctuation": "shiftbench.shifts.noise:Punctuation",
        "synonym": "shiftbench.shifts.synonyms:SynonymReplace",
        "synonym_insert": "shiftbench.shifts.synonyms:SynonymInsert",
        "backtranslate": "shiftbench.shifts.translate:BackTranslate",
    },
)

MODELS = Registry(
    "model adapter",
    "shiftbench.models",
    {
        "hf": "shiftbench.models.hf:HFClassifier",
        "probe": "shiftbench.models.probe:EncoderProbe",
        "sklearn": "shiftbench.models.sklearn_pipeline:SklearnPipeline",
    },
)

DETECTORS = Registry(
    "detector",
    "shiftbench.detectors",
    {
        "mmd": "shiftbench.detectors.mmd:MMDDetector",
        "ks": "shiftbench.detectors.ks:KSDetector",
        "classifier": "shiftbench.detectors.classifier:ClassifierDetector",
        "bbsd": "shiftbench.detectors.ks:BBSDDetector",
        "evidently": "shiftbench.detectors.evidently:EvidentlyDetector",
    },
)
