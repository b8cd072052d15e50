"""Benchmark fastconv's kernels against the NumPy reference (and PyTorch) on named layers.

Run ``python -m fastconv.bench`` (or ``fastconv bench``). For every layer of
the chosen suites (see :mod:`fastconv._shapes`) and every pass, each contender
is timed side by side in the same run:

* ``fastconv[direct]`` and ``fastconv[im2col]`` for convolutions, marked with
  ``*`` when it is the algorithm ``algo="auto"`` picks for that pass (when
  auto would mix algorithms across the passes of a full backward, a separate
  ``fastconv[auto]`` row is timed); ``fastconv`` for pooling and linear;
* ``reference``: :mod:`fastconv.reference`, plain NumPy on OpenBLAS, the
  baseline of the speed-up column;
* ``torch`` with ``--torch`` when PyTorch is importable.

Method: inputs are allocated once per layer and pass; every contender is
called once as a warm-up (its result is checked against the baseline's), then
each contender's samples are taken in interleaved blocks (A B C A B C ...) so
that drifts of a noisy machine hit all of them alike, and the median is
reported. Each block starts with 0.15 s of untimed calls: on a 2-core machine
the thread pool that ran last (OpenBLAS spins for up to ~0.1 s after a call)
slows the next library's first calls by milliseconds, so per-call A B A B
interleaving would measure thread hand-over rather than kernels (see
:func:`time_interleaved`). A contender stops after ``--repeats`` samples, or
earlier once its samples add up to the per-row time budget (at least one
sample is always taken). The ops allocate their outputs on every call (the
API has no ``out=``), so every contender pays its allocations, as a caller
would.

The fastconv thread count (``--threads``, default fastconv's) is also imposed
on NumPy's BLAS with threadpoolctl when it is installed (the ``[bench]``
extra) and on PyTorch, so the comparison is like for like.

Rates: a convolution pass (forward, backward-input or backward-weight) costs
``2*N*K*P*Q*(C/G)*R*S`` FLOPs; ``backward`` (all three gradients) is counted
as two passes (the bias sum is not counted). Pools report the bytes they must
read and write (input, output and int64 indices) per second.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import fnmatch
import gc
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

import fastconv
from fastconv import _core, reference
from fastconv._shapes import SUITES, ConvShape, LayerShape, LinearShape, PoolShape

__all__ = [
    "Contender",
    "Row",
    "Settings",
    "Timing",
    "add_arguments",
    "environment",
    "limit_blas_threads",
    "main",
    "make_contenders",
    "passes_of",
    "run",
    "run_benchmark",
    "time_interleaved",
]

DEFAULT_SUITES = ("mnist", "alexnet")
CONV_ALGOS = tuple(a for a in _core.conv_algos() if a != "auto")

# --------------------------------------------------------------------------
# Timing
# --------------------------------------------------------------------------


@dataclass
class Timing:
    """Wall-clock samples (seconds) of one contender, plus its warm-up and settling calls."""

    samples: list[float] = field(default_factory=list)
    warmup: list[float] = field(default_factory=list)
    settle_calls: int = 0

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def total(self) -> float:
        return sum(self.samples)


def _timed(fn: Callable[[], object]) -> tuple[float, object]:
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


def time_interleaved(
    fns: Sequence[Callable[[], object]],
    *,
    repeats: int,
    max_time: float = math.inf,
    min_repeats: int = 1,
    warmup: int = 1,
    rounds: int = 3,
    settle: float = 0.15,
    on_warmup: Callable[[int, object], None] | None = None,
) -> list[Timing]:
    """Time several zero-argument callables side by side, in interleaved blocks.

    The samples of each callable are split into ``rounds`` blocks, run in the
    order A B C A B C ...; so drifts of a noisy machine hit every callable
    alike. Each block starts with ``settle`` seconds of untimed calls, because
    on a machine with few cores the thread pool of the library that ran last
    (OpenBLAS spins up to ~0.1 s after a call, OpenMP a little) competes with
    the next library's threads, and idle threads take milliseconds to wake:
    with plain A B A B interleaving, a 0.2 ms fastconv call measured 2-10 ms
    right after an OpenBLAS call. A callable whose warm-up took longer than
    ``settle`` sleeps for ``settle`` instead (the other pools go idle; waking
    its own threads costs a few milliseconds, small against such a call).

    Parameters
    ----------
    fns : sequence of callables
        Each call is one timed operation; return values are dropped at once.
    repeats : int
        Samples wanted per callable.
    max_time : float
        Per-callable budget in seconds: a callable whose samples add up to
        this (and that has ``min_repeats`` samples) stops early, so a slow
        contender does not stretch the run.
    min_repeats : int
        Samples always taken (at least 1).
    warmup : int
        Untimed calls of each callable before the first block (first touch of
        buffers, lazy initialisation, thread start-up).
    rounds : int
        Number of blocks per callable (at most ``repeats``).
    settle : float
        Seconds of untimed calls before each block (0: none).
    on_warmup : callable(index, result), optional
        Called with the result of each callable's first warm-up call (e.g. to
        check it against a baseline).

    Returns
    -------
    list of Timing
        One per callable, in the order given. Garbage collection is disabled
        while timing.
    """
    repeats = max(1, repeats)
    min_repeats = max(1, min(min_repeats, repeats))
    rounds = max(1, min(rounds, repeats))
    block = [repeats // rounds + (r < repeats % rounds) for r in range(rounds)]
    timings = [Timing() for _ in fns]

    def done(t: Timing) -> bool:
        n = len(t.samples)
        return n >= repeats or (n >= min_repeats and t.total >= max_time)

    gc_was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for i, (fn, t) in enumerate(zip(fns, timings)):
            for w in range(warmup):
                dt, result = _timed(fn)
                t.warmup.append(dt)
                if w == 0 and on_warmup is not None:
                    on_warmup(i, result)
                del result
        for size in block:
            for fn, t in zip(fns, timings):
                if done(t):
                    continue
                if settle > 0 and t.warmup and min(t.warmup) > settle:
                    time.sleep(settle)  # long calls: just let the other pools go idle
                elif settle > 0:
                    end = time.perf_counter() + settle
                    while True:
                        fn()
                        t.settle_calls += 1
                        if time.perf_counter() >= end:
                            break
                for _ in range(size):
                    t.samples.append(_timed(fn)[0])
                    if done(t):
                        break
    finally:
        if gc_was_enabled:
            gc.enable()
    return timings


@contextlib.contextmanager
def limit_blas_threads(n: int) -> Iterator[str]:
    """Limit NumPy's BLAS to ``n`` threads for the duration of the block.

    Yields a one-line description of what was done (threadpoolctl is
    optional: without it the BLAS keeps its default thread count).
    """
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
    except ImportError:
        yield "threadpoolctl not installed: BLAS threads NOT limited (pip install fastconv[bench])"
        return
    with threadpool_limits(limits=n, user_api="blas"):
        blas = [p for p in threadpool_info() if p.get("user_api") == "blas"]
        if not blas:
            yield "no BLAS found by threadpoolctl"
        else:
            desc = ", ".join(
                f"{p.get('internal_api')} {p.get('version')}"
                f" ({p.get('architecture', '?')}, {p.get('threading_layer', '?')})"
                f" {p.get('num_threads')} threads"
                for p in blas
            )
            yield f"{desc}, limited to {n} via threadpoolctl"


# --------------------------------------------------------------------------
# Environment description (the header of every run)
# --------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _allocator() -> str:
    """Which malloc the process runs with and its tuning (first-touch costs depend on it)."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if name in preload:
            return f"{name} (LD_PRELOAD)"
    libc, version = platform.libc_ver()
    base = f"{libc} {version} malloc".strip() if libc else "system malloc"
    tuned = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")]
    return f"{base}, " + (" ".join(tuned) if tuned else "default settings (no MALLOC_* tuning)")


