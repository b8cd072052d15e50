"""Reference 2-D transposed convolution, plain NumPy (see :mod:`fastconv.reference`).

The gradient of :func:`conv2d` with respect to its input, run as a forward
op: each input pixel scatters ``x[n, c, h, w] * weight[c, k, r, s]`` to
output ``(h * stride - padding + r * dilation, w * stride - padding + s * dilation)``.
Its gradients are a :func:`conv2d` (input) and :func:`conv2d_backward`'s
weight gradient (see :func:`fastconv.ops.conv_transpose2d`).
"""

from __future__ import annotations

import numpy as np

from ._ref_arrays import _float_array, _same_dtype
from ._ref_shapes import IntPair, _is_int, _pair, conv_transpose2d_output_hw

__all__ = ["conv_transpose2d"]


def conv_transpose2d(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    output_padding: IntPair = 0,
    groups: int = 1,
    dilation: IntPair = 1,
    *,
    algo: str = "auto",
) -> np.ndarray:
    """2-D transposed convolution, as ``torch.nn.functional.conv_transpose2d``.

    Parameters
    ----------
    x : ndarray, shape (N, C, H, W)
    weight : ndarray, shape (C, K / groups, R, S)
    bias : ndarray, shape (K,), optional
    stride, padding, output_padding, dilation : int or (int, int)
        Those of the :func:`conv2d` whose input gradient this is: ``padding``
        rows and columns are cropped from each side of the full output,
        ``output_padding`` ones added at the bottom and right (it must be
        smaller than the stride or the dilation).
    groups : int
    algo : str
        Accepted and ignored by the reference.

    Returns
    -------
    ndarray, shape (N, K, Ho, Wo)
        ``Ho = (H - 1) * stride - 2 * padding + dilation * (R - 1) + output_padding + 1``.
    """
    del algo
    x = _float_array(x, "x", 4, "(N, C, H, W)")
    weight = _float_array(weight, "weight", 4, "(C, K/groups, R, S)")
    _same_dtype(x, weight, "x and weight")
    N, C, H, W = x.shape
    Cw, Kg, R, S = weight.shape
    if not _is_int(groups) or groups < 1:
        raise ValueError(f"groups must be a positive int, got {groups!r}")
    G = int(groups)
    if Cw != C or C % G:
        raise ValueError(
            f"conv_transpose2d: weight shape {weight.shape} needs x with C={Cw} channels "
            f"divisible by groups={G}, got x shape {x.shape}"
        )
    K = Kg * G
    if bias is not None:
        bias = _float_array(bias, "bias", 1, "(K,)")
        _same_dtype(x, bias, "x and bias")
        if bias.shape != (K,):
            raise ValueError(f"conv_transpose2d: bias must have shape ({K},), got {bias.shape}")
    Ho, Wo = conv_transpose2d_output_hw((H, W), (R, S), stride, padding, output_padding, dilation)
    if Ho <= 0 or Wo <= 0:
        raise ValueError(
            f"conv_transpose2d output size {Ho}x{Wo} is not positive: x shape {x.shape}, "
            f"weight shape {weight.shape}, stride {stride}, padding {padding}, "
            f"output_padding {output_padding}, dilation {dilation}"
        )
    (sh, sw), (ph, pw), (dh, dw) = (
        _pair(stride, "stride", 1),
        _pair(padding, "padding", 0),
        _pair(dilation, "dilation", 1),
    )
    # The uncropped output: every tap of every pixel lands inside it.
    full = np.zeros((N, G, Kg, Ho + 2 * ph, Wo + 2 * pw), dtype=x.dtype)
    xg = x.reshape(N, G, C // G, H * W)
    wg = weight.reshape(G, C // G, Kg, R, S)
    for r in range(R):
        for s in range(S):
            # (G, Kg, C/G) @ (N, G, C/G, HW) -> (N, G, Kg, HW)
            taps = np.matmul(wg[:, :, :, r, s].transpose(0, 2, 1), xg).reshape(N, G, Kg, H, W)
            h0, w0 = r * dh, s * dw
            full[..., h0 : h0 + (H - 1) * sh + 1 : sh, w0 : w0 + (W - 1) * sw + 1 : sw] += taps
    y = np.ascontiguousarray(full[..., ph : ph + Ho, pw : pw + Wo].reshape(N, K, Ho, Wo))
    if bias is not None:
        y += bias[:, None, None]
    return y
