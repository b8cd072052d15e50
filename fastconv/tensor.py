"""A small reverse-mode autograd on NumPy arrays, in the style of micrograd.

A :class:`Tensor` wraps a NumPy array (``.data``, float32 by default) and, when
it was produced by an op on tensors that require gradients, the op's inputs
(``_prev``) and a ``_backward`` closure. The closure maps the gradient of the
output to the gradients of the inputs (a tuple aligned with ``_prev``, ``None``
where an input needs none); :meth:`Tensor.backward` walks the recorded graph in
reverse topological order, sums the gradients of tensors used several times,
and ACCUMULATES (``+=``) into the ``.grad`` of leaves that require gradients.

This module is the Tensor core: the graph, grad mode (:class:`no_grad`), the
arithmetic and shape ops behind Tensor's operators and methods, the
activations, and :func:`cat`; the reductions (``sum``, ``mean``, ``max``,
``argmax``, ``clamp``, ...) are in :mod:`fastconv._tensor_reduce` and
``flatten``, ``permute``, ``squeeze``, ``unsqueeze`` in
:mod:`fastconv._tensor_shape`, attached to Tensor as methods. The layer ops (convolution, pooling,
linear), batch norm, dropout and the losses are in :mod:`fastconv.ops`.
Each op's array work is a function of :mod:`fastconv._kernels` (fastconv's
kernels) or :mod:`fastconv._numpy_kernels` (NumPy), decorated with
:func:`fastconv.profiler.timed`: a plain call unless a profiler is active.

Dtypes: a tensor holds float32 (run on the C++ kernels of
:mod:`fastconv.functional`) or float64 (on :mod:`fastconv.reference`), chosen
per op from its inputs; the rule, :func:`kernels`, the default dtype and
:func:`backend` are in :mod:`fastconv._kernels` and re-exported here.

Shapes use the letters N batch, C channels, H, W height and width.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any, Callable, Union

import numpy as np

from . import _grad_mode as grad_mode
from . import _kernels as kern
from . import _numpy_kernels as npk
from ._grad_mode import enable_grad, is_grad_enabled, no_grad
from ._kernels import (
    KERNELS,
    backend,
    dtype_of,
    float_array,
    get_backend,
    get_default_dtype,
    kernels,
    kernels_for,
    set_backend,
    set_default_dtype,
)

__all__ = [
    "Tensor",
    "backend",
    "cat",
    "enable_grad",
    "get_backend",
    "get_default_dtype",
    "is_grad_enabled",
    "kernels",
    "log_softmax",
    "no_grad",
    "relu",
    "set_backend",
    "set_default_dtype",
    "sigmoid",
    "softmax",
    "tanh",
    "tensor",
]

# --------------------------------------------------------------------------
# The graph: leaves and op outputs
# --------------------------------------------------------------------------

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence]


def _wrap(data: np.ndarray) -> Tensor:
    """A leaf Tensor around ``data`` as is (no conversion, no copy)."""
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = False
    t._prev = ()
    t._backward = None
    t._op = ""
    return t


def _make(data: np.ndarray, parents: tuple, backward: Callable, op: str) -> Tensor:
    """The output of an op; records the graph if grad mode is on and an input needs grad."""
    t = _wrap(data)
    if grad_mode.enabled:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._prev = parents
                t._backward = backward
                t._op = op
                break
    return t


def _released(g: np.ndarray) -> tuple:
    raise RuntimeError(
        "Trying to backward through the graph a second time (its saved arrays were freed); "
        "call .backward(retain_graph=True) the first time"
    )


# --------------------------------------------------------------------------
# Elementwise arithmetic with broadcasting (Tensor's operators)
# --------------------------------------------------------------------------


def _add_or_sub(op: str, a: Tensor, b: Tensor) -> Tensor:
    """``a + b`` (op ``"add"``) or ``a - b`` (``"sub"``): b's gradient is ``g`` or ``-g``."""
    dtype_of(op, ("input", a), ("other", b))
    sa, sb = a.shape, b.shape
    sub = op == "sub"

    def backward(g: np.ndarray) -> tuple:
        return (
            npk.unbroadcast(g, sa) if a.requires_grad else None,
            npk.unbroadcast(-g if sub else g, sb) if b.requires_grad else None,
        )

    y = npk.subtract(a.data, b.data) if sub else npk.add(a.data, b.data)
    return _make(y, (a, b), backward, op)


_add = functools.partial(_add_or_sub, "add")
_sub = functools.partial(_add_or_sub, "sub")


