"""The facts of the lecture notes (shared/reference/cnn-facts.md), checked through
fastconv on real arrays (channel counts kept small so this stays fast)."""

from __future__ import annotations

import numpy as np
import pytest
from cases import rng_for

import fastconv
from fastconv import reference as ref


def _x(*shape, key="x"):
    return rng_for("lecture", key, shape).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# Output sizes: out = floor((n + 2p - f) / s) + 1
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n, f, p, s, out",
    [
        (5, 3, 0, 1, 3),  # 5x5 input, 3x3 kernel -> 3x3
        (28, 5, 0, 1, 24),  # 28x28, 5x5 -> 24x24
        (5, 3, 1, 1, 5),  # 5x5 padded by 1 with 3x3 -> 5x5
        (227, 11, 0, 4, 55),  # AlexNet conv1
        (7, 3, 0, 2, 3),
        (8, 3, 1, 2, 4),
    ],
)
@pytest.mark.parametrize("algo", [*fastconv._core.conv_algos()[1:], "auto"])
def test_conv_output_size_formula(n, f, p, s, out, algo):
    assert (n + 2 * p - f) // s + 1 == out
    y = fastconv.conv2d(_x(1, 1, n, n), _x(2, 1, f, f, key="w"), stride=s, padding=p, algo=algo)
    assert y.shape == (1, 2, out, out)


