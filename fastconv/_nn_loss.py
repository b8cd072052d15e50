"""Losses as modules, with ``torch.nn``'s names, arguments and defaults.

Each ``forward`` is one call of a loss of :mod:`fastconv._ops_loss` (also
``fastconv.ops.<name>``). The constructors check their arguments (``reduction``
one of 'mean', 'sum', 'none'); PyTorch's deprecated ``size_average`` /
``reduce`` are honoured as in PyTorch, and a str in the first place is the
reduction (fastconv's earlier ``CrossEntropyLoss("sum")``). Class weights
(``weight``, ``pos_weight``) are buffers: in the state dict, converted by
``.double()`` / ``.float()``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _ops_loss as L
from ._kernels import float_array
from ._nn_args import _Args
from ._nn_module import Module
from .tensor import Tensor, get_default_dtype

__all__ = [
    "BCELoss",
    "BCEWithLogitsLoss",
    "CrossEntropyLoss",
    "HuberLoss",
    "L1Loss",
    "MSELoss",
    "NLLLoss",
]


class _Loss(Module):
    """``reduction`` (from the deprecated flags when given), checked; a str first is reduction."""

    def __init__(self, size_average: Any = None, reduce: Any = None, reduction: str = "mean"):
        super().__init__()
        if isinstance(size_average, str):
            size_average, reduction = None, size_average
        if size_average is not None or reduce is not None:
            reduction = L._reduction(type(self).__name__, reduction, size_average, reduce)
        self.reduction = _Args(self).choice("reduction", reduction, L.REDUCTIONS)

    def _buffer(self, name: str, value: Any) -> None:
        """Register ``value`` (array-like or None) as the float buffer ``name``."""
        if value is None:
            setattr(self, name, None)
            return
        if isinstance(value, Tensor):
            value = value.data
        if isinstance(value, np.ndarray):
            a = float_array(value)
        else:
            a = np.asarray(value, dtype=get_default_dtype())
        self.register_buffer(name, a.copy())

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"


class _WeightedLoss(_Loss):
    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        if isinstance(weight, str):  # fastconv's earlier Loss("sum")
            weight, reduction = None, weight
        super().__init__(size_average, reduce, reduction)
        self._buffer("weight", weight)


class NLLLoss(_WeightedLoss):
    """Negative log-likelihood of log-probabilities (N, C, ...); see :func:`fastconv.ops.nll_loss`."""

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = _Args(self).int("ignore_index", ignore_index, None, None)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.nll_loss(
            input, target, self.weight, ignore_index=self.ignore_index, reduction=self.reduction
        )


class CrossEntropyLoss(NLLLoss):
    """Log-softmax + negative log-likelihood of logits (N, C, ...) and labels or probabilities.

    See :func:`fastconv.ops.cross_entropy` (``weight`` (C,), ``ignore_index``,
    ``label_smoothing``, probability targets).
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        ignore_index: int = -100,
        reduce: Any = None,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, size_average, ignore_index, reduce, reduction)
        self.label_smoothing = float(
            _Args(self).number(
                "label_smoothing", label_smoothing, lambda v: 0 <= v <= 1, "in [0, 1]"
            )
        )

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.cross_entropy(
            input, target, self.weight, ignore_index=self.ignore_index,
            reduction=self.reduction, label_smoothing=self.label_smoothing,
        )  # fmt: skip


class BCELoss(_WeightedLoss):
    """Binary cross entropy of probabilities in [0, 1]; see :func:`fastconv.ops.binary_cross_entropy`."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.binary_cross_entropy(input, target, self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_WeightedLoss):
    """Sigmoid + binary cross entropy, stable; ``pos_weight`` weights the positives.

    See :func:`fastconv.ops.binary_cross_entropy_with_logits`.
    """

    def __init__(
        self,
        weight: Any = None,
        size_average: Any = None,
        reduce: Any = None,
        reduction: str = "mean",
        pos_weight: Any = None,
    ) -> None:
        super().__init__(weight, size_average, reduce, reduction)
        self._buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.binary_cross_entropy_with_logits(
            input, target, self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class MSELoss(_Loss):
    """Mean squared error (``reduction`` 'mean', 'sum' or 'none')."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error (``reduction`` 'mean', 'sum' or 'none')."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.l1_loss(input, target, reduction=self.reduction)


class HuberLoss(_Loss):
    """Huber loss with threshold ``delta``; see :func:`fastconv.ops.huber_loss`."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction=reduction)
        self.delta = float(_Args(self).number("delta", delta, lambda v: v > 0, "> 0"))

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return L.huber_loss(input, target, reduction=self.reduction, delta=self.delta)
