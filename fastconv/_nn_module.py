"""The base of layers and models: :class:`Module`, :class:`Parameter`, :class:`Summary`.

A module registers its parameters, buffers and sub-modules by attribute
assignment, walks them (``named_parameters``, ``named_modules``, ``apply``,
...), switches train/eval mode and dtype, saves and loads state dicts, runs
forward hooks around ``forward``, and prints a summary.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from typing import Any, Callable, NamedTuple

import numpy as np

from ._kernels import KERNELS
from .tensor import Tensor, get_default_dtype, no_grad

__all__ = ["Module", "Parameter", "RemovableHandle", "Summary"]


class Parameter(Tensor):
    """A :class:`Tensor` that is a module's learnable weight (``requires_grad=True``)."""

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None) -> None:
        super().__init__(data, requires_grad=requires_grad, dtype=dtype)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class RemovableHandle:
    """What ``register_forward_hook`` returns: ``handle.remove()`` unregisters the hook.

    Also a context manager (the hook is removed on exit), as PyTorch's.
    """

    _ids = itertools.count()

    def __init__(self, hooks: OrderedDict) -> None:
        self.hooks = hooks
        self.id = next(RemovableHandle._ids)

    def remove(self) -> None:
        """Unregister the hook (again: nothing happens)."""
        self.hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.remove()


def _register_hook(hooks: OrderedDict, entry: tuple, prepend: bool) -> RemovableHandle:
    handle = RemovableHandle(hooks)
    hooks[handle.id] = entry
    if prepend:
        hooks.move_to_end(handle.id, last=False)
    return handle


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
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
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
        self._register(self._parameters, name, param)

    def add_module(self, name: str, module: Module | None) -> None:
        """Register ``module`` as the sub-module ``name`` (None: an unset slot)."""
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._register(self._modules, name, module)

    def _register(self, registry: OrderedDict, name: str, value: Any) -> None:
        """Assign ``value`` to attribute ``name``; None unregisters it from ``registry``."""
        if value is None:
            registry.pop(name, None)
            object.__setattr__(self, name, None)
        else:
            setattr(self, name, value)

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

    def apply(self, fn: Callable[[Module], Any]) -> Module:
        """Call ``fn`` on every sub-module (children first, recursively), then on self.

        The way to initialise a model's weights, as ``torch.nn.Module.apply``:
        ``model.apply(lambda m: nn.init.zeros_(m.bias) if isinstance(m, nn.Linear) else None)``.
        """
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

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
        if dtype not in KERNELS:  # the dtypes with kernels, float32 and float64
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
        return get_default_dtype()

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
        """``forward(*args, **kwargs)`` between the forward hooks; an array input becomes a Tensor.

        The input is the first positional argument or ``input=`` (PyTorch's name).
        """
        if args and isinstance(args[0], np.ndarray):
            args = (Tensor(args[0]),) + args[1:]
        elif isinstance(kwargs.get("input"), np.ndarray):
            kwargs["input"] = Tensor(kwargs["input"])
        if not self._has_hooks():
            return self.forward(*args, **kwargs)
        for hook, with_kwargs, _ in list(self._forward_pre_hooks.values()):
            if with_kwargs:
                result = hook(self, args, kwargs)
                if result is not None:
                    if not (isinstance(result, tuple) and len(result) == 2):
                        raise RuntimeError(
                            "forward pre-hook must return None or a tuple of (new_args, "
                            f"new_kwargs), got {result!r}"
                        )
                    args, kwargs = result
            else:
                result = hook(self, args)
                if result is not None:
                    args = result if isinstance(result, tuple) else (result,)
        done: set[int] = set()
        out = None
        try:
            out = self.forward(*args, **kwargs)
            for key, (hook, with_kwargs, _) in list(self._forward_hooks.items()):
                done.add(key)
                result = hook(self, args, kwargs, out) if with_kwargs else hook(self, args, out)
                if result is not None:
                    out = result
        except Exception:
            # The always_call hooks that have not run yet still run, as PyTorch's.
            for key, (hook, with_kwargs, always) in list(self._forward_hooks.items()):
                if always and key not in done:
                    with contextlib.suppress(Exception):
                        if with_kwargs:
                            hook(self, args, kwargs, out)
                        else:
                            hook(self, args, out)
            raise
        return out

    def _has_hooks(self) -> bool:
        d = self.__dict__
        return bool(d.get("_forward_pre_hooks") or d.get("_forward_hooks"))

    def register_forward_pre_hook(
        self, hook: Callable, *, prepend: bool = False, with_kwargs: bool = False
    ) -> RemovableHandle:
        """Call ``hook(module, args)`` before each ``forward``; as PyTorch's.

        A result other than None replaces the positional arguments (a
        non-tuple is wrapped in one). With ``with_kwargs``, ``hook(module,
        args, kwargs)`` returns None or ``(args, kwargs)``. ``prepend`` runs it
        before the hooks already registered. Returns a handle whose
        ``remove()`` unregisters it.
        """
        return _register_hook(self._forward_pre_hooks, (hook, with_kwargs, False), prepend)

    def register_forward_hook(
        self,
        hook: Callable,
        *,
        prepend: bool = False,
        with_kwargs: bool = False,
        always_call: bool = False,
    ) -> RemovableHandle:
        """Call ``hook(module, args, output)`` after each ``forward``; as PyTorch's.

        A result other than None replaces the output. With ``with_kwargs``
        the hook is ``hook(module, args, kwargs, output)``; with
        ``always_call`` it runs (with output None) even when ``forward``
        raises. Returns a handle whose ``remove()`` unregisters it.
        """
        return _register_hook(self._forward_hooks, (hook, with_kwargs, always_call), prepend)

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
        # Every layer runs on its own (no fused Conv2d -> ReLU), so each has a row:
        # fusion off on every container that fuses (Sequential's fuse_relu).
        fusing = [(m, m.__dict__.get("fuse_relu")) for _, m in named if hasattr(m, "fuse_relu")]
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
