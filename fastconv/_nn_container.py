"""Containers: :class:`Sequential`, which fuses Conv2d -> ReLU (-> MaxPool2d) runs."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

import numpy as np

from ._nn_layers import Conv2d, MaxPool2d, ReLU
from ._nn_module import Module
from .tensor import Tensor

__all__ = ["Sequential"]


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
