"""Containers: :class:`Sequential` (which fuses Conv2d -> ReLU (-> MaxPool2d) runs),
:class:`ModuleList` and :class:`ModuleDict`."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import numpy as np

from ._nn_act import ReLU
from ._nn_conv import Conv2d
from ._nn_module import Module
from ._nn_pool import MaxPool2d
from .tensor import Tensor

__all__ = ["ModuleDict", "ModuleList", "Sequential"]


class Sequential(Module):
    """Modules called in order; ``Sequential(a, b)`` or ``Sequential(OrderedDict(...))``.

    A :class:`Conv2d` directly followed by a :class:`ReLU` runs as one op
    (``conv2d(..., activation="relu")``): the kernels apply the ReLU as each
    output is stored instead of a second pass over the tensor, and the ReLU
    module is not called; followed by a :class:`MaxPool2d` too, the three run
    as :func:`fastconv.ops.conv2d_relu_max_pool2d`, whose backward applies
    the ReLU to the pooled gradient. Results and gradients are the same; set
    ``fuse_relu = False`` on the instance to call every module. Modules with
    forward hooks are never fused (their hooks run).
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

    def forward(self, input: Any) -> Any:
        x = input
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
                and not (m._has_hooks() or mods[i + 1]._has_hooks())
            )
            if (
                fused
                and i + 2 < len(mods)
                and type(mods[i + 2]) is MaxPool2d
                and not mods[i + 2].return_indices
                and not mods[i + 2]._has_hooks()
            ):
                x = m.forward_relu_max_pool(
                    Tensor(x) if isinstance(x, np.ndarray) else x, mods[i + 2]
                )
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


def _index(i: Any, n: int, what: str) -> int:
    """``i`` (an int, negative from the end) as an index in ``range(n)``; IndexError otherwise."""
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool):
        raise TypeError(f"{what} indices must be integers or slices, got {type(i).__name__}")
    if not -n <= i < n:
        raise IndexError(f"index {i} is out of range for {what} of length {n}")
    return int(i) % n


class ModuleList(Module):
    """A list of modules, registered as sub-modules ``"0"``, ``"1"``, ... (``torch.nn.ModuleList``).

    Indexable, iterable and mutable as a list; it has no ``forward``.
    """

    def __init__(self, modules: Iterable[Module] | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _renumber(self, mods: list[Module]) -> None:
        for k in list(self._modules):
            delattr(self, k)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __getitem__(self, i: int | slice) -> Any:
        mods = list(self._modules.values())
        if isinstance(i, slice):
            return ModuleList(mods[i])
        return mods[_index(i, len(mods), "ModuleList")]

    def __setitem__(self, i: int, module: Module) -> None:
        self.add_module(str(_index(i, len(self), "ModuleList")), module)

    def __delitem__(self, i: int | slice) -> None:
        mods = list(self._modules.values())
        if isinstance(i, slice):
            del mods[i]
        else:
            del mods[_index(i, len(mods), "ModuleList")]
        self._renumber(mods)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(list(self._modules.values()))

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList([*self, *other])

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        if not isinstance(modules, Iterable):
            raise TypeError(
                "ModuleList.extend should be called with an iterable of modules, got "
                f"{type(modules).__name__}"
            )
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._renumber(mods)

    def pop(self, index: int = -1) -> Module:
        m = self[index]
        del self[index]
        return m


class ModuleDict(Module):
    """An ordered dict of modules, registered under their keys (``torch.nn.ModuleDict``).

    It has no ``forward``; iterating yields the keys.
    """

    def __init__(self, modules: Mapping[str, Module] | Iterable | None = None) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(f"ModuleDict keys must be strings, got {type(key).__name__}")
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        if key not in self._modules:
            raise KeyError(key)
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def keys(self) -> list[str]:
        return list(self._modules.keys())

    def values(self) -> list[Module]:
        return list(self._modules.values())

    def items(self) -> list[tuple[str, Module]]:
        return list(self._modules.items())

    def clear(self) -> None:
        for k in self.keys():
            del self[k]

    def pop(self, key: str) -> Module:
        m = self[key]
        del self[key]
        return m

    def update(self, modules: Mapping[str, Module] | Iterable) -> None:
        """Add (or replace) modules from a mapping or an iterable of (key, module) pairs."""
        items = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for j, kv in enumerate(items):
            if not isinstance(kv, (tuple, list)) or len(kv) != 2:
                raise ValueError(
                    f"ModuleDict update sequence element #{j} should be a (key, module) pair, "
                    f"got {kv!r}"
                )
            self[kv[0]] = kv[1]