def environment(threads: int, blas_note: str, torch_mod: Any = None) -> dict[str, Any]:
    """Everything the header prints, as a dict (also stored in the JSON output)."""
    cfg = fastconv.show_config()
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 0
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    env: dict[str, Any] = {
        "fastconv_version": fastconv.__version__,
        "isa_active": cfg.get("isa_active"),
        "isa_detected": cfg.get("isa_detected"),
        "isas_compiled": cfg.get("isas_compiled"),
        "openmp_runtime": cfg.get("openmp_runtime"),
        "threads": threads,
        "cpu": _cpu_model(),
        "cpus_available": ncpu,
        "load_average": load,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_note,
        "allocator": _allocator(),
        "kernels": cfg.get("kernels", {}),
    }
    if torch_mod is not None:
        env["torch"] = torch_mod.__version__
        env["torch_threads"] = torch_mod.get_num_threads()
    return env


class CpuMonitor:
    """CPU used by *other* processes, and stolen by the hypervisor, between two calls.

    Reads ``/proc/stat`` (all CPUs) and this process's CPU time (all its
    threads, including spinning BLAS/OpenMP workers), so the difference is the
    load that competed with the benchmark. ``interval()`` returns
    ``(other_cpus, steal_cpus)`` averaged since the previous call, or ``None``
    where ``/proc/stat`` is unavailable.
    """

    def __init__(self) -> None:
        self._last = self._read()

    @staticmethod
    def _read() -> tuple[float, float, float, float] | None:
        try:
            import resource

            with open("/proc/stat", encoding="ascii") as f:
                ticks = [int(v) for v in f.readline().split()[1:9]]
            hz = os.sysconf("SC_CLK_TCK")
        except (ImportError, OSError, ValueError):
            return None
        user, nice, system, _idle, _iowait, irq, softirq, steal = ticks
        own = resource.getrusage(resource.RUSAGE_SELF)
        busy = (user + nice + system + irq + softirq) / hz
        return busy, steal / hz, own.ru_utime + own.ru_stime, time.perf_counter()

    def interval(self) -> tuple[float, float] | None:
        now, last = self._read(), self._last
        self._last = now
        if now is None or last is None or now[3] <= last[3]:
            return None
        wall = now[3] - last[3]
        others = max(0.0, (now[0] - last[0]) - (now[2] - last[2])) / wall
        return others, (now[1] - last[1]) / wall


