"""Reference 2-D convolution and its gradients, plain NumPy (see :mod:`fastconv.reference`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ref_arrays import (
    _float_array,
    _offset_slices,
    _pad,
    _padded_zeros,
    _same_dtype,
    _unpad,
    _windows,
)
from ._ref_dense import relu
from ._ref_shapes import ConvPadding, ConvShape, IntPair, _is_int, _pair


def _conv_geometry(
    x_shape: tuple[int, ...],
    w_shape: tuple[int, ...],
    stride: IntPair,
    padding: ConvPadding,
    dilation: IntPair,
    groups: int,
) -> ConvShape:
    """The validated geometry of a conv2d call, with ``stride`` and ``dilation`` as pairs.

    Raises ``ValueError`` for a bad groups count, mismatched channels, a bad
    padding or an output size <= 0 (``TypeError`` for non-int parameters).
    """
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
    if not isinstance(padding, str):
        padding = _pair(padding, "padding", 0)
    geo = ConvShape("conv2d", N, C, H, W, K, R, S, stride_hw, padding, dilation_hw, G)
    pads, (P, Q) = geo.pads, geo.out_hw
    if P <= 0 or Q <= 0:
        raise ValueError(
            f"conv2d output size {P}x{Q} is not positive: x shape {x_shape}, "
            f"weight shape {w_shape}, "
            f"stride {stride_hw}, padding (top, bottom, left, right) {pads}, dilation {dilation_hw}"
        )
    return geo


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

    N, G, P, Q = geo.N, geo.groups, geo.P, geo.Q
    Cg, Kg = geo.C // G, geo.K // G  # channels per group
    # windows[n, c, p, q, r, s] = x_pad[n, c, p*sh + r*dh, q*sw + s*dw]
    windows = _windows(_pad(x, geo.pads), (geo.R, geo.S), geo.stride, geo.dilation, (P, Q))
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
    N, C, K, G, P, Q = geo.N, geo.C, geo.K, geo.groups, geo.P, geo.Q
    Cg, Kg = C // G, K // G  # channels per group
    if grad_output.shape != (N, K, P, Q):
        raise ValueError(
            f"grad_output must have shape {(N, K, P, Q)} (the conv2d output for x shape {x.shape} "
            f"and weight shape {weight.shape}), got {grad_output.shape}"
        )

    w = weight.reshape(G, Kg, Cg, geo.R, geo.S)
    gy = grad_output.reshape(N, G, Kg, P * Q)
    grad_input = grad_weight = grad_bias = None

    if mask[0]:
        dxp = _padded_zeros(x.shape, geo.pads, x.dtype)
        for r in range(geo.R):
            for s in range(geo.S):
                hs, ws = _offset_slices(r, s, geo.stride, geo.dilation, (P, Q))
                cols = np.matmul(w[:, :, :, r, s].transpose(0, 2, 1), gy)  # (G,Cg,Kg) @ (N,G,Kg,PQ)
                dxp[:, :, hs, ws] += cols.reshape(N, C, P, Q)
        grad_input = _unpad(dxp, geo.pads)

    if mask[1]:
        windows = _windows(_pad(x, geo.pads), (geo.R, geo.S), geo.stride, geo.dilation, (P, Q))
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
