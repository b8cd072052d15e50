"""The layers: convolution, pooling, linear, flatten, activations, dropout, batch norm.

Each layer checks its constructor arguments (``fastconv._nn_args``) and its
``forward`` is one call of an op of :mod:`fastconv.ops` or
:mod:`fastconv.tensor`. Parameters are created in the default dtype and
initialised as in PyTorch (:mod:`fastconv.nn.init`, ``_nn_init``).
"""

from __future__ import annotations

import math
from typing import Union

import numpy as np

from . import _core, ops
from . import _nn_init as init
from . import tensor as T
from ._nn_args import _Args
from ._nn_module import Module, Parameter
from .tensor import Tensor

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "Dropout",
    "Flatten",
    "Identity",
    "Linear",
    "LogSoftmax",
    "MaxPool2d",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
]

IntPair = Union[int, tuple[int, int]]

# --------------------------------------------------------------------------
# Convolution, linear, pooling, flatten
# --------------------------------------------------------------------------


class Conv2d(Module):
    """2-D convolution on fastconv's kernels; weight (out, in/groups, kh, kw).

    ``padding`` takes an int, a pair, ``"valid"`` or ``"same"``; ``algo`` is
    passed to :func:`fastconv.conv2d` (``"auto"``, ``"direct"``, ``"im2col"``, ``"implicit"``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair | str = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        algo: str = "auto",
    ) -> None:
        super().__init__()
        check = _Args(self)
        in_channels = check.int("in_channels", in_channels, 1)
        out_channels = check.int("out_channels", out_channels, 1)
        self.kernel_size = check.pair("kernel_size", kernel_size, 1)
        self.stride = check.pair("stride", stride, 1)
        self.padding: tuple[int, int] | str = check.conv_padding(padding, self.stride)
        self.dilation = check.pair("dilation", dilation, 1)
        self.groups = check.groups(groups, in_channels, out_channels)
        bias = check.bool("bias", bias)
        self.algo = check.choice("algo", algo, tuple(_core.conv_algos()))
        self.in_channels, self.out_channels = in_channels, out_channels
        dtype = T.get_default_dtype()
        shape = (out_channels, in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._fans(self.weight.shape)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward_relu_max_pool(self, x: Tensor, pool: MaxPool2d) -> Tensor:
        """``pool(relu(self(x)))`` as one op (see :class:`Sequential`)."""
        return ops.conv2d_relu_max_pool2d(
            x,
            self.weight,
            self.bias,
            (self.stride, self.padding, self.dilation, self.groups, self.algo),
            (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode),
        )

    def forward(self, x: Tensor, activation: str | None = None) -> Tensor:
        """The convolution; ``activation="relu"`` fuses a following ReLU (see :class:`Sequential`)."""
        return ops.conv2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.algo,
            activation,
        )

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


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

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class _Pool2d(Module):
    """What the pooling layers share: the window arguments, checked, and their repr."""

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None, padding: IntPair, dilation: IntPair = 1
    ) -> None:
        super().__init__()
        _Args(self).pool(kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}"
        )


class MaxPool2d(_Pool2d):
    """2-D max pooling; the backward routes gradients through the saved argmax."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation)
        self.dilation, self.ceil_mode = dilation, _Args(self).bool("ceil_mode", ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )


class AvgPool2d(_Pool2d):
    """2-D average pooling."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding)
        check = _Args(self)
        if (
            divisor_override is not None
            and check.int("divisor_override", divisor_override, None, None) == 0
        ):
            raise ValueError("AvgPool2d: divisor_override must not be 0")
        self.ceil_mode = check.bool("ceil_mode", ceil_mode)
        self.count_include_pad = check.bool("count_include_pad", count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (default: all but the batch dim); a view."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)


class Identity(Module):
    """Returns its input."""

    def forward(self, x: Tensor) -> Tensor:
        return x


# --------------------------------------------------------------------------
# Activations, dropout, batch norm
# --------------------------------------------------------------------------


class ReLU(Module):
    """``max(x, 0)`` on fastconv's kernel (backward too)."""

    def forward(self, x: Tensor) -> Tensor:
        return T.relu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return T.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return T.sigmoid(x)


class Softmax(Module):
    """Softmax along ``dim`` (for outputs; train with :class:`CrossEntropyLoss` on logits)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return T.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return T.log_softmax(x, self.dim)


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Identity in eval mode. Masks come from the generator of :func:`manual_seed`.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _Args(self).number("p", p, lambda v: 0 <= v <= 1, "in [0, 1]")

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, init.get_rng()) if self.training else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(Module):
    _ndims: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
    ) -> None:
        super().__init__()
        check = _Args(self)
        self.num_features = num_features = check.int("num_features", num_features, 1, None)
        # eps > 0: with eps <= 0 a constant channel divides by sqrt(<= 0) and gives NaN.
        self.eps = check.number("eps", eps, lambda v: 0 < v < math.inf, "finite and > 0")
        self.momentum = (
            None
            if momentum is None
            else check.number("momentum", momentum, math.isfinite, "a finite number or None")
        )
        self.affine = affine = check.bool("affine", affine)
        dtype = T.get_default_dtype()
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x: Tensor) -> Tensor:
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
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        )


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) per channel, as ``torch.nn.BatchNorm2d``.

    Training: batch mean and biased variance; the running statistics are
    updated with momentum and the unbiased variance. Eval: running statistics.
    """

    _ndims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) per channel."""

    _ndims = (2, 3)
