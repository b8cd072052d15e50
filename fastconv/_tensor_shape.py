"""Tensor's shape methods with PyTorch's names and defaults: views whose gradient is reshaped back.

Attached to :class:`fastconv.tensor.Tensor` when :mod:`fastconv.tensor` is
imported: ``flatten(start_dim=0, end_dim=-1)``, ``permute(*dims)``,
``squeeze(dim=None)``, ``unsqueeze(dim)``. Dims out of range are an
``IndexError`` in PyTorch's words (:func:`fastconv._tensor_reduce.normalize_dims`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ._tensor_reduce import normalize_dims
from .tensor import Tensor, _make

__all__: list[str] = []


def _flatten(self: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Merge dims ``start_dim..end_dim`` into one (all of them by default, as PyTorch).

    ``nn.Flatten`` keeps the batch: ``flatten(1)``. A 0-d tensor becomes (1,).
    """
    (s,) = normalize_dims("flatten", start_dim, self.ndim) or (0,)
    (e,) = normalize_dims("flatten", end_dim, self.ndim) or (0,)
    if s > e:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    if self.ndim == 0:
        return self.reshape(1)
    shp = self.shape
    # The merged size spelled out, not -1: an empty batch has no -1 to infer.
    return self.reshape(*shp[:s], math.prod(shp[s : e + 1]), *shp[e + 1 :])


def _permute(self: Tensor, *dims: Any) -> Tensor:
    """The dims reordered: ``permute(2, 0, 1)`` or ``permute((2, 0, 1))``."""
    if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
        dims = tuple(dims[0])
    if len(dims) != self.ndim:
        raise ValueError(
            f"permute: the number of dims does not match: the tensor has {self.ndim} "
            f"(shape {self.shape}), got {len(dims)} dims {dims}"
        )
    order = normalize_dims("permute", dims, self.ndim)  # ValueError for a repeated dim
    inverse = tuple(np.argsort(order))

    def backward(g: np.ndarray) -> tuple:
        return (g.transpose(inverse),)

    return _make(self.data.transpose(order), (self,), backward, "permute")


def _squeeze(self: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Remove the dims of size 1 (only those of ``dim``, an int or tuple, if given).

    As PyTorch, a named dim whose size is not 1 is left alone.
    """
    dims = range(self.ndim) if dim is None else normalize_dims("squeeze", dim, self.ndim)
    drop = {d for d in dims if self.shape[d] == 1}
    return self.reshape(tuple(n for d, n in enumerate(self.shape) if d not in drop))


def _unsqueeze(self: Tensor, dim: int) -> Tensor:
    """A dim of size 1 inserted at ``dim``, in ``[-ndim - 1, ndim]``."""
    (d,) = normalize_dims("unsqueeze", dim, self.ndim + 1)
    return self.reshape(self.shape[:d] + (1,) + self.shape[d:])


for _f in (_flatten, _permute, _squeeze, _unsqueeze):
    setattr(Tensor, _f.__name__[1:], _f)