def _mul(a: Tensor, b: Tensor) -> Tensor:
    dtype_of("mul", ("input", a), ("other", b))
    x, y = a.data, b.data

    def backward(g: np.ndarray) -> tuple:
        return (
            npk.unbroadcast(npk.multiply_backward(g, y), x.shape) if a.requires_grad else None,
            npk.unbroadcast(npk.multiply_backward(g, x), y.shape) if b.requires_grad else None,
        )

    return _make(npk.multiply(x, y), (a, b), backward, "mul")


def _div(a: Tensor, b: Tensor) -> Tensor:
    dtype_of("div", ("input", a), ("other", b))
    x, y = a.data, b.data
    out = npk.divide(x, y)

    def backward(g: np.ndarray) -> tuple:
        ga = npk.divide_backward(g, y)
        return (
            npk.unbroadcast(ga, x.shape) if a.requires_grad else None,
            npk.unbroadcast(-ga * out, y.shape) if b.requires_grad else None,
        )

    return _make(out, (a, b), backward, "div")


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    dtype_of("matmul", ("input", a), ("other", b))
    x, w = a.data, b.data

    def backward(g: np.ndarray) -> tuple:
        return npk.matmul_backward(g, x, w, a.requires_grad, b.requires_grad)

    return _make(npk.matmul(x, w), (a, b), backward, "matmul")


def _operator(op: Callable[[Tensor, Tensor], Tensor]) -> tuple[Callable, Callable]:
    """Tensor's ``__op__`` and reflected ``__rop__`` methods for the binary ``op``."""

    def method(self: Tensor, other: ArrayLike) -> Tensor:
        return op(self, self._other(other))

    def reflected(self: Tensor, other: ArrayLike) -> Tensor:
        return op(self._other(other), self)

    return method, reflected


# --------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------


