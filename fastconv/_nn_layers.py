"""The layers without a family of their own: linear, flatten, identity, dropout.

The families are in ``_nn_conv`` (convolutions), ``_nn_pool`` (pooling),
``_nn_act`` (activations) and ``_nn_norm`` (normalisation). Each layer
checks its constructor arguments (``fastconv._nn_args``) and its
``forward`` is one call of an op of :mod:`fastconv.ops` or
:mod:`fastconv.tensor`. Parameters are created in the default dtype and
initialised as in PyTorch (:mod:`fastconv.nn.init`, ``_nn_init``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from . import _nn_init as init
from . import ops
from . import tensor as T
from ._nn_args import _Args
from ._nn_module import Module, Parameter
from .tensor import Tensor

__all__ = ["Dropout", "Flatten", "Identity", "Linear"]


class Linear(Module):
    """Fully connected layer ``x @ weight.T + bias`` on fastconv's GEMM; weight (out, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        check = _Args(self)
        self.in_features = check.int("in_features", in_features, 0, None)
        self.out_features = check.int("out_features", out_features, 0, None)
        bias = check.bool("bias", bias)
        dtype = T.get_default_dtype()
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(in), 1/sqrt(in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor) -> Tensor:
        return ops.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (default: all but the batch dim); a view."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Identity(Module):
    """Returns its input; takes and ignores any constructor arguments, as PyTorch's."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Identity in eval mode. Masks come from the generator of :func:`manual_seed`.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        check = _Args(self)
        self.p = check.number("p", p, lambda v: 0 <= v <= 1, "in [0, 1]")
        self.inplace = check.bool("inplace", inplace)  # accepted; computed out of place

    def forward(self, input: Tensor) -> Tensor:
        return ops.dropout(input, self.p, init.get_rng()) if self.training else input

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"
