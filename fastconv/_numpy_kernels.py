"""The array work of the ops that have no fastconv kernel (yet): plain NumPy.

Forward and backward of each op of :mod:`fastconv.tensor` and
:mod:`fastconv.ops` that does not run on :mod:`fastconv._kernels`, on NumPy
arrays of either float dtype (the result keeps the inputs' dtype). Each
function is timed under its :mod:`fastconv.profiler` name; the graph
bookkeeping stays with the ops. ``g`` is the gradient of the output.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .profiler import timed

# --------------------------------------------------------------------------
# Arithmetic, reductions and concatenation (Tensor's operators and methods)
# --------------------------------------------------------------------------

add = timed("add.forward")(np.add)
subtract = timed("sub.forward")(np.subtract)
multiply = timed("mul.forward")(np.multiply)
multiply_backward = timed("mul.backward")(np.multiply)
divide = timed("div.forward")(np.divide)
divide_backward = timed("div.backward")(np.divide)
matmul = timed("matmul.forward")(np.matmul)
negative = timed("neg.forward")(np.negative)
power = timed("pow.forward")(np.power)
reduce_sum = timed("sum.forward")(np.sum)
exp = timed("exp.forward")(np.exp)
exp_backward = timed("exp.backward")(np.multiply)
log = timed("log.forward")(np.log)
log_backward = timed("log.backward")(np.divide)
concatenate = timed("cat.forward")(np.concatenate)


def unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
    """Sum ``g`` over the dims that broadcasting added or stretched, back to ``shape``."""
    if g.shape == shape:
        return g
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1
    )
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)


@timed("matmul.backward")
def matmul_backward(
    g: np.ndarray, a: np.ndarray, b: np.ndarray, need_a: bool, need_b: bool
) -> tuple:
    # Promote 1-D operands as np.matmul does, then undo it (and any batch broadcast).
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2 if b.ndim > 1 else 0)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape) if need_a else None
    gb = unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape) if need_b else None
    return ga, gb


@timed("pow.backward")
def power_backward(g: np.ndarray, x: np.ndarray, e: float) -> np.ndarray:
    return g * (x.dtype.type(e) * np.power(x, x.dtype.type(e - 1)))


def expand_reduced(g: np.ndarray, shape: tuple, axis: Any, keepdims: bool) -> np.ndarray:
    """Broadcast the gradient of a reduction back to the input's shape (read-only view)."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    elif axis is None and not keepdims:
        g = np.reshape(g, (1,) * len(shape))
    return np.broadcast_to(g, shape)


# --------------------------------------------------------------------------
# Activations (ReLU has kernels: fastconv._kernels)
# --------------------------------------------------------------------------

tanh = timed("tanh.forward")(np.tanh)


@timed("tanh.backward")
def tanh_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (1 - y * y)


@timed("sigmoid.forward")
def sigmoid(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: never overflows, keeps tiny values.
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1.0, e)
    y /= 1 + e
    return y


@timed("sigmoid.backward")
def sigmoid_backward(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (y * (1 - y))


@timed("softmax.forward")
def softmax(x: np.ndarray, dim: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    e /= e.sum(axis=dim, keepdims=True)
    return e


@timed("softmax.backward")
def softmax_backward(g: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    gy = g * y
    gy -= y * gy.sum(axis=dim, keepdims=True)
    return gy


@timed("log_softmax.forward")
def log_softmax(x: np.ndarray, dim: int) -> np.ndarray:
    z = x - x.max(axis=dim, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=dim, keepdims=True))
    return z


@timed("log_softmax.backward")
def log_softmax_backward(g: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    return g - np.exp(y) * g.sum(axis=dim, keepdims=True)


# --------------------------------------------------------------------------
# Dropout and batch norm
# --------------------------------------------------------------------------


@timed("dropout.mask")
def dropout_mask(rng: np.random.Generator, x: np.ndarray, p: float) -> np.ndarray:
    keep = rng.random(x.shape, dtype=np.float32) >= p
    return keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))


dropout = timed("dropout.forward")(np.multiply)
dropout_backward = timed("dropout.backward")(np.multiply)


def bn_axes(x: np.ndarray) -> tuple:
    """The axes batch norm reduces over: all but 1 (channels)."""
    return (0,) + tuple(range(2, x.ndim))


def _bn_shape(x: np.ndarray) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


@timed("batch_norm.forward")
def batch_norm(
    x: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
) -> tuple:
    shape = _bn_shape(x)
    invstd = 1.0 / np.sqrt(var + eps)
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape).astype(x.dtype)
    y = xhat if gamma is None else xhat * gamma.reshape(shape)
    if beta is not None:
        y = y + beta.reshape(shape)
    return y, xhat, invstd.astype(x.dtype)


@timed("batch_norm.backward")
def batch_norm_backward(
    g: np.ndarray,
    xhat: np.ndarray,
    invstd: np.ndarray,
    gamma: np.ndarray | None,
    batch_stats: bool,
) -> tuple:
    axes, shape = bn_axes(g), _bn_shape(g)
    dbeta = g.sum(axis=axes)
    dgamma = (g * xhat).sum(axis=axes)
    scale = invstd if gamma is None else invstd * gamma
    if batch_stats:
        # d/dx of gamma * (x - mean) * invstd with mean and var taken from x itself.
        m = g.size // g.shape[1]
        dx = g - (dbeta / m).reshape(shape) - xhat * (dgamma / m).reshape(shape)
        dx *= scale.reshape(shape)
    else:
        dx = g * scale.reshape(shape)
    return dx, dgamma, dbeta
