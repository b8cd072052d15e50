"""Layers, losses and initialisers on :class:`fastconv.Tensor`, with PyTorch's names.

A :class:`Module` registers the :class:`Parameter`, buffers (NumPy arrays such
as BatchNorm's running statistics) and sub-modules assigned to its attributes,
in assignment order. Each layer's ``forward`` is one call of an op in
an op of :mod:`fastconv.ops` or :mod:`fastconv.tensor`, whose forward and backward call
:mod:`fastconv.functional` (convolution, pooling, linear, ReLU) or NumPy.

Initialisation follows PyTorch's defaults (``Conv2d``/``Linear``: weights
``kaiming_uniform_(a=sqrt(5))``, i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in)), and
the bias from the same range), drawn from a module-level
``numpy.random.Generator``: :func:`manual_seed` makes model construction and
dropout masks reproducible.

Constructors check their arguments, so a mistake fails where the layer is
built rather than at its first forward: ``TypeError`` for a wrong type (a float
or a bool where an int is expected), ``ValueError`` for a bad value, each
naming the layer, the argument and the value in the words of the functional
API's errors (``Conv2d: stride must be in [1, 2147483647], got (-1, -1)``).
"""

from __future__ import annotations

import math
import os
import sys
import types
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple, Union

import numpy as np

from . import _core, ops
from . import tensor as T
from .tensor import Tensor, no_grad

__all__ = [
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Identity",
    "L1Loss",
    "Linear",
    "LogSoftmax",
    "MSELoss",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Summary",
    "Tanh",
    "init",
    "manual_seed",
]

IntPair = Union[int, tuple[int, int]]

# --------------------------------------------------------------------------
# Random numbers: one seeded generator for initialisation and dropout
# --------------------------------------------------------------------------

_rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator used by the initialisers and :class:`Dropout`."""
    global _rng
    _rng = np.random.default_rng(seed)
    return _rng


def get_rng() -> np.random.Generator:
    """The generator used by the initialisers and :class:`Dropout`."""
    return _rng


# --------------------------------------------------------------------------
# Constructor argument checks
# --------------------------------------------------------------------------

#: The kernels' bound on kernel sizes, strides, paddings, dilations and groups
#: (``kMaxParam`` in cpp/include/fastconv/shapes.h).
_MAX_PARAM = 2**31 - 1


def _is_real(value: Any) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )


class _Args:
    """Checks of one layer's constructor arguments, so a bad one fails where the layer is built.

    Messages start with the layer's class name and otherwise use the wording
    of the functional API's errors (``Conv2d: stride must be in [1,
    2147483647], got (-1, -1)``): ``TypeError`` for a wrong type (a float or
    a bool where an int is expected), ``ValueError`` for a bad value.
    """

    def __init__(self, layer: Module) -> None:
        self.layer = type(layer).__name__

    def _type(self, name: str, what: str, value: Any) -> TypeError:
        return TypeError(
            f"{self.layer}: {name} must be {what}, got {type(value).__name__} {value!r}"
        )

    def _int_type(self, name: str, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise self._type(name, "an int", value)
        return int(value)

    def int(self, name: str, value: Any, lo: int | None, hi: int | None = _MAX_PARAM) -> int:
        """``value`` as a Python int in ``[lo, hi]`` (``None``: unbounded)."""
        v = self._int_type(name, value)
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            rule = f"in [{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}"
            raise ValueError(f"{self.layer}: {name} must be {rule}, got {v}")
        return v

    def pair(self, name: str, value: Any, lo: int) -> tuple[int, int]:
        """An int or a pair of ints (tuple or list) as a pair of Python ints in ``[lo, _MAX_PARAM]``."""
        if isinstance(value, (tuple, list)):
            if len(value) != 2:
                raise ValueError(
                    f"{self.layer}: {name} must be an int or a pair of ints, got {value!r} "
                    f"of length {len(value)}"
                )
            pair = (self._int_type(name, value[0]), self._int_type(name, value[1]))
        else:
            v = self._int_type(name, value)
            pair = (v, v)
        if min(pair) < lo or max(pair) > _MAX_PARAM:
            raise ValueError(f"{self.layer}: {name} must be in [{lo}, {_MAX_PARAM}], got {pair}")
        return pair

    def bool(self, name: str, value: Any) -> bool:
        if not isinstance(value, (bool, np.bool_)):
            raise self._type(name, "a bool", value)
        return bool(value)

    def number(self, name: str, value: Any, ok: Any, rule: str) -> Any:
        """A real number (not a bool) for which ``ok(value)`` holds; ``rule`` says which."""
        if not _is_real(value):
            raise self._type(name, "a real number", value)
        if not ok(value):
            raise ValueError(f"{self.layer}: {name} must be {rule}, got {value!r}")
        return value

    def choice(self, name: str, value: Any, options: tuple[str, ...]) -> str:
        if not isinstance(value, str):
            raise self._type(name, "a str", value)
        if value not in options:
            listed = ", ".join(repr(o) for o in options)
            raise ValueError(f"{self.layer}: {name} must be one of {listed}, got {value!r}")
        return value

    def pool(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any = 1) -> None:
        """The arguments of a pooling layer: the functional API's rules, PyTorch's too."""
        kernel = self.pair("kernel_size", kernel_size, 1)
        if stride is not None:
            self.pair("stride", stride, 1)
        pad = self.pair("padding", padding, 0)
        self.pair("dilation", dilation, 1)
        if pad[0] > kernel[0] // 2 or pad[1] > kernel[1] // 2:
            raise ValueError(
                f"{self.layer}: padding {pad} must be at most half of kernel_size {kernel}"
            )


# --------------------------------------------------------------------------
# Parameter and Module
# --------------------------------------------------------------------------


class Parameter(Tensor):
    """A :class:`Tensor` that is a module's learnable weight (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class _IncompatibleKeys(NamedTuple):
    missing_keys: list
    unexpected_keys: list


