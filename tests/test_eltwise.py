"""relu / relu_backward and linear_backward against the reference.

ReLU is exact (no arithmetic): bitwise equality, NaN included. linear_backward
uses the tolerance rule of test_conv2d.py with L = the reduction length
(out_features for grad_input, the batch for grad_weight and grad_bias).
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import rng_for
from test_conv2d import assert_within_rounding

import fastconv
from fastconv import reference as ref


def _f32(key, *shape):
    return rng_for("eltwise", key, shape).standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("shape", [(), (1,), (17,), (3, 5), (2, 3, 4, 5), (70000,)])
def test_relu_matches_reference(shape, isa, output_fill):
    output_fill(np.nan)
    x = _f32("x", *shape)
    if x.size:
        x.reshape(-1)[0] = np.nan
    y = fastconv.relu(x)
    np.testing.assert_array_equal(y, ref.relu(x))
    dy = _f32("dy", *shape)
    np.testing.assert_array_equal(fastconv.relu_backward(dy, y), ref.relu_backward(dy, y))


def test_relu_rules():
    x = np.array([-2.0, -0.0, 0.0, 3.0, np.inf, -np.inf, np.nan], np.float32)
    np.testing.assert_array_equal(fastconv.relu(x), [0, 0, 0, 3, np.inf, 0, np.nan])
    g = fastconv.relu_backward(np.full(7, 5.0, np.float32), fastconv.relu(x))
    np.testing.assert_array_equal(g, [0, 0, 0, 5, 5, 0, 0])


def test_relu_errors():
    with pytest.raises(TypeError, match="float32"):
        fastconv.relu(np.zeros(3))
    with pytest.raises(ValueError, match="same shape"):
        fastconv.relu_backward(np.zeros(3, np.float32), np.zeros(4, np.float32))


@pytest.mark.parametrize(
    "lead, fin, fout", [((1,), 1, 1), ((17,), 33, 15), ((3, 5), 17, 8), ((128,), 576, 64)]
)
def test_linear_backward_matches_reference(lead, fin, fout, isa, output_fill):
    output_fill(np.nan)
    x, w = _f32("x", *lead, fin), _f32("w", fout, fin)
    dy = _f32("dy", *lead, fout)
    got = fastconv.linear_backward(dy, x, w)
    x64, w64, dy64 = x.astype(np.float64), w.astype(np.float64), dy.astype(np.float64)
    want = ref.linear_backward(dy64, x64, w64)
    mag = ref.linear_backward(np.abs(dy64), np.abs(x64), np.abs(w64))
    batch = int(np.prod(lead))
    for name, g, r, a, L in zip(("dx", "dw", "db"), got, want, mag, (fout, batch, batch)):
        assert_within_rounding(g, r, a, L, f"linear_backward {name}")


def test_linear_backward_mask_and_errors():
    x, w, dy = _f32("x", 4, 6), _f32("w", 3, 6), _f32("dy", 4, 3)
    dx, dw, db = fastconv.linear_backward(dy, x, w, output_mask=(False, True, False))
    assert dx is None and db is None and dw.shape == (3, 6)
    with pytest.raises(ValueError, match=r"grad_output has shape \(4, 2\)"):
        fastconv.linear_backward(_f32("dy", 4, 2), x, w)
    with pytest.raises(TypeError, match="float32"):
        fastconv.linear_backward(dy.astype(np.float64), x, w)
