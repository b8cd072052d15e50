"""A small reverse-mode autograd on NumPy arrays, in the style of micrograd.

A :class:`Tensor` wraps a NumPy array (``.data``, float32 by default) and, when
it was produced by an op on tensors that require gradients, the op's inputs
(``_prev``) and a ``_backward`` closure. The closure maps the gradient of the
output to the gradients of the inputs (a tuple aligned with ``_prev``, ``None``
where an input needs none); :meth:`Tensor.backward` walks the recorded graph in
reverse topological order, sums the gradients of tensors used several times,
and ACCUMULATES (``+=``) into the ``.grad`` of leaves that require gradients.

The convolution, pooling, linear and ReLU ops (forward and backward) call the
kernels of the inputs' dtype; the other ops are one or two NumPy expressions.
Every op's array work goes through :func:`_timed`, which is a plain call
unless a :class:`fastconv.profiler.Profiler` is active (one global check).

Dtypes
------
One rule, everywhere in the layer API (tensors, ops, modules, losses):

* A :class:`Tensor` keeps the dtype of a float32 or float64 NumPy array it is
  given; Python numbers and lists become the default dtype (float32, see
  :func:`set_default_dtype`). Any other dtype (float16, integer arrays) is a
  ``TypeError``: convert it yourself (``a.astype(np.float32)``, or
  ``Tensor(a, dtype=np.float32)``).
* Each op runs on its inputs' dtype, chosen per call (there is no global
  switch): float32 on the C++ kernels of :mod:`fastconv.functional`, float64
  on the plain-NumPy :mod:`fastconv.reference` (same signatures), which is
  what finite-difference gradient checks need.
* The inputs of one op share one dtype: float32 next to float64 is a
  ``TypeError`` naming both (convert with ``.float()`` / ``.double()`` on a
  tensor or a module, or ``astype`` on an array). Python numbers and lists
  given to an op next to a tensor take the tensor's dtype.
* Class labels (:func:`cross_entropy`'s target) are integer arrays; float
  labels are a ``TypeError`` (``labels.astype(np.int64)``).

So ``model.double()`` trains in float64, on the reference::

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).double()
    y = model(x.astype(np.float64))     # reference.conv2d, reference.relu

:func:`backend` (``with backend("reference", np.float64):``) sets the default
dtype for a block, so that the layers built inside have float64 parameters.

Shapes use the letters N batch, C channels, H, W height and width.
"""

from __future__ import annotations

import contextlib
import functools
import math
from collections.abc import Iterator, Sequence
from time import perf_counter
from types import ModuleType
from typing import Any, Callable, Union

import numpy as np

from . import functional, profiler, reference

__all__ = [
    "Tensor",
    "avg_pool2d",
    "backend",
    "batch_norm",
    "cat",
    "conv2d",
    "cross_entropy",
    "dropout",
    "enable_grad",
    "get_backend",
    "get_default_dtype",
    "is_grad_enabled",
    "kernels",
    "l1_loss",
    "linear",
    "log_softmax",
    "max_pool2d",
    "mse_loss",
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
# Global switches: grad mode, backend, default dtype
# --------------------------------------------------------------------------

_grad_enabled = True
_default_dtype = np.dtype(np.float32)
# The kernels of each dtype; every op picks its module from its inputs' dtype.
_KERNELS = {np.dtype(np.float32): functional, np.dtype(np.float64): reference}
# backend() names: the default dtype whose kernels the name stands for.
_BACKEND_DTYPES = {"fastconv": np.dtype(np.float32), "reference": np.dtype(np.float64)}
_ACCEPTED = "float32 (fast kernels) or float64 (NumPy reference)"
_HOW_TO_CONVERT = (
    "convert one of them: .float() / .double() on a Tensor or a Module, "
    ".astype(np.float32) / .astype(np.float64) on an array"
)


def is_grad_enabled() -> bool:
    """True unless inside :class:`no_grad`."""
    return _grad_enabled


class no_grad:
    """Context manager (or decorator) under which ops record no graph.

    Outputs of ops computed inside have ``requires_grad=False``, so nothing is
    saved for a backward pass (inference, evaluation, summaries).
    """

    _enabled = False

    def __new__(cls, func: Callable | None = None) -> Any:
        # ``@no_grad`` (without parentheses) decorates ``func`` directly.
        self = super().__new__(cls)
        return self if func is None else self(func)

    def __enter__(self) -> None:
        global _grad_enabled
        self._prev = _grad_enabled
        _grad_enabled = self._enabled

    def __exit__(self, *exc: object) -> None:
        global _grad_enabled
        _grad_enabled = self._prev

    def __call__(self, fn: Callable) -> Callable:
        cls = type(self)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with cls():
                return fn(*args, **kwargs)

        return wrapper


class enable_grad(no_grad):
    """Context manager that turns graph recording back on inside :class:`no_grad`."""

    _enabled = True


def kernels(dtype: Any) -> ModuleType:
    """The module whose functions the ops run for ``dtype``.

    :mod:`fastconv.functional` (C++ kernels) for float32,
    :mod:`fastconv.reference` (plain NumPy, same signatures) for float64.

    Raises
    ------
    TypeError
        For any other dtype.
    """
    d = np.dtype(dtype)
    if d not in _KERNELS:
        raise TypeError(f"no kernels for dtype {d}: tensors hold {_ACCEPTED}")
    return _KERNELS[d]


def _dtype_of(op: str, *named: tuple[str, Any]) -> np.dtype:
    """The one dtype of an op's inputs, given as ``(name, tensor or array or None)``.

    Raises ``TypeError`` naming both dtypes when two inputs differ (PyTorch's
    "expected ... Double but found Float"), and for a dtype without kernels.
    """
    first: tuple[str, np.dtype] | None = None
    for name, a in named:
        if a is None:
            continue
        d = a.dtype
        if first is None:
            if d not in _KERNELS:
                raise TypeError(f"{op}: {name} has dtype {d}; ops take {_ACCEPTED}")
            first = (name, d)
        elif d != first[1]:
            raise TypeError(
                f"{op}: {first[0]} is {first[1]} but {name} is {d}; expected one dtype for "
                f"all inputs: {_HOW_TO_CONVERT}"
            )
    assert first is not None, op
    return first[1]


def _kernels_for(op: str, *named: tuple[str, Any]) -> ModuleType:
    """:func:`kernels` of the inputs' common dtype (see :func:`_dtype_of`)."""
    return _KERNELS[_dtype_of(op, *named)]


def set_default_dtype(dtype: Any) -> None:
    """dtype of tensors made from Python numbers or lists, and of new layers' parameters.

    float32 (the default) or float64; arrays keep their own dtype.
    """
    global _default_dtype
    d = np.dtype(dtype)
    if d not in _KERNELS:
        raise TypeError(f"default dtype must be float32 or float64, got {d}")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    """The dtype of tensors made from Python numbers or lists (float32 unless changed)."""
    return _default_dtype


def set_backend(name: str) -> None:
    """Set the default dtype by the name of its kernels: ``"fastconv"`` float32, ``"reference"`` float64.

    Kept for compatibility: which kernels an op runs is decided per call by
    its inputs' dtype (see the module docstring), not by this setting.
    """
    if name not in _BACKEND_DTYPES:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(_BACKEND_DTYPES)}")
    set_default_dtype(_BACKEND_DTYPES[name])


