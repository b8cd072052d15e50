"""The layer ops, batch norm, dropout and the losses on :class:`fastconv.Tensor`.

Each op checks its inputs' common dtype, runs the kernels of that dtype
(:mod:`fastconv.functional` for float32, :mod:`fastconv.reference` for
float64: see :mod:`fastconv._kernels`) or NumPy (:mod:`fastconv._numpy_kernels`),
and records a backward closure that calls the matching backward kernel.
The Tensor core (the graph, arithmetic, activations, :func:`cat`) is
:mod:`fastconv.tensor`; :mod:`fastconv.nn`'s layers call these ops.

Shapes use the letters N batch, C channels, H, W height and width, K output
channels.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _grad_mode as grad_mode
from . import _kernels as kern
from . import _numpy_kernels as npk
from . import reference
from ._kernels import dtype_of, kernels_for

# The layer ops that live in their own files are here too (fastconv.ops.<name>).
from ._ops_act import elu, gelu, leaky_relu, silu  # noqa: F401
from ._ops_conv import conv_transpose2d  # noqa: F401
from ._ops_loss import (  # the losses: their home is _ops_loss
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    l1_loss,
    mse_loss,
    nll_loss,
)
from ._ops_norm import group_norm, layer_norm  # noqa: F401
from ._ops_pool import (  # noqa: F401
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    max_pool2d_with_indices,
    max_unpool2d,
    pad,
)
from .tensor import Tensor, _make, _wrap

__all__ = [
    "avg_pool2d",
    "batch_norm",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "conv2d",
    "conv2d_relu_max_pool2d",
    "cross_entropy",
    "dropout",
    "huber_loss",
    "l1_loss",
    "linear",
    "max_pool2d",
    "mse_loss",
    "nll_loss",
]

# --------------------------------------------------------------------------
# Layer ops on the kernels of their inputs' dtype (forward and backward)
# --------------------------------------------------------------------------


def _conv_forward(
    F: Any, x: Tensor, weight: Tensor, bias: Tensor | None, conv: tuple, activation: str | None
) -> np.ndarray:
    """F.conv2d on the tensors' data; conv = (stride, padding, dilation, groups, algo)."""
    stride, padding, dilation, groups, algo = conv
    b = None if bias is None else bias.data
    return kern.conv2d(
        F,
        x.data,
        weight.data,
        b,
        stride,
        padding,
        dilation,
        groups,
        algo=algo,
        activation=activation,
    )


def _conv_backward(
    F: Any, g: np.ndarray, x: Tensor, weight: Tensor, bias: Tensor | None, conv: tuple
) -> tuple:
    """F.conv2d_backward for the inputs that need a gradient."""
    stride, padding, dilation, groups, algo = conv
    mask = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    return kern.conv2d_backward(
        F, g, x.data, weight.data, stride, padding, dilation, groups, algo=algo, output_mask=mask
    )


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algo: str = "auto",
    activation: str | None = None,
) -> Tensor:
    """Differentiable :func:`fastconv.conv2d`; x (N, C, H, W), weight (K, C/groups, R, S).

    ``activation="relu"`` is ``relu(conv2d(...))`` in one op: the kernels apply
    it as each output is stored, and the backward masks the gradient with the
    saved output first (what :func:`relu`'s backward does).
    """
    F = kernels_for("conv2d", ("x", x), ("weight", weight), ("bias", bias))
    conv = (stride, padding, dilation, groups, algo)
    y = _conv_forward(F, x, weight, bias, conv, activation)

    def backward(g: np.ndarray) -> tuple:
        if activation == "relu":
            g = kern.relu_backward(F, g, y)
        return _conv_backward(F, g, x, weight, bias, conv)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _make(y, parents, backward, "conv2d" if activation is None else "conv2d+relu")