class Module:
    """Base class of layers and models (PyTorch's ``nn.Module``, reduced).

    Subclasses call ``super().__init__()`` first, assign parameters and
    sub-modules as attributes and define ``forward``; ``module(x)`` calls
    ``forward(x)`` (a NumPy array as first argument is wrapped in a Tensor).
    """

    training: bool

    def __init__(self) -> None:
        d = self.__dict__
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_modules"] = OrderedDict()
        d["training"] = True

    # ---- registration -------------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(
                f"cannot assign {name!r} before {type(self).__name__}.__init__ calls "
                "super().__init__()"
            )
        params, bufs, mods = d["_parameters"], d["_buffers"], d["_modules"]
        if isinstance(value, Parameter):
            bufs.pop(name, None)
            mods.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            bufs.pop(name, None)
            mods[name] = value
        elif name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign {type(value).__name__} as parameter {name!r} "
                    "(a Parameter or None is expected)"
                )
            del params[name]
        elif name in bufs:
            if value is not None and not isinstance(value, np.ndarray):
                raise TypeError(f"buffer {name!r} must be a NumPy array or None")
            if value is None:
                del bufs[name]
            else:
                bufs[name] = value
        elif name in mods:
            del mods[name]
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        for reg in (self._parameters, self._buffers, self._modules):
            reg.pop(name, None)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """Register a NumPy array saved in the state dict but not trained (running stats)."""
        self._buffers[name] = array
        object.__setattr__(self, name, array)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is None:
            self._parameters.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is None:
            self._modules.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, module)

    # ---- traversal ----------------------------------------------------------

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) for self and every sub-module, pre-order, each once."""
        seen: set[int] = set()
        stack = [(prefix, self)]
        while stack:
            name, m = stack.pop()
            if id(m) in seen:
                continue
            seen.add(id(m))
            yield name, m
            children = [
                (f"{name}.{k}" if name else k, c) for k, c in m._modules.items() if c is not None
            ]
            stack.extend(reversed(children))

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_children(self) -> Iterator[tuple[str, Module]]:
        seen: set[int] = set()
        for k, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield k, m

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_parameters(
        self, prefix: str = "", recurse: bool = True
    ) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, parameter) in registration order, each shared parameter once."""
        seen: set[int] = set()
        mods = self.named_modules(prefix) if recurse else iter([(prefix, self)])
        for mname, m in mods:
            for k, p in m._parameters.items():
                if p is None or id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mname}.{k}" if mname else k), p

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, np.ndarray]]:
        for mname, m in self.named_modules(prefix):
            for k, b in m._buffers.items():
                if b is not None:
                    yield (f"{mname}.{k}" if mname else k), b

    def buffers(self) -> Iterator[np.ndarray]:
        for _, b in self.named_buffers():
            yield b

    # ---- modes and gradients ------------------------------------------------

    def train(self, mode: bool = True) -> Module:
        """Set training mode (Dropout active, BatchNorm on batch statistics) recursively."""
        for m in self.modules():
            m.__dict__["training"] = bool(mode)
        return self

    def eval(self) -> Module:
        """Set evaluation mode recursively (same as ``train(False)``)."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (to None, or to zeros)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad.fill(0)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, dtype: Any) -> Module:
        """Convert parameters and floating-point buffers to ``dtype`` (float32/float64), in place.

        The module then runs on that dtype's kernels (float32: fastconv's,
        float64: the NumPy reference) and takes inputs of that dtype only.
        Gradients are cleared; build optimizers after converting.
        """
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(
                f"{type(self).__name__}.to: dtype must be float32 or float64, got {dtype}"
            )
        for m in self.modules():
            for p in m._parameters.values():
                if p is not None:
                    p.data = p.data.astype(dtype)
                    p.grad = None
            for k, b in list(m._buffers.items()):
                if b is not None and b.dtype.kind == "f":
                    setattr(m, k, b.astype(dtype))
        return self

    def float(self) -> Module:
        """``self.to(np.float32)``: run on fastconv's kernels (the default)."""
        return self.to(np.float32)

    def double(self) -> Module:
        """``self.to(np.float64)``: run on the NumPy reference, in float64."""
        return self.to(np.float64)

    def _dtype(self) -> np.dtype:
        """The dtype of the first parameter (or float buffer); the default dtype if none."""
        for _, m in self.named_modules():
            for p in m._parameters.values():
                if p is not None:
                    return p.dtype
            for b in m._buffers.values():
                if b is not None and b.dtype.kind == "f":
                    return b.dtype
        return T.get_default_dtype()

    # ---- state --------------------------------------------------------------

    def _state_arrays(self) -> OrderedDict:
        """Dotted name -> the live array (parameter data or buffer), PyTorch's order."""
        out: OrderedDict = OrderedDict()
        seen: set[int] = set()
        for mname, m in self.named_modules():
            pre = f"{mname}." if mname else ""
            for k, p in m._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    out[pre + k] = p
            for k, b in m._buffers.items():
                if b is not None:
                    out[pre + k] = b
        return out

    def state_dict(self) -> OrderedDict:
        """Dotted name -> a copy of each parameter's and buffer's array."""
        return OrderedDict(
            (k, (v.data if isinstance(v, Tensor) else v).copy())
            for k, v in self._state_arrays().items()
        )

    def load_state_dict(self, state_dict: Any, strict: bool = True) -> _IncompatibleKeys:
        """Copy arrays into the parameters and buffers (in place, cast to their dtype).

        Raises
        ------
        RuntimeError
            Listing every missing and unexpected key (when ``strict``) and every
            shape mismatch; nothing is modified in that case.
        """
        own = self._state_arrays()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if missing:
                errors.append("Missing key(s): " + ", ".join(repr(k) for k in missing))
            if unexpected:
                errors.append("Unexpected key(s): " + ", ".join(repr(k) for k in unexpected))
        values = {}
        for k, target in own.items():
            if k not in state_dict:
                continue
            v = state_dict[k]
            v = np.asarray(v.data if isinstance(v, Tensor) else v)
            arr = target.data if isinstance(target, Tensor) else target
            if v.shape != arr.shape:
                errors.append(
                    f"size mismatch for {k!r}: the state dict has shape {v.shape}, "
                    f"the model has shape {arr.shape}"
                )
            values[k] = (arr, v)
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {type(self).__name__}:\n  "
                + "\n  ".join(errors)
            )
        for arr, v in values.values():
            arr[...] = v
        return _IncompatibleKeys(missing, unexpected)

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to an ``.npz`` file (``numpy.savez``)."""
        np.savez(path, **self.state_dict())

    def load(self, path: str | os.PathLike, strict: bool = True) -> Module:
        """Load an ``.npz`` written by :meth:`save` (``.npz`` appended if missing)."""
        path = os.fspath(path)
        if not os.path.exists(path) and os.path.exists(path + ".npz"):
            path += ".npz"
        with np.load(path, allow_pickle=False) as f:
            sd = {k: f[k] for k in f.files}
        self.load_state_dict(sd, strict=strict)
        return self

    # ---- calling ------------------------------------------------------------

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args and isinstance(args[0], np.ndarray):
            args = (Tensor(args[0]),) + args[1:]
        return self.forward(*args, **kwargs)

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.data.size for p in self.parameters() if p.requires_grad or not trainable_only)

    # ---- printing -----------------------------------------------------------

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({k}): " + repr(m).replace("\n", "\n  ")
            for k, m in self._modules.items()
            if m is not None
        ]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        extra = self.extra_repr()
        head = f"{type(self).__name__}(" + (f"\n  {extra}" if extra else "")
        return head + "\n" + "\n".join(lines) + "\n)"

    def summary(
        self, input_shape: Iterable[int] | int, batch_size: int = 1, verbose: bool = False
    ) -> Summary:
        """A Keras-style table: each layer's output shape and parameter count, and the totals.

        Runs one forward pass on zeros of shape ``(batch_size, *input_shape)``
        under :class:`no_grad` in eval mode (the train/eval flags are restored;
        BatchNorm statistics are not touched). Rows are the leaf layers (and
        any container owning parameters itself) in the order they first run;
        a layer that never runs is listed last with output shape ``-``.

        Returns
        -------
        Summary
            A ``str`` (the table) with ``total_params``, ``trainable_params``,
            ``non_trainable_params``, ``rows`` and ``output_shape`` attributes.
            Printed too if ``verbose``.
        """
        if isinstance(input_shape, (int, np.integer)):
            input_shape = (input_shape,)
        shape = (int(batch_size), *(int(s) for s in input_shape))
        named = list(self.named_modules())
        listed = [
            (n, m)
            for n, m in named
            if not any(c is not None for c in m._modules.values()) or m._parameters
        ]
        first_run: dict[int, tuple[int, Any]] = {}
        patched = []
        for _name, m in listed:
            bound = m.forward

            def hook(*a: Any, _m: Module = m, _f: Any = bound, **k: Any) -> Any:
                out = _f(*a, **k)
                if id(_m) not in first_run:
                    first_run[id(_m)] = (len(first_run), _shape_of(out))
                return out

            patched.append((m, m.__dict__.get("forward")))
            m.__dict__["forward"] = hook
        modes = [(m, m.training) for _, m in named]
        # Every layer runs on its own (no fused Conv2d -> ReLU), so each has a row.
        fusing = [(m, m.__dict__.get("fuse_relu")) for _, m in named if isinstance(m, Sequential)]
        try:
            self.eval()
            for m, _ in fusing:
                m.fuse_relu = False
            with no_grad():
                out = self(Tensor(np.zeros(shape, dtype=self._dtype())))
        finally:
            for m, prev in fusing:
                if prev is None:
                    del m.__dict__["fuse_relu"]
                else:
                    m.fuse_relu = prev
            for m, prev in patched:
                if prev is None:
                    del m.__dict__["forward"]
                else:
                    m.__dict__["forward"] = prev
            for m, mode in modes:
                m.__dict__["training"] = mode

        rows = []
        order = sorted(listed, key=lambda nm: first_run.get(id(nm[1]), (len(listed) + 1, None))[0])
        for name, m in order:
            nparams = sum(p.data.size for p in m._parameters.values() if p is not None)
            out_shape = first_run.get(id(m), (0, "-"))[1]
            label = f"{name or type(self).__name__.lower()} ({type(m).__name__})"
            rows.append((label, out_shape, nparams))
        params = list(self.parameters())
        total = sum(p.data.size for p in params)
        trainable = sum(p.data.size for p in params if p.requires_grad)

        w0 = max([len("Layer (type)")] + [len(r[0]) for r in rows]) + 2
        w1 = max([len("Output Shape")] + [len(str(r[1])) for r in rows]) + 2
        w2 = max([len("Param #")] + [len(f"{r[2]:,}") for r in rows])
        width = w0 + w1 + w2
        lines = [
            f'Model: "{type(self).__name__}"  input {shape}',
            "=" * width,
            f"{'Layer (type)':<{w0}}{'Output Shape':<{w1}}{'Param #':>{w2}}",
            "=" * width,
        ]
        lines += [f"{a:<{w0}}{b!s:<{w1}}{c:>{w2},}" for a, b, c in rows]
        lines += [
            "=" * width,
            f"Total params: {total:,}",
            f"Trainable params: {trainable:,}",
            f"Non-trainable params: {total - trainable:,}",
            "=" * width,
        ]
        s = Summary("\n".join(lines))
        s.rows = rows
        s.total_params = total
        s.trainable_params = trainable
        s.non_trainable_params = total - trainable
        s.output_shape = _shape_of(out)
        if verbose:
            print(s)
        return s


class Summary(str):
    """The text of :meth:`Module.summary`, with the counts as attributes."""

    rows: list
    total_params: int
    trainable_params: int
    non_trainable_params: int
    output_shape: Any


def _shape_of(out: Any) -> Any:
    if isinstance(out, Tensor):
        return tuple(out.shape)
    if isinstance(out, (tuple, list)):
        return [_shape_of(o) for o in out]
    return "?"


# --------------------------------------------------------------------------
# Containers
# --------------------------------------------------------------------------


class Sequential(Module):
    """Modules called in order; ``Sequential(a, b)`` or ``Sequential(OrderedDict(...))``.

    A :class:`Conv2d` directly followed by a :class:`ReLU` runs as one op
    (``conv2d(..., activation="relu")``): the kernels apply the ReLU as each
    output is stored instead of a second pass over the tensor, and the ReLU
    module is not called; followed by a :class:`MaxPool2d` too, the three run
    as :func:`fastconv.ops.conv2d_relu_max_pool2d`, whose backward applies
    the ReLU to the pooled gradient. Results and gradients are the same; set
    ``fuse_relu = False`` on the instance to call every module.
    """

    fuse_relu = True

    def __init__(self, *modules: Any) -> None:
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], (dict, OrderedDict)):
            for k, m in modules[0].items():
                setattr(self, k, m)
        else:
            for i, m in enumerate(modules):
                setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        mods = list(self._modules.values())
        i = 0
        while i < len(mods):
            m = mods[i]
            fused = (
                self.fuse_relu
                and type(m) is Conv2d
                and i + 1 < len(mods)
                and type(mods[i + 1]) is ReLU
                and isinstance(x, (Tensor, np.ndarray))
            )
            if fused and i + 2 < len(mods) and type(mods[i + 2]) is MaxPool2d:
                x = m.forward_relu_max_pool(Tensor(x) if isinstance(x, np.ndarray) else x, mods[i + 2])
                i += 3
            elif fused:
                x = m.forward(Tensor(x) if isinstance(x, np.ndarray) else x, activation="relu")
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def __getitem__(self, i: int | slice) -> Module:
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return Sequential(*mods[i])
        return mods[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def append(self, module: Module) -> Sequential:
        setattr(self, str(len(self._modules)), module)
        return self


class Identity(Module):
    """Returns its input."""

    def forward(self, x: Tensor) -> Tensor:
        return x


# --------------------------------------------------------------------------
# Layers
# --------------------------------------------------------------------------


class Conv2d(Module):
    """2-D convolution on fastconv's kernels; weight (out, in/groups, kh, kw).

    ``padding`` takes an int, a pair, ``"valid"`` or ``"same"``; ``algo`` is
    passed to :func:`fastconv.conv2d` (``"auto"``, ``"direct"``, ``"im2col"``, ``"implicit"``).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair | str = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        bias: bool = True,
        *,
        algo: str = "auto",
    ) -> None:
        super().__init__()
        check = _Args(self)
        in_channels = check.int("in_channels", in_channels, 1)
        out_channels = check.int("out_channels", out_channels, 1)
        self.kernel_size = check.pair("kernel_size", kernel_size, 1)
        self.stride = check.pair("stride", stride, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Conv2d: padding must be an int, a pair of ints, 'same' or 'valid', "
                    f"got {padding!r}"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(  # PyTorch's rule (fastconv.conv2d itself would take it)
                    "Conv2d: padding='same' is not supported for strided convolutions, "
                    f"got stride {self.stride}"
                )
            self.padding: tuple[int, int] | str = padding
        else:
            self.padding = check.pair("padding", padding, 0)
        self.dilation = check.pair("dilation", dilation, 1)
        self.groups = check.int("groups", groups, 1)
        for name, n in (("in_channels", in_channels), ("out_channels", out_channels)):
            if n % self.groups:
                raise ValueError(f"Conv2d: groups={self.groups} does not divide {name}={n}")
        bias = check.bool("bias", bias)
        self.algo = check.choice("algo", algo, tuple(_core.conv_algos()))
        self.in_channels, self.out_channels = in_channels, out_channels
        dtype = T.get_default_dtype()
        shape = (out_channels, in_channels // self.groups, *self.kernel_size)
        self.weight = Parameter(np.empty(shape, dtype=dtype))
        self.bias = Parameter(np.empty(out_channels, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = _fans(self.weight.shape)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward_relu_max_pool(self, x: Tensor, pool: MaxPool2d) -> Tensor:
        """``pool(relu(self(x)))`` as one op (see :class:`Sequential`)."""
        return ops.conv2d_relu_max_pool2d(
            x,
            self.weight,
            self.bias,
            (self.stride, self.padding, self.dilation, self.groups, self.algo),
            (pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode),
        )

    def forward(self, x: Tensor, activation: str | None = None) -> Tensor:
        """The convolution; ``activation="relu"`` fuses a following ReLU (see :class:`Sequential`)."""
        return ops.conv2d(
            x,
            self.weight,
            self.bias,
            self.stride,
            self.padding,
            self.dilation,
            self.groups,
            self.algo,
            activation,
        )

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding not in ((0, 0), "valid"):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class Linear(Module):
    """Fully connected layer ``x @ weight.T + bias`` on fastconv's GEMM; weight (out, in)."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        check = _Args(self)
        self.in_features = check.int("in_features", in_features, 0, None)
        self.out_features = check.int("out_features", out_features, 0, None)
        bias = check.bool("bias", bias)
        dtype = T.get_default_dtype()
        self.weight = Parameter(np.empty((out_features, in_features), dtype=dtype))
        self.bias = Parameter(np.empty(out_features, dtype=dtype)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's default: kaiming_uniform_(a=sqrt(5)), bias U(-1/sqrt(in), 1/sqrt(in))."""
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features > 0 else 0.0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class MaxPool2d(Module):
    """2-D max pooling; the backward routes gradients through the saved argmax."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        check = _Args(self)
        check.pool(kernel_size, stride, padding, dilation)
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, check.bool("ceil_mode", ceil_mode)

    def forward(self, x: Tensor) -> Tensor:
        return ops.max_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}"
        )


class AvgPool2d(Module):
    """2-D average pooling."""

    def __init__(
        self,
        kernel_size: IntPair,
        stride: IntPair | None = None,
        padding: IntPair = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ) -> None:
        super().__init__()
        check = _Args(self)
        check.pool(kernel_size, stride, padding)
        if (
            divisor_override is not None
            and check.int("divisor_override", divisor_override, None, None) == 0
        ):
            raise ValueError("AvgPool2d: divisor_override must not be 0")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode = check.bool("ceil_mode", ceil_mode)
        self.count_include_pad = check.bool("count_include_pad", count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, x: Tensor) -> Tensor:
        return ops.avg_pool2d(
            x,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride or self.kernel_size}, "
            f"padding={self.padding}"
        )


class Flatten(Module):
    """Merge dims ``start_dim..end_dim`` (default: all but the batch dim); a view."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)


class ReLU(Module):
    """``max(x, 0)`` on fastconv's kernel (backward too)."""

    def forward(self, x: Tensor) -> Tensor:
        return T.relu(x)


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return T.tanh(x)


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return T.sigmoid(x)


class Softmax(Module):
    """Softmax along ``dim`` (for outputs; train with :class:`CrossEntropyLoss` on logits)."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return T.softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    def forward(self, x: Tensor) -> Tensor:
        return T.log_softmax(x, self.dim)


class Dropout(Module):
    """In training, zero each element with probability ``p`` and scale the rest by 1/(1-p).

    Identity in eval mode. Masks come from the generator of :func:`manual_seed`.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = _Args(self).number("p", p, lambda v: 0 <= v <= 1, "in [0, 1]")

    def forward(self, x: Tensor) -> Tensor:
        return ops.dropout(x, self.p, _rng) if self.training else x

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _BatchNorm(Module):
    _ndims: tuple = ()

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
    ) -> None:
        super().__init__()
        check = _Args(self)
        self.num_features = num_features = check.int("num_features", num_features, 1, None)
        # eps > 0: with eps <= 0 a constant channel divides by sqrt(<= 0) and gives NaN.
        self.eps = check.number("eps", eps, lambda v: 0 < v < math.inf, "finite and > 0")
        self.momentum = (
            None
            if momentum is None
            else check.number("momentum", momentum, math.isfinite, "a finite number or None")
        )
        self.affine = affine = check.bool("affine", affine)
        dtype = T.get_default_dtype()
        if affine:
            self.weight = Parameter(np.ones(num_features, dtype=dtype))
            self.bias = Parameter(np.zeros(num_features, dtype=dtype))
        else:
            self.weight = self.bias = None
        self.register_buffer("running_mean", np.zeros(num_features, dtype=dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype=dtype))
        self.register_buffer("num_batches_tracked", np.zeros((), dtype=np.int64))

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(
                f"{type(self).__name__}({self.num_features}): expected input with "
                f"{' or '.join(map(str, self._ndims))} dims and {self.num_features} channels "
                f"in dim 1, got shape {x.shape}"
            )
        return ops.batch_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training,
            self.momentum,
            self.eps,
            self.num_batches_tracked,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}"
        )


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) per channel, as ``torch.nn.BatchNorm2d``.

    Training: batch mean and biased variance; the running statistics are
    updated with momentum and the unbiased variance. Eval: running statistics.
    """

    _ndims = (4,)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) per channel."""

    _ndims = (2, 3)


