"""The losses on :class:`fastconv.Tensor`, with ``torch.nn.functional``'s names and semantics.

Re-exported by :mod:`fastconv.ops` (``ops.cross_entropy``, ...); the modules of
:mod:`fastconv.nn` (``nn.CrossEntropyLoss``, ...) call them. Each loss takes
PyTorch's arguments and defaults, including ``reduction`` (``'mean'``,
``'sum'`` or ``'none'``) and PyTorch's edge cases:

* a weighted mean divides by the sum of the weights of the targets that are
  not ``ignore_index``; when every target is ignored (or the batch is empty)
  the mean is ``nan``, as in PyTorch;
* :func:`binary_cross_entropy` clamps each log to >= -100, so that a
  probability of exactly 0 or 1 gives a finite loss;
* class labels are integer arrays (float labels are a ``TypeError``, never
  cast), probability targets are float arrays of the input's shape.

The array work is NumPy, in the functions of the first section, each timed
under its :mod:`fastconv.profiler` name (``cross_entropy``,
``cross_entropy.backward``, ...). Weights (``weight``, ``pos_weight``) are
constants: no gradient flows to them. A target given as a Tensor that
requires grad gets its gradient where PyTorch gives one (probability targets,
the regression and binary losses).

Shapes: N batch, C classes, d1, ... extra dims (a class map of (N, C, H, W)
logits has (N, H, W) labels). ``M`` is the number of rows N * d1 * ...
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from ._kernels import dtype_of, float_array
from .profiler import timed
from .tensor import Tensor, _make, _wrap

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cross_entropy",
    "huber_loss",
    "l1_loss",
    "mse_loss",
    "nll_loss",
]

REDUCTIONS = ("mean", "sum", "none")

# --------------------------------------------------------------------------
# Array work: rows of class scores (M, C) and element-wise losses
# --------------------------------------------------------------------------


@timed("cross_entropy")
def _log_softmax_rows(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(log_softmax(z), softmax(z))`` of rows (M, C), shifted by the row max (stable)."""
    logp = z - z.max(axis=1, keepdims=True) if z.shape[1] else z.copy()
    logp -= np.log(np.exp(logp).sum(axis=1, keepdims=True))
    return logp, np.exp(logp)


@timed("cross_entropy.backward")
def _cross_entropy_rows_backward(
    p: np.ndarray,
    qsum: np.ndarray,
    q: np.ndarray | None = None,
    t: np.ndarray | None = None,
    qt: np.ndarray | None = None,
) -> np.ndarray:
    """d/dz of ``-sum_c q_mc log_softmax(z)_mc`` per row: ``qsum_m * p_mc - q_mc``.

    The target distribution is a dense part ``q`` (M, C) plus ``qt_m`` at
    class ``t_m`` of each row m (either may be None); ``qsum`` (M,) is the
    sum of each row. All three already carry each row's gradient scale.
    """
    d = p * qsum[:, None]
    if q is not None:
        d -= q
    if t is not None:
        d[np.arange(len(t)), t] -= qt
    return d


@timed("nll_loss")
def _pick(a: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``a[m, t_m]`` for each row m of a (M, C)."""
    return a[np.arange(len(t)), t]


@timed("nll_loss.backward")
def _scatter(shape: tuple, t: np.ndarray, values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A zero (M, C) array with ``values[m]`` at ``[m, t_m]``."""
    d = np.zeros(shape, dtype)
    d[np.arange(len(t)), t] = values
    return d


def _softplus(x: np.ndarray) -> np.ndarray:
    """``log(1 + e^x)`` without overflow."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1.0, e) / (1 + e)


# --------------------------------------------------------------------------
# Arguments: reduction, targets, weights
# --------------------------------------------------------------------------


def _reduction(op: str, reduction: Any, size_average: Any = None, reduce: Any = None) -> str:
    """The reduction, from PyTorch's deprecated ``size_average``/``reduce`` when given."""
    if size_average is not None or reduce is not None:
        # torch's _Reduction.legacy_get_string: each flag defaults to True.
        size_average = True if size_average is None else size_average
        reduce = True if reduce is None else reduce
        reduction = ("mean" if size_average else "sum") if reduce else "none"
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"{op}: reduction must be one of 'mean', 'sum', 'none', got {reduction!r}")
    return reduction