def get_backend() -> str:
    """The name of the default dtype's kernels: ``"fastconv"`` (float32) or ``"reference"``."""
    return next(k for k, v in _BACKEND_DTYPES.items() if v == _default_dtype)


@contextlib.contextmanager
def backend(name: str, dtype: Any = None) -> Iterator[None]:
    """Temporarily set the default dtype, by name: ``"reference"`` float64, ``"fastconv"`` float32.

    ``with backend("reference", np.float64):`` builds layers with float64
    parameters and makes Python numbers float64 inside the block; the ops on
    them then run on :mod:`fastconv.reference` because they are float64.
    Float32 tensors still run on the fast kernels inside the block.

    Raises
    ------
    ValueError
        For an unknown name, or a ``dtype`` that is not the name's (float32
        always runs on the fast kernels: to run it on the reference, call
        :mod:`fastconv.reference`'s functions directly).
    """
    if name not in _BACKEND_DTYPES:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(_BACKEND_DTYPES)}")
    want = _BACKEND_DTYPES[name]
    if dtype is not None and np.dtype(dtype) != want:
        raise ValueError(
            f"backend {name!r} is the {want} backend, got dtype {np.dtype(dtype)}: each op runs "
            "float32 on fastconv.functional and float64 on fastconv.reference"
        )
    global _default_dtype
    prev = _default_dtype
    _default_dtype = want
    try:
        yield
    finally:
        _default_dtype = prev


