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
from shiftbench.errors import ShiftbenchError, check_ranges
from shiftbench.split import example_seed, unit_hash

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    import torch

    from shiftbench.runner import Runner
    from shiftbench.train.nets import Classifier


@dataclass
class Batch:
    """A model's input for some rows (features, or a dict of token tensors), with their
    class indices when labelled."""

    x: Any
    y: torch.Tensor | None = None
    augmented: Any = None  # the same rows' augmented copies (for ``augment``), model input
    tasks: dict[str, torch.Tensor] = field(default_factory=dict)  # auxiliary class indices


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

    def setup(self, model: Classifier, *, steps_per_epoch: int,
              tasks: Mapping[str, int] | None = None) -> Mitigation:
        """Build this method's own modules (``modules_``, fresh) for training ``model`` with
        ``steps_per_epoch`` steps an epoch (schedules are set in epochs, never by how many
        epochs training may run: early stopping ends it sooner), on rows that carry the
        auxiliary label columns ``tasks`` (name -> number of classes); returns self."""
        from torch import nn

        if steps_per_epoch < 1:
            raise ShiftbenchError(f"{self.name}: steps_per_epoch={steps_per_epoch!r}; an epoch "
                                  "has at least one step")
        self.modules_ = nn.ModuleDict()
        self.steps_per_epoch_ = steps_per_epoch
        return self

    @abstractmethod
    def process_batch(self, model: Classifier, labelled: Batch, unlabelled: Batch | None,
                      step: int) -> StepOutput:
        """Losses and metrics of one step (``step`` counts from 0 over the whole training)."""

    def objective(self, output: StepOutput) -> torch.Tensor:
        """The loss the trainer minimises: by default the sum of the step's losses."""
        import torch

        return torch.stack(list(output.losses.values())).sum()

    def backward(self, output: StepOutput, parameters: Sequence[torch.nn.Parameter],
                 scale: float = 1.0) -> None:
        """Add this step's gradients, times ``scale`` (fp16 training's loss scale, which
        the trainer divides out), to ``parameters`` (the model's and ``modules_``'s, all
        that the optimiser steps): by default the objective's. A method that combines
        gradients rather than losses overrides it (LibMTL's ``backward``; PCGrad)."""
        (self.objective(output) * scale).backward()

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


