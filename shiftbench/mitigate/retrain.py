"""How ``shiftbench mitigate`` retrains the base model: a new head on a probe's frozen
encoder (seconds on CPU), or a Hugging Face classifier fine-tuned end to end. Both use
the trainer's one loop, so seeds, early stopping, checkpoints and resume are the same."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    from shiftbench.models import ModelAdapter
    from shiftbench.runner import Runner
    from shiftbench.split import Split
    from shiftbench.train.mitigations import Mitigation
    from shiftbench.train.trainer import EpochCallback, TrainConfig, TrainResult

RETRAINABLE = ("probe | probe:<encoder> (a head on the frozen encoder) or hf:<dir or hub id> "
               "(fine-tuned end to end)")


class Retrainer(ABC):
    """Trains one model of the base's kind into a folder (resuming a finished or
    interrupted training there)."""

    unused: ClassVar[tuple[str, ...]] = ()  # trainer parameters this kind of training ignores

    @abstractmethod
    def defaults(self) -> TrainConfig:
        """The trainer's settings before ``--param``."""

    @abstractmethod
    def train(self, train: Split, folder: Path, method: Mitigation, config: TrainConfig,
              target: Split | None, tasks: Mapping[str, Sequence[str]], runner: Runner,
              on_epoch_end: EpochCallback | None) -> TrainResult:
        """Train with ``method`` on ``train`` (and ``target``, unlabelled) into ``folder``."""


@dataclass(frozen=True)
class HeadRetrainer(Retrainer):
    """A head on the frozen ``encoder``'s cached embeddings (None: MiniLM)."""

    encoder: str | None

    def defaults(self) -> TrainConfig:
        from shiftbench.train.trainer import TrainConfig

        return TrainConfig()

    def train(self, train: Split, folder: Path, method: Mitigation, config: TrainConfig,
              target: Split | None, tasks: Mapping[str, Sequence[str]], runner: Runner,
              on_epoch_end: EpochCallback | None) -> TrainResult:
        from shiftbench.train.trainer import train_head

        return train_head(train, folder, runner, method, config, self.encoder, target,
                          on_epoch_end, tasks)


@dataclass(frozen=True)
class FineTuneRetrainer(Retrainer):
    """The Hugging Face model at ``source`` fine-tuned end to end (a classification head
    for the training classes added, or replaced), texts cut at ``max_length`` tokens."""

    source: str
    max_length: int
    unused: ClassVar[tuple[str, ...]] = ("hidden", "dropout")

    def defaults(self) -> TrainConfig:
        from shiftbench.train.finetune import FINE_TUNING

        return FINE_TUNING

    def train(self, train: Split, folder: Path, method: Mitigation, config: TrainConfig,
              target: Split | None, tasks: Mapping[str, Sequence[str]], runner: Runner,
              on_epoch_end: EpochCallback | None) -> TrainResult:
        from shiftbench.train.finetune import fine_tune

        return fine_tune(train, folder, self.source, method, config, target, self.max_length,
                         on_epoch_end, tasks)


def retrainer(model: ModelAdapter, spec: str) -> Retrainer:
    """How the base model ``spec`` names is retrained; a model of another kind (a
    scikit-learn pipeline, ...) is refused, naming the kinds that can be."""
    from shiftbench.models.hf import HFClassifier
    from shiftbench.models.probe import EncoderProbe

    if isinstance(model, EncoderProbe):
        return HeadRetrainer(model.source)
    if isinstance(model, HFClassifier):
        return FineTuneRetrainer(model.source, model.max_length)
    raise ShiftbenchError(f"--model {spec!r}: a {model.adapter} model cannot be retrained by "
                          f"mitigate; it retrains {RETRAINABLE}")
