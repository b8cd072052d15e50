"""The NumPy functional API: float32 NCHW convolution, pooling and linear ops.

Every function has PyTorch's semantics and the same signature as its twin in
:mod:`fastconv.reference` (plain NumPy, the oracle of the tests). Validation,
output allocation and the choice of kernel happen in the C++ extension; this
module only documents and forwards.

Inputs must be ``numpy.float32`` arrays (any layout: views, negative strides,
Fortran order and read-only arrays are accepted and give exactly the result
of a contiguous copy). Any other dtype raises ``TypeError``; nothing is cast
silently. Wrong shapes or parameters raise ``ValueError`` naming the shapes.
The GIL is released while kernels run, and results are bitwise identical
across calls and thread counts.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from . import _core
from . import _ref_adaptive as _adaptive
from ._ref_adaptive import AdaptiveSize
from ._ref_shapes import ConvPadding, IntPair, conv2d_output_hw, conv_transpose2d_output_hw

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_avg_pool2d_backward",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "avg_pool2d_backward",
    "conv2d",
    "conv2d_backward",
    "conv2d_max_pool2d",
    "conv_transpose2d",
    "linear",
    "max_pool2d",
    "max_pool2d_backward",
]


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
    """2-D convolution (cross-correlation), as ``torch.nn.functional.conv2d``.

    Parameters
    ----------
    x : ndarray, float32, shape (N, C, H, W)
    weight : ndarray, float32, shape (K, C/groups, R, S)
    bias : ndarray, float32, shape (K,), optional
    stride, dilation : int or (int, int)
    padding : int, (int, int), "valid" or "same"
        Zero padding on both sides. ``"valid"`` is 0. ``"same"`` pads so the
        output is ``ceil(n / stride)``; an odd total puts the extra row/column
        at the bottom/right (Keras's rule, and PyTorch's for stride 1).
    groups : int
        C and K must be divisible by it; ``groups == C`` is depthwise.
    algo : {"auto", "direct", "im2col", "implicit"}
        ``"direct"`` loops over the kernel taps on whole output rows;
        ``"im2col"`` builds one image's column buffer and multiplies it with
        fastconv's GEMM (the workspace never holds the whole batch);
        ``"implicit"`` runs the whole batch as one GEMM per group with the
        patches packed straight from the images (no column buffer).
        ``fastconv._core.conv_algos()`` lists them.
    activation : None or "relu"
        ``"relu"``: ``relu(conv2d(...))``, applied as each output is stored
        (no second pass over y). Same values as calling :func:`relu` after.

    Returns
    -------
    ndarray, float32, shape (N, K, P, Q)
        ``P = floor((H + pad_top + pad_bottom - dilation*(R-1) - 1) / stride) + 1``.

    Notes
    -----
    Padded positions count as zeros that are multiplied like any other value,
    so a non-finite weight makes every output whose window touches padding NaN
    (``0 * inf``), identically for every algorithm.
    """
    return _core.conv2d_forward(
        x, weight, bias, stride, padding, dilation, groups, algo, activation
    )


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
    """Gradients of :func:`conv2d`, as ``torch.ops.aten.convolution_backward``.

    Parameters
    ----------
    grad_output : ndarray, float32, shape (N, K, P, Q)
        Gradient of the loss with respect to the output of ``conv2d(x, weight, ...)``.
    x, weight, stride, padding, dilation, groups, algo
        As given to :func:`conv2d`.
    output_mask : (bool, bool, bool)
        Which of (grad_input, grad_weight, grad_bias) to compute.

    Returns
    -------
    (grad_input, grad_weight, grad_bias)
        Shapes (N, C, H, W), (K, C/groups, R, S) and (K,); ``None`` where the
        mask is off. Input pixels no window reads (e.g. the rows a stride
        skips) get zero gradient.
    """
    return tuple(  # type: ignore[return-value]
        _core.conv2d_backward(
            grad_output, x, weight, stride, padding, dilation, groups, algo, tuple(output_mask)
        )
    )


def max_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    dilation: IntPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """2-D max pooling, as ``torch.nn.functional.max_pool2d``.

    Parameters
    ----------
    x : ndarray, float32, shape (N, C, H, W)
    kernel_size, stride, padding, dilation : int or (int, int)
        ``stride`` defaults to ``kernel_size``. Padding (at most half the
        kernel) acts as -inf and is never selected.
    ceil_mode : bool
        Round the output size up, but no window may start in the right or
        bottom padding.
    return_indices : bool
        Also return the argmax of each window.

    Returns
    -------
    y : ndarray, float32, shape (N, C, P, Q)
    indices : ndarray, int64, shape (N, C, P, Q), if ``return_indices``
        Flat positions ``h * W + w`` inside each (n, c) plane, equal to
        PyTorch's: ties go to the first maximum in row-major window order,
        NaN wins (the last NaN of a window), and an all -inf window gives -inf
        and its first in-bounds position.
    """
    return _core.max_pool2d_forward(
        x, kernel_size, stride, padding, dilation, ceil_mode, return_indices
    )


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
    """``max_pool2d(conv2d(x, weight, bias, ..., activation=activation), kernel_size, ...)`` in one call.

    The arguments before ``kernel_size`` are :func:`conv2d`'s, the ``pool_*``
    ones and ``ceil_mode``/``return_indices`` :func:`max_pool2d`'s. The result
    is the same as the two calls one after the other (bitwise, for the same
    ``algo``), but where the convolution runs the direct algorithm, each
    image's output is pooled while it is still in cache and the full
    convolution output is never written to memory (the classic CNNs'
    conv -> ReLU -> max-pool block; ``nn.Sequential`` uses it).
    """
    return _core.conv2d_max_pool2d(
        x, weight, bias, stride, padding, dilation, groups, algo, activation,
        kernel_size, pool_stride, pool_padding, pool_dilation, ceil_mode, return_indices,
    )  # fmt: skip


def max_pool2d_backward(
    grad_output: np.ndarray, indices: np.ndarray, input_shape: Sequence[int]
) -> np.ndarray:
    """Gradient of :func:`max_pool2d` with respect to its input.

    Parameters
    ----------
    grad_output : ndarray, float32, shape (N, C, P, Q)
    indices : ndarray, int64, shape (N, C, P, Q)
        As returned by ``max_pool2d(..., return_indices=True)``. Every index is
        checked to lie in ``[0, H*W)`` before anything is written.
    input_shape : (N, C, H, W)

    Returns
    -------
    ndarray, float32, shape (N, C, H, W)
        Zero except where a window's maximum was; gradients of overlapping
        windows that chose the same position add up.
    """
    return _core.max_pool2d_backward(grad_output, indices, tuple(input_shape))


def avg_pool2d(
    x: np.ndarray,
    kernel_size: IntPair,
    stride: IntPair | None = None,
    padding: IntPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> np.ndarray:
    """2-D average pooling, as ``torch.nn.functional.avg_pool2d``.

    The window's in-bounds elements are summed in row-major order and divided
    once by ``divisor_override`` if given, else by the window size counting
    the zero padding (``count_include_pad=True``) or not.

    Returns
    -------
    ndarray, float32, shape (N, C, P, Q)
    """
    return _core.avg_pool2d_forward(
        x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override
    )


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
    """Gradient of :func:`avg_pool2d`: each output gradient, divided by its
    window's divisor, is added to every in-bounds position of its window.

    Returns
    -------
    ndarray, float32, shape ``input_shape`` (N, C, H, W)
    """
    return _core.avg_pool2d_backward(
        grad_output,
        tuple(input_shape),
        kernel_size,
        stride,
        padding,
        ceil_mode,
        count_include_pad,
        divisor_override,
    )


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``x @ weight.T + bias``, as ``torch.nn.functional.linear``, through fastconv's GEMM.

    Parameters
    ----------
    x : ndarray, float32, shape (..., in_features)
    weight : ndarray, float32, shape (out_features, in_features)
    bias : ndarray, float32, shape (out_features,), optional

    Returns
    -------
    ndarray, float32, shape (..., out_features)
    """
    return _core.linear(x, weight, bias)


