"""Train a head on a frozen encoder's embeddings with a mitigation (``erm``, ``dann``, ...).

:func:`train_head` embeds the splits through the runner (so embeddings are cached and
shared with the probe) and calls :func:`fit_features`, which trains on rows of numbers
with :func:`run_training`, the loop that fine-tuning (:mod:`shiftbench.train.finetune`)
uses too:

- seeded: the weights, the validation rows (a stable hash of each id), each epoch's
  order and dropout derive from ``seed`` and the epoch, so a run repeats exactly on CPU;
- precision: ``precision`` is resolved as for inference
  (:func:`~shiftbench.device.resolve_precision`: ``auto`` is fp32 on CPU, bf16 on a CUDA
  GPU that supports it, else fp16); half precision is autocast of the forward pass, the
  parameters and the optimiser's state staying fp32, and fp16 scales the loss with a
  GradScaler (whose state the checkpoint keeps);
- early stopping: after each epoch the validation loss is measured; training stops after
  ``patience`` epochs without improvement and the best epoch's weights are kept;
- checkpoints: after each epoch ``checkpoint.pt`` (tensors and plain values, written
  atomically, read with ``weights_only=True``) holds everything the next epoch needs; a
  run started again on the same folder with the same inputs resumes from it and ends
  with the same weights as an uninterrupted run;
- a log row per step (loss, each named loss, the method's metrics: for DANN the reversal
  coefficient ``lambda`` and ``domain_accuracy``) and per epoch (their means, validation
  loss and accuracy), in ``log.jsonl``; ``on_epoch_end=print_epoch`` prints the epoch's
  row as progress;
- ``augment``: each epoch's perturbed copies of the training texts are embedded through
  the runner too (cached per text, so a re-run or a resumed run embeds nothing again);
- a loss that is not finite stops training with a one-line error naming the step (the
  last epoch's checkpoint stays).

The folder then holds the head (:mod:`shiftbench.models.trained`) and ``model.yaml``,
which ``shiftbench run --model FOLDER/model.yaml`` loads like any other model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.nn import functional as F

from shiftbench.cache import atomic, checksum
from shiftbench.device import PRECISIONS, resolve_device, resolve_precision, torch_dtype
from shiftbench.errors import ShiftbenchError, check_ranges
from shiftbench.models.embed import text_embedder
from shiftbench.models.trained import encoder_name, write_head
from shiftbench.split import example_seed, unit_hash
from shiftbench.train.mitigations import Augment, Batch, Mitigation
from shiftbench.train.nets import Classifier, HeadNet

if TYPE_CHECKING:
    from shiftbench.runner import Runner
    from shiftbench.split import Split

CHECKPOINT = "checkpoint.pt"
LOG = "log.jsonl"


@dataclass(frozen=True)
class TrainConfig:
    """How a head is trained (defaults suit a 384-d sentence embedding and a few thousand
    rows).

    hidden: width of the head's hidden layer; 0 is a linear head.
    dropout: dropout after the hidden layer.
    lr, weight_decay: AdamW's.
    batch_size: labelled rows per step (and unlabelled target rows, for methods using them).
    max_epochs, patience: stop after ``max_epochs``, or after ``patience`` epochs without
        a lower validation loss.
    val_fraction: share of the labelled rows held out for validation (by id).
    seed: seeds the weights, the validation rows, the order and dropout.
    device: where to train (``auto`` picks a GPU; CPU, the default, repeats exactly).
    precision: ``auto`` (fp32 on CPU; on a CUDA GPU bf16 autocast where supported, else
        fp16 autocast with loss scaling), ``fp32``, ``bf16`` or ``fp16`` (these two need a
        CUDA device); the weights stay fp32 either way.
    """

    hidden: int = 256
    dropout: float = 0.1
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    max_epochs: int = 30
    patience: int = 3
    val_fraction: float = 0.2
    seed: int = 0
    device: str = "cpu"
    precision: str = "auto"

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ShiftbenchError(f"training parameter precision={self.precision!r}: use "
                                  f"{', '.join(PRECISIONS)}")
        if self.device == "cpu":  # half precision needs CUDA: refused before any work
            resolve_precision(self.precision, self.device)
        checks = {"hidden": self.hidden >= 0, "dropout": 0 <= self.dropout < 1,
                  "lr": self.lr > 0, "weight_decay": self.weight_decay >= 0,
                  "batch_size": self.batch_size >= 1, "max_epochs": self.max_epochs >= 1,
                  "patience": self.patience >= 1, "val_fraction": 0 < self.val_fraction < 1}
        check_ranges("training parameter", self, checks)


@dataclass
class TrainResult:
    """Where the model was saved and how training went."""

    folder: Path
    epochs: int  # epochs run
    best_epoch: int  # the epoch whose weights were kept (1-based)
    steps: list[dict[str, float]]  # one row per step
    epoch_log: list[dict[str, float]]  # one row per epoch: validation loss and accuracy


EpochCallback = Callable[[dict[str, float]], None]
"""Called after each epoch's checkpoint with the epoch's log row (see :func:`print_epoch`)."""


def print_epoch(row: dict[str, float]) -> None:
    """Progress: one line per epoch on stderr, e.g. ``shiftbench: epoch 3: loss 0.412,
    val_loss 0.380, val_accuracy 0.910, lambda 0.762, domain_accuracy 0.581``."""
    values = ", ".join(f"{name} {value:.3f}" for name, value in row.items() if name != "epoch")
    print(f"shiftbench: epoch {row['epoch']:g}: {values}", file=sys.stderr, flush=True)


def train_head(train: Split, folder: Path, runner: Runner, mitigation: Mitigation,
               config: TrainConfig = TrainConfig(), encoder: str | None = None,
               target: Split | None = None, on_epoch_end: EpochCallback | None = None,
               tasks: Mapping[str, Sequence[str]] | None = None) -> TrainResult:
    """Train a head on ``encoder``'s embeddings of ``train`` (labelled) and, for methods
    that use one, ``target`` (its labels unused); ``tasks``: auxiliary label columns of
    ``train``'s rows (``multitask``); save it in ``folder``."""
    embedder = text_embedder(encoder)
    features = embedder(train.texts, runner, f"split {train.name!r}")
    target_features = (None if target is None
                       else embedder(target.texts, runner, f"split {target.name!r}"))
    copies = augmented_texts(mitigation, train, config.seed, runner)
    augmented = None if copies is None else (
        lambda epoch: embedder(copies(epoch), runner, f"split {train.name!r} augmented"))
    return fit_features(features, labels_of(train), train.ids, folder, mitigation, config,
                        target_features, on_epoch_end, encoder_name(encoder), augmented, tasks)


