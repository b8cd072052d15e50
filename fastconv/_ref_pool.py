"""Reference 2-D max and average pooling and their gradients, plain NumPy.

The summation and scatter orders are part of the contract (see
:func:`avg_pool2d`, :func:`avg_pool2d_backward`, :func:`max_pool2d_backward`):
a C++ kernel that follows them equals this module bit for bit.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ref_arrays import (
    _float_array,
    _input_shape,
    _offset_slices,
    _pad,
    _padded_zeros,
    _unpad,
    _windows,
)
from ._ref_conv import conv2d
from ._ref_shapes import ConvPadding, IntPair, PoolShape, _is_int, _pair


def _pool_geometry(
    name: str,
    shape: tuple[int, int, int, int],
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> PoolShape:
    """The validated geometry of a pooling call (``name`` is the op's, for messages),
    with every parameter as a pair."""
    N, C, H, W = shape
    kernel = _pair(kernel_size, "kernel_size", 1)
    # PyTorch reads an empty stride as "not given" too.
    empty = isinstance(stride, (tuple, list)) and len(stride) == 0
    stride_hw = kernel if stride is None or empty else _pair(stride, "stride", 1)
    pad = _pair(padding, "padding", 0)
    dilation_hw = _pair(dilation, "dilation", 1)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {pad} must be at most half the kernel size {kernel}")
    op = name.split("_")[0]  # "max" or "avg"
    geo = PoolShape(name, op, N, C, H, W, kernel, stride_hw, pad, dilation_hw, ceil_mode)
    P, Q = geo.out_hw
    if P <= 0 or Q <= 0:
        raise ValueError(
            f"{name} output size {P}x{Q} is not positive: input shape {shape}, "
            f"kernel_size {kernel}, "
            f"stride {stride_hw}, padding {pad}, dilation {dilation_hw}, ceil_mode={ceil_mode}"
        )
    return geo


def conv2d_max_pool2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: ConvPadding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    activation: str | None = None,
    kernel_size: IntPair = 2,
    pool_stride: IntPair | None = None,
    pool_padding: IntPair = 0,
    pool_dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """:func:`max_pool2d` of :func:`conv2d`: the two calls one after the other."""
    y = conv2d(x, weight, bias, stride, padding, dilation, groups, algo=algo, activation=activation)
    return max_pool2d(y, kernel_size, pool_stride, pool_padding, pool_dilation, ceil_mode,
                      return_indices)  # fmt: skip


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling, NCHW, reproducing PyTorch's CPU kernel exactly.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        float32 or float64.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Implicit padding on each side; at most ``kernel_size // 2``. Padded
        positions are never selected.
    dilation : int or (int, int)
    ceil_mode : bool
        Output size rule of :func:`pool2d_output_size`.
    return_indices : bool
        Also return the argmax positions.

    Returns
    -------
    y : ndarray, shape (N, C, P, Q)
        Same dtype as ``x``.
    indices : ndarray of int64, shape (N, C, P, Q)
        Only if ``return_indices``: flat position ``h*W + w`` of the selected
        element within its (n, c) plane, equal to PyTorch's.

    Raises
    ------
    ValueError
        On a wrong rank, padding > kernel_size // 2 or an output size <= 0.

    Notes
    -----
    Each window is scanned in row-major order over its in-bounds positions,
    starting from ``max = -inf`` and ``index = first in-bounds position``; the
    running maximum is replaced when ``val > max or isnan(val)``. Hence:

    * ties select the *first* maximum in row-major order;
    * NaN wins, and with several NaNs the *last* NaN is reported;
    * an all ``-inf`` window gives ``-inf`` and its first in-bounds index.

    A window with no in-bounds position at all (possible only with dilation
    and padding, e.g. H = 1, kernel 2, dilation 2, padding 1) gives ``-inf``
    and, like PyTorch, the index of its start advanced by whole dilation
    steps, which lies outside the plane (:func:`max_pool2d_backward` rejects
    such indices).

    The scan is vectorised over (n, c, p, q); the loop runs over the kernel
    offsets (r, s) in row-major order.
    """
    x = _float_array(x, "x", 4, "(N, C, H, W)")
    geo = _pool_geometry("max_pool2d", x.shape, kernel_size, stride, padding, dilation, ceil_mode)
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geo.kernel, geo.stride, geo.padding, geo.dilation
    H, W, P, Q = geo.H, geo.W, geo.P, geo.Q

    # -inf padding never beats the running max (and is masked out anyway).
    windows = _windows(_pad(x, geo.pads, -np.inf), geo.kernel, geo.stride, geo.dilation, (P, Q))

    # Input coordinates of each window's first tap, and of its first in-bounds tap
    # (PyTorch's initial index: the start advanced by whole dilation steps).
    h_start = np.arange(P, dtype=np.int64) * sh - ph
    w_start = np.arange(Q, dtype=np.int64) * sw - pw
    h_first = np.where(h_start < 0, h_start + (-h_start + dh - 1) // dh * dh, h_start)
    w_first = np.where(w_start < 0, w_start + (-w_start + dw - 1) // dw * dw, w_start)

    y = np.full((geo.N, geo.C, P, Q), -np.inf, dtype=x.dtype)
    idx = np.empty((geo.N, geo.C, P, Q), dtype=np.int64)
    idx[...] = h_first[:, None] * W + w_first[None, :]
    for r in range(R):
        h = h_start + r * dh  # (P,) input row of this tap
        h_ok = (h >= 0) & (h < H)
        for s in range(S):
            w = w_start + s * dw  # (Q,) input column of this tap
            in_bounds = h_ok[:, None] & ((w >= 0) & (w < W))[None, :]  # (P, Q)
            val = windows[..., r, s]
            take = (val > y) | np.isnan(val)
            take &= in_bounds
            np.copyto(y, val, where=take)
            np.copyto(idx, h[:, None] * W + w[None, :], where=take)
    if return_indices:
        return y, idx
    return y


def _unpool_shape(
    grad_output: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> tuple[int, int, int, int]:
    """(N, C, H, W) of a max-pool backward, after checking that ``indices`` has
    ``grad_output``'s shape, that both match ``input_shape`` in (N, C), and that
    every index lies in ``[0, H*W)`` (``ValueError`` naming the shapes)."""
    N, C, H, W = _input_shape(input_shape)
    if indices.shape != grad_output.shape:
        raise ValueError(
            f"indices shape {indices.shape} differs from grad_output shape {grad_output.shape}"
        )
    if grad_output.shape[:2] != (N, C):
        raise ValueError(
            f"grad_output shape {grad_output.shape} does not match input_shape "
            f"{(N, C, H, W)} in (N, C)"
        )
    plane = H * W
    if indices.size and (int(indices.min()) < 0 or int(indices.max()) >= plane):
        raise ValueError(
            f"indices must lie in [0, H*W) = [0, {plane}) for input_shape {(N, C, H, W)}, "
            f"got range [{int(indices.min())}, {int(indices.max())}]"
        )
    return N, C, H, W


def max_pool2d_backward(
    grad_output: np.ndarray,
    indices: np.ndarray,
    input_shape: Sequence[int],
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` w.r.t. its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, P, Q)
        float32 or float64.
    indices : ndarray of ints, shape (N, C, P, Q)
        As returned by ``max_pool2d(..., return_indices=True)``: flat positions
        in ``[0, H*W)`` within each (n, c) plane.
    input_shape : sequence of 4 ints
        (N, C, H, W) of the pooling input.

    Returns
    -------
    ndarray, shape input_shape
        Zeros, then for every output element in row-major (n, c, p, q) order
        ``grad_input[n, c].flat[indices[n, c, p, q]] += grad_output[n, c, p, q]``.
        This order (that of PyTorch's CPU kernel) fixes the float result when
        several windows select the same element. Same dtype as ``grad_output``.

    Raises
    ------
    ValueError
        If the shapes disagree or an index is outside ``[0, H*W)``.
    TypeError
        If ``indices`` is not an integer array or ``grad_output`` not float.
    """
    grad_output = _float_array(grad_output, "grad_output", 4, "(N, C, P, Q)")
    indices = np.asarray(indices)
    if indices.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {indices.dtype}")
    N, C, H, W = _unpool_shape(grad_output, indices, input_shape)
    plane = H * W
    grad_input = np.zeros((N * C, plane), dtype=grad_output.dtype)
    plane_offsets = np.arange(N * C, dtype=np.int64)[:, None] * plane
    pq = grad_output.shape[2] * grad_output.shape[3]
    flat = (indices.reshape(N * C, pq).astype(np.int64) + plane_offsets).ravel()
    # np.add.at is unbuffered and applies the additions in order: row-major (n, c, p, q).
    np.add.at(grad_input.reshape(-1), flat, grad_output.reshape(-1))
    return grad_input.reshape(N, C, H, W)


def _avg_pool_divisors(
    geo: PoolShape,
    count_include_pad: bool,
    divisor_override: int | None,
    dtype: np.dtype,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-window divisor (P, Q) in ``dtype`` and the mask (P, Q) of empty windows.

    For a window starting at ``h0 = p*stride - pad``: ``hend = min(h0 + k, H + pad)``;
    ``pool_size = (hend - h0) * (wend - w0)`` is taken before clipping to the
    input, the clipped extent afterwards (PyTorch's rule).
    """

    def extent(n: int, k: int, stride: int, pad: int, out: int) -> tuple[np.ndarray, np.ndarray]:
        start = np.arange(out, dtype=np.int64) * stride - pad
        end = np.minimum(start + k, n + pad)
        with_pad = end - start
        clipped = np.minimum(end, n) - np.maximum(start, 0)
        return with_pad, clipped

    (R, S), (sh, sw), (ph, pw) = geo.kernel, geo.stride, geo.padding
    h_pad, h_in = extent(geo.H, R, sh, ph, geo.P)
    w_pad, w_in = extent(geo.W, S, sw, pw, geo.Q)
    empty = (h_in <= 0)[:, None] | (w_in <= 0)[None, :]
    if divisor_override is not None:
        divisor = np.full((geo.P, geo.Q), divisor_override, dtype=np.int64)
    elif count_include_pad:
        divisor = h_pad[:, None] * w_pad[None, :]
    else:
        divisor = h_in[:, None] * w_in[None, :]
    divisor = np.where(empty, 1, divisor)
    return divisor.astype(dtype), empty


def _check_divisor_override(divisor_override: int | None) -> None:
    if divisor_override is not None and (not _is_int(divisor_override) or divisor_override == 0):
        raise ValueError(
            f"divisor_override must be a nonzero int or None, got {divisor_override!r}"
        )


def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling, NCHW, with PyTorch's rules and a fixed summation order.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        float32 or float64.
    kernel_size : int or (int, int)
    stride : int or (int, int), optional
        Defaults to ``kernel_size``.
    padding : int or (int, int)
        Zero padding on each side, at most ``kernel_size // 2``.
    ceil_mode : bool
        Output size rule of :func:`pool2d_output_size` (dilation 1).
    count_include_pad : bool
        Divide by the window size including padding (but excluding the
        ceil_mode overhang past ``H + pad``), else by the number of input
        elements in the window.
    divisor_override : int, optional
        Nonzero divisor used for every window instead.

    Returns
    -------
    ndarray, shape (N, C, P, Q)
        Same dtype as ``x``.

    Raises
    ------
    ValueError
        On a wrong rank, padding > kernel_size // 2, an output size <= 0 or a
        zero/non-int ``divisor_override``.

    Notes
    -----
    Bit-exact contract: the window sum is accumulated in the input dtype,
    starting from +0.0, over the window elements in row-major (r, s) order
    (padding contributes +0.0, which leaves the sum unchanged), followed by a
    single division by the divisor converted to the input dtype. A C++ kernel
    doing the same produces identical float32 results. A window with no input
    element (impossible under the padding rules) would give 0.
    """
    x = _float_array(x, "x", 4, "(N, C, H, W)")
    _check_divisor_override(divisor_override)
    geo = _pool_geometry("avg_pool2d", x.shape, kernel_size, stride, padding, 1, ceil_mode)
    (R, S), P, Q = geo.kernel, geo.P, geo.Q
    windows = _windows(_pad(x, geo.pads), geo.kernel, geo.stride, geo.dilation, (P, Q))

    acc = np.zeros((geo.N, geo.C, P, Q), dtype=x.dtype)
    for r in range(R):
        for s in range(S):
            acc += windows[..., r, s]
    divisor, empty = _avg_pool_divisors(geo, count_include_pad, divisor_override, x.dtype)
    y = acc / divisor
    y[..., empty] = 0
    return y


def avg_pool2d_backward(
    grad_output: np.ndarray,
    input_shape: Sequence[int],
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """Gradient of :func:`avg_pool2d` w.r.t. its input.

    Parameters
    ----------
    grad_output : ndarray, shape (N, C, P, Q)
        float32 or float64.
    input_shape : sequence of 4 ints
        (N, C, H, W) of the pooling input.
    kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
        As in :func:`avg_pool2d`.

    Returns
    -------
    ndarray, shape input_shape
        Same dtype as ``grad_output``. Each output gradient is divided by its
        window's divisor (``g = grad_output / divisor`` in the input dtype) and
        added to every in-bounds position of its window.

    Raises
    ------
    ValueError
        As :func:`avg_pool2d`, and if ``grad_output`` does not have the shape
        (N, C, P, Q) of the forward output.

    Notes
    -----
    Bit-exact contract: for each input element, the contributions ``g[p, q]``
    of the windows containing it are added to +0.0 in ascending row-major
    (p, q) order, the order of a kernel that loops over the windows and
    scatters ``dx[window] += g[p, q]``.
    """
    grad_output = _float_array(grad_output, "grad_output", 4, "(N, C, P, Q)")
    _check_divisor_override(divisor_override)
    shape = _input_shape(input_shape)
    geo = _pool_geometry("avg_pool2d_backward", shape, kernel_size, stride, padding, 1, ceil_mode)
    (R, S), P, Q = geo.kernel, geo.P, geo.Q
    if grad_output.shape != (geo.N, geo.C, P, Q):
        raise ValueError(
            f"grad_output must have shape {(geo.N, geo.C, P, Q)} "
            f"(the avg_pool2d output for input_shape "
            f"{shape}), got {grad_output.shape}"
        )

    divisor, empty = _avg_pool_divisors(geo, count_include_pad, divisor_override, grad_output.dtype)
    g = grad_output / divisor
    g[..., empty] = 0
    dxp = _padded_zeros(shape, geo.pads, grad_output.dtype)
    # Offsets are visited in REVERSED row-major order. A fixed (padded) input
    # position i is reached by offset r from window p = (i - r) / stride, so a
    # decreasing r means an increasing p (and likewise s -> q): every input
    # element thus receives its contributions in ascending (p, q) order, the
    # order of the C++ kernel, which loops over windows (p, q) in row-major order.
    for r in reversed(range(R)):
        for s in reversed(range(S)):
            hs, ws = _offset_slices(r, s, geo.stride, (1, 1), (P, Q))
            dxp[:, :, hs, ws] += g
    return _unpad(dxp, geo.pads)
