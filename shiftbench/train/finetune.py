"""Fine-tune a Hugging Face encoder classifier end to end with a mitigation.

The same loop as the head trainer (:func:`~shiftbench.train.trainer.run_training`: seeded,
early stopping, resumable checkpoints, per-step log), over token ids padded per batch;
the representation a method sees (DANN's discriminator input) is the mean-pooled last
hidden state, so the whole encoder learns from it. For ``augment`` each epoch's
perturbed copies are tokenized (no embedding to cache; each step runs the encoder on
twice the rows). The folder gets ``model/`` (the
fine-tuned classifier, ``save_pretrained``, ``id2label`` the training classes) and a
``model.yaml`` naming it for the ``hf`` adapter.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from shiftbench.backbone import Backbone, mean_pool
from shiftbench.device import resolve_device
from shiftbench.train.nets import Classifier
from shiftbench.train.trainer import (
    EpochCallback,
    Rows,
    TrainConfig,
    TrainingData,
    TrainResult,
    augmented_texts,
    labels_of,
    run_training,
)

if TYPE_CHECKING:
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation

FINE_TUNING = TrainConfig(lr=2e-5, batch_size=16, max_epochs=3, patience=1)
"""Defaults for fine-tuning (a transformer's usual learning rate; ``hidden`` and
``dropout`` are the head trainer's and unused here)."""


class EncoderClassifier(Classifier):
    """A ``AutoModelForSequenceClassification``: representation = mean-pooled last hidden
    state, logits = the model's own."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model
        self.representation_dim = int(model.config.hidden_size)
        self.trainable_representation = True

    def forward(self, x: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.model(**x, output_hidden_states=True)
        return mean_pool(out.hidden_states[-1], x["attention_mask"]), out.logits


class TokenRows(Rows):
    """Token ids per row, padded to each batch's longest row."""

    def __init__(self, ids: list[list[int]], pad_id: int, device: str) -> None:
        self.ids = ids
        self.pad_id = pad_id
        self.device = device

    def __len__(self) -> int:
        return len(self.ids)

    def take(self, index: torch.Tensor) -> dict[str, torch.Tensor]:
        rows = [self.ids[i] for i in index.tolist()]
        width = max(len(r) for r in rows)
        input_ids = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for i, r in enumerate(rows):
            input_ids[i, :len(r)] = r
            mask[i, :len(r)] = 1
        return {"input_ids": torch.from_numpy(input_ids).to(self.device),
                "attention_mask": torch.from_numpy(mask).to(self.device)}

    def digest(self) -> bytes:
        return json.dumps(self.ids).encode()


def fine_tune(train: Split, folder: Path, source: str, mitigation: Mitigation,
              config: TrainConfig = FINE_TUNING, target: Split | None = None,
              max_length: int = 128, on_epoch_end: EpochCallback | None = None,
              tasks: Mapping[str, Sequence[str]] | None = None) -> TrainResult:
    """Fine-tune the encoder at ``source`` (a directory or hub id; a classification head
    for the training classes is added or replaced) on ``train`` and, for methods that use
    one, ``target`` (its labels unused); ``tasks``: auxiliary label columns of ``train``'s
    rows (``multitask``); save it in ``folder``."""
    folder = Path(folder)
    backbone = Backbone(source, "AutoModelForSequenceClassification", max_length)
    tokenizer = backbone.tokenizer
    device = resolve_device(config.device)

    def rows(texts: Sequence[str]) -> TokenRows:
        ids = tokenizer(list(texts), truncation=True,
                        max_length=backbone.max_length_)["input_ids"]
        return TokenRows(ids, tokenizer.pad_token_id or 0, device)

    def build(classes: list[str]) -> EncoderClassifier:
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        verbosity = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # its load report lists the new head, once per seed
        try:
            model = backbone._loading(
                "model", lambda: AutoModelForSequenceClassification.from_pretrained(
                    backbone.directory, num_labels=len(classes),
                    id2label=dict(enumerate(classes)),
                    label2id={c: i for i, c in enumerate(classes)},
                    ignore_mismatched_sizes=True))
        finally:
            hf_logging.set_verbosity(verbosity)
        return EncoderClassifier(model)

    def save(model: Classifier, meta: dict[str, Any]) -> None:
        assert isinstance(model, EncoderClassifier)
        out = folder / "model"
        model.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        (folder / "training.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
        (folder / "model.yaml").write_text(
            f"adapter: hf\nsource: {json.dumps(str(out.resolve()))}\nmax_length: {max_length}\n",
            encoding="utf-8")

    copies = augmented_texts(mitigation, train, config.seed, None)
    data = TrainingData(rows(train.texts), labels_of(train), train.ids,
                        None if target is None else rows(target.texts), backbone.files_hash,
                        None if copies is None else lambda epoch: rows(copies(epoch)),
                        tasks or {})
    return run_training(data, build, save, folder, mitigation, config, on_epoch_end)
