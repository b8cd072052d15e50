"""The activations beyond ReLU, on :class:`fastconv.Tensor`: leaky ReLU, GELU, SiLU, ELU.

Plain NumPy on either float dtype (the result keeps the input's), each
forward and backward timed under its :mod:`fastconv.profiler` name, each
formula PyTorch's CPU one (``torch.nn.functional.<name>``), so that float32
results agree with it to rounding and float64 ones pass finite differences.
The layers of :mod:`fastconv.nn` (``_nn_act``) call these ops.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from ._kernels import dtype_of
from .profiler import timed
from .tensor import Tensor, _make

__all__ = ["elu", "gelu", "leaky_relu", "silu"]

_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_erf = np.frompyfunc(math.erf, 1, 1)  # exact erf (NumPy has none); GELU's 'none' form


def _erf_array(x: np.ndarray) -> np.ndarray:
    return np.asarray(_erf(x), dtype=np.float64)


def _unary(op: str, x: Tensor, forward: Callable, backward: Callable, *args: Any) -> Tensor:
    """``forward(x.data, *args)`` with the backward ``backward(g, x.data, *args)``."""
    dtype_of(op, ("input", x))
    xd = x.data
    # np.asarray: NumPy turns 0-d results into scalars; tensors hold arrays.
    y = np.asarray(forward(xd, *args))

    def grad(g: np.ndarray) -> tuple:
        return (np.asarray(backward(g, xd, *args)),)

    return _make(y, (x,), grad, op)


@timed("leaky_relu.forward")
def _leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    return np.where(x > 0, x, x * x.dtype.type(slope))


@timed("leaky_relu.backward")
def _leaky_relu_backward(g: np.ndarray, x: np.ndarray, slope: float) -> np.ndarray:
    return np.where(x > 0, g, g * g.dtype.type(slope))


def leaky_relu(input: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` where ``x > 0``, else ``negative_slope * x`` (``torch.nn.functional.leaky_relu``)."""
    return _unary("leaky_relu", input, _leaky_relu, _leaky_relu_backward, negative_slope)


@timed("elu.forward")
def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x > 0, x, np.expm1(np.minimum(x, 0)) * x.dtype.type(alpha))


@timed("elu.backward")
def _elu_backward(g: np.ndarray, x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x > 0, g, g * (np.exp(np.minimum(x, 0)) * x.dtype.type(alpha)))


def elu(input: Tensor, alpha: float = 1.0) -> Tensor:
    """``x`` where ``x > 0``, else ``alpha * (exp(x) - 1)`` (``torch.nn.functional.elu``)."""
    return _unary("elu", input, _elu, _elu_backward, alpha)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # Never overflows: e^-|x| is at most 1.
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1 + e)


@timed("silu.forward")
def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


@timed("silu.backward")
def _silu_backward(g: np.ndarray, x: np.ndarray) -> np.ndarray:
    s = _sigmoid(x)
    return g * (s * (1 + x * (1 - s)))


def silu(input: Tensor) -> Tensor:
    """``x * sigmoid(x)`` (``torch.nn.functional.silu``, also called swish)."""
    return _unary("silu", input, _silu, _silu_backward)


@timed("gelu.forward")
def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        t = np.tanh(x.dtype.type(_SQRT_2_OVER_PI) * (x + x.dtype.type(0.044715) * x**3))
        return x * x.dtype.type(0.5) * (1 + t)
    cdf = 0.5 * (1.0 + _erf_array(x.astype(np.float64) * math.sqrt(0.5)))
    return (x * cdf).astype(x.dtype)


@timed("gelu.backward")
def _gelu_backward(g: np.ndarray, x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        k, c = x.dtype.type(_SQRT_2_OVER_PI), x.dtype.type(0.044715)
        t = np.tanh(k * (x + c * x**3))
        dt = (1 - t * t) * k * (1 + 3 * c * x * x)
        return g * (x.dtype.type(0.5) * (1 + t) + x.dtype.type(0.5) * x * dt)
    xd = x.astype(np.float64)
    cdf = 0.5 * (1.0 + _erf_array(xd * math.sqrt(0.5)))
    pdf = np.exp(-0.5 * xd * xd) * _INV_SQRT_2PI
    return g * (cdf + xd * pdf).astype(x.dtype)


def gelu(input: Tensor, approximate: str = "none") -> Tensor:
    """``x * Phi(x)`` (``approximate="none"``, with the exact erf) or its tanh approximation.

    As ``torch.nn.functional.gelu``; ``approximate`` must be ``"none"`` or ``"tanh"``.
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _unary("gelu", input, _gelu, _gelu_backward, approximate)