def linear_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`linear`: ``(grad_input, grad_weight, grad_bias)``.

    ``grad_input = grad_output @ weight``, ``grad_weight = grad_output.T @ x``
    (leading dimensions of x flattened into the batch), ``grad_bias`` the sum
    of grad_output over the batch (in a fixed order: deterministic). ``None``
    where ``output_mask`` is off.
    """
    return tuple(_core.linear_backward(grad_output, x, weight, tuple(output_mask)))  # type: ignore[return-value]


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise, any shape (NaN stays NaN, as ``torch.relu``)."""
    return _core.relu(x)


def relu_backward(grad_output: np.ndarray, output: np.ndarray) -> np.ndarray:
    """Gradient of :func:`relu` given its output: ``grad_output`` where ``output > 0``, else 0."""
    return _core.relu_backward(grad_output, output)


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

    The input gradient of :func:`conv2d` run forward: ``conv_transpose2d(x, w)``
    is ``conv2d_backward(grad_output=x, ...)[0]`` for the convolution with
    weight ``w``, whose input has this op's output shape, on the same kernels.

    Parameters
    ----------
    x : ndarray, float32, shape (N, C, H, W)
    weight : ndarray, float32, shape (C, K/groups, R, S)
    bias : ndarray, float32, shape (K,), optional
    stride, padding, dilation, groups
        Those of that convolution (``padding`` an int or a pair).
    output_padding : int or (int, int)
        Rows and columns added at the bottom and right, to pick one of the
        output sizes a strided convolution maps to the same size; smaller
        than the stride or the dilation.
    algo : str
        The convolution algorithm of the backward-input pass (see :func:`conv2d`).

    Returns
    -------
    ndarray, float32, shape (N, K, Ho, Wo)
        ``Ho = (H - 1) * stride - 2 * padding + dilation * (R - 1) + output_padding + 1``.
    """
    x, weight = np.asarray(x), np.asarray(weight)
    if x.ndim != 4 or weight.ndim != 4:
        raise ValueError(
            f"conv_transpose2d: x must be (N, C, H, W) and weight (C, K/groups, R, S), "
            f"got shapes {x.shape} and {weight.shape}"
        )
    (N, C, H, W), (Cw, Kg, R, S) = x.shape, weight.shape
    Ho, Wo = conv_transpose2d_output_hw((H, W), (R, S), stride, padding, output_padding, dilation)
    if Ho <= 0 or Wo <= 0 or Cw != C or not isinstance(groups, int) or groups < 1:
        raise ValueError(
            f"conv_transpose2d: output size {Ho}x{Wo} must be positive and weight shape "
            f"{weight.shape} must have x's C={C} in dim 0; x shape {x.shape}, stride {stride}, "
            f"padding {padding}, output_padding {output_padding}, dilation {dilation}, "
            f"groups {groups!r}"
        )
    # The convolution from (N, K, Ho, Wo) to (N, C, P, Q); P > H only when
    # output_padding >= stride (allowed when < dilation): x gets zero rows there.
    P, Q = conv2d_output_hw((Ho, Wo), (R, S), stride, padding, dilation)
    if (P, Q) != (H, W):
        x = np.pad(x, ((0, 0), (0, 0), (0, P - H), (0, Q - W)))
    shape_only = np.zeros((N, Kg * groups, Ho, Wo), dtype=np.float32)  # never read
    y = _core.conv2d_backward(
        x, shape_only, weight, stride, padding, dilation, groups, algo, (True, False, False)
    )[0]
    if bias is not None:
        bias = np.asarray(bias)
        if bias.dtype != np.float32 or bias.shape != (y.shape[1],):
            raise (TypeError if bias.dtype != np.float32 else ValueError)(
                f"conv_transpose2d: bias must be float32 of shape ({y.shape[1]},), "
                f"got {bias.dtype} of shape {bias.shape}"
            )
        y += bias.reshape(-1, 1, 1)
    return y


def adaptive_avg_pool2d(x: np.ndarray, output_size: AdaptiveSize) -> np.ndarray:
    """Adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool2d``.

    x (N, C, H, W) -> (N, C, P, Q); output (p, q) averages input rows
    ``floor(p*H/P)`` to ``ceil((p+1)*H/P)`` and the columns alike.
    ``output_size`` is an int or a pair whose None entries keep the input's
    size. When P divides H and Q divides W (global pooling: 1), this is
    :func:`avg_pool2d` with kernel = stride = (H/P, W/Q); otherwise NumPy.
    """
    k = _divided(x, output_size)
    if k is None:
        return _adaptive.adaptive_avg_pool2d(x, output_size)
    return _core.avg_pool2d_forward(x, k, k, 0, False, True, None)


def adaptive_avg_pool2d_backward(grad_output: np.ndarray, input_shape: Sequence[int]) -> np.ndarray:
    """Gradient of :func:`adaptive_avg_pool2d`, shape ``input_shape`` (N, C, H, W)."""
    N, C, H, W = input_shape
    P, Q = np.shape(grad_output)[2:]
    if P and Q and H % P == 0 and W % Q == 0:
        k = (H // P, W // Q)
        return _core.avg_pool2d_backward(
            grad_output, tuple(input_shape), k, k, 0, False, True, None
        )
    return _adaptive.adaptive_avg_pool2d_backward(grad_output, input_shape)


def adaptive_max_pool2d(
    x: np.ndarray, output_size: AdaptiveSize, return_indices: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool2d``.

    Windows as :func:`adaptive_avg_pool2d`'s; indices and ties as
    :func:`max_pool2d`'s, whose backward (:func:`max_pool2d_backward`) is
    this op's too. Runs :func:`max_pool2d` when the sizes divide, else NumPy.
    """
    k = _divided(x, output_size)
    if k is None:
        return _adaptive.adaptive_max_pool2d(x, output_size, return_indices)
    return _core.max_pool2d_forward(x, k, k, 0, 1, False, return_indices)


def _divided(x: np.ndarray, output_size: AdaptiveSize) -> tuple[int, int] | None:
    """The pool kernel of an adaptive pool whose sizes divide, else None (the NumPy path)."""
    if not isinstance(x, np.ndarray) or x.dtype != np.float32:
        raise TypeError(
            f"adaptive pool: x must be a float32 ndarray, got {getattr(x, 'dtype', type(x))}"
        )
    shape = x.shape
    if len(shape) != 4:
        return None
    (H, W), (P, Q) = shape[2:], _adaptive.adaptive_output_hw(shape[2:], output_size)
    if P and Q and H and W and H % P == 0 and W % Q == 0:
        return H // P, W // Q
    return None
