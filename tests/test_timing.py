"""fastconv._timing, the harness behind ``fastconv bench`` and ``benchmarks/``.

The timing tests run on a fake clock (``_timing.time`` replaced): each call of
a timed callable advances it by a set duration, so samples, medians, the order
of calls and the settling calls are exact, and the file runs in well under a
second.

* ``Timing``: median and total of the samples.
* ``time_interleaved``: warm-ups first, then blocks A B A B ... in the order
  given; the split of ``repeats`` into ``rounds`` blocks; the per-callable
  time budget and ``min_repeats``; settling calls before every block (or a
  sleep when a call is longer than the settle time); ``on_warmup`` sees each
  callable's first result; garbage collection is off while timing and its
  state is restored, also when a callable raises.
* ``CpuMonitor`` (the load probe): other processes' CPUs and steal from two
  readings; ``None`` without ``/proc/stat``; a real reading on Linux.
* ``limit_blas_threads``: the BLAS thread count inside and restored after;
  the note without threadpoolctl.
* ``geometric_mean``.
* The footer of ``fastconv bench`` reports the load and warns when it is high.
"""

from __future__ import annotations

import gc
import io
import math
import sys

import pytest

from fastconv import _timing
from fastconv._timing import CpuMonitor, Timing, geometric_mean, limit_blas_threads