def conv2d_relu_max_pool2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    conv: tuple,
    pool: tuple,
) -> Tensor:
    """``max_pool2d(relu(conv2d(x, weight, bias, *conv)), *pool)`` as one node.

    ``conv`` is ``(stride, padding, dilation, groups, algo)`` and ``pool``
    ``(kernel_size, stride, padding, dilation, ceil_mode)``. The pattern of the
    classic CNNs, fused: the ReLU is applied as the convolution's outputs are
    stored, and in the backward to the pooled gradient (a pooled value is > 0
    exactly where the input it selected is), so the convolution's output is
    neither kept for the backward nor masked at full size. Same values and
    gradients as the three ops one after the other.
    """
    F = kernels_for("conv2d", ("x", x), ("weight", weight), ("bias", bias))
    parents = (x, weight) if bias is None else (x, weight, bias)
    want_idx = grad_mode.enabled and any(t.requires_grad for t in parents)
    stride, padding, dilation, groups, algo = conv
    kernel_size, pool_stride, pool_padding, pool_dilation, ceil_mode = pool
    # One call: where the convolution runs direct, each image's output is
    # pooled while in cache and the full output never reaches memory.
    out = kern.conv2d_max_pool2d(
        F, x.data, weight.data, None if bias is None else bias.data, stride, padding, dilation,
        groups, algo=algo, activation="relu", kernel_size=kernel_size, pool_stride=pool_stride,
        pool_padding=pool_padding, pool_dilation=pool_dilation, ceil_mode=ceil_mode,
        return_indices=want_idx,
    )  # fmt: skip
    if not want_idx:
        return _wrap(out)
    p, idx = out
    # The convolution's output shape, for the pool's backward (the arguments
    # were checked by the forward call above).
    P, Q = reference.conv2d_output_hw(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    y_shape = (x.shape[0], weight.shape[0], P, Q)

    def backward(g: np.ndarray) -> tuple:
        g = kern.relu_backward(F, g, p)
        gy = kern.max_pool2d_backward(F, g, idx, y_shape)
        return _conv_backward(F, gy, x, weight, bias, conv)

    return _make(p, parents, backward, "conv2d+relu+max_pool2d")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Differentiable :func:`fastconv.linear`: ``x @ weight.T + bias``, x (..., in_features)."""
    F = kernels_for("linear", ("x", x), ("weight", weight), ("bias", bias))
    # Both backends take x (..., in_features) and give dx in x's shape.
    y = kern.linear(F, x.data, weight.data, None if bias is None else bias.data)

    def backward(g: np.ndarray) -> tuple:
        mask = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        return kern.linear_backward(F, g, x.data, weight.data, mask)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _make(y, parents, backward, "linear")


def max_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """Differentiable :func:`fastconv.max_pool2d`; backward routes through the saved argmax."""
    F = kernels_for("max_pool2d", ("x", x))
    args = (kernel_size, stride, padding, dilation, ceil_mode)
    if not (grad_mode.enabled and x.requires_grad):
        return _wrap(kern.max_pool2d(F, x.data, *args))
    y, idx = kern.max_pool2d(F, x.data, *args, True)
    in_shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        return (kern.max_pool2d_backward(F, g, idx, in_shape),)

    return _make(y, (x,), backward, "max_pool2d")


def avg_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Differentiable :func:`fastconv.avg_pool2d`."""
    F = kernels_for("avg_pool2d", ("x", x))
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = kern.avg_pool2d(F, x.data, *args)
    in_shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        return (kern.avg_pool2d_backward(F, g, in_shape, *args),)

    return _make(y, (x,), backward, "avg_pool2d")


# --------------------------------------------------------------------------
# Dropout and batch norm
# --------------------------------------------------------------------------


def dropout(x: Tensor, p: float, rng: np.random.Generator) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``."""
    if p <= 0:
        return x
    if p >= 1:
        mask = np.zeros_like(x.data)
    else:
        mask = npk.dropout_mask(rng, x.data, p)
    y = npk.dropout(x.data, mask)

    def backward(g: np.ndarray) -> tuple:
        return (npk.dropout_backward(g, mask),)

    return _make(y, (x,), backward, "dropout")


def batch_norm(
    x: Tensor,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: np.ndarray | None = None,
) -> Tensor:
    """Batch normalisation over all dims but 1 (channels), as ``torch.nn.functional.batch_norm``.

    In training, normalise with the batch mean and biased variance and update
    ``running_mean``/``running_var`` IN PLACE with the unbiased variance
    (``momentum`` None: cumulative average over ``num_batches_tracked``). In
    evaluation, normalise with the running statistics; without them (None:
    ``track_running_stats=False``) with the batch's, in either mode. An empty
    batch gives an empty output and leaves the statistics as they are (only
    ``num_batches_tracked`` counts it, as PyTorch's). ``weight`` and ``bias``
    are each optional (``BatchNorm2d(bias=False)`` has a weight only).
    """
    dtype_of(
        "batch_norm",
        ("x", x),
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    )
    xd = x.data
    axes = npk.bn_axes(xd)
    batch_stats = training or running_mean is None
    if batch_stats:
        n = xd.size // max(xd.shape[1], 1)
        if n == 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel in training, got {xd.shape}"
            )
        if training and running_mean is not None and num_batches_tracked is not None:
            num_batches_tracked += 1
        if n == 0:  # an empty batch: an empty output; the statistics stay (PyTorch's)
            C = xd.shape[1]
            mean, var = np.zeros(C, xd.dtype), np.ones(C, xd.dtype)
        else:
            mean = xd.mean(axis=axes)
            var = xd.var(axis=axes)
        if training and running_mean is not None and n > 0:
            m = (1.0 / float(num_batches_tracked)) if momentum is None else momentum
            running_mean *= 1 - m
            running_mean += m * mean
            running_var *= 1 - m
            running_var += (m * n / (n - 1)) * var
    else:
        mean, var = running_mean, running_var
    gamma = None if weight is None else weight.data
    beta = None if bias is None else bias.data
    y, xhat, invstd = npk.batch_norm(xd, gamma, beta, mean, var, eps)

    def backward(g: np.ndarray) -> tuple:
        if g.size == 0:  # an empty batch: zero parameter gradients (and no 0/0)
            dx, dgamma, dbeta = g, np.zeros_like(invstd), np.zeros_like(invstd)
        else:
            dx, dgamma, dbeta = npk.batch_norm_backward(g, xhat, invstd, gamma, batch_stats)
        return (
            (dx,)
            + ((dgamma,) if weight is not None else ())
            + ((dbeta,) if bias is not None else ())
        )

    parents = (x,) + tuple(t for t in (weight, bias) if t is not None)
    return _make(y, parents, backward, "batch_norm")