def _print_header(env: dict[str, Any], settings: Settings, out: Any) -> None:
    def p(line: str) -> None:
        print(line, file=out)

    p(
        f"fastconv {env['fastconv_version']}  ISA {env['isa_active']} "
        f"(detected {env['isa_detected']}; compiled {','.join(env['isas_compiled'] or [])})  "
        f"threads {env['threads']} ({env['openmp_runtime']})"
    )
    p(f"CPU     {env['cpu']}, {env['cpus_available']} CPUs, load average {env['load_average']}")
    p(f"numpy   {env['numpy']}, BLAS: {env['blas']}")
    if "torch" in env:
        p(f"torch   {env['torch']}, {env['torch_threads']} threads")
    elif settings.torch:
        p("torch   not importable: no torch rows")
    p(f"malloc  {env['allocator']}")
    p(
        f"timing  {settings.mode} mode: {settings.warmup} warm-up call, then up to "
        f"{settings.repeats} samples (at least {settings.min_repeats}; {settings.max_time:g} s "
        f"budget) per row in {settings.rounds} interleaved blocks, each after "
        f"{settings.settle:g} s of untimed settling calls; median reported"
    )


# --------------------------------------------------------------------------
# Cases: what to run for each layer
# --------------------------------------------------------------------------


@dataclass
class Contender:
    """One way of running one pass: a label, the kernel it runs and a bound call."""

    label: str
    kernel: str
    fn: Callable[[], object] | None
    auto: bool = False
    skip: str = ""  # reason, when not run


@dataclass
class Row:
    """One line of the result table (and one record of ``--json``)."""

    layer: str
    pass_: str
    contender: str
    kernel: str
    median_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    work: float = 0.0  # FLOPs or bytes of one call
    unit: str = "GFLOP/s"
    rate: float | None = None  # work / median, in units of `unit`
    speedup: float | None = None  # baseline median / this median
    auto: bool = False
    status: str = "ok"
    #: Workspace bytes a fastconv contender held at most during its first call
    #: (beyond inputs and outputs; workspaces released before it).
    extra_bytes: int | None = None
    #: CPUs used by other processes (and stolen) while this layer-pass was timed.
    background_cpus: float | None = None
    steal_cpus: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["pass"] = d.pop("pass_")
        return d


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