def _timed(name: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)``, timed under ``name`` when a profiler is active."""
    prof = profiler._active
    if prof is None:
        return fn(*args, **kwargs)
    t0 = perf_counter()
    out = fn(*args, **kwargs)
    prof.add(name, perf_counter() - t0)
    return out


# --------------------------------------------------------------------------
# Tensor
# --------------------------------------------------------------------------

ArrayLike = Union["Tensor", np.ndarray, float, int, Sequence]


def _released(g: np.ndarray) -> tuple:
    raise RuntimeError(
        "Trying to backward through the graph a second time (its saved arrays were freed); "
        "call .backward(retain_graph=True) the first time"
    )


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
        self.data = _float_array(data, dtype)
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
            g = _float_array(grad.data if isinstance(grad, Tensor) else grad, like=self.dtype)
            _dtype_of("backward", ("the tensor", self), ("grad", g))
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
            return _wrap(_float_array(other))
        return _wrap(np.asarray(other, dtype=self.data.dtype))

    # ---- dtype --------------------------------------------------------------

    def to(self, dtype: Any) -> Tensor:
        """This tensor as ``dtype`` (float32 or float64), as ``torch.Tensor.to``.

        ``self`` if it already has that dtype; otherwise a converted copy in
        the graph, whose gradient flows back converted to this tensor's dtype.
        """
        d = np.dtype(dtype)
        if d not in _KERNELS:
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

    def __add__(self, other: ArrayLike) -> Tensor:
        return _add(self, self._other(other))

    def __radd__(self, other: ArrayLike) -> Tensor:
        return _add(self._other(other), self)

    def __sub__(self, other: ArrayLike) -> Tensor:
        return _sub(self, self._other(other))

    def __rsub__(self, other: ArrayLike) -> Tensor:
        return _sub(self._other(other), self)

    def __mul__(self, other: ArrayLike) -> Tensor:
        return _mul(self, self._other(other))

    def __rmul__(self, other: ArrayLike) -> Tensor:
        return _mul(self._other(other), self)

    def __truediv__(self, other: ArrayLike) -> Tensor:
        return _div(self, self._other(other))

    def __rtruediv__(self, other: ArrayLike) -> Tensor:
        return _div(self._other(other), self)

    def __matmul__(self, other: ArrayLike) -> Tensor:
        return _matmul(self, self._other(other))

    def __rmatmul__(self, other: ArrayLike) -> Tensor:
        return _matmul(self._other(other), self)

    def __neg__(self) -> Tensor:
        return _make(_timed("neg.forward", np.negative, self.data), (self,), _neg_bwd, "neg")

    def __pow__(self, exponent: float) -> Tensor:
        return self.pow(exponent)

    def pow(self, exponent: float) -> Tensor:
        """``self ** exponent`` for a scalar exponent."""
        if isinstance(exponent, Tensor):
            raise TypeError("pow supports scalar exponents only")
        e = float(exponent)
        x = self.data
        y = _timed("pow.forward", np.power, x, x.dtype.type(e))

        def backward(g: np.ndarray) -> tuple:
            return (_timed("pow.backward", _pow_bwd, g, x, e),)

        return _make(y, (self,), backward, "pow")

    # ---- reductions ---------------------------------------------------------

    def sum(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        shape = self.shape
        y = _timed("sum.forward", np.sum, self.data, axis=_axis(axis), keepdims=keepdims)

        def backward(g: np.ndarray) -> tuple:
            return (_expand_reduced(g, shape, axis, keepdims),)

        return _make(np.asarray(y), (self,), backward, "sum")

    def mean(self, axis: int | Sequence[int] | None = None, keepdims: bool = False) -> Tensor:
        if axis is None:
            n = self.data.size
        else:
            axes = (axis,) if isinstance(axis, int) else tuple(axis)
            n = int(np.prod([self.shape[a] for a in axes]))
        return self.sum(axis, keepdims) * (1.0 / max(n, 1))

    # ---- shape ops ----------------------------------------------------------

    def reshape(self, *shape: Any) -> Tensor:
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        in_shape = self.shape

        def backward(g: np.ndarray) -> tuple:
            return (g.reshape(in_shape),)

        return _make(self.data.reshape(shape), (self,), backward, "reshape")

    view = reshape

    def flatten(self, start_dim: int = 1, end_dim: int = -1) -> Tensor:
        """Merge dims ``start_dim..end_dim`` (default: everything but the batch dim)."""
        nd = max(self.ndim, 1)
        s, e = start_dim % nd, end_dim % nd
        if s > e:
            raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
        shp = self.shape
        if self.ndim == 0:
            return self.reshape(1)
        # The merged size spelled out, not -1: an empty batch has no -1 to infer.
        merged = math.prod(shp[s : e + 1])
        return self.reshape(*shp[:s], merged, *shp[e + 1 :])

    def transpose(self, dim0: int | None = None, dim1: int | None = None) -> Tensor:
        """Swap two dims (PyTorch's ``transpose(dim0, dim1)``); no argument reverses all (``.T``)."""
        if dim0 is None and dim1 is None:
            return self.permute(*reversed(range(self.ndim)))
        if dim0 is None or dim1 is None:
            raise TypeError("transpose takes either no dims or two dims")
        axes = list(range(self.ndim))
        axes[dim0], axes[dim1] = axes[dim1], axes[dim0]
        return self.permute(*axes)

    def permute(self, *dims: int) -> Tensor:
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        inverse = tuple(np.argsort(dims))

        def backward(g: np.ndarray) -> tuple:
            return (g.transpose(inverse),)

        return _make(self.data.transpose(dims), (self,), backward, "permute")

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
        y = _timed("exp.forward", np.exp, self.data)

        def backward(g: np.ndarray) -> tuple:
            return (_timed("exp.backward", np.multiply, g, y),)

        return _make(y, (self,), backward, "exp")

    def log(self) -> Tensor:
        x = self.data
        y = _timed("log.forward", np.log, x)

        def backward(g: np.ndarray) -> tuple:
            return (_timed("log.backward", np.divide, g, x),)

        return _make(y, (self,), backward, "log")

    def softmax(self, dim: int = -1) -> Tensor:
        return softmax(self, dim)

    def log_softmax(self, dim: int = -1) -> Tensor:
        return log_softmax(self, dim)


def _float_array(data: Any, dtype: Any = None, like: np.dtype | None = None) -> np.ndarray:
    """``data`` as a C-contiguous float32 or float64 array, by the module's dtype rule.

    With ``dtype``: converted to it (explicitly asked for; float32 or float64).
    Otherwise a NumPy array or scalar (or anything with ``__array__``) keeps
    its dtype, which must be float32 or float64, and Python numbers and lists
    become ``like`` (the dtype of the tensor they meet) or the default dtype.
    """
    if dtype is not None:
        d = np.dtype(dtype)
        if d not in _KERNELS:
            raise TypeError(
                f"Tensor data must be floating point, float32 or float64, got dtype {d}"
            )
        return np.asarray(data, dtype=d, order="C")
    if isinstance(data, (np.ndarray, np.generic)) or hasattr(data, "__array__"):
        arr = np.asarray(data, order="C")
        if arr.dtype not in _KERNELS:
            raise TypeError(
                f"Tensor data must be floating point, {_ACCEPTED}; got a {arr.dtype} array. "
                "Nothing is cast silently: convert it with .astype(np.float32) (or "
                ".astype(np.float64)), or pass dtype="
            )
        return arr
    return np.asarray(data, dtype=_default_dtype if like is None else like, order="C")


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
    if _grad_enabled:
        for p in parents:
            if p.requires_grad:
                t.requires_grad = True
                t._prev = parents
                t._backward = backward
                t._op = op
                break
    return t


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: Any = None) -> Tensor:
    """Same as ``Tensor(data, requires_grad, dtype)``."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _as_tensor(x: ArrayLike) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


# --------------------------------------------------------------------------
# Elementwise arithmetic with broadcasting
# --------------------------------------------------------------------------


def _unbroadcast(g: np.ndarray, shape: tuple) -> np.ndarray:
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


def _add(a: Tensor, b: Tensor) -> Tensor:
    _dtype_of("add", ("input", a), ("other", b))
    sa, sb = a.shape, b.shape

    def backward(g: np.ndarray) -> tuple:
        return (
            _unbroadcast(g, sa) if a.requires_grad else None,
            _unbroadcast(g, sb) if b.requires_grad else None,
        )

    return _make(_timed("add.forward", np.add, a.data, b.data), (a, b), backward, "add")


def _sub(a: Tensor, b: Tensor) -> Tensor:
    _dtype_of("sub", ("input", a), ("other", b))
    sa, sb = a.shape, b.shape

    def backward(g: np.ndarray) -> tuple:
        return (
            _unbroadcast(g, sa) if a.requires_grad else None,
            _unbroadcast(-g, sb) if b.requires_grad else None,
        )

    return _make(_timed("sub.forward", np.subtract, a.data, b.data), (a, b), backward, "sub")


def _mul(a: Tensor, b: Tensor) -> Tensor:
    _dtype_of("mul", ("input", a), ("other", b))
    x, y = a.data, b.data

    def backward(g: np.ndarray) -> tuple:
        return (
            _unbroadcast(_timed("mul.backward", np.multiply, g, y), x.shape)
            if a.requires_grad
            else None,
            _unbroadcast(_timed("mul.backward", np.multiply, g, x), y.shape)
            if b.requires_grad
            else None,
        )

    return _make(_timed("mul.forward", np.multiply, x, y), (a, b), backward, "mul")


def _div(a: Tensor, b: Tensor) -> Tensor:
    _dtype_of("div", ("input", a), ("other", b))
    x, y = a.data, b.data
    out = _timed("div.forward", np.divide, x, y)

    def backward(g: np.ndarray) -> tuple:
        ga = _timed("div.backward", np.divide, g, y)
        return (
            _unbroadcast(ga, x.shape) if a.requires_grad else None,
            _unbroadcast(-ga * out, y.shape) if b.requires_grad else None,
        )

    return _make(out, (a, b), backward, "div")


def _neg_bwd(g: np.ndarray) -> tuple:
    return (-g,)


def _pow_bwd(g: np.ndarray, x: np.ndarray, e: float) -> np.ndarray:
    return g * (x.dtype.type(e) * np.power(x, x.dtype.type(e - 1)))


def _matmul(a: Tensor, b: Tensor) -> Tensor:
    _dtype_of("matmul", ("input", a), ("other", b))
    x, w = a.data, b.data

    def backward(g: np.ndarray) -> tuple:
        return _timed("matmul.backward", _matmul_bwd, g, x, w, a.requires_grad, b.requires_grad)

    return _make(_timed("matmul.forward", np.matmul, x, w), (a, b), backward, "matmul")


def _matmul_bwd(g: np.ndarray, a: np.ndarray, b: np.ndarray, need_a: bool, need_b: bool) -> tuple:
    # Promote 1-D operands as np.matmul does, then undo it (and any batch broadcast).
    a2 = a[None, :] if a.ndim == 1 else a
    b2 = b[:, None] if b.ndim == 1 else b
    g2 = g
    if a.ndim == 1:
        g2 = np.expand_dims(g2, -2 if b.ndim > 1 else 0)
    if b.ndim == 1:
        g2 = np.expand_dims(g2, -1)
    ga = _unbroadcast(g2 @ np.swapaxes(b2, -1, -2), a2.shape).reshape(a.shape) if need_a else None
    gb = _unbroadcast(np.swapaxes(a2, -1, -2) @ g2, b2.shape).reshape(b.shape) if need_b else None
    return ga, gb


def _axis(axis: Any) -> Any:
    return tuple(axis) if isinstance(axis, list) else axis


def _expand_reduced(g: np.ndarray, shape: tuple, axis: Any, keepdims: bool) -> np.ndarray:
    """Broadcast the gradient of a reduction back to the input's shape (read-only view)."""
    if axis is not None and not keepdims:
        axes = (axis,) if isinstance(axis, int) else tuple(axis)
        g = np.expand_dims(g, tuple(a % len(shape) for a in axes))
    elif axis is None and not keepdims:
        g = np.reshape(g, (1,) * len(shape))
    return np.broadcast_to(g, shape)


