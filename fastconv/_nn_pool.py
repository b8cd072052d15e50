"""The pooling layers: max, average, adaptive average and max, and max unpooling.

Each checks its constructor arguments (``fastconv._nn_args``) and its
``forward`` is one call of an op of :mod:`fastconv.ops` or
``fastconv._ops_pool``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Union

import numpy as np

from . import ops
from ._nn_args import _Args
from ._nn_module import Module
from ._ops_pool import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    max_pool2d_with_indices,
    max_unpool2d,
)
from .tensor import Tensor

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "MaxPool2d",
    "MaxUnpool2d",
]

IntPair = Union[int, tuple[int, int]]


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
    """2-D max pooling; the backward routes gradients through the saved argmax.

    ``return_indices=True``: ``forward`` returns ``(output, indices)``, the
    indices an int64 NumPy array for :class:`MaxUnpool2d`.
    """

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__(kernel_size, stride, padding, dilation)
        check = _Args(self)
        self.dilation, self.ceil_mode = dilation, check.bool("ceil_mode", ceil_mode)
        self.return_indices = check.bool("return_indices", return_indices)

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, np.ndarray]:
        """The pooled tensor; with ``return_indices``, also the int64 argmax array."""
        args = (self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        if self.return_indices:
            return max_pool2d_with_indices(input, *args)
        return ops.max_pool2d(input, *args)


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

    def forward(self, input: Tensor) -> Tensor:
        return ops.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class _AdaptivePool2d(Module):
    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = _Args(self).adaptive_size(output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptivePool2d):
    """Average pooling to a fixed output size (``output_size``; 1: global average pooling).

    ``output_size`` is an int or a pair whose None entries keep the input's size.
    """

    def forward(self, input: Tensor) -> Tensor:
        return adaptive_avg_pool2d(input, self.output_size)


class AdaptiveMaxPool2d(_AdaptivePool2d):
    """Max pooling to a fixed output size; ``return_indices`` also returns the int64 argmax."""

    def __init__(self, output_size: Any, return_indices: bool = False) -> None:
        super().__init__(output_size)
        self.return_indices = _Args(self).bool("return_indices", return_indices)

    def forward(self, input: Tensor) -> Tensor | tuple[Tensor, np.ndarray]:
        return adaptive_max_pool2d(input, self.output_size, self.return_indices)


class MaxUnpool2d(Module):
    """The partial inverse of :class:`MaxPool2d`: each value put back at its argmax, zeros elsewhere.

    ``forward(input, indices, output_size=None)`` takes the indices of
    ``MaxPool2d(..., return_indices=True)``; ``output_size`` picks the size
    when several input sizes pool to the same one.
    """

    def __init__(
        self, kernel_size: IntPair, stride: IntPair | None = None, padding: IntPair = 0
    ) -> None:
        super().__init__()
        check = _Args(self)
        self.kernel_size = check.pair("kernel_size", kernel_size, 1)
        self.stride = self.kernel_size if stride is None else check.pair("stride", stride, 1)
        self.padding = check.pair("padding", padding, 0)

    def forward(
        self, input: Tensor, indices: np.ndarray, output_size: Sequence[int] | None = None
    ) -> Tensor:
        return max_unpool2d(
            input, indices, self.kernel_size, self.stride, self.padding, output_size
        )

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
