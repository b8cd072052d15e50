"""What ``fastconv bench`` runs: the layers of the suites, their passes, and the contenders.

For one named layer (:mod:`fastconv._shapes`) and pass, :func:`make_contenders`
allocates the inputs once (seeded by the layer's name) and binds one
zero-argument call per contender (``fastconv[<algo>]``, ``fastconv``,
``reference``, ``torch``: see :mod:`fastconv.bench`), with the kernel variant
it runs, read from ``fastconv.show_config()["kernels"]`` (:class:`KernelNames`),
and the work of one call: FLOPs (conv, linear) or bytes moved (pools).
:class:`Settings` says how hard to measure and what to include
(``--quick`` / ``--full``); :func:`select_shapes` picks the layers.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import math
import os
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import fastconv
from fastconv import _core, reference
from fastconv._shapes import SUITES, ConvShape, LayerShape, LinearShape, PoolShape

__all__ = [
    "CONV_ALGOS",
    "DEFAULT_SUITES",
    "Contender",
    "KernelNames",
    "Settings",
    "layer_contenders",
    "layer_passes",
    "make_contenders",
    "passes_of",
    "select_shapes",
]

DEFAULT_SUITES = ("mnist", "alexnet")
CONV_ALGOS = tuple(a for a in _core.conv_algos() if a != "auto")


@dataclass
class Contender:
    """One way of running one pass: a label, the kernel it runs and a bound call."""

    label: str
    kernel: str
    fn: Callable[[], object] | None
    auto: bool = False
    skip: str = ""  # reason, when not run


@dataclass
class Settings:
    """How hard to measure (``--quick`` / ``--full``) and what to include."""

    mode: str = "quick"
    repeats: int = 5
    min_repeats: int = 1
    max_time: float = 0.3
    warmup: int = 1
    rounds: int = 2
    settle: float = 0.15
    #: Conv layers above this many FLOPs per pass run only auto's algorithm.
    all_algos_max_flops: float = 1e9
    #: Conv passes; the single-gradient ones cost as much again.
    conv_passes: tuple[str, ...] = ("forward", "backward")
    torch: bool = False
    baseline: str = "reference"
    #: Contenders: "fastconv" (the per-algo rows), "auto" (only what auto
    #: picks), "reference", "torch".
    contenders: tuple[str, ...] = ("fastconv", "reference")

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
            "all_algos_max_flops": math.inf,
            "conv_passes": ("forward", "backward", "backward_input", "backward_weight"),
            **kw,
        }
        return cls(**kw)


_MASKS = {
    "backward": (True, True, True),
    "backward_input": (True, False, False),
    "backward_weight": (False, True, False),
}
# Which driver passes a conv pass runs (for auto's choice and the kernel names).
_SUBPASSES = {
    "forward": ("forward",),
    "backward": ("backward_input", "backward_weight"),
    "backward_input": ("backward_input",),
    "backward_weight": ("backward_weight",),
}


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng(zlib.crc32(name.encode()))


def _randn(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    return rng.standard_normal(tuple(shape), dtype=np.float32)


def _compact_kernels(names: Sequence[str]) -> str:
    """``['a_x__isa', 'a_y__isa']`` -> ``'a_{x,y}__isa'`` (keeps table rows short)."""
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
    """Kernel variant names, read from ``show_config()["kernels"]`` (rule 11: rows name the
    kernel that ran).

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

    def conv(self, pass_: str, algos: Sequence[str]) -> str:
        names = [self.get(f"conv2d_{sub} (algo='{a}')") for sub, a in zip(_SUBPASSES[pass_], algos)]
        if _MASKS.get(pass_, (False, False, False))[2]:
            names.append(self.get("conv2d_backward_bias"))
        return _compact_kernels(names)


