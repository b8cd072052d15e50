"""fastconv.linear and the raw GEMM ``_core.sgemm`` against float64 NumPy.

The tolerance is the rule of test_conv2d.py (``assert_within_rounding``):
``|fast - ref64| <= L * eps32 * ref_abs``, with L the reduction length (+1 for
a bias, +2 for sgemm's alpha scaling and beta*C term) and ref_abs the same
product of absolute values.
"""

from __future__ import annotations

import itertools

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
    x2 = x.reshape(-1, fin).astype(np.float64)
    r = ref.linear(x2, w.astype(np.float64), None if b is None else b.astype(np.float64))
    ra = ref.linear(
        np.abs(x2),
        np.abs(w).astype(np.float64),
        None if b is None else np.abs(b).astype(np.float64),
    )
    L = fin + (1 if bias else 0)
    assert_within_rounding(y.reshape(-1, fout), r, ra, L, "linear")


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


# ---------------------------------------------------------------------------
# sgemm
# ---------------------------------------------------------------------------

GEMM_SIZES = [  # (M, N, K): SIMD widths, primes, tile edges (64 rows, 512 cols, 256 deep)
    (1, 1, 1),
    (1, 17, 1),
    (15, 16, 17),
    (16, 15, 33),
    (17, 33, 16),
    (33, 1, 15),
    (7, 13, 31),
    (37, 41, 43),
    (65, 31, 257),
    (63, 513, 7),
    (2, 1031, 3),
    (97, 7, 521),
]
TRANS = list(itertools.product([False, True], repeat=2))


def _gemm_operands(M, N, K, ta, tb):
    a = _f32("a", *((K, M) if ta else (M, K)))
    b = _f32("b", *((N, K) if tb else (K, N)))
    c = _f32("c", M, N)
    return a, b, c


def _gemm_ref(a, b, c, alpha, beta, ta, tb):
    A = a.astype(np.float64).T if ta else a.astype(np.float64)
    B = b.astype(np.float64).T if tb else b.astype(np.float64)
    r = alpha * (A @ B) + (beta * c.astype(np.float64) if beta != 0 else 0)
    ra = abs(alpha) * (np.abs(A) @ np.abs(B)) + (
        abs(beta) * np.abs(c.astype(np.float64)) if beta != 0 else 0
    )
    return r, ra


@pytest.mark.parametrize(
    "ta, tb", TRANS, ids=[f"{'T' if a else 'N'}{'T' if b else 'N'}" for a, b in TRANS]
)
@pytest.mark.parametrize("M, N, K", GEMM_SIZES, ids=[f"{m}x{n}x{k}" for m, n, k in GEMM_SIZES])
def test_sgemm_matches_float64(M, N, K, ta, tb, isa, output_fill):
    output_fill(np.nan)
    a, b, c = _gemm_operands(M, N, K, ta, tb)
    for alpha, beta in [(1.0, 0.0), (0.5, 0.0), (-1.5, 1.0), (2.0, -0.25), (1.0, 1.0)]:
        out = _core.sgemm(
            a, b, c if beta != 0 else None, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb
        )
        r, ra = _gemm_ref(a, b, c, alpha, beta, ta, tb)
        assert_within_rounding(
            out, r, np.broadcast_to(ra, r.shape), K + 2, f"sgemm alpha={alpha} beta={beta}"
        )


@pytest.mark.parametrize(
    "ta, tb", TRANS, ids=[f"{'T' if a else 'N'}{'T' if b else 'N'}" for a, b in TRANS]
)
def test_sgemm_beta_zero_never_reads_c(ta, tb, isa):
    """With beta = 0, C full of NaN/inf does not leak into the result (BLAS rule)."""
    M, N, K = 17, 33, 15
    a, b, _ = _gemm_operands(M, N, K, ta, tb)
    for fill in (np.nan, np.inf):
        c = np.full((M, N), fill, np.float32)
        c_before = c.copy()
        out = _core.sgemm(a, b, c, alpha=1.0, beta=0.0, trans_a=ta, trans_b=tb)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out, _core.sgemm(a, b, trans_a=ta, trans_b=tb))
        np.testing.assert_array_equal(c, c_before)  # c is an input, never written


def test_sgemm_alpha_zero_and_k_zero():
    a, b, c = _f32("a", 5, 0), _f32("b", 0, 7), _f32("c", 5, 7)
    np.testing.assert_array_equal(_core.sgemm(a, b), np.zeros((5, 7), np.float32))
    np.testing.assert_array_equal(_core.sgemm(a, b, c, beta=1.0), c)
    np.testing.assert_array_equal(_core.sgemm(a, b, c, alpha=3.0, beta=2.0), 2 * c)
    a, b = _f32("a", 5, 3), _f32("b", 3, 7)
    np.testing.assert_array_equal(_core.sgemm(a, b, c, alpha=0.0, beta=1.0), c)


def test_sgemm_empty_dims():
    assert _core.sgemm(_f32("a", 0, 3), _f32("b", 3, 4)).shape == (0, 4)
    assert _core.sgemm(_f32("a", 2, 3), _f32("b", 3, 0)).shape == (2, 0)


def test_sgemm_errors():
    with pytest.raises(ValueError, match=r"op\(a\) is 3x4 but op\(b\) is 5x2"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 5, 2))
    with pytest.raises(ValueError, match=r"op\(a\) is 4x3 but op\(b\) is 4x5"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 5, 4), trans_a=True, trans_b=True)
    with pytest.raises(ValueError, match=r"beta != 0 needs c"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 4, 2), beta=1.0)
    with pytest.raises(ValueError, match=r"c must have shape \(3, 2\)"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 4, 2), _f32("c", 2, 3), beta=1.0)
    with pytest.raises(TypeError, match=r"a must have dtype float32, got float64"):
        _core.sgemm(np.zeros((3, 4)), _f32("b", 4, 2))
    with pytest.raises(ValueError, match=r"b must be 2-D"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 4))
