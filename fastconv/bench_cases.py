"""What ``fastconv bench`` measures: the layers, their ops, and the inputs of each op.

A *case* is one op of one named layer (:mod:`fastconv._shapes`) with its
inputs allocated once, seeded by the layer's name, so every strategy
(:mod:`fastconv.bench_strategies`) gets the same arrays; it knows the work of
one call: FLOPs (conv, linear) or bytes moved (pools). The ops:

* convolutions: ``fwd``, ``bwd_input``, ``bwd_weight`` and, in ``--full``
  mode, ``bwd`` (all three gradients in one call, as training runs it);
* poolings (max or avg): ``fwd`` (max-pool with indices) and ``bwd``;
* linear layers: ``fwd``.

:class:`Settings` says how hard to measure (``--quick`` / ``--full``);
:func:`select_shapes` picks the layers; :class:`KernelNames` reads the kernel
variants from ``fastconv.show_config()["kernels"]``.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

import fastconv
from fastconv import _core
from fastconv._shapes import SUITES, ConvShape, LayerShape, LinearShape, PoolShape

__all__ = [
    "CONV_ALGOS",
    "DEFAULT_SUITES",
    "OPS",
    "Case",
    "KernelNames",
    "Settings",
    "auto_picks",
    "layer_ops",
    "make_case",
    "select_shapes",
]

DEFAULT_SUITES = ("mnist", "alexnet")
#: fastconv's convolution algorithms (``auto`` chooses among them).
CONV_ALGOS = tuple(a for a in _core.conv_algos() if a != "auto")
#: Every op of each kind of layer, in table order.
OPS = {
    "conv": ("fwd", "bwd_input", "bwd_weight", "bwd"),
    "pool": ("fwd", "bwd"),
    "linear": ("fwd",),
}

# The gradients a conv backward op asks for (output_mask of conv2d_backward).
_MASKS = {
    "bwd": (True, True, True),
    "bwd_input": (True, False, False),
    "bwd_weight": (False, True, False),
}
# The driver passes a conv op runs (for auto's choice and the kernel names).
_SUBPASSES = {
    "fwd": ("forward",),
    "bwd": ("backward_input", "backward_weight"),
    "bwd_input": ("backward_input",),
    "bwd_weight": ("backward_weight",),
}


@dataclass
class Settings:
    """How hard to measure (``--quick`` / ``--full``)."""

    mode: str = "quick"
    repeats: int = 5
    min_repeats: int = 1
    max_time: float = 0.25
    warmup: int = 1
    rounds: int = 1  # quick: one block per strategy; --full interleaves 3
    settle: float = 0.15
    #: In quick mode, the strategies that are not named explicitly and are not
    #: ``reference``, ``auto`` or ``torch`` skip conv layers above this many FLOPs per op.
    quick_max_flops: float = 1e9
    #: Conv ops (``bwd``, all gradients at once, only in full mode).
    conv_ops: tuple[str, ...] = ("fwd", "bwd_input", "bwd_weight")

    @classmethod
    def quick(cls, **kw: Any) -> Settings:
        return cls(**kw)

    @classmethod
    def full(cls, **kw: Any) -> Settings:
        kw = {
            "mode": "full",
            "repeats": 10,
            "min_repeats": 3,
            "max_time": 3.0,
            "rounds": 3,
            "quick_max_flops": math.inf,
            "conv_ops": OPS["conv"],
            **kw,
        }
        return cls(**kw)


def layer_ops(s: LayerShape, settings: Settings | None = None) -> tuple[str, ...]:
    """The ops timed for layer ``s`` (conv: ``settings.conv_ops``; all of them without
    settings)."""
    if s.kind == "conv" and settings is not None:
        return settings.conv_ops
    return OPS[s.kind]


@dataclass
class Case:
    """One op of one layer, with its inputs: what every strategy is asked to run.

    ``x``, ``w``, ``b`` are the layer's input, weight and bias; ``gy`` the
    gradient of its output; ``idx`` the max-pool indices of ``x`` (for
    ``bwd``); ``mask`` the gradients a conv backward op computes.
    """

    shape: LayerShape
    op: str
    work: float  # FLOPs or bytes of one call
    unit: str  # "GFLOP/s" or "GB/s"
    x: np.ndarray
    w: np.ndarray | None = None
    b: np.ndarray | None = None
    gy: np.ndarray | None = None
    idx: np.ndarray | None = None
    mask: tuple[bool, bool, bool] = (True, True, True)

    @property
    def kind(self) -> str:
        """``"conv"``, ``"pool"`` or ``"linear"``."""
        return self.shape.kind


def _randn(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.standard_normal(tuple(shape), dtype=np.float32)


def make_case(s: LayerShape, op: str) -> Case:
    """Allocate the inputs of ``op`` on layer ``s`` (seeded by the layer's name)."""
    if op not in layer_ops(s):
        raise ValueError(f"{s.name} has no op {op!r}; its ops are {layer_ops(s)}")
    rng = np.random.default_rng(zlib.crc32(s.name.encode()))
    if isinstance(s, ConvShape):
        x, w, b = _randn(rng, s.x_shape), _randn(rng, s.w_shape), _randn(rng, (s.K,))
        gy = _randn(rng, s.y_shape)
        work = float(s.flops * len(_SUBPASSES[op]))
        return Case(s, op, work, "GFLOP/s", x, w, b, gy, mask=_MASKS.get(op, (True, True, True)))
    if isinstance(s, PoolShape):
        x, gy = _randn(rng, s.x_shape), _randn(rng, s.y_shape)
        idx = None
        if s.op == "max":
            geo = (s.kernel, s.stride, s.padding, s.dilation, s.ceil_mode)
            idx = fastconv.max_pool2d(x, *geo, return_indices=True)[1]
        # Bytes a pass must read and write: x and y (float32), and the int64
        # indices that max-pool forward writes and backward reads.
        work = 4 * x.size + (4 + (8 if idx is not None else 0)) * gy.size
        return Case(s, op, float(work), "GB/s", x, gy=gy, idx=idx)
    x, w = _randn(rng, s.x_shape), _randn(rng, s.w_shape)
    return Case(s, op, float(s.flops), "GFLOP/s", x, w, _randn(rng, (s.out_features,)))


def auto_picks(s: ConvShape, op: str) -> list[str]:
    """The algorithm ``algo="auto"`` runs for each driver pass of conv ``op`` on ``s``."""
    geo = (s.stride, s.padding, s.dilation, s.groups)
    return [_core.conv2d_choose_algo(sub, s.x_shape, s.w_shape, *geo) for sub in _SUBPASSES[op]]


def _compact_kernels(names: Sequence[str]) -> str:
    """``['a_x__isa', 'a_y__isa']`` -> ``'a_{x,y}__isa'`` (keeps lines short)."""
    names = list(dict.fromkeys(names))
    suffixes = {n.rsplit("__", 1)[1] for n in names if "__" in n}
    if len(names) == 1 or len(suffixes) != 1:
        return " + ".join(names)
    isa = suffixes.pop()
    stems = [n.rsplit("__", 1)[0] for n in names]
    prefix = os.path.commonprefix(stems)
    prefix = prefix[: prefix.rfind("_") + 1] if "_" in prefix else ""
    if not prefix or " " in prefix:
        return " + ".join(stems) + f"__{isa}"
    return prefix + "{" + ",".join(s[len(prefix) :] for s in stems) + "}" + f"__{isa}"


class KernelNames:
    """Kernel variant names, read from ``show_config()["kernels"]`` (rule 11: results
    name the kernel that ran).

    The names are owned by the extension; this class only looks them up. A
    key the build does not list is shown as the key itself (no ISA suffix is
    made up here).
    """

    def __init__(self, table: dict[str, str] | None = None) -> None:
        if table is None:
            table = fastconv.show_config().get("kernels", {})
        self.table: dict[str, str] = dict(table)

    def get(self, key: str) -> str:
        return self.table.get(key, key)

    def conv(self, op: str, algos: Sequence[str]) -> str:
        """The kernels of conv ``op`` when its driver passes run ``algos``."""
        subs = _SUBPASSES[op]
        names = [self.get(f"conv2d_{sub} (algo='{a}')") for sub, a in zip(subs, algos)]
        if op == "bwd":
            names.append(self.get("conv2d_backward_bias"))
        return _compact_kernels(names)

    def fastconv(self, case: Case, algo: str) -> str:
        """The kernels fastconv runs for ``case`` with ``algo`` (conv) or its only one."""
        s = case.shape
        if case.kind == "conv":
            picks = auto_picks(s, case.op) if algo == "auto" else [algo] * len(_SUBPASSES[case.op])
            return self.conv(case.op, picks)
        if isinstance(s, PoolShape):
            return self.get(f"{s.op}_pool2d_{'forward' if case.op == 'fwd' else 'backward'}")
        return self.get("linear")


def _custom_names(shapes: Sequence[LayerShape]) -> list[LayerShape]:
    """``--shape`` layers, named ``custom.<kind><i>`` (i counts from 1 over all of them)."""
    out = []
    for i, s in enumerate(shapes, 1):
        kind = s.op if isinstance(s, PoolShape) else s.kind
        out.append(dataclasses.replace(s, name=f"custom.{kind}{i}"))
    return out


def select_shapes(
    suites: Sequence[str] | None,
    layers: Sequence[str] | None,
    batch: int | None = None,
    custom: Sequence[LayerShape] = (),
) -> list[LayerShape]:
    """The layers of ``suites`` (default :data:`DEFAULT_SUITES`, none when only ``custom``
    layers are given), then the ``custom`` ones (suite ``custom``), filtered by glob
    patterns, with batch size ``batch`` when given."""
    names = list(suites or ([] if custom else DEFAULT_SUITES))
    if "all" in names:
        names = list(SUITES)
    names = list(dict.fromkeys(names))
    shapes = [s for n in names for s in SUITES[n]] + _custom_names(custom)
    if layers:
        shapes = [s for s in shapes if any(fnmatch.fnmatchcase(s.name, g) for g in layers)]
    if batch is not None:
        if batch < 1:
            raise ValueError(f"--batch must be at least 1, got {batch}")
        shapes = [
            dataclasses.replace(s, **{"B" if isinstance(s, LinearShape) else "N": batch})
            for s in shapes
        ]
    return shapes
