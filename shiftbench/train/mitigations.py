"""Training algorithms ("mitigations"): what one step of training optimises.

As WILDS' algorithms: :meth:`Mitigation.process_batch` takes a labelled batch and, for
methods that use one, an unlabelled batch of the target domain, and returns named
losses and metrics; :meth:`Mitigation.objective` combines the losses into the one the
trainer minimises. The trainer owns the model (a :class:`~shiftbench.train.nets.Classifier`),
the optimiser, the data order and the checkpoints; a method owns only the modules it
adds (DANN's discriminator), built in :meth:`Mitigation.setup` and trained and
checkpointed with the model.

scikit-learn's idiom: ``__init__`` stores parameters only (documented defaults);
what ``setup`` builds ends in ``_``. torch is imported only when a method trains, so
``shiftbench ls`` lists methods without it.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from shiftbench.detectors import Params
from shiftbench.errors import ShiftbenchError

if TYPE_CHECKING:
    import torch

    from shiftbench.train.nets import Classifier


@dataclass
class Batch:
    """A model's input for some rows (features, or a dict of token tensors), with their
    class indices when labelled."""

    x: Any
    y: torch.Tensor | None = None


@dataclass
class StepOutput:
    """One step's named losses (tensors with gradients) and metrics (plain numbers)."""

    losses: dict[str, torch.Tensor]
    metrics: dict[str, float] = field(default_factory=dict)


class Mitigation(Params, ABC):
    """The training-algorithm contract: subclasses set ``name`` and implement
    :meth:`process_batch`; ``uses_target`` says the method trains on unlabelled rows of
    the target domain (the trainer refuses to run it without them)."""

    name: ClassVar[str]
    uses_target: ClassVar[bool] = False

    def setup(self, model: Classifier, total_steps: int) -> Mitigation:
        """Build this method's own modules (``modules_``, fresh) for a training of
        ``total_steps`` steps of ``model``; returns self."""
        from torch import nn

        self.modules_ = nn.ModuleDict()
        self.total_steps_ = total_steps
        return self

    @abstractmethod
    def process_batch(self, model: Classifier, labelled: Batch, unlabelled: Batch | None,
                      step: int) -> StepOutput:
        """Losses and metrics of one step (``step`` counts from 0 over the whole training)."""

    def objective(self, output: StepOutput) -> torch.Tensor:
        """The loss the trainer minimises: by default the sum of the step's losses."""
        import torch

        return torch.stack(list(output.losses.values())).sum()

    def describe(self) -> dict[str, Any]:
        return {"method": self.name, **self.get_params()}


def classification_loss(model: Classifier, labelled: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """(representation, cross-entropy) of a labelled batch."""
    from torch.nn import functional as F

    if labelled.y is None:
        raise ShiftbenchError("the labelled batch has no labels")
    features, logits = model(labelled.x)
    return features, F.cross_entropy(logits, labelled.y)


class ERM(Mitigation):
    """Plain training (empirical risk minimisation): cross-entropy on the labelled rows.
    The baseline every other method is compared with."""

    name = "erm"

    def __init__(self) -> None:
        pass

    def process_batch(self, model: Classifier, labelled: Batch, unlabelled: Batch | None,
                      step: int) -> StepOutput:
        return StepOutput({"classification": classification_loss(model, labelled)[1]})


def ramp(step: int, total_steps: int, lo: float, hi: float, alpha: float) -> float:
    """The warm-start coefficient 2(hi-lo)/(1+exp(-alpha*i/N)) - (hi-lo) + lo: ``lo`` at
    step 0, rising smoothly towards ``hi`` by the end (Ganin et al. 2016, alpha = 10)."""
    progress = step / max(1, total_steps)
    return 2 * (hi - lo) / (1 + math.exp(-alpha * progress)) - (hi - lo) + lo


class DANN(Mitigation):
    """Domain-adversarial training (Ganin et al. 2016, JMLR).

    A discriminator (MLP with dropout) learns to tell source rows from target rows by
    their representation; the representation reaches it through gradient reversal, so
    the featurizer learns to make the domains indistinguishable. Labelled rows are the
    source; unlabelled rows the target.

    Parameters:
        penalty: weight of the domain loss in the objective (WILDS' default, 1.0).
        hidden: width of the discriminator's hidden layers (two, with ReLU).
        dropout: dropout after each hidden layer of the discriminator.
        lo, hi, alpha: the reversal coefficient's ramp (:func:`ramp`) from ``lo`` at the
            first step towards ``hi``; ``alpha`` sets how fast (Ganin's 10 over training).
    """

    name = "dann"
    uses_target = True

    def __init__(self, penalty: float = 1.0, hidden: int = 64, dropout: float = 0.5,
                 lo: float = 0.0, hi: float = 1.0, alpha: float = 10.0) -> None:
        self.penalty = penalty
        self.hidden = hidden
        self.dropout = dropout
        self.lo = lo
        self.hi = hi
        self.alpha = alpha

    def setup(self, model: Classifier, total_steps: int) -> DANN:
        if not model.trainable_representation:
            raise ShiftbenchError("dann: a linear head on frozen embeddings has no "
                                  "representation to make domain-invariant; set hidden > 0")
        from torch import nn

        for name, ok in {"penalty": self.penalty >= 0, "hidden": self.hidden >= 1,
                         "dropout": 0 <= self.dropout < 1, "alpha": self.alpha > 0}.items():
            if not ok:
                raise ShiftbenchError(f"dann: parameter {name}={getattr(self, name)!r} is out "
                                      "of range")
        super().setup(model, total_steps)
        width = self.hidden
        self.modules_["discriminator"] = nn.Sequential(
            nn.Linear(model.representation_dim, width), nn.ReLU(), nn.Dropout(self.dropout),
            nn.Linear(width, width), nn.ReLU(), nn.Dropout(self.dropout), nn.Linear(width, 1))
        return self

    def process_batch(self, model: Classifier, labelled: Batch, unlabelled: Batch | None,
                      step: int) -> StepOutput:
        import torch
        from torch.nn import functional as F

        from shiftbench.train.nets import reverse_gradient

        if unlabelled is None:
            raise ShiftbenchError("dann trains on unlabelled rows of the target domain; "
                                  "give a target split")
        source, classification = classification_loss(model, labelled)
        target, _ = model(unlabelled.x)
        coeff = ramp(step, self.total_steps_, self.lo, self.hi, self.alpha)
        features = reverse_gradient(torch.cat([source, target]), coeff)
        scores = self.modules_["discriminator"](features).squeeze(1)
        domains = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(scores.device)
        domain = F.binary_cross_entropy_with_logits(scores, domains)
        accuracy = float(((scores > 0).float() == domains).float().mean())
        return StepOutput({"classification": classification, "domain": domain},
                          {"lambda": coeff, "domain_accuracy": accuracy})

    def objective(self, output: StepOutput) -> torch.Tensor:
        return output.losses["classification"] + self.penalty * output.losses["domain"]