def augmented_texts(mitigation: Mitigation, train: Split, seed: int,
                    runner: Runner | None) -> Callable[[int], list[str]] | None:
    """For ``augment``: each epoch's copies of the training texts (see
    :class:`~shiftbench.train.mitigations.Augment`); None for other methods."""
    if not isinstance(mitigation, Augment):
        return None
    return lambda epoch: mitigation.draw(train.texts, train.ids, seed, epoch, runner)


def labels_of(split: Split) -> list[str]:
    """A training split's labels as strings; a split without labels is an error."""
    if split.labels is None:
        raise ShiftbenchError(f"split {split.name!r}: training needs labels; this split has none")
    return [str(y) for y in split.labels]


def fit_features(features: np.ndarray, labels: Sequence[str], ids: Sequence[str], folder: Path,
                 mitigation: Mitigation, config: TrainConfig = TrainConfig(),
                 target: np.ndarray | None = None, on_epoch_end: EpochCallback | None = None,
                 encoder: str = "minilm",
                 augmented: Callable[[int], np.ndarray] | None = None,
                 tasks: Mapping[str, Sequence[str]] | None = None) -> TrainResult:
    """Train a head on rows of features (the loop behind :func:`train_head`);
    ``augmented(epoch)``, for ``augment``, gives the features of that epoch's copies;
    ``tasks``, for ``multitask``, the rows' auxiliary label columns."""
    device = resolve_device(config.device)

    def rows(array: np.ndarray) -> FeatureRows:
        return FeatureRows(torch.as_tensor(np.asarray(array, dtype=np.float32)).to(device))

    def build(classes: list[str]) -> HeadNet:
        return HeadNet(np.shape(features)[1], len(classes), config.hidden, config.dropout)

    def save(model: Classifier, meta: dict[str, Any]) -> None:
        assert isinstance(model, HeadNet)
        layers = {"weight": model.classifier.weight, "bias": model.classifier.bias}
        if model.hidden:
            hidden = model.featurizer[0]
            layers |= {"hidden_weight": hidden.weight, "hidden_bias": hidden.bias}
        write_head(Path(folder), {**meta, "encoder": encoder, "hidden": model.hidden},
                   {k: v.detach().cpu().numpy() for k, v in layers.items()})

    data = TrainingData(rows(features), labels, ids, None if target is None else rows(target),
                        augmented=None if augmented is None else lambda e: rows(augmented(e)),
                        tasks=tasks or {})
    return run_training(data, build, save, Path(folder), mitigation, config, on_epoch_end)


