"""Array helpers of the reference ops: dtype and rank checks, window views."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ._ref_shapes import _is_int


def _float_array(a: object, name: str, ndim: int | None, layout: str) -> np.ndarray:
    """``np.asarray`` without dtype change; checks for a float dtype and the rank
    (``ndim=None``: at least 1-D)."""
    arr = np.asarray(a)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype (float32 or float64), got {arr.dtype}")
    if ndim is None and arr.ndim == 0:
        raise ValueError(f"{name} must be at least 1-D {layout}, got a 0-d array")
    if ndim is not None and arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}-D {layout}, got shape {arr.shape}")
    return arr


def _same_dtype(reference: np.ndarray, other: np.ndarray, names: str) -> None:
    if other.dtype != reference.dtype:
        raise TypeError(
            f"{names} must have the same dtype, got {reference.dtype} and {other.dtype}"
        )


def _input_shape(input_shape: Sequence[int]) -> tuple[int, int, int, int]:
    shape = tuple(input_shape)
    if len(shape) != 4 or not all(_is_int(v) and v >= 0 for v in shape):
        raise ValueError(
            f"input_shape must be 4 non-negative ints (N, C, H, W), got {input_shape!r}"
        )
    return tuple(int(v) for v in shape)  # type: ignore[return-value]


def _windows(
    xp: np.ndarray,
    kernel_hw: tuple[int, int],
    stride_hw: tuple[int, int],
    dilation_hw: tuple[int, int],
    out_hw: tuple[int, int],
) -> np.ndarray:
    """Read-only view (N, C, P, Q, R, S) of the windows of a padded input.

    ``windows[n, c, p, q, r, s] == xp[n, c, p*sh + r*dh, q*sw + s*dw]``.
    No data is copied.
    """
    (R, S), (sh, sw), (dh, dw), (P, Q) = kernel_hw, stride_hw, dilation_hw, out_hw
    span = (dh * (R - 1) + 1, dw * (S - 1) + 1)
    # (N, C, Hp - span_h + 1, Wp - span_w + 1, span_h, span_w)
    view = sliding_window_view(xp, span, axis=(2, 3))
    return view[:, :, : (P - 1) * sh + 1 : sh, : (Q - 1) * sw + 1 : sw, ::dh, ::dw]


def _offset_slices(
    r: int,
    s: int,
    stride_hw: tuple[int, int],
    dilation_hw: tuple[int, int],
    out_hw: tuple[int, int],
) -> tuple[slice, slice]:
    """Slices of a padded (.., Hp, Wp) buffer hit by kernel offset (r, s) of every window.

    ``buf[..., hs, ws]`` has shape (.., P, Q) and element (p, q) is
    ``buf[..., p*sh + r*dh, q*sw + s*dw]`` (the writable twin of
    ``_windows(...)[..., r, s]``, used for scatter-adds).
    """
    (sh, sw), (dh, dw), (P, Q) = stride_hw, dilation_hw, out_hw
    hs = slice(r * dh, r * dh + (P - 1) * sh + 1, sh)
    ws = slice(s * dw, s * dw + (Q - 1) * sw + 1, sw)
    return hs, ws


def _pad(x: np.ndarray, pads: tuple[int, int, int, int], value: float = 0.0) -> np.ndarray:
    """Pad an (N, C, H, W) array by ``pads = (top, bottom, left, right)`` with ``value``."""
    top, bottom, left, right = pads
    return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _padded_zeros(
    shape: tuple[int, ...], pads: tuple[int, int, int, int], dtype: np.dtype
) -> np.ndarray:
    """Zeros of an (N, C, H, W) ``shape`` padded by ``pads``: a scatter-add buffer."""
    N, C, H, W = shape
    top, bottom, left, right = pads
    return np.zeros((N, C, H + top + bottom, W + left + right), dtype=dtype)


def _unpad(xp: np.ndarray, pads: tuple[int, int, int, int]) -> np.ndarray:
    """The (N, C, H, W) interior of a buffer padded by ``pads``, as a contiguous array."""
    top, bottom, left, right = pads
    Hp, Wp = xp.shape[2:]
    return np.ascontiguousarray(xp[:, :, top : Hp - bottom, left : Wp - right])