def _is_basic_index(idx: Any) -> bool:
    items = idx if isinstance(idx, tuple) else (idx,)
    return all(isinstance(i, (int, np.integer, slice)) or i is None or i is Ellipsis for i in items)


def cat(tensors: Sequence[Tensor], dim: int = 1) -> Tensor:
    """Concatenate along ``dim`` (default 1: channels, for inception modules)."""
    tensors = tuple(_as_tensor(t) for t in tensors)
    if not tensors:
        raise ValueError("cat needs at least one tensor")
    _dtype_of("cat", *((f"tensors[{i}]", t) for i, t in enumerate(tensors)))
    ax = dim % tensors[0].ndim
    splits = np.cumsum([t.shape[ax] for t in tensors])[:-1]
    y = _timed("cat.forward", np.concatenate, [t.data for t in tensors], axis=ax)

    def backward(g: np.ndarray) -> tuple:
        return tuple(np.split(g, splits, axis=ax))

    return _make(y, tensors, backward, "cat")


# --------------------------------------------------------------------------
# Layer ops on the kernels of their inputs' dtype (fastconv.functional for
# float32, fastconv.reference for float64; forward and backward)
# --------------------------------------------------------------------------


def _conv_forward(F: Any, x: Tensor, weight: Tensor, bias: Tensor | None, conv: tuple,
                  activation: str | None) -> np.ndarray:
    """F.conv2d on the tensors' data; conv = (stride, padding, dilation, groups, algo)."""
    stride, padding, dilation, groups, algo = conv
    b = None if bias is None else bias.data
    return _timed(
        "conv2d.forward", F.conv2d, x.data, weight.data, b, stride, padding, dilation, groups,
        algo=algo, activation=activation,
    )  # fmt: skip