class Rows(ABC):
    """Training rows as a model takes them: features, or token ids padded per batch."""

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def take(self, index: torch.Tensor) -> Any:
        """The model input of the rows at ``index``."""

    @abstractmethod
    def digest(self) -> bytes:
        """The rows' content, for the training's fingerprint."""


class FeatureRows(Rows):
    def __init__(self, x: torch.Tensor) -> None:
        self.x = x

    def __len__(self) -> int:
        return len(self.x)

    def take(self, index: torch.Tensor) -> torch.Tensor:
        return self.x[index.to(self.x.device)]

    def digest(self) -> bytes:
        return self.x.cpu().numpy().tobytes()


@dataclass
class TrainingData:
    """Labelled rows (with their ids, which choose the validation rows) and, for methods
    that use one, unlabelled rows of the target domain."""

    rows: Rows
    labels: Sequence[str]
    ids: Sequence[str]
    target: Rows | None = None
    model: str = ""  # identifies the starting weights, when the rows do not
    augmented: Callable[[int], Rows] | None = None  # each epoch's copies of ``rows`` (augment)
    tasks: Mapping[str, Sequence[str]] = field(default_factory=dict)  # auxiliary label columns


def run_training(data: TrainingData, build: Callable[[list[str]], Classifier],
                 save: Callable[[Classifier, dict[str, Any]], None], folder: Path,
                 mitigation: Mitigation, config: TrainConfig,
                 on_epoch_end: EpochCallback | None = None) -> TrainResult:
    """Train the model ``build(classes)`` makes on ``data`` with ``mitigation`` (see the
    module doc), then ``save(best model, meta)``; the CPU's global random state is left
    as it was."""
    if mitigation.uses_target and data.target is None:
        raise ShiftbenchError(f"{mitigation.name} trains on unlabelled rows of the target "
                              "domain; give a target split")
    if isinstance(mitigation, Augment) and data.augmented is None:
        raise ShiftbenchError("augment trains on augmented copies of the training rows; "
                              "none were given")
    with torch.random.fork_rng(devices=[]):
        return _Run(data, build, save, Path(folder), mitigation, config).train(on_epoch_end)


