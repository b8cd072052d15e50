"""The convolution layers: :class:`Conv2d` and :class:`ConvTranspose2d`.

Each checks its constructor arguments (``fastconv._nn_args``), creates its
parameters in the default dtype, initialised as PyTorch's
(``kaiming_uniform_(a=sqrt(5))``, the bias from U(-1/sqrt(fan_in),
1/sqrt(fan_in))), and its ``forward`` calls one op of :mod:`fastconv.ops`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Union

import numpy as np

from . import _core, ops
from . import _nn_init as init
from . import tensor as T
from ._nn_args import _Args
from ._nn_module import Module, Parameter
from ._ops_conv import conv_transpose2d
from ._ops_pool import pad
from ._ref_shapes import conv_transpose2d_output_hw, resolve_conv_padding
from .tensor import Tensor

__all__ = ["Conv2d", "ConvTranspose2d"]

IntPair = Union[int, tuple[int, int]]

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    """What both convolutions share: channels, groups, bias, the weight's init and repr."""

    def _geometry(
        self, check: _Args, in_channels: int, out_channels: int, kernel_size: IntPair,
        stride: IntPair, dilation: IntPair, groups: int,
    ) -> None:  # fmt: skip
        """Check and set the channels, kernel size, stride, dilation and groups."""
        self.in_channels = check.int("in_channels", in_channels, 1)
        self.out_channels = check.int("out_channels", out_channels, 1)
        self.kernel_size = check.pair("kernel_size", kernel_size, 1)
        self.stride = check.pair("stride", stride, 1)
        self.dilation = check.pair("dilation", dilation, 1)
        self.groups = check.groups(groups, self.in_channels, self.out_channels)

    def _init_params(self, shape: tuple, bias: bool, check: _Args) -> None:
        bias = check.bool("bias", bias)
        dtype = T.get_default_dtype()
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(self.out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._fans(self.weight.shape)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if getattr(self, "output_padding", (0, 0)) != (0, 0):
            s += f", output_padding={self.output_padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution on fastconv's kernels; weight (out, in/groups, kh, kw).

    ``padding`` takes an int, a pair, ``"valid"`` or ``"same"``;
    ``padding_mode`` is ``"zeros"`` or, as PyTorch's, ``"reflect"``,
    ``"replicate"`` or ``"circular"`` (the input is padded first, then
    convolved without padding). ``algo`` is passed to
    :func:`fastconv.conv2d` (``"auto"``, ``"direct"``, ``"im2col"``, ``"implicit"``).
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
        padding_mode: str = "zeros",
        *,
        algo: str = "auto",
    ) -> None:
        super().__init__()
        check = _Args(self)
        self._geometry(check, in_channels, out_channels, kernel_size, stride, dilation, groups)
        self.padding: tuple[int, int] | str = check.conv_padding(padding, self.stride)
        self.padding_mode = check.choice("padding_mode", padding_mode, PADDING_MODES)
        self.algo = check.choice("algo", algo, tuple(_core.conv_algos()))
        shape = (self.out_channels, self.in_channels // self.groups, *self.kernel_size)
        self._init_params(shape, bias, check)

    def _padded(self, x: Tensor) -> tuple[Tensor, tuple[int, int] | str]:
        """The input and the convolution's padding: with a ``padding_mode``, x padded and 0."""
        if self.padding_mode == "zeros":
            return x, self.padding
        t, b, left, r = resolve_conv_padding(
            self.padding, x.shape[-2:], self.kernel_size, self.stride, self.dilation
        )
        return pad(x, (left, r, t, b), self.padding_mode), (0, 0)

    def forward_relu_max_pool(self, input: Tensor, pool: Module) -> Tensor:
        """``pool(relu(self(input)))`` as one op (see :class:`Sequential`)."""
        x, padding = self._padded(input)
        return ops.conv2d_relu_max_pool2d(
            x,
            self.weight,
            self.bias,
            (self.stride, padding, self.dilation, self.groups, self.algo),
            (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode),
        )

    def forward(self, input: Tensor, activation: str | None = None) -> Tensor:
        """The convolution; ``activation="relu"`` fuses a following ReLU (see :class:`Sequential`)."""
        x, padding = self._padded(input)
        return ops.conv2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            padding,
            self.dilation,
            self.groups,
            self.algo,
            activation,
        )


class ConvTranspose2d(_ConvNd):
    """2-D transposed convolution (the input gradient of a convolution), as PyTorch's.

    weight (in, out/groups, kh, kw). Output size ``(H - 1) * stride - 2 *
    padding + dilation * (kh - 1) + output_padding + 1``; ``forward(input,
    output_size)`` may instead name the size (within a stride of the
    smallest), which sets the output padding. Only ``padding_mode="zeros"``,
    as PyTorch's.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        output_padding: IntPair = 0,
        groups: int = 1,
        bias: bool = True,
        dilation: IntPair = 1,
        padding_mode: str = "zeros",
    ) -> None:
        super().__init__()
        check = _Args(self)
        self._geometry(check, in_channels, out_channels, kernel_size, stride, dilation, groups)
        self.padding = check.pair("padding", padding, 0)
        self.output_padding = check.pair("output_padding", output_padding, 0)
        if check.choice("padding_mode", padding_mode, PADDING_MODES) != "zeros":
            raise ValueError(
                f'ConvTranspose2d: only "zeros" padding_mode is supported, got {padding_mode!r}'
            )
        self.padding_mode = padding_mode
        for o, s, d in zip(self.output_padding, self.stride, self.dilation):
            if o >= s and o >= d:
                raise ValueError(
                    f"ConvTranspose2d: output_padding {self.output_padding} must be smaller "
                    f"than either stride {self.stride} or dilation {self.dilation}"
                )
        shape = (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        self._init_params(shape, bias, check)

    def _output_padding(self, in_hw: Sequence[int], output_size: Sequence[int] | None) -> tuple:
        if output_size is None:
            return self.output_padding
        size = tuple(int(v) for v in output_size)
        if len(size) not in (2, 4):
            raise ValueError(
                f"ConvTranspose2d: output_size must have 2 or 4 entries, got {output_size!r}"
            )
        size = size[-2:]
        low = conv_transpose2d_output_hw(
            in_hw, self.kernel_size, self.stride, self.padding, 0, self.dilation
        )
        for n, lo, s in zip(size, low, self.stride):
            if not lo <= n < lo + s:
                raise ValueError(
                    f"ConvTranspose2d: requested an output size of {size}, but valid sizes "
                    f"range from {low} to {tuple(lo + s - 1 for lo, s in zip(low, self.stride))} "
                    f"(for an input of {tuple(in_hw)})"
                )
        return (size[0] - low[0], size[1] - low[1])

    def forward(self, input: Tensor, output_size: Sequence[int] | None = None) -> Tensor:
        out_pad = self._output_padding(input.shape[-2:], output_size)
        return conv_transpose2d(
            input,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            out_pad,
            self.groups,
            self.dilation,
        )
