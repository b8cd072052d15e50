"""Pooling with indices, adaptive pooling, unpooling and padding on :class:`fastconv.Tensor`.

The adaptive pools run the kernels of the input's dtype
(:func:`fastconv.functional.adaptive_avg_pool2d` for float32, the reference
for float64); max unpooling and padding are NumPy gathers and scatters on
either dtype. Indices (of max pooling, for :func:`max_unpool2d`) are NumPy
int64 arrays of flat positions ``h * W + w`` in each (n, c) plane, as
PyTorch's; tensors hold floats only. Shapes: N batch, C channels, H, W input
size, P, Q output size.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _kernels as kern
from ._kernels import _kernel, dtype_of, kernels_for
from ._ref_adaptive import AdaptiveSize
from ._ref_shapes import _pair
from .profiler import timed
from .tensor import Tensor, _make

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "max_pool2d_with_indices",
    "max_unpool2d",
    "pad",
]

_adaptive_avg = _kernel("adaptive_avg_pool2d", "adaptive_avg_pool2d.forward")
_adaptive_avg_backward = _kernel("adaptive_avg_pool2d_backward", "adaptive_avg_pool2d.backward")
_adaptive_max = _kernel("adaptive_max_pool2d", "adaptive_max_pool2d.forward")


def _batched(op: str, x: Tensor) -> tuple[Tensor, bool]:
    """x as (N, C, H, W): a (C, H, W) input gets a batch of one (``unbatched`` True)."""
    if x.ndim == 3:
        return x.reshape(1, *x.shape), True
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got {x.shape}")
    return x, False


def _unbatched(y: Tensor, unbatched: bool) -> Tensor:
    return y.reshape(*y.shape[1:]) if unbatched else y


def adaptive_avg_pool2d(input: Tensor, output_size: AdaptiveSize) -> Tensor:
    """Differentiable adaptive average pooling (``torch.nn.functional.adaptive_avg_pool2d``)."""
    x, unbatched = _batched("adaptive_avg_pool2d", input)
    F = kernels_for("adaptive_avg_pool2d", ("input", x))
    y = _adaptive_avg(F, x.data, output_size)
    in_shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        return (_adaptive_avg_backward(F, g, in_shape),)

    return _unbatched(_make(y, (x,), backward, "adaptive_avg_pool2d"), unbatched)


def _with_indices(op: str, x: Tensor, y: np.ndarray, idx: np.ndarray, F: Any) -> Tensor:
    """The pooled tensor whose backward scatters through ``idx`` (max_pool2d's backward)."""
    in_shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        return (kern.max_pool2d_backward(F, g, idx, in_shape),)

    return _make(y, (x,), backward, op)


def adaptive_max_pool2d(
    input: Tensor, output_size: AdaptiveSize, return_indices: bool = False
) -> Tensor | tuple[Tensor, np.ndarray]:
    """Differentiable adaptive max pooling; ``return_indices`` adds the int64 argmax array."""
    x, unbatched = _batched("adaptive_max_pool2d", input)
    F = kernels_for("adaptive_max_pool2d", ("input", x))
    y, idx = _adaptive_max(F, x.data, output_size, True)
    out = _unbatched(_with_indices("adaptive_max_pool2d", x, y, idx, F), unbatched)
    if return_indices:
        return out, (idx[0] if unbatched else idx)
    return out


def max_pool2d_with_indices(
    input: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> tuple[Tensor, np.ndarray]:
    """``max_pool2d(..., return_indices=True)``: the pooled tensor and the int64 argmax array."""
    x, unbatched = _batched("max_pool2d", input)
    F = kernels_for("max_pool2d", ("input", x))
    y, idx = kern.max_pool2d(F, x.data, kernel_size, stride, padding, dilation, ceil_mode, True)
    out = _unbatched(_with_indices("max_pool2d", x, y, idx, F), unbatched)
    return out, (idx[0] if unbatched else idx)


def _unpool_size(
    in_hw: tuple[int, int],
    kernel_size: Any,
    stride: Any,
    padding: Any,
    output_size: Sequence[int] | None,
) -> tuple[int, int]:
    """MaxUnpool2d's output (H, W): the max pool's input size, or ``output_size`` near it."""
    k = _pair(kernel_size, "kernel_size", 1)
    s = k if stride is None else _pair(stride, "stride", 1)
    p = _pair(padding, "padding", 0)
    default = tuple((n - 1) * si - 2 * pi + ki for n, ki, si, pi in zip(in_hw, k, s, p))
    if output_size is None:
        return default  # type: ignore[return-value]
    size = tuple(int(v) for v in output_size)[-2:]
    for d, n, si in zip(default, size, s):
        if not d - si < n < d + si:
            raise ValueError(
                f"max_unpool2d: output_size {tuple(output_size)} must be within a stride of "
                f"the default size {default} (stride {s})"
            )
    return size  # type: ignore[return-value]


@timed("max_unpool2d.forward")
def _unpool(x: np.ndarray, idx: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    N, C = x.shape[:2]
    y = np.zeros((N * C, out_hw[0] * out_hw[1]), dtype=x.dtype)
    np.put_along_axis(y, idx.reshape(N * C, -1), x.reshape(N * C, -1), axis=1)
    return y.reshape(N, C, *out_hw)


@timed("max_unpool2d.backward")
def _unpool_backward(g: np.ndarray, idx: np.ndarray) -> np.ndarray:
    N, C = idx.shape[:2]
    flat = np.take_along_axis(g.reshape(N * C, -1), idx.reshape(N * C, -1), axis=1)
    return flat.reshape(idx.shape)


def max_unpool2d(
    input: Tensor,
    indices: Any,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    output_size: Sequence[int] | None = None,
) -> Tensor:
    """The inverse of max pooling: zeros with ``input`` put at ``indices`` (``F.max_unpool2d``).

    ``indices`` are those of ``max_pool2d(..., return_indices=True)`` (an int64
    array of ``input``'s shape); where two windows chose one position, one of
    the values is kept, as PyTorch's. The gradient of an input element is the
    output gradient at its index.
    """
    x, unbatched = _batched("max_unpool2d", input)
    dtype_of("max_unpool2d", ("input", x))
    idx = np.asarray(indices)
    if idx.dtype.kind not in "iu":
        raise TypeError(
            f"max_unpool2d: indices must be an integer array (max_pool2d's), got {idx.dtype}"
        )
    idx = idx.reshape(x.shape) if unbatched and idx.shape == input.shape else idx
    if idx.shape != x.shape:
        raise ValueError(
            f"max_unpool2d: indices shape {idx.shape} must equal the input shape {input.shape}"
        )
    out_hw = _unpool_size(x.shape[2:], kernel_size, stride, padding, output_size)
    plane = out_hw[0] * out_hw[1]
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= plane):
        raise ValueError(
            f"max_unpool2d: indices must lie in [0, {plane}) for the output size {out_hw}, got "
            f"range [{int(idx.min())}, {int(idx.max())}]"
        )
    y = _unpool(x.data, idx, out_hw)

    def backward(g: np.ndarray) -> tuple:
        return (_unpool_backward(g, idx),)

    return _unbatched(_make(y, (x,), backward, "max_unpool2d"), unbatched)


# --------------------------------------------------------------------------
# Padding of the last two dims (Conv2d's padding_mode)
# --------------------------------------------------------------------------

_SOURCES = {
    "reflect": lambda i, n: np.abs((i + (n - 1)) % (2 * n - 2) - (n - 1)) if n > 1 else 0 * i,
    "replicate": lambda i, n: np.clip(i, 0, n - 1),
    "circular": lambda i, n: i % n,
}


def _selection(n: int, before: int, after: int, mode: str, dtype: np.dtype) -> np.ndarray:
    """(before + n + after, n): row i is one-hot at the input position padded row i copies."""
    src = _SOURCES[mode](np.arange(-before, n + after), n)
    m = np.zeros((n + before + after, n), dtype=dtype)
    m[np.arange(m.shape[0]), src] = 1
    return m


@timed("pad.forward")
def _pad(x: np.ndarray, mh: np.ndarray, mw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(mh @ x @ mw.T)


@timed("pad.backward")
def _pad_backward(g: np.ndarray, mh: np.ndarray, mw: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(mh.T @ g @ mw)


def pad(input: Tensor, pad: Sequence[int], mode: str = "constant", value: float = 0.0) -> Tensor:
    """Pad the last two dims, as ``torch.nn.functional.pad`` with ``pad = (left, right, top, bottom)``.

    ``mode``: ``"constant"`` (``value``), ``"reflect"`` (mirror, edge not
    repeated; each pad smaller than its dim), ``"replicate"`` (edge repeated)
    or ``"circular"`` (wrap around; each pad at most its dim). Only
    non-negative pads. The padded tensor is ``Mh @ x @ Mw.T`` with one-hot
    selection matrices, and its gradient ``Mh.T @ g @ Mw``.
    """
    dtype_of("pad", ("input", input))
    p = tuple(int(v) for v in pad)
    if len(p) == 2:
        p = p + (0, 0)
    if len(p) != 4 or min(p) < 0 or input.ndim < 2:
        raise ValueError(
            f"pad: expected 2 or 4 non-negative pads (left, right, top, bottom) of an input with "
            f">= 2 dims, got {tuple(pad)} for shape {input.shape}"
        )
    left, right, top, bottom = p
    H, W = input.shape[-2:]
    if mode == "constant":
        widths = [(0, 0)] * (input.ndim - 2) + [(top, bottom), (left, right)]
        y = np.pad(input.data, widths, constant_values=value)
        crop = (..., slice(top, top + H), slice(left, left + W))
        return _make(y, (input,), lambda g: (np.ascontiguousarray(g[crop]),), "pad")
    if mode not in _SOURCES:
        raise ValueError(
            f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}"
        )
    limit = {"reflect": (H - 1, W - 1), "circular": (H, W), "replicate": (None, None)}[mode]
    for n, lim, pads in zip((H, W), limit, ((top, bottom), (left, right))):
        if n == 0 or (lim is not None and max(pads) > lim):
            raise ValueError(
                f"pad: {mode} padding {pads} of a dim of size {n} must be "
                f"{'smaller than' if mode == 'reflect' else 'at most'} the dim (input shape "
                f"{input.shape})"
            )
    mh = _selection(H, top, bottom, mode, input.dtype)
    mw = _selection(W, left, right, mode, input.dtype)
    y = _pad(input.data, mh, mw)
    return _make(y, (input,), lambda g: (_pad_backward(g, mh, mw),), "pad")