class Tensor:
    """A NumPy array with an optional gradient and the op that produced it.

    Parameters
    ----------
    data : array-like
        A float32 or float64 NumPy array keeps its dtype (no copy when it is
        C-contiguous); Python numbers and lists become the default dtype
        (float32 unless changed by :func:`set_default_dtype`).
    requires_grad : bool
        Whether :meth:`backward` computes ``.grad`` for this tensor.
    dtype : optional
        float32 or float64: convert ``data`` to it (an explicit conversion,
        the one way to make a tensor from, say, an integer array).

    Raises
    ------
    TypeError
        For an array of another dtype (float16, integers, ...) without
        ``dtype``, or a ``dtype`` other than float32 and float64.

    Attributes
    ----------
    data : ndarray
    grad : ndarray or None
        Accumulated gradient (leaves only); same shape and dtype as ``data``.
    requires_grad : bool
    """

    __slots__ = ("_backward", "_op", "_prev", "data", "grad", "requires_grad")
    # Make NumPy defer to Tensor's reflected operators (np.float32(2) * t -> Tensor).
    __array_ufunc__ = None

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> None:
        if isinstance(data, Tensor):
            data = data.data
        self.data = float_array(data, dtype)
        self.grad: np.ndarray | None = None
        self.requires_grad = bool(requires_grad)
        self._prev: tuple = ()
        self._backward: Callable | None = None
        self._op = ""

    # ---- properties ---------------------------------------------------------

    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    @property
    def is_leaf(self) -> bool:
        return self._backward is None

    @property
    def T(self) -> Tensor:
        return self.transpose()

    def numel(self) -> int:
        return int(self.data.size)

    def __len__(self) -> int:
        return len(self.data)

    def __bool__(self) -> bool:
        return bool(self.data)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def numpy(self) -> np.ndarray:
        """The data array (shared, not copied)."""
        return self.data

    def __dlpack__(self, *args: Any, **kwargs: Any) -> Any:
        """The data as a DLPack capsule (shared): ``torch.from_dlpack(t)``, ``np.from_dlpack(t)``."""
        return self.data.__dlpack__(*args, **kwargs)

    def __dlpack_device__(self) -> tuple:
        return self.data.__dlpack_device__()

    def item(self) -> float:
        """The value of a one-element tensor as a Python float."""
        if self.data.size != 1:
            raise ValueError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self.data.item()

    def detach(self) -> Tensor:
        """A tensor sharing ``data``, outside the graph."""
        return _wrap(self.data)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if not self.is_leaf:
            raise RuntimeError("requires_grad_ can only be changed on leaf tensors")
        self.requires_grad = bool(requires_grad)
        return self

    def zero_grad(self) -> None:
        self.grad = None

    def __repr__(self) -> str:
        body = np.array2string(self.data, prefix="Tensor(", separator=", ")
        extra = ""
        if self._op:
            extra = f", grad_fn=<{self._op}>"
        elif self.requires_grad:
            extra = ", requires_grad=True"
        if self.data.dtype != np.float32:
            extra = f", dtype={self.data.dtype}" + extra
        return f"Tensor({body}{extra})"

    # ---- backward -----------------------------------------------------------

    def backward(self, grad: ArrayLike | None = None, retain_graph: bool = False) -> None:
        """Back-propagate from this tensor, accumulating ``.grad`` of the leaves.

        Parameters
        ----------
        grad : array-like, optional
            Gradient of the final objective w.r.t. this tensor, of its shape.
            May be omitted for a one-element tensor (then 1).
        retain_graph : bool
            Keep the saved arrays so that backward can run through this graph
            again; by default they are released as the pass goes.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"grad can be omitted only for one-element outputs, got shape {self.shape}"
                )
            g = np.ones_like(self.data)
        else:
            g = float_array(grad.data if isinstance(grad, Tensor) else grad, like=self.dtype)
            dtype_of("backward", ("the tensor", self), ("grad", g))
            if g.shape != self.shape:
                raise ValueError(f"grad has shape {g.shape}, expected {self.shape}")

        # Reverse topological order of the nodes that require grad (iterative DFS).
        topo: list[Tensor] = []
        seen: set[int] = set()
        stack: list[tuple[Tensor, bool]] = [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                topo.append(node)
                continue
            if id(node) in seen:
                continue
            seen.add(id(node))
            stack.append((node, True))
            for p in node._prev:
                if p.requires_grad and id(p) not in seen:
                    stack.append((p, False))

        grads: dict[int, np.ndarray] = {id(self): g}
        for node in reversed(topo):
            g = grads.pop(id(node), None)
            if g is None:
                continue
            g = np.asarray(g)  # NumPy's 0-d arithmetic gives scalars; the kernels take arrays
            if node._backward is None:  # a leaf: accumulate
                if node.grad is None:
                    node.grad = g.astype(node.data.dtype, order="C", copy=True)
                else:
                    node.grad += g
                continue
            parent_grads = node._backward(g)
            for p, pg in zip(node._prev, parent_grads):
                if pg is None or not p.requires_grad:
                    continue
                k = id(p)
                prev = grads.get(k)
                grads[k] = pg if prev is None else prev + pg
            if not retain_graph:
                node._backward = _released
                node._prev = ()

    # ---- arithmetic ---------------------------------------------------------

    def _other(self, other: ArrayLike) -> Tensor:
        """The other operand of arithmetic: an array keeps its dtype (the op checks it
        against this tensor's); numbers, NumPy scalars and lists take this tensor's."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, np.ndarray):
            return _wrap(float_array(other))
        return _wrap(np.asarray(other, dtype=self.data.dtype))

    # ---- dtype --------------------------------------------------------------

    def to(self, dtype: Any) -> Tensor:
        """This tensor as ``dtype`` (float32 or float64), as ``torch.Tensor.to``.

        ``self`` if it already has that dtype; otherwise a converted copy in
        the graph, whose gradient flows back converted to this tensor's dtype.
        """
        d = np.dtype(dtype)
        if d not in KERNELS:
            raise TypeError(f"Tensor.to: dtype must be float32 or float64, got {d}")
        if d == self.data.dtype:
            return self
        src = self.data.dtype

        def backward(g: np.ndarray) -> tuple:
            return (g.astype(src),)

        return _make(self.data.astype(d), (self,), backward, "to")

    def float(self) -> Tensor:
        """``self.to(np.float32)``: runs on the fast kernels."""
        return self.to(np.float32)

    def double(self) -> Tensor:
        """``self.to(np.float64)``: runs on the NumPy reference."""
        return self.to(np.float64)

    __add__, __radd__ = _operator(_add)
    __sub__, __rsub__ = _operator(_sub)
    __mul__, __rmul__ = _operator(_mul)
    __truediv__, __rtruediv__ = _operator(_div)
    __matmul__, __rmatmul__ = _operator(_matmul)

    def __neg__(self) -> Tensor:
        return _make(npk.negative(self.data), (self,), _neg_bwd, "neg")

    def __pow__(self, exponent: float) -> Tensor:
        return self.pow(exponent)

    def pow(self, exponent: float) -> Tensor:
        """``self ** exponent`` for a scalar exponent."""
        if isinstance(exponent, Tensor):
            raise TypeError("pow supports scalar exponents only")
        e = float(exponent)
        x = self.data
        y = npk.power(x, x.dtype.type(e))

        def backward(g: np.ndarray) -> tuple:
            return (npk.power_backward(g, x, e),)

        return _make(y, (self,), backward, "pow")

    # ---- reductions, clamp, flatten, permute, squeeze, unsqueeze: attached by
    # fastconv._tensor_reduce and fastconv._tensor_shape (imported at the end).

    # ---- shape ops ----------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        in_shape = self.shape

        def backward(g: np.ndarray) -> tuple:
            return (g.reshape(in_shape),)

        return _make(self.data.reshape(shape), (self,), backward, "reshape")

    view = reshape

    def transpose(self, dim0: int | None = None, dim1: int | None = None) -> Tensor:
        """Swap two dims (PyTorch's ``transpose(dim0, dim1)``); no argument reverses all (``.T``)."""
        if dim0 is None and dim1 is None:
            return self.permute(*reversed(range(self.ndim)))
        if dim0 is None or dim1 is None:
            raise TypeError("transpose takes either no dims or two dims")
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def __getitem__(self, idx: Any) -> Tensor:
        if isinstance(idx, Tensor):
            idx = idx.data.astype(np.int64)
        x = self.data
        basic = _is_basic_index(idx)

        def backward(g: np.ndarray) -> tuple:
            gx = np.zeros_like(x)
            if basic:
                gx[idx] = g
            else:
                np.add.at(gx, idx, g)
            return (gx,)

        return _make(np.asarray(x[idx]), (self,), backward, "getitem")

    # ---- activations (methods) ---------------------------------------------

    def relu(self) -> Tensor:
        return relu(self)

    def tanh(self) -> Tensor:
        return tanh(self)

    def sigmoid(self) -> Tensor:
        return sigmoid(self)

    def exp(self) -> Tensor:
        return _output_saving("exp", npk.exp, npk.exp_backward, self)

    def log(self) -> Tensor:
        x = self.data
        y = npk.log(x)

        def backward(g: np.ndarray) -> tuple:
            return (npk.log_backward(g, x),)

        return _make(y, (self,), backward, "log")

    def softmax(self, dim: int = -1) -> Tensor:
        return softmax(self, dim)

    def log_softmax(self, dim: int = -1) -> Tensor:
        return log_softmax(self, dim)


# --------------------------------------------------------------------------
# Unary ops, reductions, shape ops and concatenation
# --------------------------------------------------------------------------


def _neg_bwd(g: np.ndarray) -> tuple:
    return (-g,)


def _is_basic_index(idx: Any) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Same as ``Tensor(data, requires_grad, dtype)``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _as_tensor(x: ArrayLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


def cat(tensors: Sequence[Tensor], dim: int = 1) -> Tensor:
    """Concatenate along ``dim`` (default 1: channels, for inception modules)."""
    tensors = tuple(_as_tensor(t) for t in tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    dtype_of("cat", *((f"tensors[{i}]", t) for i, t in enumerate(tensors)))
    ax = dim % tensors[0].ndim
    splits = np.cumsum([t.shape[ax] for t in tensors])[:-1]
    y = npk.concatenate([t.data for t in tensors], axis=ax)

    def backward(g: np.ndarray) -> tuple:
        return tuple(np.split(g, splits, axis=ax))

    return _make(y, tensors, backward, "cat")


# --------------------------------------------------------------------------
# Activations: ReLU on the kernels of the input's dtype, the others in NumPy
# --------------------------------------------------------------------------


def relu(x: Tensor) -> Tensor:
    """Differentiable :func:`fastconv.relu`; the backward reads the saved output."""
    F = kernels_for("relu", ("x", x))
    y = kern.relu(F, x.data)

    def backward(g: np.ndarray) -> tuple:
        return (kern.relu_backward(F, g, y),)

    return _make(y, (x,), backward, "relu")


def _output_saving(op: str, forward: Callable, backward: Callable, x: Tensor, *args: Any) -> Tensor:
    """A unary op whose backward reads its saved output: ``backward(g, y, *args)``."""
    y = forward(x.data, *args)

    def grad(g: np.ndarray) -> tuple:
        return (backward(g, y, *args),)

    return _make(y, (x,), grad, op)


def tanh(x: Tensor) -> Tensor:
    return _output_saving("tanh", npk.tanh, npk.tanh_backward, x)


def sigmoid(x: Tensor) -> Tensor:
    return _output_saving("sigmoid", npk.sigmoid, npk.sigmoid_backward, x)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim`` (max-shifted: stable)."""
    return _output_saving("softmax", npk.softmax, npk.softmax_backward, x, dim)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``dim`` (stable)."""
    return _output_saving("log_softmax", npk.log_softmax, npk.log_softmax_backward, x, dim)


# Tensor's reductions and shape methods, in their own modules; importing them
# attaches them to Tensor (they import this module, so they come last).
from . import _tensor_reduce, _tensor_shape  # noqa: E402, F401