class FakeClock:
    """Stands in for the ``time`` module: ``perf_counter`` only moves when a call
    spends time (``spend``) or ``sleep`` is called."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s

    def spend(self, s: float) -> None:
        self.now += s


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    c = FakeClock()
    monkeypatch.setattr(_timing, "time", c)
    return c


def recorder(clock: FakeClock, log: list[str], name: str, cost: float):
    """A callable that logs its name, spends ``cost`` seconds and returns its name."""

    def fn() -> str:
        log.append(name)
        clock.spend(cost)
        return name

    return fn


def test_timing_median_and_total():
    t = Timing(samples=[3.0, 1.0, 2.0, 10.0])
    assert t.median == 2.5
    assert t.total == 16.0
    assert Timing(samples=[0.5]).median == 0.5


def test_interleaved_order_and_blocks(clock: FakeClock):
    log: list[str] = []
    fns = [recorder(clock, log, "A", 0.01), recorder(clock, log, "B", 0.02)]
    ta, tb = _timing.time_interleaved(fns, repeats=5, rounds=2, settle=0)
    # one warm-up each, then blocks of 3 and 2 samples, A before B in each round
    assert log == ["A", "B"] + ["A"] * 3 + ["B"] * 3 + ["A"] * 2 + ["B"] * 2
    assert ta.samples == pytest.approx([0.01] * 5) and tb.samples == pytest.approx([0.02] * 5)
    assert ta.warmup == pytest.approx([0.01]) and tb.warmup == pytest.approx([0.02])
    assert ta.median == pytest.approx(0.01) and tb.median == pytest.approx(0.02)
    assert ta.settle_calls == tb.settle_calls == 0 and not clock.sleeps


def test_interleaved_rounds_capped_by_repeats(clock: FakeClock):
    log: list[str] = []
    fns = [recorder(clock, log, "A", 0.01), recorder(clock, log, "B", 0.01)]
    _timing.time_interleaved(fns, repeats=2, rounds=5, warmup=0, settle=0)
    assert log == ["A", "B", "A", "B"]  # at most one block per sample


def test_interleaved_median_of_varying_samples(clock: FakeClock):
    costs = iter([9.0, 0.3, 0.1, 0.5, 0.2, 0.4])  # warm-up (not a sample), then 5 samples

    def fn() -> None:
        clock.spend(next(costs))

    (t,) = _timing.time_interleaved([fn], repeats=5, rounds=1, settle=0)
    assert t.warmup == [9.0]
    assert t.samples == pytest.approx([0.3, 0.1, 0.5, 0.2, 0.4])
    assert t.median == pytest.approx(0.3)


def test_interleaved_time_budget_and_min_repeats(clock: FakeClock):
    log: list[str] = []
    slow, fast = recorder(clock, log, "slow", 1.0), recorder(clock, log, "fast", 0.001)
    ts, tf = _timing.time_interleaved(
        [slow, fast], repeats=10, max_time=2.5, min_repeats=4, rounds=2, settle=0
    )
    assert len(ts.samples) == 4  # over budget after 3 samples, but min_repeats is 4
    assert len(tf.samples) == 10  # the fast one is not cut short by the slow one
    (t1,) = _timing.time_interleaved([slow], repeats=10, max_time=2.5, settle=0)
    assert len(t1.samples) == 3  # stops as soon as the samples add up to the budget
    (t0,) = _timing.time_interleaved([slow], repeats=10, max_time=0.0, min_repeats=0, settle=0)
    assert len(t0.samples) == 1  # at least one sample, whatever the budget


def test_interleaved_settles_before_every_block(clock: FakeClock):
    log: list[str] = []
    fns = [recorder(clock, log, "A", 1 / 64), recorder(clock, log, "B", 1 / 64)]
    ta, tb = _timing.time_interleaved(fns, repeats=4, rounds=2, settle=0.25)
    # 0.25 s of untimed calls at 1/64 s each: 16 settling calls before each block
    block = lambda name: [name] * (16 + 2)
    assert log == ["A", "B"] + block("A") + block("B") + block("A") + block("B")
    assert ta.settle_calls == tb.settle_calls == 32
    assert len(ta.samples) == len(tb.samples) == 4
    assert not clock.sleeps


def test_interleaved_settles_only_when_the_thread_pool_changes(clock: FakeClock):
    log: list[str] = []
    fns = [recorder(clock, log, n, 1 / 64) for n in "ABCD"]
    # A runs on the BLAS, B and C on one OpenMP pool, D on torch's.
    timings = _timing.time_interleaved(
        fns, repeats=2, rounds=2, settle=0.25, pools=["blas", "omp", "omp", "torch"]
    )
    settled = lambda name: [name] * (16 + 1)
    rnd = settled("A") + settled("B") + ["C"] + settled("D")
    assert log == list("ABCD") + rnd + rnd
    assert [t.settle_calls for t in timings] == [32, 32, 0, 32]
    assert all(len(t.samples) == 2 for t in timings)


def test_interleaved_sleeps_instead_of_settling_for_long_calls(clock: FakeClock):
    log: list[str] = []
    fns = [recorder(clock, log, "long", 0.5), recorder(clock, log, "short", 1 / 8)]
    tl, ts = _timing.time_interleaved(fns, repeats=2, rounds=2, settle=0.25)
    assert tl.settle_calls == 0 and clock.sleeps == [0.25, 0.25]  # once per block of "long"
    assert ts.settle_calls == 4  # 2 calls of 1/8 s before each of its 2 blocks
    assert log.count("long") == 1 + 2


def test_interleaved_on_warmup_sees_first_results(clock: FakeClock):
    log: list[str] = []
    fns = [recorder(clock, log, "A", 0.01), recorder(clock, log, "B", 0.01)]
    seen: list[tuple[int, object]] = []
    _timing.time_interleaved(
        fns, repeats=1, warmup=3, settle=0, on_warmup=lambda i, r: seen.append((i, r))
    )
    assert seen == [(0, "A"), (1, "B")]  # the first warm-up call of each, once
    assert log == ["A"] * 3 + ["B"] * 3 + ["A", "B"]


def test_interleaved_disables_gc_and_restores_it(clock: FakeClock):
    states: list[bool] = []

    def fn() -> None:
        states.append(gc.isenabled())
        clock.spend(0.01)

    assert gc.isenabled()
    _timing.time_interleaved([fn], repeats=2, settle=0)
    assert states and not any(states)
    assert gc.isenabled()

    def boom() -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        _timing.time_interleaved([boom], repeats=2, settle=0)
    assert gc.isenabled()
    gc.disable()
    try:
        _timing.time_interleaved([fn], repeats=1, settle=0)
        assert not gc.isenabled()  # left as the caller had it
    finally:
        gc.enable()


def test_cpu_monitor_interval(monkeypatch: pytest.MonkeyPatch):
    # (busy CPU-s of all CPUs, steal CPU-s, this process's CPU-s, wall s)
    readings = iter(
        [
            (100.0, 5.0, 10.0, 50.0),
            (104.0, 5.5, 12.0, 52.0),  # 4 busy, 2 of them ours, over 2 s
            (104.5, 5.5, 13.0, 53.0),  # less busy than our own use: clamped to 0
            (105.0, 5.5, 13.0, 53.0),  # no wall time passed
            None,
        ]
    )
    monkeypatch.setattr(CpuMonitor, "_read", staticmethod(lambda: next(readings)))
    m = CpuMonitor()
    assert m.interval() == pytest.approx((1.0, 0.25))
    assert m.interval() == pytest.approx((0.0, 0.0))
    assert m.interval() is None
    assert m.interval() is None  # /proc/stat unreadable


def test_cpu_monitor_without_proc_stat(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(CpuMonitor, "_read", staticmethod(lambda: None))
    assert CpuMonitor().interval() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/stat")
def test_cpu_monitor_reads_this_machine():
    m = CpuMonitor()
    sum(i * i for i in range(200_000))  # let some time pass
    load = m.interval()
    assert load is not None
    others, steal = load
    assert others >= 0 and steal >= 0 and math.isfinite(others + steal)


def test_limit_blas_threads_restores_the_count():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    pytest.importorskip("numpy")

    def blas_threads() -> list[int]:
        return [
            p["num_threads"] for p in threadpoolctl.threadpool_info() if p.get("user_api") == "blas"
        ]

    before = blas_threads()
    if not before:
        pytest.skip("no BLAS found by threadpoolctl")
    with limit_blas_threads(1) as note:
        assert blas_threads() == [1] * len(before)
        assert note.endswith("limited to 1 via threadpoolctl"), note
    assert blas_threads() == before
    with pytest.raises(KeyError), limit_blas_threads(1):
        raise KeyError("inside")
    assert blas_threads() == before  # restored on an exception too


def test_limit_blas_threads_without_threadpoolctl(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import fails
    with limit_blas_threads(1) as note:
        assert note.startswith("threadpoolctl not installed: BLAS threads NOT limited")


def test_geometric_mean():
    assert geometric_mean([2.0, 0.5]) == pytest.approx(1.0)
    assert geometric_mean([4.0]) == pytest.approx(4.0)
    assert geometric_mean(iter([1.0, 8.0, 8.0])) == pytest.approx(4.0)


def test_footer_reports_load_and_warns_when_busy():
    from fastconv.bench_report import print_footer

    out = io.StringIO()
    print_footer(1.25, (0.05, 0.0), out)
    text = out.getvalue()
    assert text == "wall time 1.2 s; other processes used 0.05 CPUs on average, steal 0.00\n"
    out = io.StringIO()
    print_footer(1.0, (0.15, 0.1), out)
    assert "WARNING: the machine was busy" in out.getvalue()
    out = io.StringIO()
    print_footer(1.0, None, out)
    assert out.getvalue() == "wall time 1.0 s\n"