def _conv_backward(F: Any, g: np.ndarray, x: Tensor, weight: Tensor, bias: Tensor | None,
                   conv: tuple) -> tuple:
    """F.conv2d_backward for the inputs that need a gradient."""
    stride, padding, dilation, groups, algo = conv
    mask = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
    return _timed(
        "conv2d.backward", F.conv2d_backward, g, x.data, weight.data, stride, padding, dilation,
        groups, algo=algo, output_mask=mask,
    )  # fmt: skip


def conv2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: Any = 1,
    padding: Any = 0,
    dilation: Any = 1,
    groups: int = 1,
    algo: str = "auto",
    activation: str | None = None,
) -> Tensor:
    """Differentiable :func:`fastconv.conv2d`; x (N, C, H, W), weight (K, C/groups, R, S).

    ``activation="relu"`` is ``relu(conv2d(...))`` in one op: the kernels apply
    it as each output is stored, and the backward masks the gradient with the
    saved output first (what :func:`relu`'s backward does).
    """
    F = _kernels_for("conv2d", ("x", x), ("weight", weight), ("bias", bias))
    conv = (stride, padding, dilation, groups, algo)
    y = _conv_forward(F, x, weight, bias, conv, activation)

    def backward(g: np.ndarray) -> tuple:
        if activation == "relu":
            g = _timed("relu.backward", F.relu_backward, g, y)
        return _conv_backward(F, g, x, weight, bias, conv)

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _make(y, parents, backward, "conv2d" if activation is None else "conv2d+relu")


