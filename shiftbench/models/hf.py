"""A fine-tuned Hugging Face sequence classifier (``hf:<dir or hub id>``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from shiftbench.backbone import Backbone, mean_hidden
from shiftbench.errors import ShiftbenchError
from shiftbench.models import ClassNames, Count, ModelAdapter, digest

if TYPE_CHECKING:
    import torch

    from shiftbench.runner import Runner


def _probabilities(model: Any, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(**inputs).logits.float().softmax(-1)


class HFClassifier(ModelAdapter):
    """``AutoModelForSequenceClassification``; classes come from ``config.id2label``.

    ``labels`` renames the classes (index order) when the config's names are
    placeholders such as ``LABEL_0``; it must have one name per output.
    """

    adapter = "hf"

    def __init__(self, source: str, max_length: Count = 256,
                 labels: ClassNames | None = None) -> None:
        self.source = source
        self.max_length = max_length
        self.labels = labels
        self._backbone = Backbone(source, "AutoModelForSequenceClassification", max_length)

    def _read_classes(self) -> list[str]:
        config = self._backbone.config
        n = int(config.num_labels)
        if self.labels is not None:
            if len(self.labels) != n:
                raise ShiftbenchError(f"model {self.source}: labels has {len(self.labels)} names "
                                      f"but the model has {n} outputs")
            return [str(label) for label in self.labels]
        return [str(config.id2label[i]) for i in range(n)]

    def fingerprint(self) -> str:
        return digest(self.adapter, {"files": self._backbone.files_hash,
                                     "max_length": self.max_length, "labels": self.classes_})

    def predict_proba(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        fn = self._backbone.batch_fn(runner, _probabilities)
        out = runner.map(f"{self.fingerprint()}/{runner.precision_}/proba", texts, fn,
                         desc="predict")
        return out.reshape(len(texts), len(self.classes_))

    def embed(self, texts: Sequence[str], runner: Runner) -> np.ndarray:
        return self._backbone.embed(texts, runner, self.fingerprint(), mean_hidden)

    def describe(self) -> dict[str, Any]:
        return {"adapter": self.adapter, "source": self.source, "max_length": self.max_length,
                "labels": self.labels}