@pytest.mark.parametrize("n, s", [(5, 1), (7, 1), (5, 2), (8, 2), (9, 3), (10, 3)])
@pytest.mark.parametrize("f", [2, 3, 4, 5])
def test_same_and_valid_padding(n, f, s):
    """'same' gives ceil(n / s) (even kernels: one more pixel at the bottom/right);
    'valid' is no padding."""
    x, w = _x(1, 2, n, n), _x(3, 2, f, f, key="w")
    same = fastconv.conv2d(x, w, stride=s, padding="same")
    assert same.shape == (1, 3, -(-n // s), -(-n // s))
    # Equal to an explicit asymmetric zero padding: total t, top t//2, bottom t - t//2.
    out = -(-n // s)
    t = max((out - 1) * s + f - n, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (t // 2, t - t // 2), (t // 2, t - t // 2)))
    explicit = ref.conv2d(xp.astype(np.float64), w.astype(np.float64), stride=s)
    np.testing.assert_allclose(same, explicit, rtol=1e-5, atol=1e-5)
    valid = fastconv.conv2d(x, w, stride=s, padding="valid")
    np.testing.assert_array_equal(valid, fastconv.conv2d(x, w, stride=s, padding=0))
    assert valid.shape[2] == (n - f) // s + 1


def test_same_with_stride_1_keeps_the_size():
    x, w = _x(1, 1, 5, 5), _x(1, 1, 3, 3, key="w")
    assert fastconv.conv2d(x, w, padding="same").shape == (1, 1, 5, 5)
    assert fastconv.conv2d(x, w, padding=1).shape == (1, 1, 5, 5)
    np.testing.assert_array_equal(
        fastconv.conv2d(x, w, padding="same"), fastconv.conv2d(x, w, padding=1)
    )


@pytest.mark.parametrize(
    "hw, out",
    [((427, 640), (213, 320)), ((26, 26), (13, 13)), ((11, 11), (5, 5))],
)
def test_max_pool_2x2_halves_flooring_odd_sizes(hw, out):
    y = fastconv.max_pool2d(_x(1, 1, *hw), 2, 2)
    assert y.shape == (1, 1, *out)
    a = fastconv.avg_pool2d(_x(1, 1, *hw), 2, 2)
    assert a.shape == (1, 1, *out)


@pytest.mark.parametrize("n, out", [(55, 27), (27, 13), (13, 6)])
def test_alexnet_overlapping_pools(n, out):
    assert fastconv.max_pool2d(_x(1, 2, n, n), 3, 2).shape == (1, 2, out, out)


def test_alexnet_feature_map_sizes():
    """227 -> conv1 11x11/4 -> 55 -> pool 3x3/2 -> 27 -> conv2 5x5 pad 2 -> 27 -> pool
    -> 13 -> conv3-5 3x3 pad 1 -> 13 -> pool -> 6 (small channel counts)."""
    h = _x(1, 3, 227, 227)
    h = fastconv.conv2d(h, _x(4, 3, 11, 11, key="c1"), stride=4)
    assert h.shape == (1, 4, 55, 55)
    h = fastconv.max_pool2d(h, 3, 2)
    assert h.shape == (1, 4, 27, 27)
    h = fastconv.conv2d(h, _x(6, 4, 5, 5, key="c2"), padding=2)
    assert h.shape == (1, 6, 27, 27)
    h = fastconv.max_pool2d(h, 3, 2)
    assert h.shape == (1, 6, 13, 13)
    for i, (k, c) in enumerate([(8, 6), (8, 8), (6, 8)]):
        h = fastconv.conv2d(h, _x(k, c, 3, 3, key=f"c{i + 3}"), padding=1)
        assert h.shape == (1, k, 13, 13)
    h = fastconv.max_pool2d(h, 3, 2)
    assert h.shape == (1, 6, 6, 6)


def test_lenet5_feature_map_sizes():
    h = fastconv.conv2d(_x(1, 1, 32, 32), _x(6, 1, 5, 5, key="c1"))
    assert h.shape == (1, 6, 28, 28)
    h = fastconv.avg_pool2d(h, 2, 2)
    assert h.shape == (1, 6, 14, 14)
    h = fastconv.conv2d(h, _x(16, 6, 5, 5, key="c2"))
    assert h.shape == (1, 16, 10, 10)
    h = fastconv.avg_pool2d(h, 2, 2)
    assert h.shape == (1, 16, 5, 5)
    h = fastconv.conv2d(h, _x(12, 16, 5, 5, key="c3"))
    assert h.shape == (1, 12, 1, 1)


def test_mnist_cnn_feature_map_sizes():
    h = fastconv.conv2d(_x(1, 1, 28, 28), _x(4, 1, 3, 3, key="a"))
    assert h.shape[2:] == (26, 26)
    h = fastconv.max_pool2d(h, 2)
    assert h.shape[2:] == (13, 13)
    h = fastconv.conv2d(h, _x(4, 4, 3, 3, key="b"))
    assert h.shape[2:] == (11, 11)
    h = fastconv.max_pool2d(h, 2)
    assert h.shape[2:] == (5, 5)
    h = fastconv.conv2d(h, _x(4, 4, 3, 3, key="c"))
    assert h.shape[2:] == (3, 3)


# ---------------------------------------------------------------------------
# The worked max-pooling example
# ---------------------------------------------------------------------------

LECTURE_X = np.array([[2, 3, 4, 3], [4, 3, 2, 0], [1, 0, 5, 7], [2, 3, 5, 6]], dtype=np.float32)[
    None, None
]
LECTURE_MASK = np.array([[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]], dtype=np.float32)[
    None, None
]


def test_max_pool_worked_example_forward(isa):
    y, idx = fastconv.max_pool2d(LECTURE_X, 2, 2, return_indices=True)
    np.testing.assert_array_equal(y[0, 0], [[4, 4], [3, 7]])
    # Window maxima at (1,0), (0,2), (3,1), (2,3).
    np.testing.assert_array_equal(idx[0, 0], [[1 * 4 + 0, 0 * 4 + 2], [3 * 4 + 1, 2 * 4 + 3]])


def test_max_pool_worked_example_backward_mask(isa):
    _, idx = fastconv.max_pool2d(LECTURE_X, 2, 2, return_indices=True)
    dx = fastconv.max_pool2d_backward(np.ones((1, 1, 2, 2), np.float32), idx, LECTURE_X.shape)
    np.testing.assert_array_equal(dx, LECTURE_MASK)
    # Each output gradient goes to its window's maximum, zero elsewhere.
    g = np.array([[[[10, 20], [30, 40]]]], np.float32)
    dx = fastconv.max_pool2d_backward(g, idx, LECTURE_X.shape)
    want = np.zeros((4, 4), np.float32)
    want[1, 0], want[0, 2], want[3, 1], want[2, 3] = 10, 20, 30, 40
    np.testing.assert_array_equal(dx[0, 0], want)


def test_max_pool_ties_go_to_the_first_maximum(isa):
    """Ties resolve to the first maximum in row-major window order (PyTorch's rule)."""
    x = np.array([[5, 5], [5, 5]], np.float32)[None, None]
    _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert idx.item() == 0
    x = np.array([[1, 5], [5, 5]], np.float32)[None, None]
    _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert idx.item() == 1
    dx = fastconv.max_pool2d_backward(np.ones((1, 1, 1, 1), np.float32), idx, x.shape)
    np.testing.assert_array_equal(dx[0, 0], [[0, 1], [0, 0]])


# ---------------------------------------------------------------------------
# One filter over a multi-channel input gives one 2-D map
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [*fastconv._core.conv_algos()[1:], "auto"])
def test_one_filter_over_all_channels_gives_one_map(algo, isa):
    C, n, f = 3, 6, 3
    x = _x(1, C, n, n)
    w = _x(1, C, f, f, key="w")
    y = fastconv.conv2d(x, w, algo=algo)
    assert y.shape == (1, 1, n - f + 1, n - f + 1)  # one 2-D map
    # Each output is the inner product of the filter with the C x f x f input block.
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for p in range(n - f + 1):
        for q in range(n - f + 1):
            inner = float(np.sum(x64[0, :, p : p + f, q : q + f] * w64[0]))
            bound = (
                C * f * f * 2**-23 * float(np.sum(np.abs(x64[0, :, p : p + f, q : q + f] * w64[0])))
            )
            assert abs(float(y[0, 0, p, q]) - inner) <= bound
    # and it is the sum of the per-channel 2-D correlations.
    per_channel = sum(
        fastconv.conv2d(x[:, c : c + 1], w[:, c : c + 1], algo=algo).astype(np.float64)
        for c in range(C)
    )
    np.testing.assert_allclose(y, per_channel, rtol=1e-5, atol=1e-5)