def conv2d_relu_max_pool2d(
    x: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    conv: tuple,
    pool: tuple,
) -> Tensor:
    """``max_pool2d(relu(conv2d(x, weight, bias, *conv)), *pool)`` as one node.

    ``conv`` is ``(stride, padding, dilation, groups, algo)`` and ``pool``
    ``(kernel_size, stride, padding, dilation, ceil_mode)``. The pattern of the
    classic CNNs, fused: the ReLU is applied as the convolution's outputs are
    stored, and in the backward to the pooled gradient (a pooled value is > 0
    exactly where the input it selected is), so the convolution's output is
    neither kept for the backward nor masked at full size. Same values and
    gradients as the three ops one after the other.
    """
    F = _kernels_for("conv2d", ("x", x), ("weight", weight), ("bias", bias))
    parents = (x, weight) if bias is None else (x, weight, bias)
    want_idx = _grad_enabled and any(t.requires_grad for t in parents)
    stride, padding, dilation, groups, algo = conv
    kernel_size, pool_stride, pool_padding, pool_dilation, ceil_mode = pool
    # One call: where the convolution runs direct, each image's output is
    # pooled while in cache and the full output never reaches memory.
    out = _timed(
        "conv2d+max_pool2d.forward", F.conv2d_max_pool2d, x.data, weight.data,
        None if bias is None else bias.data, stride, padding, dilation, groups, algo=algo,
        activation="relu", kernel_size=kernel_size, pool_stride=pool_stride,
        pool_padding=pool_padding, pool_dilation=pool_dilation, ceil_mode=ceil_mode,
        return_indices=want_idx,
    )  # fmt: skip
    if not want_idx:
        return _wrap(out)
    p, idx = out
    geo = reference._conv_geometry(x.shape, weight.shape, stride, padding, dilation, groups)
    y_shape = (geo.N, geo.K, geo.P, geo.Q)  # the convolution's output, for the pool's backward

    def backward(g: np.ndarray) -> tuple:
        g = _timed("relu.backward", F.relu_backward, g, p)
        gy = _timed("max_pool2d.backward", F.max_pool2d_backward, g, idx, y_shape)
        return _conv_backward(F, gy, x, weight, bias, conv)

    return _make(p, parents, backward, "conv2d+relu+max_pool2d")


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """Differentiable :func:`fastconv.linear`: ``x @ weight.T + bias``, x (..., in_features)."""
    F = _kernels_for("linear", ("x", x), ("weight", weight), ("bias", bias))
    xd, wd = x.data, weight.data
    lead = xd.shape[:-1]
    x2 = xd.reshape(-1, xd.shape[-1]) if xd.ndim != 2 else xd
    y = _timed("linear.forward", F.linear, x2, wd, None if bias is None else bias.data)
    if xd.ndim != 2:
        y = y.reshape(*lead, wd.shape[0])

    def backward(g: np.ndarray) -> tuple:
        mask = (x.requires_grad, weight.requires_grad, bias is not None and bias.requires_grad)
        g2 = g.reshape(-1, wd.shape[0]) if g.ndim != 2 else g
        dx, dw, db = _timed("linear.backward", F.linear_backward, g2, x2, wd, mask)
        if dx is not None and xd.ndim != 2:
            dx = dx.reshape(xd.shape)
        return dx, dw, db

    parents = (x, weight) if bias is None else (x, weight, bias)
    return _make(y, parents, backward, "linear")


def max_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    dilation: Any = 1,
    ceil_mode: bool = False,
) -> Tensor:
    """Differentiable :func:`fastconv.max_pool2d`; backward routes through the saved argmax."""
    F = _kernels_for("max_pool2d", ("x", x))
    if not (_grad_enabled and x.requires_grad):
        y = _timed(
            "max_pool2d.forward",
            F.max_pool2d,
            x.data,
            kernel_size,
            stride,
            padding,
            dilation,
            ceil_mode,
        )
        return _wrap(y)
    y, idx = _timed(
        "max_pool2d.forward",
        F.max_pool2d,
        x.data,
        kernel_size,
        stride,
        padding,
        dilation,
        ceil_mode,
        True,
    )
    in_shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        return (_timed("max_pool2d.backward", F.max_pool2d_backward, g, idx, in_shape),)

    return _make(y, (x,), backward, "max_pool2d")


def avg_pool2d(
    x: Tensor,
    kernel_size: Any,
    stride: Any = None,
    padding: Any = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
) -> Tensor:
    """Differentiable :func:`fastconv.avg_pool2d`."""
    F = _kernels_for("avg_pool2d", ("x", x))
    args = (kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override)
    y = _timed("avg_pool2d.forward", F.avg_pool2d, x.data, *args)
    in_shape = x.shape

    def backward(g: np.ndarray) -> tuple:
        return (_timed("avg_pool2d.backward", F.avg_pool2d_backward, g, in_shape, *args),)

    return _make(y, (x,), backward, "avg_pool2d")


def relu(x: Tensor) -> Tensor:
    """Differentiable :func:`fastconv.relu`; the backward reads the saved output."""
    F = _kernels_for("relu", ("x", x))
    y = _timed("relu.forward", F.relu, x.data)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("relu.backward", F.relu_backward, g, y),)

    return _make(y, (x,), backward, "relu")


# --------------------------------------------------------------------------
# Ops in NumPy (no fastconv kernel for them yet)
# --------------------------------------------------------------------------


def _tanh_bwd(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (1 - y * y)


def tanh(x: Tensor) -> Tensor:
    y = _timed("tanh.forward", np.tanh, x.data)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("tanh.backward", _tanh_bwd, g, y),)

    return _make(y, (x,), backward, "tanh")


def _sigmoid_fwd(x: np.ndarray) -> np.ndarray:
    # 1 / (1 + e^-x) for x >= 0, e^x / (1 + e^x) below: never overflows, keeps tiny values.
    e = np.exp(-np.abs(x))
    y = np.where(x >= 0, 1.0, e)
    y /= 1 + e
    return y