class _Run:
    """One training: the data, the model and its method, and the loop's state."""

    def __init__(self, data: TrainingData, build: Callable[[list[str]], Classifier],
                 save: Callable[[Classifier, dict[str, Any]], None], folder: Path,
                 mitigation: Mitigation, config: TrainConfig) -> None:
        self.folder = folder
        self.config = config
        self.mitigation = mitigation
        self.save = save
        self.rows, self.target, self.augmented = data.rows, data.target, data.augmented
        if not len(data.rows) == len(data.labels) == len(data.ids):
            raise ShiftbenchError(f"training data: {len(data.rows)} rows, {len(data.labels)} "
                                  f"labels and {len(data.ids)} ids; one of each per row")
        self.classes = sorted(set(data.labels))
        if len(self.classes) < 2:
            raise ShiftbenchError("training needs at least two classes in the labelled rows")
        device = resolve_device(config.device)
        self.precision = resolve_precision(config.precision, device)
        self.device_type = "cuda" if device.startswith("cuda") else "cpu"
        self.y = _class_indices(data.labels, self.classes, device)
        self.task_y = {name: _task_indices(name, labels, len(data.rows), device)
                       for name, labels in data.tasks.items()}
        held = torch.tensor(validation_rows(data.ids, config), dtype=torch.bool)
        if not held.any() or held.all():
            raise ShiftbenchError(f"val_fraction={config.val_fraction} leaves no validation or "
                                  f"no training rows among {len(data.ids)}")
        self.train_index, self.val_index = (~held).nonzero()[:, 0], held.nonzero()[:, 0]
        self.steps_per_epoch = math.ceil(len(self.train_index) / config.batch_size)
        self.fingerprint = _fingerprint(data, config, mitigation, self.precision)
        torch.manual_seed(config.seed)
        self.model = build(self.classes).float()  # fp32 master weights, whatever was loaded
        mitigation.setup(self.model, steps_per_epoch=self.steps_per_epoch,
                         tasks={name: int(y.max()) + 1 for name, y in self.task_y.items()})
        self.model.to(device)
        mitigation.modules_.to(device)
        self.parameters = [*self.model.parameters(), *mitigation.modules_.parameters()]
        self.optimizer = torch.optim.AdamW(self.parameters, lr=config.lr,
                                           weight_decay=config.weight_decay)
        self.scaler = torch.amp.GradScaler(self.device_type, enabled=self.precision == "fp16")
        self.epoch = 0  # epochs done
        self.best_loss = math.inf
        self.best_epoch = 0
        self.best_state = _copy(self.model.state_dict())
        self.steps: list[dict[str, float]] = []
        self.epoch_log: list[dict[str, float]] = []

    def train(self, on_epoch_end: EpochCallback | None) -> TrainResult:
        self._resume()
        while self.epoch < self.config.max_epochs and not self._stopped():
            self._epoch()
            self.epoch += 1
            self._validate()
            self._save_checkpoint()
            if on_epoch_end is not None:
                on_epoch_end(self.epoch_log[-1])
        self.model.load_state_dict(self.best_state)
        self._save_model()
        return TrainResult(self.folder, self.epoch, self.best_epoch, self.steps, self.epoch_log)

    def _stopped(self) -> bool:
        return self.epoch - self.best_epoch >= self.config.patience

    def _epoch(self) -> None:
        """One pass over the training rows, its order and dropout seeded by the epoch."""
        copies = None if self.augmented is None else self.augmented(self.epoch)
        if copies is not None and len(copies) != len(self.rows):
            raise ShiftbenchError(f"augmented copies: {len(copies)} rows for {len(self.rows)} "
                                  "training rows; one per row")
        torch.manual_seed(example_seed(self.config.seed, "train-epoch", str(self.epoch)))
        self.model.train()
        self.mitigation.modules_.train()
        order = self.train_index[torch.randperm(len(self.train_index))]
        size = self.config.batch_size
        for k in range(self.steps_per_epoch):
            rows = order[k * size:(k + 1) * size]
            at = rows.to(self.y.device)
            labelled = Batch(self.rows.take(rows), self.y[at],
                             None if copies is None else copies.take(rows),
                             {name: y[at] for name, y in self.task_y.items()})
            unlabelled = None
            if self.target is not None:
                unlabelled = Batch(self.target.take(torch.randint(len(self.target), (size,))))
            self._step(labelled, unlabelled, self.epoch * self.steps_per_epoch + k)

    def _autocast(self) -> contextlib.AbstractContextManager[Any]:
        """The forward pass's precision: autocast to bf16 or fp16, or nothing for fp32."""
        if self.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=torch_dtype(self.precision))

    def _step(self, labelled: Batch, unlabelled: Batch | None, step: int) -> None:
        with self._autocast():
            output = self.mitigation.process_batch(self.model, labelled, unlabelled, step)
            loss = self.mitigation.objective(output)
        if not torch.isfinite(loss):
            raise ShiftbenchError(
                f"training diverged: the loss is {float(loss.detach())} at step {step} (epoch "
                f"{self.epoch + 1}); lower the learning rate (lr={self.config.lr:g})")
        self.optimizer.zero_grad()
        self.mitigation.backward(output, self.parameters, scale=self._loss_scale())
        self.scaler.step(self.optimizer)  # unscales; skips a step whose fp16 gradients overflowed
        self.scaler.update()
        self.steps.append({"step": step, "epoch": self.epoch + 1, "loss": float(loss.detach()),
                           **{name: float(v.detach()) for name, v in output.losses.items()},
                           **output.metrics})

    def _loss_scale(self) -> float:
        """fp16's current loss scale, 1 otherwise (scaling a unit tensor, as the scaler
        expects before its step, rather than the loss: the method's backward scales)."""
        return float(self.scaler.scale(torch.ones((), device=self.y.device)))

    def _validate(self) -> None:
        self.model.eval()
        total = correct = 0.0
        with torch.no_grad(), self._autocast():
            for chunk in self.val_index.split(self.config.batch_size):
                y = self.y[chunk.to(self.y.device)]
                logits = self.model(self.rows.take(chunk))[1]
                total += float(F.cross_entropy(logits, y, reduction="sum"))
                correct += float((logits.argmax(1) == y).sum())
        loss, accuracy = total / len(self.val_index), correct / len(self.val_index)
        self.epoch_log.append({"epoch": self.epoch, **self._epoch_means(), "val_loss": loss,
                               "val_accuracy": accuracy})
        if loss < self.best_loss:
            self.best_loss, self.best_epoch = loss, self.epoch
            self.best_state = _copy(self.model.state_dict())

    def _epoch_means(self) -> dict[str, float]:
        """The mean of each logged step value over the epoch just run."""
        rows = [row for row in self.steps if row["epoch"] == self.epoch]
        names = [name for name in rows[0] if name not in ("step", "epoch")]
        return {name: float(np.mean([row[name] for row in rows])) for name in names}

    # -- checkpoints ------------------------------------------------------------------------

    def _save_checkpoint(self) -> None:
        state = {"fingerprint": self.fingerprint, "epoch": self.epoch,
                 "model": self.model.state_dict(),
                 "modules": self.mitigation.modules_.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "scaler": self.scaler.state_dict(),
                 "best_state": self.best_state,
                 "best_loss": self.best_loss, "best_epoch": self.best_epoch,
                 "steps": self.steps, "epoch_log": self.epoch_log}
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with atomic(self.folder / CHECKPOINT) as tmp:
                torch.save(state, tmp)
        except OSError as exc:
            raise ShiftbenchError(f"{self.folder}: cannot save a checkpoint "
                                  f"({exc.strerror or exc})") from None

    def _resume(self) -> None:
        """Continue from the folder's checkpoint, if it holds this training."""
        path = self.folder / CHECKPOINT
        if not path.is_file():
            return
        try:
            state = torch.load(path, map_location=self.y.device, weights_only=True)
        except Exception as exc:
            raise ShiftbenchError(f"{path}: unreadable checkpoint ({exc.__class__.__name__}); "
                                  "delete it to train from the start") from None
        if not isinstance(state, dict) or state.get("fingerprint") != self.fingerprint:
            raise ShiftbenchError(f"{path}: a checkpoint of another training (data, method or "
                                  "parameters differ); use another folder or delete it")
        self.model.load_state_dict(state["model"])
        self.mitigation.modules_.load_state_dict(state["modules"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        self.epoch, self.best_epoch = state["epoch"], state["best_epoch"]
        self.best_loss, self.best_state = state["best_loss"], state["best_state"]
        self.steps, self.epoch_log = state["steps"], state["epoch_log"]

    # -- the model folder -------------------------------------------------------------------

    def _save_model(self) -> None:
        meta = {"classes": self.classes, "method": self.mitigation.describe(),
                "training": {**asdict(self.config), "precision": self.precision,
                             "epochs": self.epoch,
                             "best_epoch": self.best_epoch, "n_train": len(self.train_index),
                             "n_validation": len(self.val_index),
                             "n_target": 0 if self.target is None else len(self.target)}}
        self.save(self.model, meta)
        with atomic(self.folder / LOG) as tmp:
            tmp.write_text("".join(json.dumps(row) + "\n"
                                   for row in [*self.steps, *self.epoch_log]), encoding="utf-8")


def validation_rows(ids: Sequence[str], config: TrainConfig) -> list[bool]:
    """Which labelled rows training holds out for validation: a stable hash of each id
    and the seed, below ``val_fraction`` (model selection reads the same rows)."""
    return [unit_hash("train-validation", config.seed, i) < config.val_fraction for i in ids]


def _class_indices(labels: Sequence[str], classes: list[str], device: str) -> torch.Tensor:
    index = {c: i for i, c in enumerate(classes)}
    return torch.tensor([index[label] for label in labels], device=device)


def _task_indices(name: str, labels: Sequence[str], n_rows: int, device: str) -> torch.Tensor:
    """An auxiliary label column's class indices (classes sorted); one label per row, at
    least two classes, or a one-line error."""
    if len(labels) != n_rows:
        raise ShiftbenchError(f"task {name!r}: {len(labels)} labels for {n_rows} training rows; "
                              "one per row")
    missing = next((k for k, label in enumerate(labels) if label is None or label == ""), None)
    if missing is not None:
        raise ShiftbenchError(f"task {name!r}: row {missing} has no label")
    classes = sorted({str(label) for label in labels})
    if len(classes) < 2:
        raise ShiftbenchError(f"task {name!r}: needs at least two classes, has {classes}")
    return _class_indices([str(label) for label in labels], classes, device)


def _copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in state.items()}


def _fingerprint(data: TrainingData, config: TrainConfig, mitigation: Mitigation,
                 precision: str) -> str:
    """Identifies a training (data, ids, method, parameters, the precision ``auto``
    resolved to): a checkpoint resumes only it."""
    digest = hashlib.sha256()
    for rows in (data.rows, data.target):
        digest.update(b"-" if rows is None else checksum(rows.digest()))
    digest.update(json.dumps([list(data.labels), list(data.ids), data.model, asdict(config),
                              precision, mitigation.describe(),
                              {name: list(labels) for name, labels in data.tasks.items()}],
                             sort_keys=True, default=str).encode())
    return digest.hexdigest()
