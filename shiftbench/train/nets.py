"""The torch pieces methods train with: the classifier contract, the head on frozen
features, gradient reversal and PCGrad's gradient surgery. Imports torch (the methods
import this module only when they train)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn


class Classifier(nn.Module, ABC):
    """What a method trains: ``forward(x)`` -> (representation, logits).
    ``representation_dim`` is the representation's width; ``trainable_representation``
    says whether training can change it (not for a linear head on frozen features)."""

    representation_dim: int
    trainable_representation: bool

    @abstractmethod
    def forward(self, x: Any) -> tuple[torch.Tensor, torch.Tensor]: ...


class HeadNet(Classifier):
    """A classifier on fixed input features: ``featurizer`` (one hidden ReLU layer with
    dropout, or nothing when ``hidden`` is 0) -> ``classifier`` (linear)."""

    def __init__(self, dim: int, n_classes: int, hidden: int = 0, dropout: float = 0.0) -> None:
        super().__init__()
        self.hidden = hidden
        self.featurizer: nn.Module = (
            nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Dropout(dropout))
            if hidden else nn.Identity())
        self.classifier = nn.Linear(hidden or dim, n_classes)
        self.representation_dim = hidden or dim
        self.trainable_representation = hidden > 0

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(representation, logits)."""
        features = self.featurizer(x)
        return features, self.classifier(features)


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times ``-coeff`` backward."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def reverse_gradient(x: torch.Tensor, coeff: float) -> torch.Tensor:
    """``x`` unchanged, but gradients flowing back through it are multiplied by ``-coeff``."""
    return _ReverseGradient.apply(x, coeff)


def project_conflicts(grads: torch.Tensor) -> torch.Tensor:
    """PCGrad (Yu et al. 2020) on one gradient per task (the rows of ``grads``): each
    task's gradient g_i, for every other task j in a random order (torch's generator),
    loses its component along g_j when they conflict: g_i -= min(0, g_i.g_j)/|g_j|^2 g_j;
    returns the sum of the projected gradients."""
    projected = grads.clone()
    for i in range(len(grads)):
        for j in torch.randperm(len(grads)).tolist():
            if j != i:
                conflict = torch.clamp(projected[i] @ grads[j], max=0)
                norm = (grads[j] @ grads[j]).clamp_min(torch.finfo(grads.dtype).tiny)
                projected[i] -= conflict / norm * grads[j]
    return projected.sum(0)


def pcgrad_backward(losses: Sequence[torch.Tensor], parameters: Sequence[nn.Parameter],
                    specific: Sequence[nn.Parameter] = ()) -> None:
    """Add to ``parameters``' gradients: on those two or more of ``losses`` reach (the
    shared ones), the PCGrad combination of the losses' gradients (:func:`project_conflicts`,
    over all shared parameters as one vector); on the others, and on ``specific`` ones
    (each task's own, e.g. the heads, whatever reaches them), the sum of the gradients."""
    params = [p for p in parameters if p.requires_grad]
    own = {id(p) for p in specific}
    per_loss = [torch.autograd.grad(loss, params, retain_graph=k < len(losses) - 1,
                                    allow_unused=True) for k, loss in enumerate(losses)]
    reached = [[g[k] for g in per_loss if g[k] is not None] for k in range(len(params))]
    shared = [k for k, grads in enumerate(reached) if len(grads) > 1 and id(params[k]) not in own]
    combined = {k: torch.stack(grads).sum(0) for k, grads in enumerate(reached)
                if grads and k not in shared}
    if shared:
        flat = torch.stack([torch.cat([(torch.zeros_like(params[k]) if g[k] is None else g[k])
                                       .flatten() for k in shared]) for g in per_loss])
        pieces = project_conflicts(flat).split([params[k].numel() for k in shared])
        combined |= {k: piece.view_as(params[k]) for k, piece in zip(shared, pieces, strict=True)}
    for k, grad in combined.items():
        param = params[k]
        param.grad = grad.detach().clone() if param.grad is None else param.grad + grad
