"""Transposed convolution on :class:`fastconv.Tensor`, from the convolution's kernels.

``conv_transpose2d(x, w)`` is the input gradient of ``conv2d(., w)`` run
forward (:func:`fastconv.functional.conv_transpose2d`), so its gradients are
the convolution's other passes: the input gradient is ``conv2d(g, w)`` (the
forward convolution) and the weight gradient is ``conv2d_backward``'s weight
gradient with ``x`` as the output gradient and ``g`` as the input. float32
runs on fastconv's kernels, float64 on the reference.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels as kern
from ._kernels import _kernel, kernels_for
from ._ref_shapes import conv2d_output_hw
from .tensor import Tensor, _make

__all__ = ["conv_transpose2d"]

_conv_transpose2d = _kernel("conv_transpose2d", "conv_transpose2d.forward")


def conv_transpose2d(
    input: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    output_padding: Any = 0,
    groups: int = 1,
    dilation: Any = 1,
) -> Tensor:
    """Differentiable :func:`fastconv.conv_transpose2d`; x (N, C, H, W), weight (C, K/groups, R, S)."""
    x = input
    F = kernels_for("conv_transpose2d", ("input", x), ("weight", weight), ("bias", bias))
    b = None if bias is None else bias.data
    y = _conv_transpose2d(
        F, x.data, weight.data, b, stride, padding, output_padding, groups, dilation
    )
    conv = (stride, padding, dilation, groups)

    def backward(g: np.ndarray) -> tuple:
        H, W = x.shape[2:]
        gx = gw = gb = None
        if x.requires_grad:
            # conv2d's output is larger than x only where output_padding >= stride: cropped.
            gx = kern.conv2d(F, g, weight.data, None, *conv)[:, :, :H, :W]
            gx = np.ascontiguousarray(gx)
        if weight.requires_grad:
            # x is the convolution's output gradient, zero-extended to its output size.
            P, Q = conv2d_output_hw(g.shape[2:], weight.shape[2:], stride, padding, dilation)
            xd = (
                x.data
                if (P, Q) == (H, W)
                else np.pad(x.data, ((0, 0), (0, 0), (0, P - H), (0, Q - W)))
            )
            gw = kern.conv2d_backward(
                F, xd, g, weight.data, *conv, output_mask=(False, True, False)
            )[1]
        if bias is not None and bias.requires_grad:
            gb = g.sum(axis=(0, 2, 3))
        return (gx, gw) if bias is None else (gx, gw, gb)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _make(y, parents, backward, "conv_transpose2d")