class _Kernels:
    """Kernel variant names from ``show_config()`` (rule 11: rows name the kernel that ran)."""

    def __init__(self) -> None:
        cfg = fastconv.show_config()
        self.isa = cfg.get("isa_active", "?")
        self.table: dict[str, str] = dict(cfg.get("kernels", {}))

    def get(self, key: str, fallback: str) -> str:
        return self.table.get(key, f"{fallback}__{self.isa}")

    def conv(self, pass_: str, algos: Sequence[str]) -> str:
        names = [
            self.get(f"conv2d_{sub} (algo='{a}')", f"conv2d_{sub}_{a}")
            for sub, a in zip(_SUBPASSES[pass_], algos)
        ]
        if _MASKS.get(pass_, (False, False, False))[2]:
            names.append(self.get("conv2d_backward_bias", "conv2d_backward_bias"))
        return _compact_kernels(names)


def _conv_contenders(
    s: ConvShape, pass_: str, settings: Settings, kernels: _Kernels, torch: Any
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
    s: PoolShape, pass_: str, settings: Settings, kernels: _Kernels, torch: Any
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
        out.append(Contender("fastconv", kernels.get(op, op), make(fastconv), True))
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
    s: LinearShape, pass_: str, settings: Settings, kernels: _Kernels, torch: Any
) -> tuple[list[Contender], float]:
    rng = _rng(s.name)
    x, w, b = _randn(rng, s.x_shape), _randn(rng, s.w_shape), _randn(rng, (s.out_features,))
    out: list[Contender] = []
    if "fastconv" in settings.contenders or "auto" in settings.contenders:
        out.append(
            Contender(
                "fastconv", kernels.get("linear", "linear"), lambda: fastconv.linear(x, w, b), True
            )
        )
    if "reference" in settings.contenders:
        out.append(Contender("reference", "numpy matmul (BLAS)", lambda: reference.linear(x, w, b)))
    if torch is not None and "torch" in settings.contenders:
        tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
        out.append(Contender("torch", "aten/BLAS", lambda: torch.nn.functional.linear(tx, tw, tb)))
    return out, float(s.flops)


def _passes(s: LayerShape, settings: Settings) -> tuple[str, ...]:
    if isinstance(s, ConvShape):
        return settings.conv_passes
    if isinstance(s, PoolShape):
        return ("forward", "backward")
    return ("forward",)


def _contenders(
    s: LayerShape, pass_: str, settings: Settings, kernels: _Kernels, torch: Any
) -> tuple[list[Contender], float, str]:
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
    return _contenders(shape, pass_, settings, _Kernels(), torch)


def passes_of(shape: LayerShape, full: bool = True) -> tuple[str, ...]:
    """The passes benchmarked for a layer (conv: forward, backward and, if ``full``,
    backward_input and backward_weight; pool: forward, backward; linear: forward)."""
    return _passes(shape, Settings.full() if full else Settings.quick())


# --------------------------------------------------------------------------
# Running and printing
# --------------------------------------------------------------------------


def _as_arrays(result: object) -> list[np.ndarray]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    arrays = []
    for a in items:
        if a is None:
            continue
        if hasattr(a, "numpy"):  # torch tensor
            a = a.numpy()
        arrays.append(np.asarray(a))
    return arrays


def _mismatch(result: object, expected: list[np.ndarray]) -> str | None:
    """A note when ``result`` differs from the baseline's (relative to the data's scale)."""
    got = _as_arrays(result)
    if len(got) != len(expected):
        return f"MISMATCH ({len(got)} outputs vs {len(expected)})"
    for g, e in zip(got, expected):
        if g.shape != e.shape:
            return f"MISMATCH (shape {g.shape} vs {e.shape})"
        if e.dtype.kind in "iu":
            if not np.array_equal(g, e):
                return "MISMATCH (indices differ)"
            continue
        scale = max(1.0, float(np.abs(e).max(initial=0.0)))
        err = float(np.abs(g.astype(np.float64) - e).max(initial=0.0)) / scale
        if not err <= 1e-4:  # float32 sums of up to a few thousand terms
            return f"MISMATCH (rel. error {err:.1e})"
    return None


