"""In-place initialisers (``fastconv.nn.init``), as ``torch.nn.init``, and the generator.

One seeded ``numpy.random.Generator`` draws the initial weights and
:class:`~fastconv.nn.Dropout`'s masks: :func:`manual_seed` (also
``fastconv.nn.manual_seed``) makes model construction reproducible. Each
initialiser fills a :class:`~fastconv.Tensor` (or a NumPy array) in place and
returns it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .tensor import Tensor

__all__ = [
    "calculate_gain",
    "constant_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator used by the initialisers and :class:`Dropout`."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng() -> np.random.Generator:
    """The generator used by the initialisers and :class:`Dropout`."""
    return _rng


def _array(t: Any) -> np.ndarray:
    return t.data if isinstance(t, Tensor) else t


def _fans(shape: tuple) -> tuple[int, int]:
    if len(shape) < 2:
        raise ValueError(f"fan in and fan out need at least 2 dims, got shape {shape}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def calculate_gain(nonlinearity: str, param: float | None = None) -> float:
    """PyTorch's recommended gains: relu sqrt(2), tanh 5/3, leaky_relu sqrt(2/(1+a^2)), ..."""
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid", "identity"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        a = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + a * a))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


def _gen(generator: np.random.Generator | None) -> np.random.Generator:
    return _rng if generator is None else generator


def _rand_dtype(a: np.ndarray) -> Any:
    return a.dtype if a.dtype in (np.float32, np.float64) else np.float64


def uniform_(t: Any, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Any:
    """Fill in place from U(a, b)."""
    arr = _array(t)
    u = _gen(generator).random(arr.shape, dtype=_rand_dtype(arr))
    u *= b - a
    u += a
    arr[...] = u
    return t


def normal_(t: Any, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Any:
    """Fill in place from N(mean, std**2)."""
    arr = _array(t)
    z = _gen(generator).standard_normal(arr.shape, dtype=_rand_dtype(arr))
    z *= std
    z += mean
    arr[...] = z
    return t


def constant_(t: Any, val: float) -> Any:
    _array(t).fill(val)
    return t


def zeros_(t: Any) -> Any:
    return constant_(t, 0.0)


def ones_(t: Any) -> Any:
    return constant_(t, 1.0)


def xavier_uniform_(t: Any, gain: float = 1.0, generator: Any = None) -> Any:
    """Glorot: U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_array(t).shape)
    bound = gain * math.sqrt(6.0 / (fan_in + fan_out))
    return uniform_(t, -bound, bound, generator)


def xavier_normal_(t: Any, gain: float = 1.0, generator: Any = None) -> Any:
    """Glorot: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _fans(_array(t).shape)
    return normal_(t, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)), generator)


def _kaiming_std(t: Any, a: float, mode: str, nonlinearity: str) -> float:
    fan_in, fan_out = _fans(_array(t).shape)
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"mode must be 'fan_in' or 'fan_out', got {mode!r}")
    fan = fan_in if mode == "fan_in" else fan_out
    return calculate_gain(nonlinearity, a) / math.sqrt(fan)


def kaiming_uniform_(
    t: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Any:
    """He: U(-b, b) with b = gain * sqrt(3 / fan); gain sqrt(2 / (1 + a^2)) for leaky_relu."""
    if _array(t).size == 0:  # nothing to fill (and a zero fan); PyTorch's no-op too
        return t
    bound = math.sqrt(3.0) * _kaiming_std(t, a, mode, nonlinearity)
    return uniform_(t, -bound, bound, generator)


def kaiming_normal_(
    t: Any,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Any:
    """He: N(0, std**2) with std = gain / sqrt(fan)."""
    if _array(t).size == 0:
        return t
    return normal_(t, 0.0, _kaiming_std(t, a, mode, nonlinearity), generator)
