"""Losses as modules: each ``forward`` is one call of a loss of :mod:`fastconv.ops`."""

from __future__ import annotations

from typing import Any

from . import ops
from ._nn_args import _Args
from ._nn_module import Module
from .tensor import Tensor

__all__ = ["CrossEntropyLoss", "L1Loss", "MSELoss"]


class CrossEntropyLoss(Module):
    """Fused log-softmax + negative log-likelihood of logits (N, C) and int labels (N,)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _Args(self).choice("reduction", reduction, ("mean", "sum"))

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return ops.cross_entropy(input, target, self.reduction)


class MSELoss(CrossEntropyLoss):
    """Mean squared error (``reduction="mean"`` or ``"sum"``)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return ops.mse_loss(input, target, self.reduction)


class L1Loss(CrossEntropyLoss):
    """Mean absolute error (``reduction="mean"`` or ``"sum"``)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return ops.l1_loss(input, target, self.reduction)