def _with_workspace_peak(label: str, fn: Callable[[], object], peaks: dict[str, int]):
    """fn, whose first call starts from released workspaces and records their peak bytes."""
    first = [True]

    def call() -> object:
        if not first[0]:
            return fn()
        first[0] = False
        _core.release_workspace()
        _core._reset_workspace_peak()
        result = fn()
        peaks[label] = int(_core.workspace_bytes()["peak"])
        return result

    return call


def _measure(
    contenders: list[Contender], settings: Settings, peaks: dict[str, int] | None = None
) -> dict[str, tuple[Timing, str]]:
    """Time the runnable contenders; returns label -> (timing, status).

    The first warm-up result of every contender is checked against the
    baseline's (status ``MISMATCH ...`` when it differs).
    """
    runnable = [c for c in contenders if c.fn is not None]
    # The baseline warms up first so that the others can be checked against it.
    runnable.sort(key=lambda c: c.label != settings.baseline)
    has_base = bool(runnable) and runnable[0].label == settings.baseline
    expected: list[np.ndarray] = []
    notes: dict[str, str] = {}

    def check(i: int, result: object) -> None:
        if has_base and i == 0:
            expected.extend(_as_arrays(result))
        elif has_base:
            note = _mismatch(result, expected)
            if note:
                notes[runnable[i].label] = note

    fns = [
        _with_workspace_peak(c.label, c.fn, peaks)  # type: ignore[arg-type]
        if peaks is not None and c.label.startswith("fastconv")
        else c.fn
        for c in runnable
    ]
    timings = time_interleaved(
        fns,  # type: ignore[arg-type]
        repeats=settings.repeats,
        max_time=settings.max_time,
        min_repeats=settings.min_repeats,
        warmup=settings.warmup,
        rounds=settings.rounds,
        settle=settings.settle,
        on_warmup=check,
    )
    return {c.label: (t, notes.get(c.label, "ok")) for c, t in zip(runnable, timings)}


class _Table:
    """Fixed-width table printed row by row as results arrive."""

    def __init__(self, baseline: str) -> None:
        ratio = "vs ref" if baseline == "reference" else f"vs {baseline}"
        self.cols = (("layer", 14, "<"), ("pass", 15, "<"), ("contender", 21, "<"),
                     ("ms", 10, ">"), ("n", 3, ">"), ("bg", 4, ">"), ("rate", 15, ">"),
                     (ratio, max(8, len(ratio)), ">"), ("extra MB", 8, ">"),
                     ("kernel", 0, "<"))  # fmt: skip

    def line(self, values: Sequence[str]) -> str:
        return "  ".join(
            f"{v:{align}{width}}" for (_, width, align), v in zip(self.cols, values)
        ).rstrip()

    def header(self) -> str:
        return self.line([name for name, _, _ in self.cols])

    def format(self, row: Row) -> str:
        label = row.contender
        if row.auto and label.startswith("fastconv[") and not label.startswith("fastconv[auto"):
            label += "*"
        if row.median_ms is None:
            return self.line([row.layer, row.pass_, label, "-", "0", "", "-", "-", "", row.status])
        rate = f"{row.rate:.1f} {row.unit}" if row.rate is not None else "-"
        ratio = f"{row.speedup:.2f}x" if row.speedup is not None else "-"
        kernel = row.kernel if row.status == "ok" else f"{row.kernel}  <- {row.status}"
        bg = "" if row.background_cpus is None else f"{row.background_cpus + row.steal_cpus:.1f}"
        extra = "" if row.extra_bytes is None else f"{row.extra_bytes / 2**20:.1f}"
        return self.line([row.layer, row.pass_, label, f"{row.median_ms:.3f}",
                          str(len(row.samples_ms)), bg, rate, ratio, extra, kernel])  # fmt: skip


