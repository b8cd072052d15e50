"""The timing harness of ``fastconv bench`` and of the scripts in ``benchmarks/``.

Nothing here knows about fastconv: these are the tools for timing any
zero-argument callables fairly on a small, shared machine.

* :func:`time_interleaved` times several callables side by side in
  interleaved blocks (warm-up, settling calls before each block, per-callable
  sample count and time budget) and returns one :class:`Timing` each, whose
  ``median`` is what the tables report;
* :func:`limit_blas_threads` caps NumPy's BLAS threads with threadpoolctl
  (the ``[bench]`` extra) for a block, and says what it did;
* :class:`CpuMonitor`, the load probe: how many CPUs other processes (and the
  hypervisor) took while a row was timed (busy from :data:`BUSY_CPUS`);
* :func:`geometric_mean` of speed-up ratios, for the summaries.

Tests: ``tests/test_timing.py``.
"""

from __future__ import annotations

import contextlib
import gc
import math
import os
import statistics
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Callable

__all__ = [
    "BUSY_CPUS",
    "CpuMonitor",
    "Timing",
    "geometric_mean",
    "limit_blas_threads",
    "time_interleaved",
]

#: Load from other processes (CPUs, incl. steal) from which a measurement is called
#: busy: with as many threads as cores, a fifth of a CPU taken away already stalls
#: the parallel regions at their barriers by a few percent.
BUSY_CPUS = 0.2


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
    pools: Sequence[object] | None = None,
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
    pools : sequence, optional
        The thread pool each callable runs on (any labels comparable with
        ``==``). A block settles only when the block before it ran on another
        pool: callables sharing a pool find its threads awake. Default: every
        block settles.
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
        previous: object = None  # the pool of the block that ran last
        for size in block:
            for i, (fn, t) in enumerate(zip(fns, timings)):
                if done(t):
                    continue
                pool = pools[i] if pools is not None else object()  # unique: settle
                if pool == previous:
                    pass
                elif settle > 0 and t.warmup and min(t.warmup) > settle:
                    time.sleep(settle)  # long calls: just let the other pools go idle
                elif settle > 0:
                    end = time.perf_counter() + settle
                    while True:
                        fn()
                        t.settle_calls += 1
                        if time.perf_counter() >= end:
                            break
                previous = pool
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


def geometric_mean(values: Iterable[float]) -> float:
    """``exp(mean(log(v)))``: the mean of speed-up ratios (x2 and x0.5 average to x1)."""
    logs = [math.log(v) for v in values]
    return math.exp(sum(logs) / len(logs))
