"""fastconv.linear against float64 NumPy (the GEMM itself: tests/test_gemm.py).

The tolerance is the rule of test_conv2d.py (``assert_within_rounding``):
``|fast - ref64| <= L * eps32 * ref_abs``, with L the reduction length (+1 for
a bias) and ref_abs the same product of absolute values.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import rng_for
from test_conv2d import assert_within_rounding

import fastconv
from fastconv import _core
from fastconv import reference as ref


def _f32(key, *shape):
    return rng_for("linear", key, shape).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------

LINEAR_SHAPES = [  # (leading dims of x, in_features, out_features)
    ((1,), 1, 1),
    ((5,), 7, 4),
    ((16,), 16, 16),
    ((17,), 33, 15),
    ((3, 5), 17, 8),
    ((2, 3, 4), 31, 7),
    ((), 13, 9),  # x of shape (in_features,)
    ((65,), 257, 33),  # more than one GEMM tile / K block
    ((70,), 9, 520),
]


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize(
    "lead, fin, fout",
    LINEAR_SHAPES,
    ids=[f"{'x'.join(map(str, s[0])) or 'vec'}-{s[1]}-{s[2]}" for s in LINEAR_SHAPES],
)
def test_linear_matches_reference(lead, fin, fout, bias, isa, output_fill):
    output_fill(np.nan)  # every output element must be written
    x = _f32("x", *lead, fin)
    w = _f32("w", fout, fin)
    b = _f32("b", fout) if bias else None
    y = fastconv.linear(x, w, b)
    assert y.shape == (*lead, fout) and y.dtype == np.float32
    x64 = x.astype(np.float64)  # the reference takes the same leading dimensions
    r = ref.linear(x64, w.astype(np.float64), None if b is None else b.astype(np.float64))
    assert r.shape == y.shape
    ra = ref.linear(
        np.abs(x64),
        np.abs(w).astype(np.float64),
        None if b is None else np.abs(b).astype(np.float64),
    )
    L = fin + (1 if bias else 0)
    assert_within_rounding(
        y.reshape(-1, fout), r.reshape(-1, fout), ra.reshape(-1, fout), L, "linear"
    )


def test_linear_tolerance_catches_a_missing_term():
    x, w = _f32("x", 5, 7), _f32("w", 4, 7)
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    r, ra = x64 @ w64.T, np.abs(x64) @ np.abs(w64).T
    assert_within_rounding(fastconv.linear(x, w), r, ra, 7, "baseline")
    w_miss = w.copy()
    w_miss[2, 3] = 0
    with pytest.raises(pytest.fail.Exception):
        assert_within_rounding(fastconv.linear(x, w_miss), r, ra, 7, "missing term")


def test_linear_bias_none_equals_zero_bias():
    x, w = _f32("x", 6, 9), _f32("w", 5, 9)
    a = fastconv.linear(x, w)
    b = fastconv.linear(x, w, np.zeros(5, np.float32))
    np.testing.assert_array_equal(a, b)


def test_linear_leading_dims_are_a_batch():
    x, w, b = _f32("x", 2, 3, 11), _f32("w", 4, 11), _f32("b", 4)
    np.testing.assert_array_equal(
        fastconv.linear(x, w, b).reshape(6, 4), fastconv.linear(x.reshape(6, 11), w, b)
    )


def test_linear_errors():
    x, w = _f32("x", 5, 7), _f32("w", 4, 7)
    with pytest.raises(
        ValueError,
        match=r"x \(5, 6\) has in_features=6 but weight \(4, 7\) "
        r"expects 7",
    ):
        fastconv.linear(_f32("x", 5, 6), w)
    with pytest.raises(
        ValueError,
        match=r"bias must have shape \(out_features,\) = \(4,\), "
        r"got \(3,\)",
    ):
        fastconv.linear(x, w, _f32("b", 3))
    with pytest.raises(
        ValueError,
        match=r"bias must have shape \(out_features,\) = \(4,\), "
        r"got \(1,\)",
    ):
        fastconv.linear(x, w, _f32("b", 1))
    with pytest.raises(ValueError, match=r"weight must be 2-D"):
        fastconv.linear(x, _f32("w", 4, 7, 1))
    with pytest.raises(ValueError, match=r"bias must be 1-D"):
        fastconv.linear(x, w, _f32("b", 4, 1))
    with pytest.raises(TypeError, match=r"x must have dtype float32, got float64"):
        fastconv.linear(x.astype(np.float64), w)
    with pytest.raises(TypeError, match=r"weight must have dtype float32, got int64"):
        fastconv.linear(x, w.astype(np.int64))
    with pytest.raises(TypeError, match=r"bias must have dtype float32, got float16"):
        fastconv.linear(x, w, np.zeros(4, np.float16))
    with pytest.raises(TypeError, match=r"x must be a numpy\.ndarray of float32, got list"):
        fastconv.linear(x.tolist(), w)


@pytest.mark.parametrize("lead", [(), (6,), (2, 3), (2, 1, 3)], ids=str)
def test_core_linear_backward_takes_the_leading_dims_of_linear(lead):
    """_core.linear_backward accepts dy (..., out) and x (..., in) with the leading
    dimensions _core.linear accepts (none for 1-D x), returns dx shaped like x, and
    gives bitwise the gradients of the flattened 2-D call: callers need not reshape."""
    x, w, dy = _f32("bx", *lead, 5), _f32("bw", 4, 5), _f32("bdy", *lead, 4)
    assert _core.linear(x, w, None).shape == dy.shape
    dx, dw, db = _core.linear_backward(dy, x, w, (True, True, True))
    assert dx.shape == x.shape and dw.shape == w.shape and db.shape == (4,)
    want = _core.linear_backward(dy.reshape(-1, 4), x.reshape(-1, 5), w, (True, True, True))
    for got, ref2, name in zip((dx, dw, db), want, ("dx", "dw", "db")):
        np.testing.assert_array_equal(got.reshape(ref2.shape), ref2, err_msg=name)
    with pytest.raises(ValueError, match=r"^linear_backward: grad_output has shape"):
        _core.linear_backward(dy[..., :3], x, w, (True, True, True))
    if lead:
        with pytest.raises(ValueError, match=r"^linear_backward: grad_output has shape"):
            _core.linear_backward(dy.reshape(-1), x, w, (True, True, True))