def _rows_for(
    s: LayerShape,
    pass_: str,
    settings: Settings,
    kernels: _Kernels,
    torch: Any,
    monitor: CpuMonitor,
) -> list[Row]:
    contenders, work, unit = _contenders(s, pass_, settings, kernels, torch)
    monitor.interval()
    peaks: dict[str, int] = {}
    results = _measure(contenders, settings, peaks)
    load = monitor.interval()
    base = results.get(settings.baseline)
    base_median = base[0].median if base else None
    scale = 1e9  # GFLOP/s or GB/s
    rows = []
    for c in contenders:
        row = Row(s.name, pass_, c.label, c.kernel, work=work, unit=unit, auto=c.auto)
        if c.label not in results:
            row.status = c.skip or "skipped"
        else:
            timing, row.status = results[c.label]
            med = timing.median
            row.median_ms = med * 1e3
            row.samples_ms = [t * 1e3 for t in timing.samples]
            row.rate = work / med / scale if work else None
            row.speedup = base_median / med if base_median else None
            row.extra_bytes = peaks.get(c.label)
            if load is not None:
                row.background_cpus, row.steal_cpus = load
        rows.append(row)
    return rows


def _import_torch(threads: int) -> Any:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def _summary(rows: list[Row], baseline: str) -> list[str]:
    """Geometric-mean speed-up of what ``algo='auto'`` runs over the baseline, per suite."""
    lines = []
    suites: dict[str, list[float]] = {}
    for r in rows:
        if r.auto and r.speedup and r.contender != baseline and r.contender.startswith("fastconv"):
            suites.setdefault(r.layer.split(".")[0], []).append(r.speedup)
    for name, ratios in suites.items():
        g = math.exp(sum(math.log(v) for v in ratios) / len(ratios))
        lines.append(
            f"{name}: fastconv (auto's choice) vs {baseline}: geometric mean {g:.2f}x over "
            f"{len(ratios)} layer-passes (min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
        )
    return lines


