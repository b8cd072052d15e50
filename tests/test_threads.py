"""Threads: results are bitwise identical across calls and thread counts, the
GIL is released while kernels run, and concurrent Python callers get the
serial results."""

from __future__ import annotations

import functools
import multiprocessing
import threading
import time

import numpy as np
import pytest
from cases import rng_for

import fastconv
from fastconv import _core


def _f32(key, *shape):
    return rng_for("threads", key, shape).standard_normal(shape).astype(np.float32)


# Mid-size problems: several output tiles and planes per thread, batch > the
# 8 chunks of the weight-gradient reduction in one of them.
CONV_PROBLEMS = {
    "n5_c17_19x23": {"x": (5, 17, 19, 23), "w": (16, 17, 3, 3), "kw": {"padding": 1}},
    "n11_g2_s2": {
        "x": (11, 16, 19, 23),
        "w": (8, 8, 3, 3),
        "kw": {"stride": 2, "padding": 1, "groups": 2},
    },
    "n5_dw_5x5_same": {
        "x": (5, 17, 19, 23),
        "w": (17, 1, 5, 5),
        "kw": {"padding": "same", "groups": 17},
    },
    "n3_c8_1x1": {"x": (3, 8, 19, 23), "w": (33, 8, 1, 1), "kw": {}},
}


def _conv_runs(problem, algo):
    p = CONV_PROBLEMS[problem]
    x, w = _f32("x", *p["x"]), _f32("w", *p["w"])
    b = _f32("b", p["w"][0])
    y = fastconv.conv2d(x, w, b, **p["kw"], algo=algo)
    dy = _f32("dy", *y.shape)
    return lambda: (
        fastconv.conv2d(x, w, b, **p["kw"], algo=algo),
        *fastconv.conv2d_backward(dy, x, w, **p["kw"], algo=algo),
    )


def _other_runs(name):
    x = _f32("px", 5, 17, 19, 23)
    if name == "max_pool2d":

        def run():
            y, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
            dy = _f32("pdy", *y.shape)
            return y, idx, fastconv.max_pool2d_backward(dy, idx, x.shape)

        return run
    if name == "avg_pool2d":

        def run():
            y = fastconv.avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False)
            dy = _f32("ady", *y.shape)
            return y, fastconv.avg_pool2d_backward(dy, x.shape, 3, 2, 1, True, False)

        return run
    if name == "linear":
        xl, wl, bl = _f32("lx", 37, 300), _f32("lw", 130, 300), _f32("lb", 130)
        return lambda: (fastconv.linear(xl, wl, bl),)
    if name == "sgemm":  # several (64 x 512) tiles of C and several K blocks of 256
        a, b, c = _f32("ga", 300, 130), _f32("gb", 600, 300), _f32("gc", 130, 600)
        return lambda: (
            _core.sgemm(a, b, c, alpha=0.7, beta=0.3, trans_a=True, trans_b=True),
            _core.sgemm(a.T.copy(), b.T.copy()),
        )
    raise ValueError(name)


RUNS = [(f"conv-{p}-{a}", p, a) for p in CONV_PROBLEMS for a in ("direct", "im2col", "auto")]
RUNS += [(n, None, n) for n in ("max_pool2d", "avg_pool2d", "linear", "sgemm")]


def _runner(problem, what):
    return _conv_runs(problem, what) if problem is not None else _other_runs(what)


