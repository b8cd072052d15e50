"""The activation layers, with PyTorch's arguments and defaults.

Each ``forward`` is one op: ReLU on fastconv's kernel, the others NumPy
(:mod:`fastconv.tensor`'s tanh, sigmoid, softmax; ``fastconv._ops_act``'s
leaky ReLU, GELU, SiLU and ELU). ``inplace=True`` is accepted for
compatibility and computes out of place: the values are the same, the
input is left as it was.
"""

from __future__ import annotations

import math
import warnings

from . import tensor as T
from ._nn_args import _Args
from ._nn_module import Module
from ._ops_act import elu, gelu, leaky_relu, silu
from .tensor import Tensor

__all__ = [
    "ELU",
    "GELU",
    "LeakyReLU",
    "LogSoftmax",
    "ReLU",
    "SiLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]


class _Inplace(Module):
    """An activation with PyTorch's ``inplace`` flag (accepted, computed out of place)."""

    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = _Args(self).bool("inplace", inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """``max(x, 0)`` on fastconv's kernel (backward too)."""

    def forward(self, input: Tensor) -> Tensor:
        return T.relu(input)


class LeakyReLU(_Inplace):
    """``x`` where ``x > 0``, else ``negative_slope * x``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.negative_slope = _Args(self).number(
            "negative_slope", negative_slope, math.isfinite, "finite"
        )

    def forward(self, input: Tensor) -> Tensor:
        return leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(_Inplace):
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__(inplace)
        self.alpha = _Args(self).number("alpha", alpha, math.isfinite, "finite")

    def forward(self, input: Tensor) -> Tensor:
        return elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class SiLU(_Inplace):
    """``x * sigmoid(x)`` (swish)."""

    def forward(self, input: Tensor) -> Tensor:
        return silu(input)


class GELU(Module):
    """``x * Phi(x)`` with the exact erf (``approximate="none"``) or its ``"tanh"`` approximation."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = _Args(self).choice("approximate", approximate, ("none", "tanh"))

    def forward(self, input: Tensor) -> Tensor:
        return gelu(input, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, input: Tensor) -> Tensor:
        return T.tanh(input)


class Sigmoid(Module):
    def forward(self, input: Tensor) -> Tensor:
        return T.sigmoid(input)


class Softmax(Module):
    """Softmax along ``dim`` (for outputs; train with :class:`CrossEntropyLoss` on logits).

    ``dim=None`` is PyTorch's deprecated implicit choice, with its warning:
    dim 0 for 0-, 1- and 3-D inputs, else 1.
    """

    def __init__(self, dim: int | None = None) -> None:
        super().__init__()
        self.dim = None if dim is None else _Args(self).int("dim", dim, None, None)

    def _dim(self, x: Tensor) -> int:
        if self.dim is not None:
            return self.dim
        warnings.warn(
            f"Implicit dimension choice for {type(self).__name__.lower()} has been deprecated. "
            "Change the call to include dim=X as an argument.",
            UserWarning,
            stacklevel=4,
        )
        return 0 if x.ndim in (0, 1, 3) else 1

    def forward(self, input: Tensor) -> Tensor:
        return T.softmax(input, self._dim(input))

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, input: Tensor) -> Tensor:
        return T.log_softmax(input, self._dim(input))