def run_benchmark(
    shapes: Sequence[LayerShape],
    settings: Settings,
    threads: int,
    out: Any = None,
) -> tuple[dict[str, Any], list[Row]]:
    """Time every pass of ``shapes`` and print the table as it goes.

    Returns the environment dict (the header) and all rows.
    """
    out = out or sys.stdout
    fastconv.set_num_threads(threads)
    torch = None
    if settings.torch or "torch" in settings.contenders:
        torch = _import_torch(threads)
        if torch is not None and "torch" not in settings.contenders:
            settings = replace(settings, contenders=(*settings.contenders, "torch"))
    kernels = _Kernels()
    table = _Table(settings.baseline)
    rows: list[Row] = []
    start = time.perf_counter()
    run_monitor, row_monitor = CpuMonitor(), CpuMonitor()
    with limit_blas_threads(threads) as blas_note:
        env = environment(threads, blas_note, torch)
        _print_header(env, settings, out)
        print(f"\n{table.header()}", file=out)
        for s in shapes:
            flops = f", {s.flops / 1e9:.3f} GFLOP per pass" if hasattr(s, "flops") else ""
            print(f"# {s.name}: {s.describe()}{flops}", file=out)
            for pass_ in _passes(s, settings):
                for row in _rows_for(s, pass_, settings, kernels, torch, row_monitor):
                    rows.append(row)
                    print(table.format(row), file=out, flush=True)
    elapsed = time.perf_counter() - start
    load = run_monitor.interval()
    env["wall_time_s"] = elapsed
    env["background_cpus"], env["steal_cpus"] = load if load else (None, None)
    print(file=out)
    print(
        "* = the algorithm algo='auto' picks for this pass; "
        "bg = CPUs used by other processes (incl. hypervisor steal) while the row ran; "
        f"{table.cols[7][0]} = {settings.baseline} median / this median (>1: faster); "
        "rate: GFLOP/s (conv: 2*N*K*P*Q*C/G*R*S per pass, backward = 2 passes) or GB/s (pools)",
        file=out,
    )
    for line in _summary(rows, settings.baseline):
        print(line, file=out)
    print(f"wall time {elapsed:.1f} s", file=out, end="")
    if load is not None:
        others, steal = load
        print(f"; other processes used {others:.2f} CPUs on average, steal {steal:.2f}", file=out)
        if others + steal > 0.2:
            print(
                "WARNING: the machine was busy; rows with a high bg are unreliable, rerun them",
                file=out,
            )
    else:
        print(file=out)
    return env, rows


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark options to ``parser`` (shared by ``fastconv bench``)."""
    parser.add_argument(
        "--suite",
        action="append",
        choices=[*SUITES, "all", "gemm"],
        help="layer suite(s) to run; repeatable (default: mnist and alexnet); "
        "'gemm' runs the GEMM suite (fastconv.bench_gemm) instead",
    )
    parser.add_argument(
        "--layer",
        action="append",
        metavar="GLOB",
        help="only layers whose name matches, e.g. 'alexnet.conv*' (repeatable)",
    )
    parser.add_argument("--threads", type=int, help="threads for fastconv, BLAS and torch")
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="batch size of every layer instead of the suite's (e.g. 64 for alexnet)",
    )
    parser.add_argument("--repeats", type=int, help="samples per row (overrides the mode)")
    parser.add_argument("--max-time", type=float, help="time budget per row in seconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="default: few samples; big conv layers run only auto's algorithm",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every algorithm on every layer, single-gradient passes, more samples",
    )
    parser.add_argument("--torch", action="store_true", help="add PyTorch rows when installed")
    parser.add_argument(
        "--isa", choices=["scalar", "avx2", "avx512"], help="force fastconv's kernel ISA"
    )
    parser.add_argument("--json", metavar="PATH", help="write the header and all rows as JSON")
    parser.set_defaults(mode="quick")
    return parser


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


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Build :class:`Settings` from parsed options (``overrides`` win)."""
    kw: dict[str, Any] = {"torch": bool(getattr(args, "torch", False))}
    if args.repeats is not None:
        kw["repeats"] = max(1, args.repeats)
    if args.max_time is not None:
        kw["max_time"] = args.max_time
    kw.update(overrides)
    settings = Settings.full(**kw) if args.mode == "full" else Settings.quick(**kw)
    settings.min_repeats = min(settings.min_repeats, settings.repeats)
    return settings


def run(args: argparse.Namespace, **overrides: Any) -> int:
    """Run the benchmark described by parsed options; returns the exit status.

    ``overrides`` replace :class:`Settings` fields (e.g. ``contenders``,
    ``baseline``). fastconv's thread count and ISA are restored afterwards.
    """
    if args.suite and "gemm" in args.suite:
        if len(args.suite) > 1:
            print("--suite gemm runs alone", file=sys.stderr)
            return 2
        from fastconv import bench_gemm

        old_isa = fastconv.show_config()["isa_active"]
        try:
            if args.isa:
                _core._set_isa(args.isa)
            return bench_gemm.run(
                argparse.Namespace(
                    threads=args.threads, repeats=args.repeats, quick=args.mode == "quick"
                )
            )
        finally:
            _core._set_isa(old_isa)
    threads = fastconv.get_num_threads() if args.threads is None else args.threads
    if threads < 1:
        print(f"--threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    try:
        shapes = select_shapes(args.suite, args.layer, getattr(args, "batch", None))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if not shapes:
        print("no layer matches the given --suite/--layer", file=sys.stderr)
        return 2
    settings = settings_from_args(args, **overrides)
    old_threads, old_isa = fastconv.get_num_threads(), fastconv.show_config()["isa_active"]
    try:
        if args.isa:
            _core._set_isa(args.isa)
        env, rows = run_benchmark(shapes, settings, threads)
    finally:
        fastconv.set_num_threads(old_threads)
        _core._set_isa(old_isa)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "rows": [r.to_dict() for r in rows]}, f, indent=1)
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fastconv.bench``."""
    parser = add_arguments(
        argparse.ArgumentParser(
            prog="python -m fastconv.bench",
            description=__doc__.split("\n\n")[0] if __doc__ else None,
        )
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