def ramp(step: int, ramp_steps: int, lo: float, hi: float, alpha: float) -> float:
    """The warm-start coefficient 2(hi-lo)/(1+exp(-alpha*i/N)) - (hi-lo) + lo: ``lo`` at
    step 0, rising smoothly towards ``hi`` over ``ramp_steps`` steps (N; Ganin et al. 2016,
    alpha = 10), then staying at its step-N value (hi to within 2(hi-lo)exp(-alpha))."""
    progress = min(1.0, step / max(1, ramp_steps))
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
            first step towards ``hi``; ``alpha`` sets how fast (Ganin's 10).
        ramp_epochs: the ramp's length in epochs (of the training's steps per epoch), then
            the coefficient stays at ``hi``. Set in epochs, not as a share of ``max_epochs``
            (as Ganin's "over training"): with early stopping at epoch 3 of 30 the latter
            would never lift the coefficient above about 0.3.
    """

    name = "dann"
    uses_target = True

    def __init__(self, penalty: float = 1.0, hidden: int = 64, dropout: float = 0.5,
                 lo: float = 0.0, hi: float = 1.0, alpha: float = 10.0,
                 ramp_epochs: float = 10.0) -> None:
        self.penalty = penalty
        self.hidden = hidden
        self.dropout = dropout
        self.lo = lo
        self.hi = hi
        self.alpha = alpha
        self.ramp_epochs = ramp_epochs

    def setup(self, model: Classifier, *, steps_per_epoch: int,
              tasks: Mapping[str, int] | None = None) -> DANN:
        if not model.trainable_representation:
            raise ShiftbenchError("dann: a linear head on frozen embeddings has no "
                                  "representation to make domain-invariant; set hidden > 0")
        from torch import nn

        check_ranges("dann: parameter", self, {
            "penalty": self.penalty >= 0, "hidden": self.hidden >= 1,
            "dropout": 0 <= self.dropout < 1, "alpha": self.alpha > 0,
            "ramp_epochs": self.ramp_epochs > 0})
        super().setup(model, steps_per_epoch=steps_per_epoch)
        self.ramp_steps_ = max(1, round(self.ramp_epochs * steps_per_epoch))
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
        coeff = ramp(step, self.ramp_steps_, self.lo, self.hi, self.alpha)
        features = reverse_gradient(torch.cat([source, target]), coeff)
        scores = self.modules_["discriminator"](features).squeeze(1)
        domains = torch.cat([torch.zeros(len(source)), torch.ones(len(target))]).to(scores.device)
        domain = F.binary_cross_entropy_with_logits(scores, domains)
        accuracy = float(((scores > 0).float() == domains).float().mean())
        return StepOutput({"classification": classification, "domain": domain},
                          {"lambda": coeff, "domain_accuracy": accuracy})

    def objective(self, output: StepOutput) -> torch.Tensor:
        return output.losses["classification"] + self.penalty * output.losses["domain"]


class Augment(Mitigation):
    """Training on the labelled rows and their copies perturbed by the suite's own shifts
    (one, or several), with optional consistency (UDA, Xie et al. 2020) and contrastive
    terms.

    Each epoch every labelled row gets a copy: with probability ``rate`` (drawn from its id,
    the seed and the epoch) the text perturbed by one of the shifts (with several, one
    drawn per row the same way, uniformly), else the text itself. The draws and the
    perturbation use per-example seeds keyed by the epoch
    (:func:`~shiftbench.split.example_seed`), so the copies differ between epochs but
    repeat exactly on a re-run or a resumed run; a perturbation's seed is keyed by its own
    shift, so a row's keyboard copy in an epoch is the same text whichever other shifts
    are named (and its embedding is cached once). The trainer embeds (or tokenizes) the
    copies each epoch (:meth:`draw`); through the runner's cache a re-run embeds nothing
    new. Cost: per epoch, ``rate`` x rows texts perturbed and embedded once, and each step
    runs the model on twice the rows.

    The objective: cross-entropy on the clean rows + on the copies (the extended training
    set) + ``consistency`` x the masked KL(sharpened clean prediction || copy's prediction),
    no gradient through the clean side, rows whose clean confidence is below ``threshold``
    masked out + ``contrastive`` x an InfoNCE loss pairing each row's clean and augmented
    representations against the batch's other copies.

    Parameters:
        shift, severity: the registered shift (any, e.g. ``keyboard``, ``ocr``,
            ``backtranslate``), or several comma-separated (``keyboard,ocr,spelling``),
            and the severity 1-5 of each. Under ``mitigate`` a name may also be one of
            the suite's shift entries (``backtranslate-es``): that entry's shift with its
            ``params`` (engine, pivot...), at ``severity`` (:attr:`suite_shifts`).
        rate: share of the rows whose copy is perturbed each epoch.
        consistency: weight of the consistency loss (UDA's 1.0; 0 turns it off).
        threshold: clean confidence below which a row is left out of the consistency loss
            (UDA's 0.8).
        temperature: sharpening temperature of the clean target (UDA's 0.4; 1 is none).
        contrastive: weight of the contrastive term (0, off, by default).
        contrastive_temperature: its softmax temperature (SimCLR's 0.1).
    """

    name = "augment"
    #: shift entries of the suite, by name: (registered shift, its params); a name here
    #: wins over a registered shift of the same name (set by ``mitigate``)
    suite_shifts: Mapping[str, tuple[str, Mapping[str, Any]]] = {}

    def __init__(self, shift: str = "keyboard", severity: int = 2, rate: float = 0.5,
                 consistency: float = 1.0, threshold: float = 0.8, temperature: float = 0.4,
                 contrastive: float = 0.0, contrastive_temperature: float = 0.1) -> None:
        self.shift = shift
        self.severity = severity
        self.rate = rate
        self.consistency = consistency
        self.threshold = threshold
        self.temperature = temperature
        self.contrastive = contrastive
        self.contrastive_temperature = contrastive_temperature

    def setup(self, model: Classifier, *, steps_per_epoch: int,
              tasks: Mapping[str, int] | None = None) -> Augment:
        self.shifts()
        check_ranges("augment: parameter", self, {
            "rate": 0 <= self.rate <= 1, "consistency": self.consistency >= 0,
            "threshold": 0 <= self.threshold <= 1, "temperature": self.temperature > 0,
            "contrastive": self.contrastive >= 0,
            "contrastive_temperature": self.contrastive_temperature > 0})
        super().setup(model, steps_per_epoch=steps_per_epoch)
        return self

    def shifts(self) -> list[Any]:
        """The shifts ``shift`` names (the suite's own entries first), each at
        ``severity``; a name that is unknown, empty or repeated is a one-line error."""
        from shiftbench.registry import SHIFTS

        names = [name.strip() for name in self.shift.split(",")]
        if not all(names) or len(set(names)) < len(names):
            raise ShiftbenchError(f"augment: shift={self.shift!r} must name one or more "
                                  "registered shifts, comma-separated, each once")
        try:
            return [SHIFTS.load(shift)(self.severity, **params) for shift, params in
                    (self.suite_shifts.get(name, (name, {})) for name in names)]
        except ShiftbenchError as exc:
            unknown = any(name not in self.suite_shifts and name not in SHIFTS.names()
                          for name in names)
            suite = (f" (the suite's shifts: {', '.join(self.suite_shifts)})"
                     if unknown and self.suite_shifts else "")
            raise ShiftbenchError(f"augment: shift={self.shift!r}: {exc}{suite}") from None

    def draw(self, texts: Sequence[str], ids: Sequence[str], seed: int, epoch: int,
             runner: Runner | None = None) -> list[str]:
        """Epoch ``epoch``'s copy of each text (see the class doc)."""
        shifts = self.shifts()
        key = f"augment:{'+'.join(shift.key for shift in shifts)}:epoch {epoch}"
        chosen = [k for k, i in enumerate(ids) if unit_hash(key, seed, i) < self.rate]
        which = {k: int(unit_hash(f"{key}:shift", seed, ids[k]) * len(shifts)) for k in chosen}
        copies = list(texts)
        for n, shift in enumerate(shifts):
            rows = [k for k in chosen if which[k] == n]
            own_key = f"augment:{shift.key}:epoch {epoch}"
            perturbed = shift.transform([texts[k] for k in rows],
                                        [example_seed(seed, own_key, ids[k]) for k in rows],
                                        runner)
            for k, text in zip(rows, perturbed, strict=True):
                copies[k] = text
        return copies

    def process_batch(self, model: Classifier, labelled: Batch, unlabelled: Batch | None,
                      step: int) -> StepOutput:
        from torch.nn import functional as F

        if labelled.augmented is None:
            raise ShiftbenchError("augment trains on augmented copies of the labelled rows; "
                                  "the batch has none")
        if labelled.y is None:
            raise ShiftbenchError("the labelled batch has no labels")
        clean, logits = model(labelled.x)
        copy, copy_logits = model(labelled.augmented)
        losses = {"classification": F.cross_entropy(logits, labelled.y),
                  "augmented": F.cross_entropy(copy_logits, labelled.y)}
        metrics: dict[str, float] = {}
        if self.consistency:
            losses["consistency"], metrics["consistency_mask"] = consistency_loss(
                logits, copy_logits, self.threshold, self.temperature)
        if self.contrastive:
            losses["contrastive"] = contrastive_loss(clean, copy, self.contrastive_temperature)
        return StepOutput(losses, metrics)

    def objective(self, output: StepOutput) -> torch.Tensor:
        import torch

        weights = {"consistency": self.consistency, "contrastive": self.contrastive}
        return torch.stack([weights.get(name, 1.0) * loss
                            for name, loss in output.losses.items()]).sum()


def consistency_loss(clean_logits: torch.Tensor, copy_logits: torch.Tensor, threshold: float,
                     temperature: float) -> tuple[torch.Tensor, float]:
    """UDA's consistency: the mean over rows of KL(sharpened clean prediction || the copy's
    prediction), rows whose clean confidence is below ``threshold`` counted as 0; no
    gradient flows through the clean side. Returns it and the share of rows kept."""
    import torch
    from torch.nn import functional as F

    with torch.no_grad():
        mask = (F.softmax(clean_logits, 1).max(1).values >= threshold).float()
        target = F.softmax(clean_logits / temperature, 1)
    kl = F.kl_div(F.log_softmax(copy_logits, 1), target, reduction="none").sum(1)
    return (kl * mask).mean(), float(mask.mean())


def contrastive_loss(clean: torch.Tensor, copy: torch.Tensor,
                     temperature: float) -> torch.Tensor:
    """InfoNCE between views: each row's clean representation must pick its own copy among
    the batch's copies (by cosine similarity / ``temperature``), and each copy its clean row."""
    import torch
    from torch.nn import functional as F

    similarity = F.normalize(clean, dim=1) @ F.normalize(copy, dim=1).T / temperature
    rows = torch.arange(len(clean), device=similarity.device)
    return (F.cross_entropy(similarity, rows) + F.cross_entropy(similarity.T, rows)) / 2


class MultiTask(Mitigation):
    """Multi-task learning: the shared representation feeds the main classifier and one
    linear head per auxiliary task (Caruana 1997).

    An auxiliary task is a label column the training rows carry (given to the trainer as
    ``tasks``), or ``domain``: telling the labelled (source) rows from unlabelled target
    rows, without gradient reversal (the opposite of DANN: the representation keeps the
    domain). Only the main classifier is saved; the auxiliary heads shape the
    representation during training.

    Parameters:
        tasks: the auxiliary tasks, comma-separated (``domain`` or label column names).
        weighting: ``uncertainty`` (Kendall et al. 2018: sum L_i/(2 exp(s_i)) + s_i/2 over
            the main and auxiliary losses, the s_i learned, starting at 0) or ``fixed``.
        weights: for ``fixed``, the auxiliary tasks' weights, comma-separated in the order
            of ``tasks`` (the main loss weighs 1); empty: 1 each.
        pcgrad: PCGrad (Yu et al. 2020): on the parameters two or more tasks share, each
            task's weighted gradient loses its component along any other task's gradient
            it conflicts with (negative dot product), the others taken in a random order
            (seeded, so a CPU run repeats); the projected gradients are summed. Each task's
            own parameters (its head, its weight s_i) get their own gradient.
    """

    name = "multitask"

    def __init__(self, tasks: str = "domain", weighting: str = "uncertainty",
                 weights: str = "", pcgrad: bool = False) -> None:
        self.tasks = tasks
        self.weighting = weighting
        self.weights = weights
        self.pcgrad = pcgrad

    @property
    def uses_target(self) -> bool:  # type: ignore[override]
        return "domain" in self.task_names()

    def task_names(self) -> list[str]:
        """The auxiliary tasks, in order: label columns and, for `domain`, source vs target."""
        return [name.strip() for name in self.tasks.split(",") if name.strip()]

    def _fixed_weights(self) -> list[float]:
        names = self.task_names()
        if not self.weights.strip():
            return [1.0] * len(names)
        try:
            weights = [float(w) for w in self.weights.split(",")]
        except ValueError:
            weights = []
        if len(weights) != len(names) or any(not w >= 0 for w in weights):
            raise ShiftbenchError(f"multitask: weights={self.weights!r} must list one "
                                  f"non-negative number per task of {self.tasks!r}")
        return weights

    def setup(self, model: Classifier, *, steps_per_epoch: int,
              tasks: Mapping[str, int] | None = None) -> MultiTask:
        import torch
        from torch import nn

        names, columns = self.task_names(), dict(tasks or {})
        if not names:
            raise ShiftbenchError("multitask: no auxiliary task; set tasks (e.g. tasks=domain)")
        if len(set(names)) < len(names) or "classification" in names:
            raise ShiftbenchError(f"multitask: tasks={self.tasks!r} must name each task once, "
                                  "none of them 'classification' (the main task)")
        if self.weighting not in ("uncertainty", "fixed"):
            raise ShiftbenchError(f"multitask: weighting={self.weighting!r}; use uncertainty "
                                  "or fixed")
        self.fixed_ = self._fixed_weights()
        if not model.trainable_representation:
            raise ShiftbenchError("multitask: a linear head on frozen embeddings shares no "
                                  "trainable representation; set hidden > 0")
        for name in names:
            if name != "domain" and name not in columns:
                raise ShiftbenchError(f"multitask: task {name!r} has no labels in the training "
                                      f"data (label columns: {', '.join(columns) or 'none'})")
        super().setup(model, steps_per_epoch=steps_per_epoch)
        for k, name in enumerate(names):
            classes = 2 if name == "domain" else columns[name]
            self.modules_[f"head{k}"] = nn.Linear(model.representation_dim, classes)
        self.modules_["log_variances"] = nn.ParameterList(
            [nn.Parameter(torch.zeros(len(names) + 1),
                          requires_grad=self.weighting == "uncertainty")])
        return self

    def process_batch(self, model: Classifier, labelled: Batch, unlabelled: Batch | None,
                      step: int) -> StepOutput:
        import torch
        from torch.nn import functional as F

        features, classification = classification_loss(model, labelled)
        losses = {"classification": classification}
        for k, name in enumerate(self.task_names()):
            head = self.modules_[f"head{k}"]
            if name == "domain":
                if unlabelled is None:
                    raise ShiftbenchError("multitask: the domain task trains on unlabelled rows "
                                          "of the target domain; give a target split")
                target = model(unlabelled.x)[0]
                domains = torch.cat([torch.zeros(len(features)), torch.ones(len(target))])
                losses["task_domain"] = F.cross_entropy(
                    head(torch.cat([features, target])), domains.long().to(features.device))
            else:
                if name not in labelled.tasks:
                    raise ShiftbenchError(f"multitask: the batch has no labels for task {name!r}")
                losses[f"task_{name}"] = F.cross_entropy(head(features), labelled.tasks[name])
        s = self.modules_["log_variances"][0]
        return StepOutput(losses, {f"s_{name}": float(v) for name, v
                                   in zip(["classification", *self.task_names()], s.tolist(),
                                          strict=True)})

    def objective(self, output: StepOutput) -> torch.Tensor:
        import torch

        return torch.stack(self._weighted(output)).sum()

    def backward(self, output: StepOutput, parameters: Sequence[torch.nn.Parameter],
                 scale: float = 1.0) -> None:
        from shiftbench.train.nets import pcgrad_backward

        if self.pcgrad:  # PCGrad commutes with a positive scale: scale the losses
            pcgrad_backward([loss * scale for loss in self._weighted(output)], parameters,
                            specific=[*self.modules_.parameters()])
        else:
            super().backward(output, parameters, scale)

    def _weighted(self, output: StepOutput) -> list[torch.Tensor]:
        """Each task's weighted loss, the main task's first, each computed on its own (so
        a task's gradient reaches only what its loss uses): w_i L_i (``fixed``) or
        L_i/(2 exp(s_i)) + s_i/2 (``uncertainty``)."""
        import torch

        losses = list(output.losses.values())
        if self.weighting == "fixed":
            return [w * loss for w, loss in zip([1.0, *self.fixed_], losses, strict=True)]
        s = self.modules_["log_variances"][0]
        return [loss / (2 * torch.exp(s[i])) + s[i] / 2 for i, loss in enumerate(losses)]
