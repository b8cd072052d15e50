"""The normalisation layers: batch norm (1-D and 2-D), layer norm and group norm.

Arguments, defaults, parameters and buffers are PyTorch's; each ``forward``
is one op (:func:`fastconv.ops.batch_norm`, ``fastconv._ops_norm``'s
``layer_norm`` and ``group_norm``). ``eps`` must be finite and > 0: with
eps <= 0 a constant group divides by sqrt(<= 0) and gives NaN (PyTorch
raises then too, at the first forward in training).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from . import ops
from . import tensor as T
from ._nn_args import _Args
from ._nn_module import Module, Parameter
from ._ops_norm import group_norm, layer_norm
from .tensor import Tensor

__all__ = ["BatchNorm1d", "BatchNorm2d", "GroupNorm", "LayerNorm"]


def _eps(check: _Args, eps: float) -> float:
    return check.number("eps", eps, lambda v: 0 < v < math.inf, "finite and > 0")


def _affine_params(module: Module, shape: tuple, weight: bool, bias: bool) -> None:
    """``weight`` (ones) and ``bias`` (zeros) of ``shape``, each a Parameter or None."""
    dtype = T.get_default_dtype()
    module.weight = Parameter(np.ones(shape, dtype=dtype)) if weight else None
    module.bias = Parameter(np.zeros(shape, dtype=dtype)) if weight and bias else None


class _BatchNorm(Module):
    _ndims: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check = _Args(self)
        self.num_features = num_features = check.int("num_features", num_features, 1, None)
        self.eps = _eps(check, eps)
        self.momentum = (
            None
            if momentum is None
            else check.number("momentum", momentum, math.isfinite, "a finite number or None")
        )
        self.affine = affine = check.bool("affine", affine)
        self.track_running_stats = check.bool("track_running_stats", track_running_stats)
        _affine_params(self, (num_features,), affine, check.bool("bias", bias))
        dtype = T.get_default_dtype()
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
            self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
            self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))
        else:
            self.running_mean = self.running_var = self.num_batches_tracked = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def forward(self, input: Tensor) -> Tensor:
        x = input
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected input with "
                f"{' or '.join(map(str, self._ndims))} dims and {self.num_features} channels "
                f"in dim 1, got shape {x.shape}"
            )
        return ops.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
            self.num_batches_tracked,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) per channel, as ``torch.nn.BatchNorm2d``.

    Training: batch mean and biased variance; the running statistics are
    updated with momentum (None: a cumulative average) and the unbiased
    variance. Eval: running statistics, or the batch's with
    ``track_running_stats=False`` (then there are none). ``bias=False``
    keeps the weight only. An empty batch gives an empty output.
    """

    _ndims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) per channel (see :class:`BatchNorm2d`)."""

    _ndims = (2, 3)


class LayerNorm(Module):
    """Normalise over the last dims, ``normalized_shape``, of each sample (``torch.nn.LayerNorm``).

    ``weight`` (ones) and ``bias`` (zeros) have shape ``normalized_shape``
    when ``elementwise_affine`` (``bias=False``: the weight only).
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check = _Args(self)
        if isinstance(normalized_shape, (int, np.integer)) and not isinstance(
            normalized_shape, bool
        ):
            normalized_shape = (normalized_shape,)
        if not isinstance(normalized_shape, (tuple, list)):
            raise TypeError(
                f"LayerNorm: normalized_shape must be an int or a sequence of ints, got "
                f"{type(normalized_shape).__name__} {normalized_shape!r}"
            )
        self.normalized_shape = tuple(
            check.int("normalized_shape", n, 0, None) for n in normalized_shape
        )
        self.eps = _eps(check, eps)
        self.elementwise_affine = check.bool("elementwise_affine", elementwise_affine)
        _affine_params(
            self, self.normalized_shape, self.elementwise_affine, check.bool("bias", bias)
        )

    def forward(self, input: Tensor) -> Tensor:
        return layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class GroupNorm(Module):
    """Normalise each of ``num_groups`` groups of channels of each sample (``torch.nn.GroupNorm``).

    input (N, C, *) with C = ``num_channels``; per-channel ``weight`` and ``bias`` when ``affine``.
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__()
        check = _Args(self)
        self.num_groups = check.int("num_groups", num_groups, 1, None)
        self.num_channels = check.int("num_channels", num_channels, 1, None)
        if self.num_channels % self.num_groups:
            raise ValueError(
                f"GroupNorm: num_channels={num_channels} must be divisible by "
                f"num_groups={num_groups}"
            )
        self.eps = _eps(check, eps)
        self.affine = check.bool("affine", affine)
        _affine_params(self, (self.num_channels,), self.affine, check.bool("bias", bias))

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 2 or input.shape[1] != self.num_channels:
            raise ValueError(
                f"GroupNorm({self.num_groups}, {self.num_channels}): expected an input (N, "
                f"{self.num_channels}, *), got shape {input.shape}"
            )
        return group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )
