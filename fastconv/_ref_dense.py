"""Reference fully connected layer and ReLU, plain NumPy."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._ref_arrays import _float_array, _same_dtype


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """Fully connected layer, ``x @ weight.T + bias`` (``torch.nn.functional.linear``).

    Parameters
    ----------
    x : ndarray, shape (..., in_features)
        float32 or float64; the leading dimensions (none for a 1-D x) are the batch.
    weight : ndarray, shape (out_features, in_features)
        Same dtype as ``x``.
    bias : ndarray, shape (out_features,), optional
        Same dtype as ``x``.

    Returns
    -------
    ndarray, shape (..., out_features)
        Same dtype as ``x``.

    Raises
    ------
    ValueError
        On wrong ranks or mismatched feature sizes.
    TypeError
        On non-float inputs or inputs of different dtypes.
    """
    x = _float_array(x, "x", None, "(..., in_features)")
    weight = _float_array(weight, "weight", 2, "(out_features, in_features)")
    _same_dtype(x, weight, "x and weight")
    if x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"x shape {x.shape} and weight shape {weight.shape} disagree on in_features"
        )
    y = x @ weight.T
    if bias is not None:
        bias = _float_array(bias, "bias", 1, "(out_features,)")
        _same_dtype(x, bias, "x and bias")
        if bias.shape != (weight.shape[0],):
            raise ValueError(
                f"bias must have shape ({weight.shape[0]},) for weight shape {weight.shape}, "
                f"got {bias.shape}"
            )
        y += bias
    return y


def linear_backward(
    grad_output: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    output_mask: Sequence[bool] = (True, True, True),
) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Gradients of :func:`linear`: ``(grad_input, grad_weight, grad_bias)``.

    With the leading dimensions of ``x`` flattened into a batch B:
    ``grad_input = grad_output @ weight``, ``grad_weight = grad_output.T @ x``,
    ``grad_bias = grad_output.sum over B``; ``None`` where the mask is off.
    """
    dy2 = grad_output.reshape(-1, weight.shape[0])
    x2 = x.reshape(-1, weight.shape[1])
    dx = (dy2 @ weight).reshape(x.shape) if output_mask[0] else None
    dw = dy2.T @ x2 if output_mask[1] else None
    db = dy2.sum(axis=0) if output_mask[2] else None
    return dx, dw, db


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)`` elementwise; NaN stays NaN (as ``torch.relu``)."""
    return np.where(x < 0, np.zeros((), x.dtype), x)


def relu_backward(grad_output: np.ndarray, output: np.ndarray) -> np.ndarray:
    """``grad_output`` where ``output > 0``, else 0 (NaN in ``output`` gives 0)."""
    return np.where(output > 0, grad_output, np.zeros((), grad_output.dtype))
