"""Reference implementations of the fastconv operators in plain NumPy.

This module is the **test oracle** for fastconv's C++ kernels and the
**benchmark baseline** they are measured against. It aims to be, in this order:

1. correct: it reproduces PyTorch's CPU semantics (``torch.nn.functional``
   and the matching backward ops), including the corner cases spelled out in
   each docstring (``padding="same"``, ``ceil_mode`` windows, max-pool ties and
   NaNs, avg-pool divisors, ...);
2. readable: every function is a short, direct transcription of the maths;
3. reasonably fast: the work is vectorised over batch, channels and pixels
   with NumPy, and convolutions run on BLAS (``numpy.matmul``). Python loops
   only run over the small kernel offsets ``(r, s)``.

Conventions
-----------
* Layout is NCHW; convolution weights are ``(K, C // groups, R, S)``.
  Shape letters used in comments: ``N`` batch, ``C`` input channels, ``H, W``
  input size, ``K`` output channels, ``R, S`` kernel size, ``P, Q`` output
  size, ``G`` groups.
* float32 and float64 are supported; results have the dtype of the input
  (there is no silent up-cast and no dtype coercion). Operands of one call must
  share a dtype.
* Convolutions are cross-correlations, as in PyTorch.
* ``stride``, ``padding``, ``dilation`` and ``kernel_size`` take an int or an
  ``(h, w)`` pair.
* The pooling summation / scatter orders are defined precisely (see
  :func:`avg_pool2d`, :func:`avg_pool2d_backward`, :func:`max_pool2d_backward`)
  so that a C++ kernel that follows the same order can equal this module bit
  for bit, also in float32.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_output_size",
    "linear",
    "linear_backward",
    "max_pool2d",
    "max_pool2d_backward",
    "pool2d_output_size",
    "relu",
    "relu_backward",
    "resolve_conv_padding",
]

# Python 3.9 compatible aliases (evaluated at runtime, unlike the annotations).
IntPair = Union[int, tuple[int, int], Sequence[int]]
ConvPadding = Union[int, tuple[int, int], Sequence[int], Literal["same", "valid"]]


# --------------------------------------------------------------------------
# Small helpers: argument parsing, validation, windows
# --------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _pair(value: IntPair, name: str, minimum: int) -> tuple[int, int]:
    """Parse an int or an ``(h, w)`` pair of ints into a tuple of Python ints."""
    if _is_int(value):
        pair = (int(value), int(value))  # type: ignore[arg-type]
    else:
        try:
            items = tuple(value)  # type: ignore[arg-type]
        except TypeError:
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}") from None
        if len(items) != 2 or not all(_is_int(v) for v in items):
            raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
        pair = (int(items[0]), int(items[1]))
    if min(pair) < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value!r}")
    return pair


def _float_array(a: object, name: str, ndim: int, layout: str) -> np.ndarray:
    """``np.asarray`` without dtype change; checks for a float dtype and the rank."""
    arr = np.asarray(a)
    if arr.dtype.kind != "f":
        raise TypeError(f"{name} must have a floating dtype (float32 or float64), got {arr.dtype}")
    if arr.ndim != ndim:
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


# --------------------------------------------------------------------------
# Output sizes and padding
# --------------------------------------------------------------------------


def conv2d_output_size(n: int, k: int, stride: int, pad_total: int, dilation: int) -> int:
    """Output length of a convolution along one dimension.

    Parameters
    ----------
    n : int
        Input length (H or W).
    k : int
        Kernel length (R or S).
    stride, dilation : int
        Stride and dilation along this dimension (>= 1).
    pad_total : int
        Total padding along this dimension (before + after).

    Returns
    -------
    int
        ``floor((n + pad_total - dilation*(k-1) - 1) / stride) + 1``, computed in
        exact integer arithmetic (Python ints, floor division). It may be
        ``<= 0``; callers treat that as an error.
    """
    n, k, stride, pad_total, dilation = (int(v) for v in (n, k, stride, pad_total, dilation))
    return (n + pad_total - dilation * (k - 1) - 1) // stride + 1


def pool2d_output_size(
    n: int, k: int, stride: int, pad: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a pooling along one dimension (PyTorch's rule).

    Parameters
    ----------
    n : int
        Input length (H or W).
    k : int
        Kernel length.
    stride, dilation : int
        Stride and dilation (>= 1).
    pad : int
        Padding on *each* side.
    ceil_mode : bool
        Round the window count up instead of down.

    Returns
    -------
    int
        ``floor_or_ceil((n + 2*pad - dilation*(k-1) - 1) / stride) + 1``; with
        ``ceil_mode``, one less if the last window would start at or after
        ``n + pad`` (a window may not start inside the right/bottom padding).
        Exact integer arithmetic; the result may be ``<= 0`` (callers raise).
    """
    n, k, stride, pad, dilation = (int(v) for v in (n, k, stride, pad, dilation))
    span = n + 2 * pad - dilation * (k - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1  # ceil division
        if (out - 1) * stride >= n + pad:
            out -= 1
    else:
        out = span // stride + 1
    return out


def resolve_conv_padding(
    padding: ConvPadding,
    in_hw: IntPair,
    kernel_hw: IntPair,
    stride_hw: IntPair,
    dilation_hw: IntPair,
) -> tuple[int, int, int, int]:
    """Turn a conv ``padding`` argument into explicit ``(top, bottom, left, right)``.

    Parameters
    ----------
    padding : int, (int, int), "valid" or "same"
        An int or ``(ph, pw)`` pads ``ph`` rows on top and bottom and ``pw``
        columns left and right. ``"valid"`` means no padding. ``"same"`` makes
        the output size ``ceil(n / stride)`` per dimension: the total padding
        is ``max((out-1)*stride + dilation*(k-1) + 1 - n, 0)``, split as
        ``top = total // 2`` and ``bottom = total - top`` (the extra pixel of
        an odd total goes to the bottom/right, as in Keras, and as in PyTorch,
        which only supports ``"same"`` with stride 1).
    in_hw, kernel_hw, stride_hw, dilation_hw : int or (int, int)
        Input size (H, W), kernel size (R, S), stride and dilation.

    Returns
    -------
    tuple of int
        ``(top, bottom, left, right)``.

    Raises
    ------
    ValueError
        For an unknown padding string or a negative padding.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(
                f"padding must be an int, a pair of ints, 'valid' or 'same'; got {padding!r}"
            )
        sizes = zip(
            _pair(in_hw, "in_hw", 0),
            _pair(kernel_hw, "kernel_hw", 1),
            _pair(stride_hw, "stride", 1),
            _pair(dilation_hw, "dilation", 1),
        )
        pads: list[int] = []
        for n, k, stride, dilation in sizes:
            out = -(-n // stride)  # ceil(n / stride)
            total = max((out - 1) * stride + dilation * (k - 1) + 1 - n, 0)
            pads += [total // 2, total - total // 2]
        return (pads[0], pads[1], pads[2], pads[3])
    ph, pw = _pair(padding, "padding", 0)
    return (ph, ph, pw, pw)


# --------------------------------------------------------------------------
# Convolution
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _ConvGeometry:
    N: int
    C: int
    H: int
    W: int
    K: int
    R: int
    S: int
    G: int  # groups
    P: int
    Q: int
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, bottom, left, right

    @property
    def Cg(self) -> int:  # input channels per group
        return self.C // self.G

    @property
    def Kg(self) -> int:  # output channels per group
        return self.K // self.G

    @property
    def padded_hw(self) -> tuple[int, int]:
        top, bottom, left, right = self.pads
        return self.H + top + bottom, self.W + left + right

    def pad(self, x: np.ndarray) -> np.ndarray:
        """Zero-pad an (N, C, H, W) array to (N, C, Hp, Wp)."""
        top, bottom, left, right = self.pads
        return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)))


def _conv_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntPair,
    padding: ConvPadding,
    dilation: IntPair,
    groups: int,
) -> _ConvGeometry:
    N, C, H, W = x_shape
    K, Cg, R, S = w_shape
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    G = int(groups)
    if C % G != 0 or K % G != 0:
        raise ValueError(
            f"groups={G} must divide both the input channels and the output channels; "
            f"got x shape {x_shape} (C={C}) and weight shape {w_shape} (K={K})"
        )
    if Cg * G != C:
        raise ValueError(
            f"weight shape {w_shape} needs C/groups = {Cg} but x shape {x_shape} "
            f"with groups={G} gives C/groups = {C // G}"
        )
    stride_hw = _pair(stride, "stride", 1)
    dilation_hw = _pair(dilation, "dilation", 1)
    pads = resolve_conv_padding(padding, (H, W), (R, S), stride_hw, dilation_hw)
    P = conv2d_output_size(H, R, stride_hw[0], pads[0] + pads[1], dilation_hw[0])
    Q = conv2d_output_size(W, S, stride_hw[1], pads[2] + pads[3], dilation_hw[1])
    if P <= 0 or Q <= 0:
        raise ValueError(
            f"conv2d output size {P}x{Q} is not positive: x shape {x_shape}, "
            f"weight shape {w_shape}, "
            f"stride {stride_hw}, padding (top, bottom, left, right) {pads}, dilation {dilation_hw}"
        )
    return _ConvGeometry(N, C, H, W, K, R, S, G, P, Q, stride_hw, dilation_hw, pads)


def conv2d(
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
) -> np.ndarray:
    """2-D convolution (cross-correlation), NCHW, with PyTorch semantics.

    ``y[n, k, p, q] = bias[k] + sum_{c, r, s} x_pad[n, g*Cg + c, p*sh + r*dh, q*sw + s*dw]
    * weight[k, c, r, s]`` where ``g = k // (K / groups)`` and ``Cg = C / groups``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
        Input, float32 or float64.
    weight : ndarray, shape (K, C // groups, R, S)
        Filters, same dtype as ``x``.
    bias : ndarray, shape (K,), optional
        Added to every output pixel of channel k. Same dtype as ``x``.
    stride, dilation : int or (int, int)
        Window step and kernel-tap spacing, each >= 1.
    padding : int, (int, int), "valid" or "same"
        Zero padding; see :func:`resolve_conv_padding` for ``"same"``
        (supported for any stride here, unlike PyTorch).
    groups : int
        Channel groups; must divide C and K. ``groups == C`` is depthwise.
    algo : str
        Accepted for API compatibility with the C++ implementation and
        ignored by the reference.
    activation : None or "relu"
        ``"relu"`` returns :func:`relu` of the result (what the fast kernels
        apply as each output is stored).

    Returns
    -------
    ndarray, shape (N, K, P, Q)
        Same dtype as ``x``. ``P = floor((H + pad_top + pad_bottom - dh*(R-1) - 1) / sh) + 1``
        and likewise Q.

    Raises
    ------
    ValueError
        On mismatched ranks, channels, groups or bias length, a bad padding
        string, or an output size <= 0.
    TypeError
        On non-float inputs or inputs of different dtypes.

    Notes
    -----
    Padding contributes ``0 * w`` to the sums exactly like im2col does: an
    inf or NaN in the weights therefore makes windows that touch the padding
    NaN (``0 * inf = nan``).

    Implementation: for each kernel offset (r, s) the shifted input patch
    (N, C, P, Q) is multiplied by ``weight[:, :, r, s]`` with one batched BLAS
    matmul per group, and the R*S partial results are accumulated.
    """
    del algo  # the reference has a single algorithm
    if activation not in (None, "relu"):
        raise ValueError(f"conv2d: activation must be None or 'relu', got {activation!r}")
    x = _float_array(x, "x", 4, "(N, C, H, W)")
    weight = _float_array(weight, "weight", 4, "(K, C/groups, R, S)")
    _same_dtype(x, weight, "x and weight")
    geo = _conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    if bias is not None:
        bias = _float_array(bias, "bias", 1, "(K,)")
        _same_dtype(x, bias, "x and bias")
        if bias.shape != (geo.K,):
            raise ValueError(
                f"bias must have shape ({geo.K},) for weight shape {weight.shape}, got {bias.shape}"
            )

    N, G, Cg, Kg, P, Q = geo.N, geo.G, geo.Cg, geo.Kg, geo.P, geo.Q
    # windows[n, c, p, q, r, s] = x_pad[n, c, p*sh + r*dh, q*sw + s*dw]
    windows = _windows(geo.pad(x), (geo.R, geo.S), geo.stride, geo.dilation, (P, Q))
    w = weight.reshape(G, Kg, Cg, geo.R, geo.S)
    y = np.zeros((N, G, Kg, P, Q), dtype=x.dtype)
    y_mat = y.reshape(N, G, Kg, P * Q)  # view
    for r in range(geo.R):
        for s in range(geo.S):
            patch = windows[..., r, s].reshape(N, G, Cg, P, Q)  # view of the shifted input
            if Cg == 1:
                # e.g. depthwise: the "matmul" is an outer product, and broadcasting
                # is much faster than NumPy's matmul for an inner size of 1.
                y += w[:, :, :, r, s, None] * patch  # (G, Kg, 1, 1) * (N, G, 1, P, Q)
            else:
                cols = patch.reshape(N, G, Cg, P * Q)  # copy
                # (G, Kg, Cg) @ (N, G, Cg, PQ) -> (N, G, Kg, PQ)
                y_mat += np.matmul(w[:, :, :, r, s], cols)
    y = y.reshape(N, geo.K, P, Q)
    if bias is not None:
        y += bias[:, None, None]
    return relu(y) if activation == "relu" else y


def conv2d_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    stride: IntPair = 1,
    padding: ConvPadding = 0,
    dilation: IntPair = 1,
    groups: int = 1,
    *,
    algo: str = "auto",
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`conv2d` (like ``torch.ops.aten.convolution_backward``).

    Parameters
    ----------
    grad_output : ndarray, shape (N, K, P, Q)
        Gradient of the loss w.r.t. the conv output; same dtype as ``x``.
    x : ndarray, shape (N, C, H, W)
        Forward input.
    weight : ndarray, shape (K, C // groups, R, S)
        Forward weights.
    stride, padding, dilation, groups
        As in :func:`conv2d`.
    algo : str
        Accepted and ignored by the reference.
    output_mask : sequence of 3 bools
        Which of ``(grad_input, grad_weight, grad_bias)`` to compute; the
        others are returned as ``None``.

    Returns
    -------
    grad_input : ndarray, shape (N, C, H, W) or None
        Input rows/columns not covered by any window (e.g. the leftovers of a
        stride > 1) get 0.
    grad_weight : ndarray, shape (K, C // groups, R, S) or None
    grad_bias : ndarray, shape (K,) or None
        ``grad_output.sum(axis=(0, 2, 3))``.

    Raises
    ------
    ValueError
        As :func:`conv2d`, and if ``grad_output`` does not have the shape
        (N, K, P, Q) of the forward output.
    TypeError
        On non-float inputs or inputs of different dtypes.

    Notes
    -----
    ``grad_input`` is a col2im: for each kernel offset (r, s),
    ``weight[:, :, r, s].T @ grad_output`` is scatter-added into a zero padded
    buffer at the strided positions that offset reads in the forward pass;
    the padding is then cropped. ``grad_weight[:, :, r, s]`` contracts
    ``grad_output`` with the same shifted input patches over (N, P, Q).
    """
    del algo
    x = _float_array(x, "x", 4, "(N, C, H, W)")
    weight = _float_array(weight, "weight", 4, "(K, C/groups, R, S)")
    grad_output = _float_array(grad_output, "grad_output", 4, "(N, K, P, Q)")
    _same_dtype(x, weight, "x and weight")
    _same_dtype(x, grad_output, "x and grad_output")
    mask = tuple(bool(m) for m in output_mask)
    if len(mask) != 3:
        raise ValueError(f"output_mask must have 3 entries, got {output_mask!r}")
    geo = _conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    N, C, K, G, Cg, Kg, P, Q = geo.N, geo.C, geo.K, geo.G, geo.Cg, geo.Kg, geo.P, geo.Q
    if grad_output.shape != (N, K, P, Q):
        raise ValueError(
            f"grad_output must have shape {(N, K, P, Q)} (the conv2d output for x shape {x.shape} "
            f"and weight shape {weight.shape}), got {grad_output.shape}"
        )

    w = weight.reshape(G, Kg, Cg, geo.R, geo.S)
    gy = grad_output.reshape(N, G, Kg, P * Q)
    grad_input = grad_weight = grad_bias = None

    if mask[0]:
        top, _, left, _ = geo.pads
        dxp = np.zeros((N, C, *geo.padded_hw), dtype=x.dtype)
        for r in range(geo.R):
            for s in range(geo.S):
                hs, ws = _offset_slices(r, s, geo.stride, geo.dilation, (P, Q))
                cols = np.matmul(w[:, :, :, r, s].transpose(0, 2, 1), gy)  # (G,Cg,Kg) @ (N,G,Kg,PQ)
                dxp[:, :, hs, ws] += cols.reshape(N, C, P, Q)
        grad_input = np.ascontiguousarray(dxp[:, :, top : top + geo.H, left : left + geo.W])

    if mask[1]:
        windows = _windows(geo.pad(x), (geo.R, geo.S), geo.stride, geo.dilation, (P, Q))
        gy_t = gy.transpose(1, 2, 0, 3).reshape(G, Kg, N * P * Q)
        gw = np.empty((G, Kg, Cg, geo.R, geo.S), dtype=x.dtype)
        for r in range(geo.R):
            for s in range(geo.S):
                patch = windows[..., r, s].reshape(N, G, Cg, P, Q)
                cols = patch.transpose(1, 2, 0, 3, 4).reshape(G, Cg, N * P * Q)
                # (G, Kg, NPQ) @ (G, NPQ, Cg) -> (G, Kg, Cg)
                gw[:, :, :, r, s] = np.matmul(gy_t, cols.transpose(0, 2, 1))
        grad_weight = gw.reshape(weight.shape)

    if mask[2]:
        grad_bias = grad_output.sum(axis=(0, 2, 3))

    return grad_input, grad_weight, grad_bias


# --------------------------------------------------------------------------
# Pooling
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _PoolGeometry:
    N: int
    C: int
    H: int
    W: int
    kernel: tuple[int, int]
    stride: tuple[int, int]
    pad: tuple[int, int]  # on each side
    dilation: tuple[int, int]
    P: int
    Q: int

    @property
    def pads(self) -> tuple[int, int, int, int]:
        """(top, bottom, left, right) so that every window, incl. ceil_mode ones, fits."""
        (R, S), (sh, sw), (ph, pw), (dh, dw) = self.kernel, self.stride, self.pad, self.dilation
        bottom = max((self.P - 1) * sh + dh * (R - 1) + 1 - self.H - ph, 0)
        right = max((self.Q - 1) * sw + dw * (S - 1) + 1 - self.W - pw, 0)
        return ph, bottom, pw, right

    def pad_input(self, x: np.ndarray, value: float) -> np.ndarray:
        top, bottom, left, right = self.pads
        return np.pad(x, ((0, 0), (0, 0), (top, bottom), (left, right)), constant_values=value)


def _pool_geometry(
    name: str,
    shape: tuple[int, int, int, int],
    kernel_size: IntPair,
    stride: IntPair | None,
    padding: IntPair,
    dilation: IntPair,
    ceil_mode: bool,
) -> _PoolGeometry:
    N, C, H, W = shape
    kernel = _pair(kernel_size, "kernel_size", 1)
    # PyTorch reads an empty stride as "not given" too.
    empty = isinstance(stride, (tuple, list)) and len(stride) == 0
    stride_hw = kernel if stride is None or empty else _pair(stride, "stride", 1)
    pad = _pair(padding, "padding", 0)
    dilation_hw = _pair(dilation, "dilation", 1)
    if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
        raise ValueError(f"{name}: padding {pad} must be at most half the kernel size {kernel}")
    P = pool2d_output_size(H, kernel[0], stride_hw[0], pad[0], dilation_hw[0], ceil_mode)
    Q = pool2d_output_size(W, kernel[1], stride_hw[1], pad[1], dilation_hw[1], ceil_mode)
    if P <= 0 or Q <= 0:
        raise ValueError(
            f"{name} output size {P}x{Q} is not positive: input shape {shape}, "
            f"kernel_size {kernel}, "
            f"stride {stride_hw}, padding {pad}, dilation {dilation_hw}, ceil_mode={ceil_mode}"
        )
    return _PoolGeometry(N, C, H, W, kernel, stride_hw, pad, dilation_hw, P, Q)


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
    (R, S), (sh, sw), (ph, pw), (dh, dw) = geo.kernel, geo.stride, geo.pad, geo.dilation
    H, W, P, Q = geo.H, geo.W, geo.P, geo.Q

    # -inf padding never beats the running max (and is masked out anyway).
    windows = _windows(geo.pad_input(x, -np.inf), geo.kernel, geo.stride, geo.dilation, (P, Q))

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
    grad_input = np.zeros((N * C, plane), dtype=grad_output.dtype)
    plane_offsets = np.arange(N * C, dtype=np.int64)[:, None] * plane
    pq = grad_output.shape[2] * grad_output.shape[3]
    flat = (indices.reshape(N * C, pq).astype(np.int64) + plane_offsets).ravel()
    # np.add.at is unbuffered and applies the additions in order: row-major (n, c, p, q).
    np.add.at(grad_input.reshape(-1), flat, grad_output.reshape(-1))
    return grad_input.reshape(N, C, H, W)


def _avg_pool_divisors(
    geo: _PoolGeometry,
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

    (R, S), (sh, sw), (ph, pw) = geo.kernel, geo.stride, geo.pad
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
    windows = _windows(geo.pad_input(x, 0.0), geo.kernel, geo.stride, geo.dilation, (P, Q))

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
    (R, S), (ph, pw), P, Q = geo.kernel, geo.pad, geo.P, geo.Q
    if grad_output.shape != (geo.N, geo.C, P, Q):
        raise ValueError(
            f"grad_output must have shape {(geo.N, geo.C, P, Q)} "
            f"(the avg_pool2d output for input_shape "
            f"{shape}), got {grad_output.shape}"
        )

    divisor, empty = _avg_pool_divisors(geo, count_include_pad, divisor_override, grad_output.dtype)
    g = grad_output / divisor
    g[..., empty] = 0
    top, bottom, left, right = geo.pads
    dxp = np.zeros(
        (geo.N, geo.C, geo.H + top + bottom, geo.W + left + right), dtype=grad_output.dtype
    )
    # Offsets are visited in REVERSED row-major order. A fixed (padded) input
    # position i is reached by offset r from window p = (i - r) / stride, so a
    # decreasing r means an increasing p (and likewise s -> q): every input
    # element thus receives its contributions in ascending (p, q) order, the
    # order of the C++ kernel, which loops over windows (p, q) in row-major order.
    for r in reversed(range(R)):
        for s in reversed(range(S)):
            hs, ws = _offset_slices(r, s, geo.stride, (1, 1), (P, Q))
            dxp[:, :, hs, ws] += g
    return np.ascontiguousarray(dxp[:, :, ph : ph + geo.H, pw : pw + geo.W])


# --------------------------------------------------------------------------
# Linear
# --------------------------------------------------------------------------


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer, ``x @ weight.T + bias`` (``torch.nn.functional.linear``).

    Parameters
    ----------
    x : ndarray, shape (B, in_features)
        float32 or float64.
    weight : ndarray, shape (out_features, in_features)
        Same dtype as ``x``.
    bias : ndarray, shape (out_features,), optional
        Same dtype as ``x``.

    Returns
    -------
    ndarray, shape (B, out_features)
        Same dtype as ``x``.

    Raises
    ------
    ValueError
        On wrong ranks or mismatched feature sizes.
    TypeError
        On non-float inputs or inputs of different dtypes.
    """
    x = _float_array(x, "x", 2, "(B, in_features)")
    weight = _float_array(weight, "weight", 2, "(out_features, in_features)")
    _same_dtype(x, weight, "x and weight")
    if x.shape[1] != weight.shape[1]:
        raise ValueError(
            f"x shape {x.shape} and weight shape {weight.shape} disagree on in_features"
        )
    y = x @ weight.T
    if bias is not None:
        bias = _float_array(bias, "bias", 1, "(out_features,)")
        _same_dtype(x, bias, "x and bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(
                f"bias must have shape ({weight.shape[0]},) for weight shape {weight.shape}, "
                f"got {bias.shape}"
            )
        y += bias
    return y


def linear_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`linear`: ``(grad_input, grad_weight, grad_bias)``.

    With the leading dimensions of ``x`` flattened into a batch B:
    ``grad_input = grad_output @ weight``, ``grad_weight = grad_output.T @ x``,
    ``grad_bias = grad_output.sum over B``; ``None`` where the mask is off.
    """
    dy2 = grad_output.reshape(-1, weight.shape[0])
    x2 = x.reshape(-1, weight.shape[1])
    dx = (dy2 @ weight).reshape(x.shape) if output_mask[0] else None
    dw = dy2.T @ x2 if output_mask[1] else None
    db = dy2.sum(axis=0) if output_mask[2] else None
    return dx, dw, db


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise; NaN stays NaN (as ``torch.relu``)."""
    return np.where(x < 0, np.zeros((), x.dtype), x)


def relu_backward(grad_output: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``grad_output`` where ``output > 0``, else 0 (NaN in ``output`` gives 0)."""
    return np.where(output > 0, grad_output, np.zeros((), grad_output.dtype))