def _constant(op: str, name: str, x: Tensor, value: Any) -> np.ndarray | None:
    """A weight (no gradient): a float array of x's dtype; lists take x's dtype."""
    if value is None:
        return None
    if isinstance(value, Tensor):
        value = value.data
    a = float_array(value) if isinstance(value, np.ndarray) else np.asarray(value, x.dtype)
    dtype_of(op, ("input", x), (name, a))
    return a


def _float_target(op: str, x: Tensor, target: Any) -> Tensor:
    """A float target of x's shape: an array keeps its dtype (which must be x's); lists take x's."""
    if isinstance(target, Tensor):
        t = target
    elif isinstance(target, np.ndarray):
        t = _wrap(float_array(target))
    else:
        t = _wrap(np.asarray(target, dtype=x.dtype))
    dtype_of(op, ("input", x), ("target", t))
    if t.shape != x.shape:
        raise ValueError(
            f"{op}: input shape {x.shape} and target shape {t.shape} differ "
            "(PyTorch's losses need the same size)"
        )
    return t


def _labels(op: str, z: np.ndarray, target: Any, ignore_index: int) -> tuple:
    """Integer class labels for scores z: ``(labels (M,), kept mask (M,), target shape)``.

    z is (C,) with a () target, or (N, C, d1, ...) with (N, d1, ...) targets.
    Labels equal to ``ignore_index`` are kept out (and may lie outside 0..C-1);
    the others must be in 0..C-1 (``IndexError`` otherwise, as PyTorch).
    """
    if isinstance(target, Tensor):
        raise TypeError(
            f"{op}: target must be integer class labels, got a {target.dtype} Tensor "
            "(tensors hold floats); pass a NumPy integer array, e.g. target.numpy().astype(np.int64)"
        )
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"{op}: target must be integer class labels (an integer dtype such as "
            f"int64), got {t.dtype} of shape {t.shape}; pass integer labels, e.g. "
            "target.astype(np.int64) (as PyTorch, float class indices are refused; "
            "class probabilities are a float target of the input's shape)"
        )
    want = () if z.ndim == 1 else (z.shape[0],) + z.shape[2:]
    if z.ndim == 0 or t.shape != want:
        raise ValueError(
            f"{op}: expected input (N, C) or (N, C, d1, ...) or (C,) and target (N,) or "
            f"(N, d1, ...) or (), got {z.shape} and {t.shape}"
        )
    C = z.shape[0 if z.ndim == 1 else 1]
    flat = t.reshape(-1).astype(np.int64)
    kept = flat != ignore_index
    bad = kept & ((flat < 0) | (flat >= C))
    if bad.any():
        raise IndexError(f"{op}: target {flat[bad][0]} is out of bounds for {C} classes")
    return np.where(kept, flat, 0), kept, t.shape


def _rows(z: np.ndarray) -> np.ndarray:
    """Scores (C,) or (N, C, d1, ...) as rows (M, C): the class dim moved last."""
    if z.ndim == 1:
        return z[None, :]
    return np.moveaxis(z, 1, -1).reshape(-1, z.shape[1])


def _unrows(d: np.ndarray, shape: tuple) -> np.ndarray:
    """The inverse of :func:`_rows` for an array of rows (M, C)."""
    if len(shape) == 1:
        return d.reshape(shape)
    moved = (shape[0],) + shape[2:] + (shape[1],)
    return np.ascontiguousarray(np.moveaxis(d.reshape(moved), -1, 1))


def _class_weight(op: str, x: Tensor, weight: Any, C: int) -> np.ndarray | None:
    w = _constant(op, "weight", x, weight)
    if w is not None and w.shape != (C,):
        raise ValueError(f"{op}: weight must have shape ({C},) (one per class), got {w.shape}")
    return w