def _conv_contenders(
    s: ConvShape, pass_: str, settings: Settings, kernels: KernelNames, torch: Any
) -> tuple[list[Contender], float]:
    rng = _rng(s.name)
    x, w, b = _randn(rng, s.x_shape), _randn(rng, s.w_shape), _randn(rng, (s.K,))
    gy = _randn(rng, s.y_shape)
    geo = (s.stride, s.padding, s.dilation, s.groups)
    subs = _SUBPASSES[pass_]
    picks = [_core.conv2d_choose_algo(sub, s.x_shape, s.w_shape, *geo) for sub in subs]
    work = s.flops * len(subs)

    def call(algo: str, impl: Any = fastconv) -> Callable[[], object]:
        if pass_ == "forward":
            return lambda: impl.conv2d(x, w, b, *geo, algo=algo)
        mask = _MASKS[pass_]
        return lambda: impl.conv2d_backward(gy, x, w, *geo, algo=algo, output_mask=mask)

    out: list[Contender] = []
    if "fastconv" in settings.contenders:
        for algo in CONV_ALGOS:
            auto = all(p == algo for p in picks)
            c = Contender(f"fastconv[{algo}]", kernels.conv(pass_, [algo] * len(subs)), None, auto)
            if not auto and s.flops > settings.all_algos_max_flops:
                c.skip = "skipped (slow; not auto's pick; --full runs it)"
            else:
                c.fn = call(algo)
            out.append(c)
    if "auto" in settings.contenders or ("fastconv" in settings.contenders and len(set(picks)) > 1):
        label = "fastconv[auto]" if len(set(picks)) > 1 else f"fastconv[auto={picks[0]}]"
        out.append(Contender(label, kernels.conv(pass_, picks), call("auto"), True))
    if "reference" in settings.contenders:
        out.append(Contender("reference", "numpy + BLAS matmul", call("auto", reference)))
    if torch is not None and "torch" in settings.contenders:
        tx, tw, tb, tgy = (torch.from_numpy(a) for a in (x, w, b, gy))
        F = torch.nn.functional
        st, pad, dil = [s.stride] * 2, [s.padding] * 2, [s.dilation] * 2
        if pass_ == "forward":
            fn = lambda: F.conv2d(tx, tw, tb, s.stride, s.padding, s.dilation, s.groups)
        else:
            mask = list(_MASKS[pass_])
            fn = lambda: torch.ops.aten.convolution_backward(
                tgy, tx, tw, [s.K], st, pad, dil, False, [0, 0], s.groups, mask
            )
        out.append(Contender("torch", "aten/oneDNN", fn))
    return out, work


def _pool_contenders(
    s: PoolShape, pass_: str, settings: Settings, kernels: KernelNames, torch: Any
) -> tuple[list[Contender], float]:
    rng = _rng(s.name)
    x, gy = _randn(rng, s.x_shape), _randn(rng, s.y_shape)
    k, st, pad = s.kernel, s.stride, s.padding
    nx, ny = x.size, gy.size
    op = f"{s.op}_pool2d_{pass_}"
    if s.op == "max":
        idx = fastconv.max_pool2d(x, k, st, pad, return_indices=True)[1]
        if pass_ == "forward":
            work = 4 * nx + (4 + 8) * ny  # read x; write y and int64 indices

            def make(m: Any) -> Callable[[], object]:
                return lambda: m.max_pool2d(x, k, st, pad, return_indices=True)
        else:
            work = (4 + 8) * ny + 4 * nx  # read dy and indices; write dx

            def make(m: Any) -> Callable[[], object]:
                return lambda: m.max_pool2d_backward(gy, idx, s.x_shape)
    else:
        if pass_ == "forward":
            work = 4 * nx + 4 * ny

            def make(m: Any) -> Callable[[], object]:
                return lambda: m.avg_pool2d(x, k, st, pad)
        else:
            work = 4 * ny + 4 * nx

            def make(m: Any) -> Callable[[], object]:
                return lambda: m.avg_pool2d_backward(gy, s.x_shape, k, st, pad)

    out: list[Contender] = []
    if "fastconv" in settings.contenders or "auto" in settings.contenders:
        out.append(Contender("fastconv", kernels.get(op), make(fastconv), True))
    if "reference" in settings.contenders:
        out.append(Contender("reference", "numpy", make(reference)))
    if torch is not None and "torch" in settings.contenders:
        tx, tgy = torch.from_numpy(x), torch.from_numpy(gy)
        F, aten = torch.nn.functional, torch.ops.aten
        kk, ss, pp = [k, k], [st, st], [pad, pad]
        if s.op == "max" and pass_ == "forward":
            fn = lambda: F.max_pool2d(tx, k, st, pad, return_indices=True)
        elif s.op == "max":
            tidx = torch.from_numpy(idx)
            fn = lambda: aten.max_pool2d_with_indices_backward(
                tgy, tx, kk, ss, pp, [1, 1], False, tidx
            )
        elif pass_ == "forward":
            fn = lambda: F.avg_pool2d(tx, k, st, pad)
        else:
            fn = lambda: aten.avg_pool2d_backward(tgy, tx, kk, ss, pp, False, True, None)
        out.append(Contender("torch", "aten", fn))
    return out, float(work)


