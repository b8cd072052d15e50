"""The strategies ``fastconv bench`` compares: one registry, read by the command and by
``benchmarks/``.

In table order:

``reference``
    :mod:`fastconv.reference`: NumPy im2col + BLAS matmul, the oracle and the
    baseline of the speed-ups (pools and linear in NumPy too).
``cython``
    ``fastconv.strategies.cython`` (conv and max-pool; no avg-pool, no
    linear), when ``fastconv.strategies`` imports and its ``cython_error``
    is ``None``; otherwise unavailable, with that reason.
one per fastconv algorithm
    ``direct``, ``im2col``, ``implicit``, ...: read from
    ``_core.conv_algos()``, so a new algorithm appears without an edit here;
    convolutions only.
``auto``
    fastconv with ``algo="auto"`` (the algorithm it picks per pass), and
    fastconv's pools and linear layer.
``torch``
    PyTorch's CPU ops on the same buffers (``torch.from_numpy``), when torch
    is importable.

A :class:`Strategy` binds a :class:`~fastconv.bench_cases.Case` to a
zero-argument call, or to ``None`` when it does not implement that op (the
table shows ``-``). Tests: ``tests/test_bench_strategies.py``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Callable

import fastconv
from fastconv import _core, reference
from fastconv.bench_cases import Case, KernelNames

__all__ = ["Strategy", "parse_strategies", "registry", "select", "torch_module"]

Call = Callable[[], object]


def _numpy_api(m: Any, case: Case, **kw: Any) -> Call | None:
    """A call of ``case`` through a module with fastconv's functional API (fastconv,
    the reference, the Cython strategy); ``None`` when ``m`` lacks the function."""
    s, x, w, b, gy = case.shape, case.x, case.w, case.b, case.gy
    if case.kind == "conv":
        geo = (s.stride, s.padding, s.dilation, s.groups)
        if case.op == "fwd":
            f = getattr(m, "conv2d", None)
            return None if f is None else lambda: f(x, w, b, *geo, **kw)
        f, mask = getattr(m, "conv2d_backward", None), case.mask
        return None if f is None else lambda: f(gy, x, w, *geo, output_mask=mask, **kw)
    if case.kind == "linear":
        f = getattr(m, "linear", None)
        return None if f is None else lambda: f(x, w, b)
    k, st, pad, ceil = s.kernel, s.stride, s.padding, s.ceil_mode
    fwd = case.op == "fwd"
    f = getattr(m, f"{s.op}_pool2d{'' if fwd else '_backward'}", None)
    if f is None:
        return None
    if s.op == "max" and fwd:
        return lambda: f(x, k, st, pad, s.dilation, ceil, return_indices=True)
    if s.op == "max":
        return lambda: f(gy, case.idx, s.x_shape)
    if fwd:
        return lambda: f(x, k, st, pad, ceil)
    return lambda: f(gy, s.x_shape, k, st, pad, ceil)


def _cython() -> tuple[Any, str | None]:
    """``(fastconv.strategies.cython, None)``, or ``(None, why it is unavailable)``."""
    try:
        strategies = importlib.import_module("fastconv.strategies")
    except ImportError as e:
        return None, f"fastconv.strategies does not import ({e})"
    error = getattr(strategies, "cython_error", "fastconv.strategies has no cython_error")
    if error is not None:
        return None, str(error)
    module = getattr(strategies, "cython", None)
    return (module, None) if module is not None else (None, "fastconv.strategies has no cython")


def torch_module() -> tuple[Any, str | None]:
    """``(torch, None)``, or ``(None, why it does not import)``."""
    try:
        import torch
    except Exception as e:  # ImportError, or a broken install raising anything
        return None, f"torch does not import ({type(e).__name__}: {e})"
    return torch, None


def _torch_call(case: Case) -> Call | None:
    torch = torch_module()[0]
    s, F, aten = case.shape, torch.nn.functional, torch.ops.aten
    tx, tgy = torch.from_numpy(case.x), torch.from_numpy(case.gy) if case.gy is not None else None
    if case.kind == "linear":
        tw, tb = torch.from_numpy(case.w), torch.from_numpy(case.b)
        return lambda: F.linear(tx, tw, tb)
    pair = lambda v: list(v) if isinstance(v, (tuple, list)) else [v, v]
    if case.kind == "conv":
        tw, tb = torch.from_numpy(case.w), torch.from_numpy(case.b)
        top, bottom, left, right = s.pads
        if top != bottom or left != right:
            return None  # asymmetric padding ("same" with an even kernel)
        st, pad, dil = pair(s.stride), [top, left], pair(s.dilation)
        if case.op == "fwd":
            return lambda: F.conv2d(tx, tw, tb, st, pad, dil, s.groups)
        mask = list(case.mask)
        return lambda: aten.convolution_backward(
            tgy, tx, tw, [s.K], st, pad, dil, False, [0, 0], s.groups, mask
        )
    kk, ss, pp, ceil = pair(s.kernel), pair(s.stride), pair(s.padding), s.ceil_mode
    if s.op == "max" and case.op == "fwd":
        dd = pair(s.dilation)
        return lambda: F.max_pool2d(tx, kk, ss, pp, dd, ceil, return_indices=True)
    if s.op == "max":
        tidx, dd = torch.from_numpy(case.idx), pair(s.dilation)
        return lambda: aten.max_pool2d_with_indices_backward(tgy, tx, kk, ss, pp, dd, ceil, tidx)
    if case.op == "fwd":
        return lambda: F.avg_pool2d(tx, kk, ss, pp, ceil)
    return lambda: aten.avg_pool2d_backward(tgy, tx, kk, ss, pp, ceil, True, None)


_REFERENCE_KERNELS = {"conv": "numpy im2col + BLAS", "pool": "numpy", "linear": "numpy BLAS"}


# The thread pools the strategies run on: fastconv's kernels and the Cython
# loops share the process's one OpenMP runtime; the reference runs on NumPy's
# BLAS threads, torch on its own OpenMP copy.
POOL_OPENMP, POOL_BLAS, POOL_TORCH = "openmp", "blas", "torch"


@dataclass(frozen=True)
class Strategy:
    """One way of running the ops: a name, what it is, how to bind a case.

    ``kinds``: the layer kinds it implements at all (``bind`` may still
    decline one op). ``always``: it runs on every layer in quick mode (the
    others skip the big conv layers unless named). ``memory``: how its peak extra bytes are
    read: ``"workspace"`` (fastconv's workspace counters), ``"tracemalloc"``
    (NumPy's allocations) or ``""`` (not measured). ``pool``: the thread pool
    its calls run on (the timing settles only when the pool changes).
    """

    name: str
    description: str
    bind_fn: Callable[[Case], Call | None]
    kernel_fn: Callable[[Case, KernelNames], str]
    check: Callable[[], str | None] = lambda: None
    kinds: tuple[str, ...] = ("conv", "pool", "linear")
    always: bool = False
    memory: str = ""
    pool: str = POOL_OPENMP

    def unavailable(self) -> str | None:
        """Why this strategy cannot run here, or ``None``."""
        return self.check()

    def bind(self, case: Case) -> Call | None:
        """A zero-argument call running ``case``, or ``None`` if the op is not implemented."""
        return self.bind_fn(case)

    def kernel(self, case: Case, kernels: KernelNames) -> str:
        """What runs for ``case`` (fastconv: the kernel variants of the build)."""
        return self.kernel_fn(case, kernels)


def _fastconv_algo(algo: str) -> Strategy:
    return Strategy(
        algo,
        f"fastconv conv2d with algo={algo!r} (convolutions only)",
        lambda c: _numpy_api(fastconv, c, algo=algo) if c.kind == "conv" else None,
        lambda c, k: k.fastconv(c, algo),
        kinds=("conv",),
        memory="workspace",
    )


def registry() -> dict[str, Strategy]:
    """Every strategy by name, in table order (availability is checked by
    :meth:`Strategy.unavailable`, not here)."""
    strategies = [
        Strategy(
            "reference",
            "fastconv.reference: NumPy im2col + BLAS matmul (the baseline)",
            lambda c: _numpy_api(reference, c),
            lambda c, k: _REFERENCE_KERNELS[c.kind],
            always=True,
            memory="tracemalloc",
            pool=POOL_BLAS,
        ),
        Strategy(
            "cython",
            "fastconv.strategies.cython (conv and max-pool)",
            lambda c: _numpy_api(_cython()[0], c),
            lambda c, k: "cython",
            check=lambda: _cython()[1],
            kinds=("conv", "pool"),
            memory="tracemalloc",
        ),
        *(_fastconv_algo(a) for a in _core.conv_algos() if a != "auto"),
        Strategy(
            "auto",
            "fastconv with algo='auto' (its pick per pass), pools and linear",
            lambda c: _numpy_api(fastconv, c, **({"algo": "auto"} if c.kind == "conv" else {})),
            lambda c, k: k.fastconv(c, "auto"),
            always=True,
            memory="workspace",
        ),
        Strategy(
            "torch",
            "PyTorch's CPU ops (oneDNN convolutions) on the same buffers",
            _torch_call,
            lambda c, k: "aten (oneDNN)" if c.kind == "conv" else "aten",
            check=lambda: torch_module()[1],
            always=True,
            pool=POOL_TORCH,
        ),
    ]
    return {s.name: s for s in strategies}


def parse_strategies(text: str) -> list[str]:
    """``"reference,direct"`` -> ``["reference", "direct"]``, for ``--strategies``
    (an ``argparse`` type: unknown names raise ``ArgumentTypeError`` naming them)."""
    known = registry()
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in known]
    if bad or not names:
        what = f"unknown strategy {', '.join(map(repr, bad))}" if bad else "no strategy given"
        raise argparse.ArgumentTypeError(f"{what}; choose from {','.join(known)}")
    return names


def select(names: Sequence[str] | None = None) -> tuple[list[Strategy], dict[str, str]]:
    """The available strategies among ``names`` (default: all, in registry order) and,
    for the others, why they are skipped."""
    known = registry()
    runnable, skipped = [], {}
    for name in names if names is not None else known:
        reason = known[name].unavailable()
        if reason:
            skipped[name] = reason
        else:
            runnable.append(known[name])
    return runnable, skipped