# --------------------------------------------------------------------------
# Reductions and the graph node of a loss
# --------------------------------------------------------------------------


def _reduce(L: np.ndarray, reduction: str, shape: tuple, denom: Any) -> np.ndarray:
    """The loss of per-element values L: reshaped to ``shape`` ('none'), summed, or / denom."""
    if reduction == "none":
        return L.reshape(shape)
    total = L.sum(dtype=L.dtype)
    if reduction == "mean":
        with np.errstate(invalid="ignore", divide="ignore"):
            total = total / L.dtype.type(denom)  # 0 / 0 -> nan, as PyTorch
    return np.asarray(total, dtype=L.dtype)


def _element_grad(g: np.ndarray, reduction: str, size: int, denom: Any) -> np.ndarray:
    """The gradient of each element's loss, flat (size,), from the output's gradient g."""
    if reduction == "none":
        return g.reshape(size)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = g / g.dtype.type(denom) if reduction == "mean" else g
    return np.broadcast_to(s.reshape(1), (size,))


def _node(
    op: str,
    L: np.ndarray,
    reduction: str,
    shape: tuple,
    denom: Any,
    parents: tuple,
    grads: Callable,
) -> Tensor:
    """The loss tensor; ``grads(s)`` maps the per-element gradient s (M,) to the parents'."""
    M = L.size

    def backward(g: np.ndarray) -> tuple:
        return grads(_element_grad(g, reduction, M, denom))

    return _make(_reduce(L, reduction, shape, denom), parents, backward, op)


# --------------------------------------------------------------------------
# Classification: cross entropy and negative log-likelihood
# --------------------------------------------------------------------------


def _legacy(weight: Any, reduction: str) -> tuple[Any, str]:
    """fastconv's earlier ``loss(input, target, "sum")``: a str where weight goes is reduction."""
    return (None, weight) if isinstance(weight, str) else (weight, reduction)


def _regression_reduction(op: str, size_average: Any, reduce: Any, reduction: str) -> str:
    """:func:`_reduction` of mse/l1, whose third argument was ``reduction`` before PyTorch's."""
    if isinstance(size_average, str):
        size_average, reduction = None, size_average
    return _reduction(op, reduction, size_average, reduce)


def cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy of logits ``input`` and ``target``, as ``torch.nn.functional.cross_entropy``.

    Fused and numerically stable: log-softmax over the class dim (1, or 0 for
    unbatched (C,) logits) with the row maximum subtracted first, then the
    negative log-likelihood of the target distribution ``q``:
    ``loss_m = -sum_c q_mc log_softmax(z)_mc``; the gradient is
    ``(sum_c q_mc) softmax(z)_m - q_m``.

    Parameters
    ----------
    input : Tensor
        Logits (N, C), (C,) or (N, C, d1, ...).
    target : array-like
        Integer class labels (N,), () or (N, d1, ...) (``TypeError`` for
        floats; labels outside 0..C-1 other than ``ignore_index`` are an
        ``IndexError``), or class probabilities: a float array or Tensor of
        the input's shape.
    weight : array-like, optional
        (C,) weight of each class. With labels, a sample's loss is weighted by
        its class's weight and the mean divides by the sum of the weights of
        the samples not ignored; with probabilities, ``q_mc = weight_c *
        target_mc`` and the mean divides by M.
    ignore_index : int
        Labels with this value add nothing and are not counted by the mean
        (labels only). All ignored: the mean is ``nan``.
    reduction : {'mean', 'sum', 'none'}
        'none' returns the loss of each sample, of the target's shape.
    label_smoothing : float in [0, 1]
        Mixes the target with the uniform distribution: ``(1 - eps) * target +
        eps / C`` (per PyTorch, weighted by class for labels).
    size_average, reduce
        PyTorch's deprecated spelling of ``reduction`` (overrides it when given).
    """
    op = "cross_entropy"
    weight, reduction = _legacy(weight, reduction)
    reduction = _reduction(op, reduction, size_average, reduce)
    dtype_of(op, ("input", input))
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"{op}: label_smoothing must be in [0, 1], got {label_smoothing!r}")
    z = input.data
    if z.ndim == 0:
        raise ValueError(f"{op}: input must have a class dim, got a 0-d tensor")
    C = z.shape[0 if z.ndim == 1 else 1]
    w = _class_weight(op, input, weight, C)
    if z.shape == np.shape(target):  # class probabilities: PyTorch's rule
        kind = (target.dtype if isinstance(target, Tensor) else np.asarray(target).dtype).kind
        if kind != "f":
            raise TypeError(
                f"{op}: a target of the input's shape {z.shape} holds class probabilities and "
                f"must be float32 or float64, got {np.asarray(target).dtype}"
            )
        if ignore_index != -100:
            raise ValueError(
                f"{op}: ignore_index={ignore_index} applies to class labels, not to a target "
                "of class probabilities"
            )
        return _cross_entropy_soft(input, _float_target(op, input, target), w, reduction, eps)
    t, kept, tshape = _labels(op, z, target, ignore_index)
    logp, p = _log_softmax_rows(_rows(z))
    dt = z.dtype.type
    # q_mc = (1 - eps) * wt_m * [c == t_m] + (eps / C) * kept_m * w_c, with wt_m = w[t_m] * kept_m.
    wt = (kept if w is None else w[t] * kept).astype(z.dtype)
    L = -(dt(1 - eps) * wt) * _pick(logp, t)
    W = dt(C) if w is None else w.sum(dtype=z.dtype)
    if eps:
        smooth = -(logp.sum(axis=1) if w is None else logp @ w)
        L += dt(eps / C) * kept * smooth
    denom = wt.sum(dtype=z.dtype)

    def grads(s: np.ndarray) -> tuple:
        s = np.where(kept, s, 0).astype(z.dtype)  # ignored rows: 0 even when s is nan
        qt = dt(1 - eps) * wt * s
        qsum = qt + dt(eps / C) * W * s
        q = None
        if eps:
            q = np.outer(dt(eps / C) * s, np.ones(C, z.dtype) if w is None else w)
        return (_unrows(_cross_entropy_rows_backward(p, qsum, q, t, qt), z.shape),)

    return _node(op, L, reduction, tshape, denom, (input,), grads)


def _cross_entropy_soft(
    input: Tensor, target: Tensor, w: np.ndarray | None, reduction: str, eps: float
) -> Tensor:
    """:func:`cross_entropy` with class probabilities: ``q = w * ((1 - eps) * target + eps / C)``."""
    z = input.data
    C = z.shape[0 if z.ndim == 1 else 1]
    dt = z.dtype.type
    logp, p = _log_softmax_rows(_rows(z))
    q = _rows(target.data)
    if eps:
        q = q * dt(1 - eps) + dt(eps / C)
    if w is not None:
        q = q * w
    L = -(q * logp).sum(axis=1)
    tshape = z.shape[:1] + z.shape[2:] if z.ndim > 1 else ()

    def grads(s: np.ndarray) -> tuple:
        s = s.astype(z.dtype)
        dz = _cross_entropy_rows_backward(p, q.sum(axis=1) * s, q * s[:, None])
        dtarget = None
        if target.requires_grad:
            d = logp * (-dt(1 - eps) * s)[:, None]
            dtarget = _unrows(d if w is None else d * w, z.shape)
        return (_unrows(dz, z.shape), dtarget)

    return _node("cross_entropy", L, reduction, tshape, L.size, (input, target), grads)


def nll_loss(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    ignore_index: int = -100,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Negative log-likelihood of log-probabilities ``input``, as ``torch.nn.functional.nll_loss``.

    ``loss_m = -weight[t_m] * input[m, t_m]``; shapes, ``weight``,
    ``ignore_index`` and ``reduction`` as :func:`cross_entropy` with labels
    (the mean divides by the sum of the weights of the samples not ignored).
    Use it after ``log_softmax``; :func:`cross_entropy` does both in one op.
    """
    op = "nll_loss"
    weight, reduction = _legacy(weight, reduction)
    reduction = _reduction(op, reduction, size_average, reduce)
    dtype_of(op, ("input", input))
    z = input.data
    if z.ndim == 0:
        raise ValueError(f"{op}: input must have a class dim, got a 0-d tensor")
    C = z.shape[0 if z.ndim == 1 else 1]
    w = _class_weight(op, input, weight, C)
    t, kept, tshape = _labels(op, z, target, ignore_index)
    wt = (kept if w is None else w[t] * kept).astype(z.dtype)
    L = -wt * _pick(_rows(z), t)

    def grads(s: np.ndarray) -> tuple:
        v = -wt * np.where(kept, s, 0)
        return (_unrows(_scatter((len(t), C), t, v, z.dtype), z.shape),)

    return _node(op, L, reduction, tshape, wt.sum(dtype=z.dtype), (input,), grads)


