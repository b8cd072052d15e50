"""Reference adaptive average and max pooling, plain NumPy (see :mod:`fastconv.reference`).

Output row ``p`` of ``P`` pools input rows ``floor(p*H/P)`` to
``ceil((p+1)*H/P)`` (exclusive), and the same for columns: PyTorch's
windows, which may overlap and differ in size by one when P does not divide H.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

import numpy as np

from ._ref_arrays import _float_array, _input_shape
from ._ref_shapes import _is_int

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "adaptive_output_hw",
    "adaptive_windows",
]

#: An adaptive pool's output size: an int, or a pair whose None entries keep the input's size.
AdaptiveSize = Union[int, None, Sequence[Optional[int]]]


def adaptive_output_hw(in_hw: Sequence[int], output_size: AdaptiveSize) -> tuple[int, int]:
    """``(P, Q)`` of an adaptive pool: ``output_size`` with None entries taken from ``in_hw``.

    Raises ``ValueError`` unless it is an int or a pair of ints (or None) that are >= 1
    (0 is allowed for an empty output, as PyTorch's).
    """
    if output_size is None or _is_int(output_size):
        items = (output_size, output_size)
    elif isinstance(output_size, (tuple, list)) and len(output_size) == 2:
        items = tuple(output_size)
    else:
        raise ValueError(
            f"adaptive pool: output_size must be an int or a pair of ints or None, "
            f"got {output_size!r}"
        )
    out = []
    for n, v in zip(in_hw, items):
        if v is None:
            v = n
        if not _is_int(v) or v < 0:
            raise ValueError(
                f"adaptive pool: output_size entries must be ints >= 0 or None, got {output_size!r}"
            )
        out.append(int(v))
    return out[0], out[1]


def adaptive_windows(n: int, p: int) -> list[tuple[int, int]]:
    """The ``[start, end)`` of each of the ``p`` windows over ``n`` positions (PyTorch's)."""
    return [((i * n) // p, -((-(i + 1) * n) // p)) for i in range(p)]


def _averaging(n: int, p: int, dtype: np.dtype) -> np.ndarray:
    """(p, n): row i averages window i (1/size on it, 0 elsewhere)."""
    a = np.zeros((p, n), dtype=dtype)
    for i, (s, e) in enumerate(adaptive_windows(n, p)):
        a[i, s:e] = 1.0 / (e - s)
    return a


def _checked(x: np.ndarray, output_size: AdaptiveSize) -> tuple[np.ndarray, tuple[int, int]]:
    x = _float_array(x, "x", 4, "(N, C, H, W)")
    P, Q = adaptive_output_hw(x.shape[2:], output_size)
    if (P or Q) and (x.shape[2] == 0 or x.shape[3] == 0):
        raise ValueError(f"adaptive pool: input has an empty plane, shape {x.shape}")
    return x, (P, Q)


def adaptive_avg_pool2d(x: np.ndarray, output_size: AdaptiveSize) -> np.ndarray:
    """Adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    x (N, C, H, W) -> (N, C, P, Q); each output is the mean of its window.
    Computed as ``Ah @ x @ Aw.T`` with the averaging matrices of the rows and
    columns (a window's mean is the mean of its rows' column means).
    """
    x, (P, Q) = _checked(x, output_size)
    H, W = x.shape[2:]
    return _averaging(H, P, x.dtype) @ x @ _averaging(W, Q, x.dtype).T


def adaptive_avg_pool2d_backward(grad_output: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d`: ``Ah.T @ grad_output @ Aw``, shape ``input_shape``."""
    grad_output = _float_array(grad_output, "grad_output", 4, "(N, C, P, Q)")
    N, C, H, W = _input_shape(input_shape)
    P, Q = grad_output.shape[2:]
    if grad_output.shape[:2] != (N, C):
        raise ValueError(
            f"grad_output shape {grad_output.shape} does not match input_shape {(N, C, H, W)}"
        )
    dt = grad_output.dtype
    return np.ascontiguousarray(_averaging(H, P, dt).T @ grad_output @ _averaging(W, Q, dt))


def adaptive_max_pool2d(
    x: np.ndarray, output_size: AdaptiveSize, return_indices: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool2d``.

    Indices are flat positions ``h * W + w`` in each (n, c) plane (int64),
    PyTorch's: the first maximum in row-major window order, the last NaN if
    the window has one. Their gradient is :func:`max_pool2d_backward`'s.
    """
    x, (P, Q) = _checked(x, output_size)
    N, C, H, W = x.shape
    y = np.empty((N, C, P, Q), dtype=x.dtype)
    idx = np.empty((N, C, P, Q), dtype=np.int64)
    for p, (h0, h1) in enumerate(adaptive_windows(H, P)):
        for q, (w0, w1) in enumerate(adaptive_windows(W, Q)):
            win = x[:, :, h0:h1, w0:w1].reshape(N, C, (h1 - h0) * (w1 - w0))
            first = np.argmax(win, axis=2)  # NaN counts as the maximum; the first one
            nan = np.isnan(win)
            last_nan = win.shape[2] - 1 - np.argmax(nan[:, :, ::-1], axis=2)
            local = np.where(nan.any(axis=2), last_nan, first)
            y[:, :, p, q] = np.take_along_axis(win, local[..., None], axis=2)[..., 0]
            idx[:, :, p, q] = (h0 + local // (w1 - w0)) * W + w0 + local % (w1 - w0)
    return (y, idx) if return_indices else y