def _sigmoid_bwd(g: np.ndarray, y: np.ndarray) -> np.ndarray:
    return g * (y * (1 - y))


def sigmoid(x: Tensor) -> Tensor:
    y = _timed("sigmoid.forward", _sigmoid_fwd, x.data)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("sigmoid.backward", _sigmoid_bwd, g, y),)

    return _make(y, (x,), backward, "sigmoid")


def _softmax_fwd(x: np.ndarray, dim: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    e /= e.sum(axis=dim, keepdims=True)
    return e


def _softmax_bwd(g: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    gy = g * y
    gy -= y * gy.sum(axis=dim, keepdims=True)
    return gy


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim`` (max-shifted: stable)."""
    y = _timed("softmax.forward", _softmax_fwd, x.data, dim)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("softmax.backward", _softmax_bwd, g, y, dim),)

    return _make(y, (x,), backward, "softmax")


def _log_softmax_fwd(x: np.ndarray, dim: int) -> np.ndarray:
    z = x - x.max(axis=dim, keepdims=True)
    z -= np.log(np.exp(z).sum(axis=dim, keepdims=True))
    return z


def _log_softmax_bwd(g: np.ndarray, y: np.ndarray, dim: int) -> np.ndarray:
    return g - np.exp(y) * g.sum(axis=dim, keepdims=True)


def log_softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``x - logsumexp(x)`` along ``dim`` (stable)."""
    y = _timed("log_softmax.forward", _log_softmax_fwd, x.data, dim)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("log_softmax.backward", _log_softmax_bwd, g, y, dim),)

    return _make(y, (x,), backward, "log_softmax")


def _reduce_scale(reduction: str, n: int) -> float:
    if reduction == "mean":
        return 1.0 / n
    if reduction == "sum":
        return 1.0
    raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _cross_entropy_fwd(z: np.ndarray, t: np.ndarray, scale: float) -> tuple:
    # Fused log-softmax + negative log-likelihood, shifted by the row max.
    N = z.shape[0]
    rows = np.arange(N)
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    s = p.sum(axis=1, keepdims=True)
    loss = (np.log(s[:, 0]) - shifted[rows, t]).sum() * scale
    p /= s  # softmax, saved for the backward
    return np.asarray(loss, dtype=z.dtype), p


def _cross_entropy_bwd(g: np.ndarray, p: np.ndarray, t: np.ndarray, scale: float) -> np.ndarray:
    d = p.copy()
    d[np.arange(p.shape[0]), t] -= 1
    d *= g * p.dtype.type(scale)
    return d


def cross_entropy(logits: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """Cross-entropy of ``logits`` (N, C) against integer class labels ``target`` (N,).

    Fused and numerically stable: ``logsumexp(z) - z[target]`` with the row
    maximum subtracted first; the gradient is ``(softmax(z) - onehot) / N``.
    ``target`` must have an integer dtype: float labels, even whole-valued
    ones, are a ``TypeError`` (as in PyTorch), never cast.
    """
    _dtype_of("cross_entropy", ("input", logits))
    z = logits.data
    if isinstance(target, Tensor):
        raise TypeError(
            f"cross_entropy: target must be integer class labels, got a {target.dtype} Tensor "
            "(tensors hold floats); pass a NumPy integer array, e.g. target.numpy().astype(np.int64)"
        )
    t = np.asarray(target)
    if t.dtype.kind not in "iu":
        raise TypeError(
            f"cross_entropy: target must be integer class labels (an integer dtype such as "
            f"int64), got {t.dtype} of shape {t.shape}; pass integer labels, e.g. "
            "target.astype(np.int64) (as PyTorch, float class indices are refused)"
        )
    if z.ndim != 2 or t.shape != (z.shape[0],):
        raise ValueError(
            f"cross_entropy: expected logits (N, C) and target (N,), got {z.shape} and {t.shape}"
        )
    C = z.shape[1]
    if t.size and (t.min() < 0 or t.max() >= C):
        bad = t[(t < 0) | (t >= C)][0]
        raise IndexError(f"cross_entropy: target {bad} is out of bounds for {C} classes")
    scale = _reduce_scale(reduction, z.shape[0])
    loss, p = _timed("cross_entropy", _cross_entropy_fwd, z, t, scale)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("cross_entropy.backward", _cross_entropy_bwd, g, p, t, scale),)

    return _make(loss, (logits,), backward, "cross_entropy")


def _target(x: Tensor, target: Any, op: str) -> Tensor:
    """A regression target: an array keeps its dtype (which must be x's); lists take x's."""
    if isinstance(target, Tensor):
        t = target
    elif isinstance(target, np.ndarray):
        t = _wrap(_float_array(target))
    else:
        t = _wrap(np.asarray(target, dtype=x.dtype))
    _dtype_of(op, ("input", x), ("target", t))
    if t.shape != x.shape:
        raise ValueError(f"loss: input shape {x.shape} and target shape {t.shape} differ")
    return t


def mse_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """``mean((x - target)**2)`` (or the sum)."""
    t = _target(x, target, "mse_loss")
    scale = _reduce_scale(reduction, max(x.data.size, 1))
    diff = _timed("mse_loss", np.subtract, x.data, t.data)
    loss = np.asarray(np.dot(diff.ravel(), diff.ravel()) * scale, dtype=x.dtype)

    def backward(g: np.ndarray) -> tuple:
        d = _timed("mse_loss.backward", np.multiply, diff, g * x.dtype.type(2 * scale))
        return (d if x.requires_grad else None, -d if t.requires_grad else None)

    return _make(loss, (x, t), backward, "mse_loss")


def l1_loss(x: Tensor, target: Any, reduction: str = "mean") -> Tensor:
    """``mean(|x - target|)`` (or the sum); the gradient of ``|0|`` is 0."""
    t = _target(x, target, "l1_loss")
    scale = _reduce_scale(reduction, max(x.data.size, 1))
    diff = _timed("l1_loss", np.subtract, x.data, t.data)
    loss = np.asarray(np.abs(diff).sum() * scale, dtype=x.dtype)

    def backward(g: np.ndarray) -> tuple:
        d = _timed("l1_loss.backward", np.multiply, np.sign(diff), g * x.dtype.type(scale))
        return (d if x.requires_grad else None, -d if t.requires_grad else None)

    return _make(loss, (x, t), backward, "l1_loss")


def dropout(x: Tensor, p: float, rng: np.random.Generator) -> Tensor:
    """Zero each element with probability ``p`` and scale the rest by ``1/(1-p)``."""
    if p <= 0:
        return x
    if p >= 1:
        mask = np.zeros_like(x.data)
    else:
        mask = _timed("dropout.mask", _dropout_mask, rng, x.data, p)
    y = _timed("dropout.forward", np.multiply, x.data, mask)

    def backward(g: np.ndarray) -> tuple:
        return (_timed("dropout.backward", np.multiply, g, mask),)

    return _make(y, (x,), backward, "dropout")


def _dropout_mask(rng: np.random.Generator, x: np.ndarray, p: float) -> np.ndarray:
    keep = rng.random(x.shape, dtype=np.float32) >= p
    return keep.astype(x.dtype) * x.dtype.type(1.0 / (1.0 - p))


def _bn_axes(x: np.ndarray) -> tuple:
    return (0,) + tuple(range(2, x.ndim))


def _bn_shape(x: np.ndarray) -> tuple:
    return (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _batch_norm_fwd(
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


def _batch_norm_bwd(
    g: np.ndarray,
    xhat: np.ndarray,
    invstd: np.ndarray,
    gamma: np.ndarray | None,
    batch_stats: bool,
) -> tuple:
    axes, shape = _bn_axes(g), _bn_shape(g)
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


def batch_norm(
    x: Tensor,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    weight: Tensor | None = None,
    bias: Tensor | None = None,
    training: bool = False,
    momentum: float | None = 0.1,
    eps: float = 1e-5,
    num_batches_tracked: np.ndarray | None = None,
) -> Tensor:
    """Batch normalisation over all dims but 1 (channels), as ``torch.nn.functional.batch_norm``.

    In training, normalise with the batch mean and biased variance and update
    ``running_mean``/``running_var`` IN PLACE with the unbiased variance
    (``momentum`` None: cumulative average over ``num_batches_tracked``). In
    evaluation, normalise with the running statistics.
    """
    _dtype_of(
        "batch_norm",
        ("x", x),
        ("weight", weight),
        ("bias", bias),
        ("running_mean", running_mean),
        ("running_var", running_var),
    )
    xd = x.data
    axes = _bn_axes(xd)
    batch_stats = training or running_mean is None
    if batch_stats:
        n = xd.size // xd.shape[1]
        if n <= 1:
            raise ValueError(
                f"batch_norm: expected more than 1 value per channel in training, got {xd.shape}"
            )
        mean = xd.mean(axis=axes)
        var = xd.var(axis=axes)
        if training and running_mean is not None:
            if num_batches_tracked is not None:
                num_batches_tracked += 1
            m = (1.0 / float(num_batches_tracked)) if momentum is None else momentum
            running_mean *= 1 - m
            running_mean += m * mean
            running_var *= 1 - m
            running_var += (m * n / (n - 1)) * var
    else:
        mean, var = running_mean, running_var
    gamma = None if weight is None else weight.data
    beta = None if bias is None else bias.data
    y, xhat, invstd = _timed("batch_norm.forward", _batch_norm_fwd, xd, gamma, beta, mean, var, eps)

    def backward(g: np.ndarray) -> tuple:
        dx, dgamma, dbeta = _timed(
            "batch_norm.backward", _batch_norm_bwd, g, xhat, invstd, gamma, batch_stats
        )
        return (
            (dx,)
            + ((dgamma,) if weight is not None else ())
            + ((dbeta,) if bias is not None else ())
        )

    parents = (x,) + tuple(t for t in (weight, bias) if t is not None)
    return _make(y, parents, backward, "batch_norm")