# --------------------------------------------------------------------------
# Losses
# --------------------------------------------------------------------------


class CrossEntropyLoss(Module):
    """Fused log-softmax + negative log-likelihood of logits (N, C) and int labels (N,)."""

    def __init__(self, reduction: str = "mean") -> None:
        super().__init__()
        self.reduction = _Args(self).choice("reduction", reduction, ("mean", "sum"))

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return ops.cross_entropy(input, target, self.reduction)


class MSELoss(CrossEntropyLoss):
    """Mean squared error (``reduction="mean"`` or ``"sum"``)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return ops.mse_loss(input, target, self.reduction)


class L1Loss(CrossEntropyLoss):
    """Mean absolute error (``reduction="mean"`` or ``"sum"``)."""

    def forward(self, input: Tensor, target: Any) -> Tensor:
        return ops.l1_loss(input, target, self.reduction)


# --------------------------------------------------------------------------
# nn.init: in-place initialisers on Tensors/Parameters (or arrays)
# --------------------------------------------------------------------------


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


init = types.ModuleType(
    __name__ + ".init", "In-place initialisers (``fastconv.nn.init``), as ``torch.nn.init``."
)
for _f in (
    calculate_gain,
    uniform_,
    normal_,
    constant_,
    zeros_,
    ones_,
    xavier_uniform_,
    xavier_normal_,
    kaiming_uniform_,
    kaiming_normal_,
):
    setattr(init, _f.__name__, _f)
sys.modules[init.__name__] = init
del _f
