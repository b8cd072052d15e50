"""Which kernels an op of the layer API runs: the dtype rule, in one place.

One rule, everywhere in the layer API (tensors, ops, modules, losses):

* A :class:`~fastconv.tensor.Tensor` keeps the dtype of a float32 or float64
  NumPy array it is given; Python numbers and lists become the default dtype
  (float32, see :func:`set_default_dtype`). Any other dtype (float16, integer
  arrays) is a ``TypeError``: convert it yourself (``a.astype(np.float32)``,
  or ``Tensor(a, dtype=np.float32)``).
* Each op runs on its inputs' dtype, chosen per call (there is no global
  switch): float32 on the C++ kernels of :mod:`fastconv.functional`, float64
  on the plain-NumPy :mod:`fastconv.reference` (same signatures), which is
  what finite-difference gradient checks need. An op asks
  :func:`kernels_for` for the module and passes it to the kernel calls below
  (``conv2d(F, ...)`` calls ``F.conv2d(...)``), each timed under its
  :mod:`fastconv.profiler` name.
* The inputs of one op share one dtype: float32 next to float64 is a
  ``TypeError`` naming both (convert with ``.float()`` / ``.double()`` on a
  tensor or a module, or ``astype`` on an array). Python numbers and lists
  given to an op next to a tensor take the tensor's dtype.
* Class labels (``cross_entropy``'s target) are integer arrays; float labels
  are a ``TypeError`` (``labels.astype(np.int64)``).

So ``model.double()`` trains in float64, on the reference::

    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU()).double()
    y = model(x.astype(np.float64))     # reference.conv2d, reference.relu

:func:`backend` (``with backend("reference", np.float64):``) sets the default
dtype for a block, so that the layers built inside have float64 parameters.

The public names are re-exported by :mod:`fastconv.tensor`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType
from typing import Any, Callable

import numpy as np

from . import functional, reference
from .profiler import timed

# The kernels of each dtype; every op picks its module from its inputs' dtype.
KERNELS = {np.dtype(np.float32): functional, np.dtype(np.float64): reference}
# backend() names: the default dtype whose kernels the name stands for.
BACKEND_DTYPES = {"fastconv": np.dtype(np.float32), "reference": np.dtype(np.float64)}
ACCEPTED = "float32 (fast kernels) or float64 (NumPy reference)"
HOW_TO_CONVERT = (
    "convert one of them: .float() / .double() on a Tensor or a Module, "
    ".astype(np.float32) / .astype(np.float64) on an array"
)

_default_dtype = np.dtype(np.float32)


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
    if d not in KERNELS:
        raise TypeError(f"no kernels for dtype {d}: tensors hold {ACCEPTED}")
    return KERNELS[d]


def dtype_of(op: str, *named: tuple[str, Any]) -> np.dtype:
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
            if d not in KERNELS:
                raise TypeError(f"{op}: {name} has dtype {d}; ops take {ACCEPTED}")
            first = (name, d)
        elif d != first[1]:
            raise TypeError(
                f"{op}: {first[0]} is {first[1]} but {name} is {d}; expected one dtype for "
                f"all inputs: {HOW_TO_CONVERT}"
            )
    assert first is not None, op
    return first[1]


def kernels_for(op: str, *named: tuple[str, Any]) -> ModuleType:
    """:func:`kernels` of the inputs' common dtype (see :func:`dtype_of`)."""
    return KERNELS[dtype_of(op, *named)]


def float_array(data: Any, dtype: Any = None, like: np.dtype | None = None) -> np.ndarray:
    """``data`` as a C-contiguous float32 or float64 array, by the dtype rule.

    With ``dtype``: converted to it (explicitly asked for; float32 or float64).
    Otherwise a NumPy array or scalar (or anything with ``__array__``) keeps
    its dtype, which must be float32 or float64, and Python numbers and lists
    become ``like`` (the dtype of the tensor they meet) or the default dtype.
    """
    if dtype is not None:
        d = np.dtype(dtype)
        if d not in KERNELS:
            raise TypeError(
                f"Tensor data must be floating point, float32 or float64, got dtype {d}"
            )
        return np.asarray(data, dtype=d, order="C")
    if isinstance(data, (np.ndarray, np.generic)) or hasattr(data, "__array__"):
        arr = np.asarray(data, order="C")
        if arr.dtype not in KERNELS:
            raise TypeError(
                f"Tensor data must be floating point, {ACCEPTED}; got a {arr.dtype} array. "
                "Nothing is cast silently: convert it with .astype(np.float32) (or "
                ".astype(np.float64)), or pass dtype="
            )
        return arr
    return np.asarray(data, dtype=_default_dtype if like is None else like, order="C")


# --------------------------------------------------------------------------
# The kernel calls of the ops: F.<function>(...) of the module F chosen above,
# looked up at call time, each timed under its profiler name
# --------------------------------------------------------------------------


def _kernel(function: str, profile_name: str) -> Callable[..., Any]:
    """``call(F, *args, **kwargs)``: ``F.<function>(*args, **kwargs)``, timed as ``profile_name``."""

    @timed(profile_name)
    def call(F: ModuleType, *args: Any, **kwargs: Any) -> Any:
        return getattr(F, function)(*args, **kwargs)

    call.__name__ = call.__qualname__ = function
    return call


conv2d = _kernel("conv2d", "conv2d.forward")
conv2d_backward = _kernel("conv2d_backward", "conv2d.backward")
conv2d_max_pool2d = _kernel("conv2d_max_pool2d", "conv2d+max_pool2d.forward")
max_pool2d = _kernel("max_pool2d", "max_pool2d.forward")
max_pool2d_backward = _kernel("max_pool2d_backward", "max_pool2d.backward")
avg_pool2d = _kernel("avg_pool2d", "avg_pool2d.forward")
avg_pool2d_backward = _kernel("avg_pool2d_backward", "avg_pool2d.backward")
linear = _kernel("linear", "linear.forward")
linear_backward = _kernel("linear_backward", "linear.backward")
relu = _kernel("relu", "relu.forward")
relu_backward = _kernel("relu_backward", "relu.backward")


# --------------------------------------------------------------------------
# The default dtype, and its older spelling by backend name
# --------------------------------------------------------------------------


def set_default_dtype(dtype: Any) -> None:
    """dtype of tensors made from Python numbers or lists, and of new layers' parameters.

    float32 (the default) or float64; arrays keep their own dtype.
    """
    global _default_dtype
    d = np.dtype(dtype)
    if d not in KERNELS:
        raise TypeError(f"default dtype must be float32 or float64, got {d}")
    _default_dtype = d


def get_default_dtype() -> np.dtype:
    """The dtype of tensors made from Python numbers or lists (float32 unless changed)."""
    return _default_dtype


def _backend_dtype(name: str) -> np.dtype:
    if name not in BACKEND_DTYPES:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(BACKEND_DTYPES)}")
    return BACKEND_DTYPES[name]


def set_backend(name: str) -> None:
    """Set the default dtype by the name of its kernels: ``"fastconv"`` float32, ``"reference"`` float64.

    Kept for compatibility: which kernels an op runs is decided per call by
    its inputs' dtype (see the module docstring), not by this setting.
    """
    set_default_dtype(_backend_dtype(name))


def get_backend() -> str:
    """The name of the default dtype's kernels: ``"fastconv"`` (float32) or ``"reference"``."""
    return next(k for k, v in BACKEND_DTYPES.items() if v == _default_dtype)


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
    want = _backend_dtype(name)
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
