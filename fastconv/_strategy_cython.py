"""The Cython baseline strategy (``fastconv.strategies.cython``), a contender in ``fastconv bench``.

The loops are in ``fastconv/_cython_conv.pyx`` (typed memoryviews, float32,
NCHW, ``prange`` over the batch; see its header). This module is their thin
Python front: the signatures and semantics of :mod:`fastconv.functional`
(without ``algo`` and ``activation``), the reference's checks and geometry
(``_conv_geometry``, ``_pool_geometry``, so errors read like the
reference's), float32 only (``TypeError`` otherwise, no silent casts), the
outputs allocated here, and fastconv's thread count
(:func:`fastconv.set_num_threads`) passed to ``prange``. Results are bitwise
identical for any thread count.

When the compiled module is missing (built without Cython), importing this
module still works: :data:`IMPORT_ERROR` says why, and every op raises
``ImportError`` with that text.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._config import get_num_threads
from ._ref_arrays import _float_array
from ._ref_conv import _conv_geometry
from ._ref_pool import _pool_geometry, _unpool_shape
from ._ref_shapes import ConvPadding, IntPair

try:
    from . import _cython_conv as _ext
except ImportError as err:
    _ext = None
    IMPORT_ERROR: str | None = (
        f"fastconv._cython_conv is not built ({err}); the build skips it when Cython >= 3.0 "
        "is missing: pip install 'cython>=3.0' and rebuild fastconv"
    )
else:
    IMPORT_ERROR = None

__all__ = ["IMPORT_ERROR", "conv2d", "conv2d_backward", "max_pool2d", "max_pool2d_backward"]


def _compiled():
    """The compiled module, or ``ImportError`` saying why it is missing."""
    if _ext is None:
        raise ImportError(IMPORT_ERROR)
    return _ext


def _f32(op: str, a: object, name: str, ndim: int, layout: str) -> np.ndarray:
    """``a`` as a C-contiguous float32 array of rank ``ndim`` (a copy only if not contiguous)."""
    arr = np.asarray(a)
    if arr.dtype != np.float32:
        raise TypeError(
            f"{op}: {name} must have dtype float32, got {arr.dtype} "
            "(no silent casts; use .astype(np.float32))"
        )
    return np.ascontiguousarray(_float_array(arr, name, ndim, layout))


def _conv_args(op: str, x, weight, stride, padding, dilation, groups):
    """Checked x and weight, the geometry, and the loops' geometry arguments."""
    x = _f32(op, x, "x", 4, "(N, C, H, W)")
    weight = _f32(op, weight, "weight", 4, "(K, C/groups, R, S)")
    geo = _conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    top, _, left, _ = geo.pads
    # sh, sw, pad_top, pad_left, dh, dw, G, num_threads: the tail of every conv call
    tail = (*geo.stride, top, left, *geo.dilation, geo.groups, get_num_threads())
    return x, weight, geo, tail


def conv2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: ConvPadding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
) -> np.ndarray:
    """:func:`fastconv.conv2d` by plain Cython loops: x (N,C,H,W), weight (K,C/groups,R,S),
    bias (K,) or None, all float32; returns y (N,K,P,Q)."""
    ext = _compiled()
    x, weight, geo, tail = _conv_args("conv2d", x, weight, stride, padding, dilation, groups)
    if bias is not None:
        bias = _f32("conv2d", bias, "bias", 1, "(K,)")
        if bias.shape != (geo.K,):
            raise ValueError(
                f"bias must have shape ({geo.K},) for weight shape {weight.shape}, got {bias.shape}"
            )
    y = np.empty(geo.y_shape, dtype=np.float32)
    ext.conv2d_forward(y, x, weight, bias, bias is not None, *tail)
    return y


def conv2d_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    stride: IntPair = 1,
    padding: ConvPadding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """:func:`fastconv.conv2d_backward` by plain Cython loops: ``(grad_input,
    grad_weight, grad_bias)``, each None where ``output_mask`` is false."""
    ext = _compiled()
    op = "conv2d_backward"
    x, weight, geo, tail = _conv_args(op, x, weight, stride, padding, dilation, groups)
    grad_output = _f32(op, grad_output, "grad_output", 4, "(N, K, P, Q)")
    mask = tuple(bool(m) for m in output_mask)
    if len(mask) != 3:
        raise ValueError(f"output_mask must have 3 entries, got {output_mask!r}")
    if grad_output.shape != geo.y_shape:
        raise ValueError(
            f"grad_output must have shape {geo.y_shape} (the conv2d output for x shape "
            f"{x.shape} and weight shape {weight.shape}), got {grad_output.shape}"
        )
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        grad_input = np.empty(x.shape, dtype=np.float32)
        ext.conv2d_backward_input(grad_input, grad_output, weight, *tail)
    if mask[1] or mask[2]:
        grad_weight = np.empty(weight.shape, dtype=np.float32) if mask[1] else None
        grad_bias = np.empty(geo.K, dtype=np.float32) if mask[2] else None
        ext.conv2d_backward_weight(
            grad_weight, grad_bias, mask[1], mask[2], grad_output, x, geo.R, geo.S, *tail
        )
    return grad_input, grad_weight, grad_bias


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:func:`fastconv.max_pool2d` by plain Cython loops: y (N,C,P,Q) float32, and
    with ``return_indices`` the int64 flat positions ``h*W + w`` (PyTorch's)."""
    ext = _compiled()
    x = _f32("max_pool2d", x, "x", 4, "(N, C, H, W)")
    geo = _pool_geometry("max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    y = np.empty(geo.y_shape, dtype=np.float32)
    indices = np.empty(geo.y_shape, dtype=np.int64)
    ext.max_pool2d_forward(
        y,
        indices,
        x,
        *geo.kernel,
        *geo.stride,
        *geo.padding,
        *geo.dilation,
        get_num_threads(),
    )
    return (y, indices) if return_indices else y


def max_pool2d_backward(
    grad_output: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """:func:`fastconv.max_pool2d_backward` by plain Cython loops: grad_output
    (N,C,P,Q) float32, indices (N,C,P,Q) int64 in ``[0, H*W)``; returns (N,C,H,W)."""
    ext = _compiled()
    op = "max_pool2d_backward"
    grad_output = _f32(op, grad_output, "grad_output", 4, "(N, C, P, Q)")
    indices = np.asarray(indices)
    if indices.dtype != np.int64:
        raise TypeError(
            f"{op}: indices must have dtype int64, got {indices.dtype} "
            "(no silent casts; use .astype(np.int64))"
        )
    N, C, H, W = _unpool_shape(grad_output, indices, input_shape)
    grad_input = np.empty((N, C, H * W), dtype=np.float32)
    PQ = grad_output.shape[2] * grad_output.shape[3]
    ext.max_pool2d_backward(
        grad_input,
        grad_output.reshape(N, C, PQ),
        np.ascontiguousarray(indices).reshape(N, C, PQ),
        get_num_threads(),
    )
    return grad_input.reshape(N, C, H, W)