def _linear_contenders(
    s: LinearShape, pass_: str, settings: Settings, kernels: KernelNames, torch: Any
) -> tuple[list[Contender], float]:
    rng = _rng(s.name)
    x, w, b = _randn(rng, s.x_shape), _randn(rng, s.w_shape), _randn(rng, (s.out_features,))
    out: list[Contender] = []
    if "fastconv" in settings.contenders or "auto" in settings.contenders:
        fn = lambda: fastconv.linear(x, w, b)
        out.append(Contender("fastconv", kernels.get("linear"), fn, True))
    if "reference" in settings.contenders:
        out.append(Contender("reference", "numpy matmul (BLAS)", lambda: reference.linear(x, w, b)))
    if torch is not None and "torch" in settings.contenders:
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        out.append(Contender("torch", "aten/BLAS", lambda: torch.nn.functional.linear(tx, tw, tb)))
    return out, float(s.flops)


def layer_passes(s: LayerShape, settings: Settings) -> tuple[str, ...]:
    """The passes ``settings`` time for layer ``s`` (conv: ``settings.conv_passes``)."""
    if isinstance(s, ConvShape):
        return settings.conv_passes
    if isinstance(s, PoolShape):
        return ("forward", "backward")
    return ("forward",)


def layer_contenders(
    s: LayerShape, pass_: str, settings: Settings, kernels: KernelNames, torch: Any
) -> tuple[list[Contender], float, str]:
    """The contenders of ``s`` and ``pass_`` that ``settings`` include, the work of one
    call and its rate unit (see :func:`make_contenders`)."""
    if isinstance(s, ConvShape):
        return (*_conv_contenders(s, pass_, settings, kernels, torch), "GFLOP/s")
    if isinstance(s, PoolShape):
        return (*_pool_contenders(s, pass_, settings, kernels, torch), "GB/s")
    return (*_linear_contenders(s, pass_, settings, kernels, torch), "GFLOP/s")


def make_contenders(
    shape: LayerShape,
    pass_: str,
    contenders: Sequence[str] = ("fastconv", "auto", "reference"),
    torch: Any = None,
) -> tuple[list[Contender], float, str]:
    """The contenders of one layer and pass, with inputs allocated (for other harnesses).

    Returns the contenders (``fn`` is a zero-argument callable), the work of
    one call (FLOPs or bytes) and its rate unit (``"GFLOP/s"`` or ``"GB/s"``).
    Nothing is skipped: every algorithm runs on every layer.
    """
    settings = Settings(all_algos_max_flops=math.inf, contenders=tuple(contenders))
    return layer_contenders(shape, pass_, settings, KernelNames(), torch)


def passes_of(shape: LayerShape, full: bool = True) -> tuple[str, ...]:
    """The passes benchmarked for a layer (conv: forward, backward and, if ``full``,
    backward_input and backward_weight; pool: forward, backward; linear: forward)."""
    return layer_passes(shape, Settings.full() if full else Settings.quick())


def select_shapes(
    suites: Sequence[str] | None, layers: Sequence[str] | None, batch: int | None = None
) -> list[LayerShape]:
    """The layers of ``suites`` (default :data:`DEFAULT_SUITES`) filtered by glob
    patterns, with batch size ``batch`` when given."""
    names = list(suites or DEFAULT_SUITES)
    if "all" in names:
        names = list(SUITES)
    names = list(dict.fromkeys(names))
    shapes = [s for n in names for s in SUITES[n]]
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
