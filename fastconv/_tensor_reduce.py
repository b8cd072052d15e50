"""Tensor's reductions and clamping, with PyTorch's names, arguments and gradients.

Attached to :class:`fastconv.tensor.Tensor` as methods when :mod:`fastconv.tensor`
is imported: ``sum``, ``mean`` (``dim``/``keepdim``, or NumPy's
``axis``/``keepdims``), ``max``, ``min``, ``argmax``, ``argmin``, ``clamp``
(alias ``clip``), ``clamp_min``, ``clamp_max``.

The gradients are PyTorch's: ``max(dim)`` / ``min(dim)`` send the gradient to
the one index they return (the first of equal values, as PyTorch on the CPU);
the global ``max()`` / ``min()`` spread it evenly over all the elements equal
to the result; ``clamp`` passes it where ``min <= x <= max``.

Indices (of ``max(dim)``, ``argmax``) are int64 NumPy arrays: tensors hold
floats, and integer arrays are what the losses take as class labels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from . import _numpy_kernels as npk
from .tensor import Tensor, _make

__all__ = ["ValuesIndices", "normalize_dims"]


class ValuesIndices(NamedTuple):
    """What ``max(dim)`` / ``min(dim)`` return, as ``torch.return_types.max``."""

    values: Tensor
    indices: np.ndarray


def normalize_dims(op: str, dim: Any, ndim: int) -> tuple[int, ...]:
    """``dim`` (an int or a sequence of ints) as a tuple of dims in [0, ndim).

    A 0-d tensor takes dim 0 or -1, as in PyTorch. Raises ``IndexError`` for
    a dim out of range (PyTorch's wording), ``TypeError`` for a non-int and
    ``ValueError`` for a repeated dim.
    """
    dims = (dim,) if not isinstance(dim, (tuple, list)) else tuple(dim)
    n = max(ndim, 1)
    out = []
    for d in dims:
        if isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)):
            raise TypeError(f"{op}: dim must be an int or a tuple of ints, got {dim!r}")
        if not -n <= d < n:
            raise IndexError(
                f"{op}: Dimension out of range (expected to be in range of [{-n}, {n - 1}], "
                f"but got {d})"
            )
        out.append(int(d) % n)
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: dim {dim!r} names a dim more than once")
    return tuple(d for d in out if d < ndim)


def _reduced(
    op: str, ndim: int, dim: Any, keepdim: bool, axis: Any, keepdims: Any
) -> tuple[tuple[int, ...] | None, bool]:
    """The dims to reduce (None: all) and keepdim, from PyTorch's ``dim``/``keepdim`` or
    NumPy's ``axis``/``keepdims`` (not both)."""
    if axis is not None:
        if dim is not None:
            raise TypeError(f"{op}: got both dim={dim!r} and axis={axis!r}; pass one")
        dim = axis
    if keepdims is not None:
        keepdim = keepdims
    return (None if dim is None else normalize_dims(op, dim, ndim)), bool(keepdim)


# --------------------------------------------------------------------------
# Sum and mean
# --------------------------------------------------------------------------


def _sum(
    self: Tensor,
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    axis: int | Sequence[int] | None = None,
    keepdims: bool | None = None,
) -> Tensor:
    """Sum over ``dim`` (an int or a tuple; None: all), keeping them as size 1 if ``keepdim``.

    ``axis``/``keepdims`` are NumPy's spelling of the same arguments.
    """
    axes, keepdim = _reduced("sum", self.ndim, dim, keepdim, axis, keepdims)
    shape = self.shape
    y = npk.reduce_sum(self.data, axis=axes, keepdims=keepdim)

    def backward(g: np.ndarray) -> tuple:
        return (npk.expand_reduced(g, shape, axes, keepdim),)

    return _make(np.asarray(y), (self,), backward, "sum")


def _mean(
    self: Tensor,
    dim: int | Sequence[int] | None = None,
    keepdim: bool = False,
    *,
    axis: int | Sequence[int] | None = None,
    keepdims: bool | None = None,
) -> Tensor:
    """Mean over ``dim`` (as :meth:`sum`); the mean of no elements is nan, as in PyTorch."""
    axes, keepdim = _reduced("mean", self.ndim, dim, keepdim, axis, keepdims)
    n = self.data.size if axes is None else math.prod(self.shape[a] for a in axes)
    return _sum(self, axes, keepdim) * (1.0 / n if n else math.nan)


# --------------------------------------------------------------------------
# Max, min and their indices
# --------------------------------------------------------------------------


def _extreme(self: Tensor, op: str, dim: Any, keepdim: bool) -> Any:
    """``max``/``min`` (op) of all elements, or ``(values, indices)`` along one dim."""
    x = self.data
    pick = np.argmax if op == "max" else np.argmin
    if dim is None:
        if keepdim:
            raise TypeError(f"{op}: keepdim needs a dim")
        if x.size == 0:
            raise ValueError(f"{op}: the tensor has no elements (shape {x.shape}); give a dim")
        m = x.max() if op == "max" else x.min()
        y = np.asarray(m, dtype=x.dtype)

        def spread(g: np.ndarray) -> tuple:
            # PyTorch's gradient of the global max/min: shared evenly by the ties.
            hit = (x == m) if not np.isnan(m) else np.isnan(x)
            return (hit * (g / np.count_nonzero(hit)).astype(x.dtype),)

        return _make(y, (self,), spread, op)
    if isinstance(dim, (tuple, list)):
        raise TypeError(f"{op}: dim must be an int, got {dim!r} (max over several dims: amax)")
    (d,) = normalize_dims(op, dim, self.ndim) or (0,)
    xx = x.reshape(1) if x.ndim == 0 else x
    if xx.shape[d] == 0:
        raise IndexError(f"{op}: cannot take the {op} over dim {dim} of size 0 (shape {x.shape})")
    kept = np.expand_dims(pick(xx, axis=d), d)  # the indices, with dim d kept, on xx
    values = np.take_along_axis(xx, kept, axis=d)

    def backward(g: np.ndarray) -> tuple:
        gx = np.zeros_like(xx)
        np.put_along_axis(gx, kept, g.reshape(kept.shape), axis=d)
        return (gx.reshape(x.shape),)

    idx = kept
    if not keepdim or x.ndim == 0:
        shape = values.shape[:d] + values.shape[d + 1 :] if x.ndim else ()
        values, idx = values.reshape(shape), kept.reshape(shape)
    out = _make(values, (self,), backward, op)
    return ValuesIndices(out, idx.astype(np.int64))


def _max(self: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The largest element (a 0-d Tensor), or ``(values, indices)`` along ``dim``.

    As ``torch.Tensor.max``: with ``dim``, a named tuple of the maxima (a
    Tensor) and their int64 indices (a NumPy array; the first of equal
    values); the gradient goes to those indices. Without ``dim``, the gradient
    is shared evenly by all the elements equal to the maximum.
    """
    return _extreme(self, "max", dim, keepdim)


def _min(self: Tensor, dim: int | None = None, keepdim: bool = False) -> Any:
    """The smallest element, or ``(values, indices)`` along ``dim``: as :meth:`max`."""
    return _extreme(self, "min", dim, keepdim)


def _arg(self: Tensor, op: str, dim: Any, keepdim: bool) -> np.ndarray:
    x = self.data
    if x.size == 0:
        raise ValueError(f"{op}: the tensor has no elements (shape {x.shape})")
    pick = np.argmax if op == "argmax" else np.argmin
    if dim is None:
        i = np.asarray(pick(x), dtype=np.int64)
        return i.reshape((1,) * x.ndim) if keepdim else i
    (d,) = normalize_dims(op, dim, x.ndim) or (0,)
    i = pick(x.reshape(1) if x.ndim == 0 else x, axis=d, keepdims=keepdim)
    return np.asarray(i, dtype=np.int64).reshape(() if x.ndim == 0 else i.shape)


def _argmax(self: Tensor, dim: int | None = None, keepdim: bool = False) -> np.ndarray:
    """int64 index of the largest element (of the flattened tensor without ``dim``), as PyTorch."""
    return _arg(self, "argmax", dim, keepdim)


def _argmin(self: Tensor, dim: int | None = None, keepdim: bool = False) -> np.ndarray:
    """int64 index of the smallest element: as :meth:`argmax`."""
    return _arg(self, "argmin", dim, keepdim)


# --------------------------------------------------------------------------
# Clamp
# --------------------------------------------------------------------------


def _bound(name: str, value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"clamp: {name} must be a number or None, got {type(value).__name__}")
    return float(value)


def _clamp(self: Tensor, min: float | None = None, max: float | None = None) -> Tensor:
    """Values limited to ``[min, max]`` (either may be None), as ``torch.clamp``.

    The gradient passes where ``min <= x <= max`` and is 0 elsewhere; with
    ``min > max`` every value becomes ``max`` (PyTorch's rule).
    """
    lo, hi = _bound("min", min), _bound("max", max)
    if lo is None and hi is None:
        raise ValueError("clamp: at least one of min and max must not be None")
    x = self.data
    y = x
    if lo is not None:
        y = np.maximum(y, x.dtype.type(lo))
    if hi is not None:
        y = np.minimum(y, x.dtype.type(hi))

    def backward(g: np.ndarray) -> tuple:
        inside = np.ones(x.shape, bool)
        if lo is not None:
            inside &= x >= lo
        if hi is not None:
            inside &= x <= hi
        return (g * inside,)

    return _make(np.asarray(y), (self,), backward, "clamp")


def _clamp_min(self: Tensor, min: float) -> Tensor:
    """``clamp(min=min)``."""
    return _clamp(self, min=min)


def _clamp_max(self: Tensor, max: float) -> Tensor:
    """``clamp(max=max)``."""
    return _clamp(self, max=max)


# Tensor's methods (the functions are named with a leading _ so as not to hide the builtins here).
for _f in (_sum, _mean, _max, _min, _argmax, _argmin, _clamp, _clamp_min, _clamp_max):
    setattr(Tensor, _f.__name__[1:], _f)
Tensor.clip = _clamp  # type: ignore[attr-defined]
