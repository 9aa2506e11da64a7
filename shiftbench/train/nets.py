"""The torch pieces methods train with: the classifier contract, the head on frozen
features, and gradient reversal. Imports torch (the methods import this module only
when they train)."""

from __future__ import annotations

from abc import ABC, abstractmethod
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