def _same_bits(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("name, problem, what", RUNS, ids=[r[0] for r in RUNS])
def test_bitwise_identical_across_calls_and_thread_counts(name, problem, what):
    run = _runner(problem, what)
    fastconv.set_num_threads(1)
    base = run()
    assert all(np.isfinite(r).all() for r in base if r.dtype.kind == "f")
    for threads in (1, 2, 4, 3):
        fastconv.set_num_threads(threads)
        assert fastconv.get_num_threads() == threads
        for rep in range(2):
            got = run()
            for i, (g, b) in enumerate(zip(got, base)):
                assert _same_bits(g, b), f"output {i} differs with {threads} threads (call {rep})"


def test_concurrent_python_threads_match_serial():
    """Several Python threads calling different ops at once get the serial results."""
    runners = [_runner(p, w) for _, p, w in RUNS[::2]]
    fastconv.set_num_threads(2)
    serial = [r() for r in runners]
    results = [None] * len(runners)
    errors = []
    barrier = threading.Barrier(len(runners))

    def work(i):
        try:
            barrier.wait()
            for _ in range(3):
                out = runners[i]()
                assert all(_same_bits(g, b) for g, b in zip(out, serial[i]))
            results[i] = out
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((i, repr(e)))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(runners))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert all(r is not None for r in results)


# ---------------------------------------------------------------------------
# The GIL is released while kernels run
# ---------------------------------------------------------------------------


@functools.cache
def _slow_conv(target_s=0.2):
    """A direct conv taking about target_s on one thread (calibrated here)."""
    w = _f32("gw", 16, 16, 3, 3)
    n = 1
    while True:
        x = _f32("gx", n, 16, 64, 64)
        t = time.perf_counter()
        fastconv.conv2d(x, w, padding=1, algo="direct")
        dt = time.perf_counter() - t
        if dt >= target_s or n >= 256:
            return (lambda x=x: fastconv.conv2d(x, w, padding=1, algo="direct")), dt
        n = max(n * 2, int(n * target_s / max(dt, 1e-4)) + 1)


def test_gil_released_during_kernels():
    fastconv.set_num_threads(1)
    call, single = _slow_conv()
    assert single >= 0.1, "calibration failed to find a slow enough call"
    spans = {}
    barrier = threading.Barrier(2)

    def work(i):
        barrier.wait()
        t0 = time.perf_counter()
        call()
        spans[i] = (t0, time.perf_counter())

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    (a0, a1), (b0, b1) = spans[0], spans[1]
    overlap = min(a1, b1) - max(a0, b0)
    shorter = min(a1 - a0, b1 - b0)
    # With the GIL held, the second call could only start after the first ended
    # (overlap <= 0). Released, the two calls run side by side on 2 cores.
    assert overlap > 0.5 * shorter, (
        f"calls did not overlap: spans {spans}, overlap {overlap:.3f}s, single call {single:.3f}s"
    )


def test_python_thread_runs_while_a_kernel_runs():
    """A pure-Python thread keeps counting while a long kernel runs (GIL released)."""
    fastconv.set_num_threads(1)
    call, _single = _slow_conv()
    counts = []
    done = threading.Event()

    def count():
        n = 0
        while not done.is_set():
            n += 1
            if n % 1000 == 0:
                counts.append(time.perf_counter())

    t = threading.Thread(target=count)
    t.start()
    time.sleep(0.01)
    t0 = time.perf_counter()
    call()
    t1 = time.perf_counter()
    done.set()
    t.join()
    during = [c for c in counts if t0 < c < t1]
    # Held GIL: the counter is frozen for the whole call (nothing recorded inside
    # (t0, t1) apart from the switch interval at the edges).
    assert len(during) > 10, f"only {len(during)} ticks during a {t1 - t0:.3f}s call"


def _fork_child(queue, x, w, want):
    y = fastconv.conv2d(x, w, padding=1)
    queue.put(y.tobytes() == want)


def test_fork_after_the_thread_pool_ran():
    """multiprocessing's fork start method after OpenMP ran: the child computes the
    same result and does not hang."""
    fastconv.set_num_threads(2)
    x, w = _f32("fx", 4, 8, 32, 32), _f32("fw", 8, 8, 3, 3)
    want = fastconv.conv2d(x, w, padding=1).tobytes()
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    p = ctx.Process(target=_fork_child, args=(queue, x, w, want))
    p.start()
    p.join(60)
    if p.is_alive():
        p.kill()
        p.join()
        pytest.fail("the forked child hung in fastconv.conv2d")
    assert p.exitcode == 0
    assert queue.get(timeout=10) is True
