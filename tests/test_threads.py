"""Threads: results are bitwise identical across calls and OpenMP thread counts.

Many Python threads calling at once, the GIL, fork and Ctrl-C are in
test_process.py.
"""

from __future__ import annotations

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


RUNS = [(f"conv-{p}-{a}", p, a) for p in CONV_PROBLEMS for a in (*_core.conv_algos()[1:], "auto")]
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
