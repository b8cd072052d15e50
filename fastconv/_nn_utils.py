"""Gradient clipping, ``fastconv.nn.utils``, with ``torch.nn.utils``' names and semantics.

Each function takes one :class:`fastconv.Tensor` or an iterable of them and
works on the ``.grad`` arrays IN PLACE, skipping parameters without one.
:func:`clip_grad_norm_` is :func:`get_total_norm` followed by
:func:`clip_grads_with_norm_`, as in torch.

The total norm is returned as a NumPy scalar of the gradients' dtype
(``numpy.float32`` for float32 gradients), where torch returns a 0-d tensor:
like that tensor it has ``.item()``, and like a float it converts with
``float()``, compares and formats. It is the norm of the per-parameter norms,
each accumulated in float64 (so float32 gradients cannot overflow into inf),
then rounded to the gradients' dtype.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Union

import numpy as np

from .tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "clip_grads_with_norm_", "get_total_norm"]

Parameters = Union[Tensor, Iterable[Tensor]]


def _grads(parameters: Parameters) -> list[np.ndarray]:
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = []
    for p in parameters:
        if not isinstance(p, Tensor):
            raise TypeError(f"expected Tensors with .grad, got {type(p).__name__}")
        if p.grad is not None:
            grads.append(p.grad)
    return grads


def _norm(x: np.ndarray, p: float) -> float:
    """The ``p``-norm of ``x`` flattened, accumulated in float64 (torch's ``vector_norm``)."""
    a = np.abs(x.ravel()).astype(np.float64, copy=False)
    if a.size == 0:
        return 0.0
    if p == math.inf:
        return float(a.max())
    if p == -math.inf:
        return float(a.min())
    if p == 0:
        return float(np.count_nonzero(a))
    if p == 1:
        return float(a.sum())
    if p == 2:
        return math.sqrt(float(np.dot(a, a)))
    return float(np.sum(a**p) ** (1.0 / p))


def get_total_norm(
    tensors: np.ndarray | Iterable[np.ndarray] | Tensor,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> np.floating:
    """The ``norm_type``-norm of all ``tensors`` together (as one concatenated vector).

    ``tensors`` are the gradient arrays (or Tensors, whose data is used);
    ``norm_type`` may be ``float("inf")`` (``"inf"`` also accepted). ``foreach``
    is accepted for torch's signature and ignored.

    Raises
    ------
    RuntimeError
        If ``error_if_nonfinite`` and the norm is NaN or infinite.
    """
    if isinstance(tensors, (np.ndarray, Tensor)):
        tensors = [tensors]
    arrays = [np.asarray(t.data if isinstance(t, Tensor) else t) for t in tensors]
    p = float(norm_type)
    if not arrays:
        return np.float32(0.0)
    dtype = np.result_type(*arrays)
    if dtype.kind != "f":
        dtype = np.dtype(np.float32)
    norms = [_norm(a, p) for a in arrays]
    total = dtype.type(_norm(np.array(norms), p))
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {p} for gradients from `parameters` is non-finite, so it "
            "cannot be clipped. To disable this error and scale the gradients by the "
            "non-finite norm anyway, set `error_if_nonfinite=False`"
        )
    return total


def clip_grads_with_norm_(
    parameters: Parameters, max_norm: float, total_norm: Any, foreach: bool | None = None
) -> None:
    """Scale the gradients by ``min(1, max_norm / (total_norm + 1e-6))``, in place.

    The factor is computed in the gradients' dtype as torch does; a NaN or
    infinite ``total_norm`` gives NaN or zero (and NaN for infinite entries)
    gradients, as in torch.
    """
    grads = _grads(parameters)
    if not grads:
        return
    t = np.asarray(total_norm.data if isinstance(total_norm, Tensor) else total_norm)
    dtype = t.dtype if t.dtype.kind == "f" else np.dtype(np.float32)
    coef = dtype.type(float(max_norm)) / (t.astype(dtype) + dtype.type(1e-6))
    coef = np.minimum(coef, dtype.type(1.0))
    if coef == 1.0:  # multiplying by one changes nothing
        return
    with np.errstate(invalid="ignore"):  # inf * 0 is NaN, as in torch, without a warning
        for g in grads:
            g *= coef.astype(g.dtype)


def clip_grad_norm_(
    parameters: Parameters,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: bool | None = None,
) -> np.floating:
    """Rescale the gradients so that their total ``norm_type``-norm is at most ``max_norm``.

    The norm is that of all gradients concatenated into one vector
    (:func:`get_total_norm`); every gradient is multiplied by
    ``min(1, max_norm / (total + 1e-6))``, in place. ``foreach`` is accepted
    for torch's signature and ignored.

    Returns
    -------
    numpy.floating
        The total norm before clipping, a NumPy scalar of the gradients'
        dtype (``.item()`` or ``float()`` give a Python float).

    Raises
    ------
    RuntimeError
        If ``error_if_nonfinite`` and the norm is NaN or infinite (then no
        gradient is changed).
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    parameters = list(parameters)
    total = get_total_norm(_grads(parameters), norm_type, error_if_nonfinite)
    clip_grads_with_norm_(parameters, max_norm, total)
    return total


def clip_grad_value_(
    parameters: Parameters, clip_value: float, foreach: bool | None = None
) -> None:
    """Clamp every gradient entry to ``[-clip_value, clip_value]``, in place (NaN stays NaN)."""
    c = float(clip_value)
    for g in _grads(parameters):
        np.clip(g, -c, c, out=g)
