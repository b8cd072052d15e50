"""Layer and group normalisation on :class:`fastconv.Tensor` (batch norm is in :mod:`fastconv.ops`).

Both normalise groups of elements by their own mean and biased variance,
``xhat = (x - mean) / sqrt(var + eps)``, then scale and shift per element
(layer norm) or per channel (group norm), as ``torch.nn.functional``'s.
Plain NumPy on either float dtype, timed under their profiler names. With
``m`` elements per group, the input gradient is
``invstd * (gx - mean(gx) - xhat * mean(gx * xhat))`` with ``gx`` the
gradient of ``xhat``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ._kernels import dtype_of
from .profiler import timed
from .tensor import Tensor, _make

__all__ = ["group_norm", "layer_norm"]


@timed("norm.forward")
def _normalize(x: np.ndarray, eps: float) -> tuple:
    """``xhat`` of each row of x (G, m), and the rows' 1/sqrt(var + eps)."""
    mean = x.mean(axis=1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=1, keepdims=True)
    invstd = (1.0 / np.sqrt(var + eps)).astype(x.dtype)
    return xc * invstd, invstd


@timed("norm.backward")
def _normalize_backward(gx: np.ndarray, xhat: np.ndarray, invstd: np.ndarray) -> np.ndarray:
    dx = gx - gx.mean(axis=1, keepdims=True)
    dx -= xhat * (gx * xhat).mean(axis=1, keepdims=True)
    dx *= invstd
    return dx


def _affine(
    op: str,
    x: Tensor,
    rows: tuple[int, int],
    param_shape: tuple,
    weight: Tensor | None,
    bias: Tensor | None,
    eps: float,
) -> Tensor:
    """Normalise x's data viewed as ``rows`` (groups, m), then ``* weight + bias``.

    ``param_shape`` is the shape the parameters broadcast as against x; their
    gradients sum over the other dims.
    """
    dtype_of(op, ("input", x), ("weight", weight), ("bias", bias))
    if not (isinstance(eps, (int, float)) and eps > 0 and math.isfinite(eps)):
        raise ValueError(f"{op}: eps must be finite and > 0, got {eps!r}")
    shape = x.shape
    xhat, invstd = _normalize(x.data.reshape(rows), eps)
    xhat = xhat.reshape(shape)
    w = None if weight is None else weight.data.reshape(param_shape)
    y = xhat if w is None else xhat * w
    if bias is not None:
        y = y + bias.data.reshape(param_shape)
    sum_axes = tuple(i for i, n in enumerate(param_shape) if n == 1)

    def backward(g: np.ndarray) -> tuple:
        gx = g if w is None else g * w
        dx = _normalize_backward(gx.reshape(rows), xhat.reshape(rows), invstd).reshape(shape)
        grads = [dx if x.requires_grad else None]
        if weight is not None:
            grads.append((g * xhat).sum(axis=sum_axes).reshape(weight.shape))
        if bias is not None:
            grads.append(g.sum(axis=sum_axes).reshape(bias.shape))
        return tuple(grads)

    parents = (x,) + tuple(t for t in (weight, bias) if t is not None)
    return _make(np.ascontiguousarray(y), parents, backward, op)


def layer_norm(
    input: Tensor,
    normalized_shape: int | Sequence[int],
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise over the last ``len(normalized_shape)`` dims (``torch.nn.functional.layer_norm``).

    ``weight`` and ``bias`` have shape ``normalized_shape``.
    """
    ns = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    k = len(ns)
    shape = input.shape
    if k == 0 or input.ndim < k or tuple(shape[input.ndim - k :]) != ns:
        raise ValueError(
            f"layer_norm: normalized_shape {list(ns)} expects an input of shape [*, "
            f"{', '.join(map(str, ns))}], got {list(shape)}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != ns:
            raise ValueError(f"layer_norm: {name} must have shape {ns}, got {p.shape}")
    m = math.prod(ns)
    rows = (math.prod(shape[: input.ndim - k]), m)
    param_shape = (1,) * (input.ndim - k) + ns
    return _affine("layer_norm", input, rows, param_shape, weight, bias, eps)


def group_norm(
    input: Tensor,
    num_groups: int,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalise each of ``num_groups`` channel groups of each sample (``torch.nn.functional.group_norm``).

    input (N, C, *) with C divisible by ``num_groups``; ``weight`` and
    ``bias`` have shape (C,).
    """
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected an input (N, C, *), got shape {input.shape}")
    N, C = input.shape[:2]
    if num_groups < 1 or C % num_groups:
        raise ValueError(
            f"group_norm: num_groups={num_groups} must divide the {C} channels of an input of "
            f"shape {input.shape}"
        )
    for name, p in (("weight", weight), ("bias", bias)):
        if p is not None and tuple(p.shape) != (C,):
            raise ValueError(f"group_norm: {name} must have shape ({C},), got {p.shape}")
    rows = (N * num_groups, input.data.size // max(N * num_groups, 1))
    param_shape = (1, C) + (1,) * (input.ndim - 2)
    return _affine("group_norm", input, rows, param_shape, weight, bias, eps)