# --------------------------------------------------------------------------
# Element-wise losses: regression and binary classification
# --------------------------------------------------------------------------


def _pointwise(
    op: str,
    input: Tensor,
    target: Tensor,
    reduction: str,
    forward: Callable[[np.ndarray, np.ndarray], np.ndarray],
    backward: Callable[[np.ndarray, np.ndarray, bool], tuple],
) -> Tensor:
    """A loss of one value per element: ``forward(x, t) -> L``, ``backward(x, t, need_t) ->
    (dL/dx, dL/dt or None)``, both timed under ``op`` and ``op.backward``; the mean is over
    all elements."""
    x, t = input.data, target.data
    L = timed(op)(forward)(x, t).reshape(-1)

    def grads(s: np.ndarray) -> tuple:
        dx, dt = timed(op + ".backward")(backward)(x, t, target.requires_grad)
        s = s.reshape(x.shape)
        return (dx * s, None if dt is None else dt * s)

    return _node(op, L, reduction, x.shape, L.size, (input, target), grads)


def _difference_loss(
    op: str, input: Tensor, target: Any, reduction: str, value: Callable, slope: Callable
) -> Tensor:
    """A loss of ``d = input - target``: ``value(d)`` per element, gradient ``slope(d)``."""
    t = _float_target(op, input, target)

    def backward(x: np.ndarray, y: np.ndarray, need_t: bool) -> tuple:
        d = slope(x - y)
        return d, -d if need_t else None

    return _pointwise(op, input, t, reduction, lambda x, y: value(x - y), backward)


def mse_loss(
    input: Tensor,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Squared error ``(input - target)**2``, averaged (or summed, or per element)."""
    reduction = _regression_reduction("mse_loss", size_average, reduce, reduction)
    return _difference_loss("mse_loss", input, target, reduction, np.square, lambda d: 2 * d)


def l1_loss(
    input: Tensor,
    target: Any,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Absolute error ``|input - target|`` (the gradient of ``|0|`` is 0)."""
    reduction = _regression_reduction("l1_loss", size_average, reduce, reduction)
    return _difference_loss("l1_loss", input, target, reduction, np.abs, np.sign)


def huber_loss(input: Tensor, target: Any, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """Huber loss: ``0.5 d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 delta)``.

    ``d = input - target``; the gradient is ``clamp(d, -delta, delta)``.
    """
    op = "huber_loss"
    reduction = _reduction(op, reduction)
    delta = float(delta)
    if not delta > 0:
        raise ValueError(f"{op}: delta must be > 0, got {delta}")

    def value(d: np.ndarray) -> np.ndarray:
        a = np.abs(d)
        return np.where(a < delta, 0.5 * a * a, delta * (a - 0.5 * delta)).astype(d.dtype)

    return _difference_loss(
        op, input, target, reduction, value, lambda d: np.clip(d, -delta, delta)
    )


def _elementwise_weight(op: str, name: str, x: Tensor, value: Any) -> np.ndarray | None:
    w = _constant(op, name, x, value)
    if w is not None:
        try:
            np.broadcast_shapes(w.shape, x.shape)
        except ValueError:
            raise ValueError(
                f"{op}: {name} of shape {w.shape} does not broadcast to the input's {x.shape}"
            ) from None
    return w


def binary_cross_entropy(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
) -> Tensor:
    """Binary cross entropy of probabilities, as ``torch.nn.functional.binary_cross_entropy``.

    ``loss = -weight * (t * log(x) + (1 - t) * log(1 - x))`` with each log
    clamped to >= -100 (PyTorch's rule: finite at x = 0 or 1). ``input`` and
    ``target`` must lie in [0, 1] (``ValueError`` otherwise); ``weight``
    broadcasts to the input's shape. The gradient is PyTorch's,
    ``weight * (x - t) / max(x (1 - x), 1e-12)``.
    """
    op = "binary_cross_entropy"
    weight, reduction = _legacy(weight, reduction)
    reduction = _reduction(op, reduction, size_average, reduce)
    t = _float_target(op, input, target)
    w = _elementwise_weight(op, "weight", input, weight)
    for name, a in (("input", input.data), ("target", t.data)):
        if a.size and not (np.all(a >= 0) and np.all(a <= 1)):
            raise ValueError(f"{op}: all elements of {name} should be between 0 and 1")

    def logs(x: np.ndarray) -> tuple:
        with np.errstate(divide="ignore"):
            return np.maximum(np.log(x), -100), np.maximum(np.log1p(-x), -100)

    def forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        log_x, log_1mx = logs(x)
        L = (y - 1) * log_1mx - y * log_x
        return L if w is None else L * w

    def backward(x: np.ndarray, y: np.ndarray, need_t: bool) -> tuple:
        dx = (x - y) / np.maximum((1 - x) * x, 1e-12)
        dt = None
        if need_t:
            log_x, log_1mx = logs(x)
            dt = log_1mx - log_x
        if w is not None:
            dx, dt = dx * w, None if dt is None else dt * w
        return dx, dt

    return _pointwise(op, input, t, reduction, forward, backward)


def binary_cross_entropy_with_logits(
    input: Tensor,
    target: Any,
    weight: Any = None,
    size_average: Any = None,
    reduce: Any = None,
    reduction: str = "mean",
    pos_weight: Any = None,
) -> Tensor:
    """Sigmoid + binary cross entropy in one stable op, as PyTorch's.

    ``loss = weight * ((1 - t) x + (1 + (pos_weight - 1) t) softplus(-x))``,
    i.e. ``-weight * (pos_weight t log sigmoid(x) + (1 - t) log(1 - sigmoid(x)))``
    without overflow. ``pos_weight`` (e.g. (C,) for C labels per sample)
    weights the positive targets and, like ``weight``, broadcasts to the
    input's shape.
    """
    op = "binary_cross_entropy_with_logits"
    weight, reduction = _legacy(weight, reduction)
    reduction = _reduction(op, reduction, size_average, reduce)
    t = _float_target(op, input, target)
    w = _elementwise_weight(op, "weight", input, weight)
    pw = _elementwise_weight(op, "pos_weight", input, pos_weight)

    def forward(x: np.ndarray, y: np.ndarray) -> np.ndarray:
        lw = 1 if pw is None else 1 + (pw - 1) * y
        L = (1 - y) * x + lw * _softplus(-x)
        return L if w is None else L * w

    def backward(x: np.ndarray, y: np.ndarray, need_t: bool) -> tuple:
        s = _sigmoid(x)
        dx = s - y if pw is None else (1 + (pw - 1) * y) * s - pw * y
        dt = None
        if need_t:
            dt = -x if pw is None else (pw - 1) * _softplus(-x) - x
        if w is not None:
            dx, dt = dx * w, None if dt is None else dt * w
        return dx.astype(x.dtype), None if dt is None else dt.astype(x.dtype)

    return _pointwise(op, input, t, reduction, forward, backward)
