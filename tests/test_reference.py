"""Self-test of the NumPy oracle ``fastconv.reference`` against PyTorch (CPU).

Every public function is compared with ``torch.nn.functional`` / autograd in
float64 and float32 on a table of cases (channel counts, strides, paddings incl.
"same"/"valid", dilations, groups, depthwise; pooling with ceil_mode, padding,
dilation, ties, NaNs, -inf windows, both count_include_pad modes and
divisor_override). Tests that need torch are skipped when it is missing.
"""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fastconv import reference as ref
from fastconv._shapes import ConvShape, PoolShape

DTYPES = [np.float64, np.float32]


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def _t(torch, a):
    return torch.from_numpy(np.ascontiguousarray(a))


def assert_close(actual, expected, dtype):
    """float64: 1e-12 (relative, and absolute on the data's scale); float32: 1e-5."""
    expected = np.asarray(expected)
    assert actual.dtype == dtype
    assert actual.shape == expected.shape
    tol = 1e-12 if dtype == np.float64 else 1e-5
    scale = max(1.0, float(np.abs(expected).max(initial=0.0)))
    np.testing.assert_allclose(actual, expected, rtol=tol, atol=tol * scale)


def _rng(*key):
    """Deterministic generator per test case (str hashes are randomised per process)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


# ---------------------------------------------------------------------------
# Output sizes and padding helpers
# ---------------------------------------------------------------------------


def test_output_size_helpers_exact_integer_arithmetic():
    n = 2**24 + 1  # not representable in float32: float division would be wrong
    assert ref.conv2d_output_size(n, 1, 1, 0, 1) == n
    assert ref.conv2d_output_size(n, 3, 2, 2, 1) == 2**23 + 1
    assert ref.conv2d_output_size(n, 2, 1, 0, 1) == n - 1
    assert ref.pool2d_output_size(n, 2, 2, 0, 1, False) == 2**23
    assert ref.pool2d_output_size(n, 2, 2, 0, 1, True) == 2**23 + 1
    assert ref.pool2d_output_size(2**53 + 1, 1, 1, 0, 1, False) == 2**53 + 1


def test_output_size_helpers_small():
    assert ref.conv2d_output_size(5, 3, 1, 0, 1) == 3
    assert ref.conv2d_output_size(7, 3, 2, 2, 2) == 3  # (7 + 2 - 4 - 1)//2 + 1
    assert ref.conv2d_output_size(2, 3, 1, 0, 1) == 0  # callers raise
    # ceil_mode: a window may not start in the right padding:
    # ceil((5 + 2 - 1 - 1)/2) + 1 = 4, but the last would start at 3*2 = 6 >= 5 + 1: dropped
    assert ref.pool2d_output_size(5, 2, 2, 1, 1, True) == 3
    # ceil((5 + 0 - 2 - 1)/2) + 1 = 2, the last starts at 2 < 5: kept
    assert ref.pool2d_output_size(5, 3, 2, 0, 1, True) == 2
    # ceil((6 + 2 - 2 - 1)/2) + 1 = 4, the last starts at 6 < 6 + 1: kept (reads 1 input column)
    assert ref.pool2d_output_size(6, 3, 2, 1, 1, True) == 4
    assert ref.pool2d_output_size(5, 2, 2, 0, 1, True) == 3
    assert ref.pool2d_output_size(5, 2, 2, 0, 1, False) == 2


@pytest.mark.parametrize(
    "n, k, stride, pool_out",
    [
        (427, 2, 2, 213),
        (640, 2, 2, 320),
        (26, 2, 2, 13),
        (11, 2, 2, 5),
        (55, 3, 2, 27),
        (27, 3, 2, 13),
        (13, 3, 2, 6),
    ],
)
def test_classic_pool_sizes(n, k, stride, pool_out):
    assert ref.pool2d_output_size(n, k, stride, 0, 1, False) == pool_out


def test_pool_sizes_on_arrays():
    y = ref.max_pool2d(np.zeros((1, 1, 427, 640)), 2, 2)
    assert y.shape == (1, 1, 213, 320)
    assert ref.avg_pool2d(np.zeros((1, 1, 26, 11)), 2, 2).shape == (1, 1, 13, 5)
    x = np.zeros((1, 2, 55, 55), dtype=np.float32)  # AlexNet: 3x3/2 pools
    sizes = []
    for _ in range(3):
        x = ref.max_pool2d(x, 3, 2)
        sizes.append(x.shape[-1])
    assert sizes == [27, 13, 6]
    assert x.dtype == np.float32


def test_resolve_conv_padding():
    assert ref.resolve_conv_padding(0, (5, 5), (3, 3), (1, 1), (1, 1)) == (0, 0, 0, 0)
    assert ref.resolve_conv_padding((1, 2), (5, 5), (3, 3), (1, 1), (1, 1)) == (1, 1, 2, 2)
    assert ref.resolve_conv_padding("valid", (5, 5), (3, 3), (1, 1), (1, 1)) == (0, 0, 0, 0)
    assert ref.resolve_conv_padding("same", (5, 5), (3, 3), (1, 1), (1, 1)) == (1, 1, 1, 1)
    # even kernel: odd total, extra pixel at the bottom/right
    assert ref.resolve_conv_padding("same", (5, 6), (2, 4), (1, 1), (1, 1)) == (0, 1, 1, 2)
    # dilation
    assert ref.resolve_conv_padding("same", (9, 9), (3, 2), (1, 1), (2, 3)) == (2, 2, 1, 2)
    # stride 2: out = ceil(n / 2); total = (out-1)*2 + k - n
    assert ref.resolve_conv_padding("same", (7, 8), (3, 3), (2, 2), (1, 1)) == (1, 1, 0, 1)
    assert ref.resolve_conv_padding("same", (10, 10), (1, 1), (3, 3), (1, 1)) == (0, 0, 0, 0)
    with pytest.raises(ValueError, match="padding"):
        ref.resolve_conv_padding("full", (5, 5), (3, 3), (1, 1), (1, 1))


def test_output_hw_and_shape_records():
    """The per-dimension sizes, the (P, Q) helpers and the shape records agree."""
    assert ref.conv2d_output_hw((7, 8), (3, 2), (2, 1), "same", (1, 2)) == (4, 8)
    assert ref.conv2d_output_hw(6, 3, 1, (0, 1), 1) == (4, 6)
    assert ref.pool2d_output_hw((5, 6), 2, 2, (1, 0), 1, True) == (3, 3)
    conv = ConvShape("c", 2, 3, 7, 8, 4, 3, 2, stride=(2, 1), padding="same", dilation=(1, 2))
    assert conv.pads == (1, 1, 1, 1) and conv.y_shape == (2, 4, 4, 8)
    pool = PoolShape("p", "max", 1, 2, 11, 11, 2, 2)
    assert pool.y_shape == (1, 2, 5, 5)


# ---------------------------------------------------------------------------
# conv2d
# ---------------------------------------------------------------------------

# (N, C, K, (H, W), (R, S), stride, padding, dilation, groups)
CONV_CASES = [
    (2, 1, 1, (7, 7), (3, 3), 1, 0, 1, 1),
    (1, 2, 3, (8, 9), (3, 3), 1, 1, 1, 1),
    (2, 3, 8, (11, 10), (3, 3), 2, 1, 1, 1),
    (1, 7, 5, (9, 9), (5, 5), 1, 2, 1, 1),
    (2, 8, 8, (10, 12), (3, 3), 3, 2, 2, 1),
    (1, 15, 4, (9, 8), (1, 1), 1, 0, 1, 1),
    (2, 16, 16, (8, 8), (3, 3), 1, 1, 1, 16),  # depthwise
    (1, 17, 17, (9, 7), (3, 3), 2, 1, 1, 17),  # depthwise, stride 2
    (1, 16, 32, (7, 7), (3, 3), 1, 1, 2, 16),  # depthwise, multiplier 2, dilation 2
    (2, 8, 6, (9, 9), (3, 3), 1, 1, 1, 2),
    (1, 15, 9, (10, 9), (3, 2), (2, 1), (1, 0), (1, 2), 3),
    (2, 2, 4, (6, 13), (2, 4), (1, 3), (0, 2), (2, 1), 2),
    (1, 3, 2, (5, 5), (5, 5), 1, 0, 1, 1),  # 1x1 output
    (1, 7, 3, (12, 11), (3, 3), 3, 0, 2, 1),  # leftover rows/cols not covered
    (2, 17, 6, (6, 6), (3, 3), 1, "same", 1, 1),
    (1, 16, 4, (6, 7), (2, 2), 1, "same", 1, 2),  # even kernel, "same"
    (1, 8, 5, (7, 8), (4, 4), 1, "same", 1, 1),  # even kernel, "same"
    (1, 1, 2, (9, 8), (4, 3), 1, "same", 2, 1),  # even kernel, dilation, "same"
    (1, 3, 5, (7, 7), (3, 3), 1, "valid", 1, 1),
    (1, 2, 2, (6, 6), (3, 3), 2, "valid", 1, 2),
]


def _conv_data(case, dtype, with_bias=True):
    N, C, K, (H, W), (R, S), stride, padding, dilation, groups = case
    rng = _rng("conv", case)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype) if with_bias else None
    return x, w, b, {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_matches_torch(torch, case, dtype):
    x, w, b, kw = _conv_data(case, dtype)
    expected = torch.nn.functional.conv2d(_t(torch, x), _t(torch, w), _t(torch, b), **kw).numpy()
    assert_close(ref.conv2d(x, w, b, **kw), expected, dtype)
    expected_nobias = torch.nn.functional.conv2d(_t(torch, x), _t(torch, w), None, **kw).numpy()
    assert_close(ref.conv2d(x, w, None, **kw, algo="anything"), expected_nobias, dtype)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_backward_matches_torch_autograd(torch, case, dtype):
    x, w, b, kw = _conv_data(case, dtype)
    tx, tw, tb = (_t(torch, a).requires_grad_() for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **kw)
    gy = _rng("gy", case).standard_normal(ty.shape).astype(dtype)
    ty.backward(_t(torch, gy))
    gx, gw, gb = ref.conv2d_backward(gy, x, w, **kw)
    assert_close(gx, tx.grad.numpy(), dtype)
    assert_close(gw, tw.grad.numpy(), dtype)
    assert_close(gb, tb.grad.numpy(), dtype)


# (N, C, K, (H, W), (R, S), stride, dilation, groups) with padding="same" and stride > 1
SAME_STRIDED_CASES = [
    (1, 3, 4, (7, 8), (3, 3), 2, 1, 1),
    (2, 8, 8, (9, 10), (2, 2), 2, 1, 8),
    (1, 7, 2, (11, 6), (4, 3), (3, 2), (1, 2), 1),
    (1, 16, 4, (5, 5), (5, 5), 3, 1, 2),
    (1, 2, 2, (6, 6), (1, 1), 4, 1, 1),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", SAME_STRIDED_CASES, ids=str)
def test_conv2d_same_strided_matches_explicitly_padded_torch(torch, case, dtype):
    """torch has no padding="same" for stride > 1: compare with F.pad + conv2d."""
    N, C, K, (H, W), (R, S), stride, dilation, groups = case
    rng = _rng("same", case)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    w = rng.standard_normal((K, C // groups, R, S)).astype(dtype)
    b = rng.standard_normal(K).astype(dtype)
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    top, bottom, left, right = ref.resolve_conv_padding("same", (H, W), (R, S), (sh, sw), (dh, dw))
    F = torch.nn.functional
    tx, tw, tb = (_t(torch, a).requires_grad_() for a in (x, w, b))
    ty = F.conv2d(
        F.pad(tx, (left, right, top, bottom)),
        tw,
        tb,
        stride=stride,
        dilation=dilation,
        groups=groups,
    )
    y = ref.conv2d(x, w, b, stride=stride, padding="same", dilation=dilation, groups=groups)
    assert y.shape == (N, K, -(-H // sh), -(-W // sw))
    assert_close(y, ty.detach().numpy(), dtype)

    gy = rng.standard_normal(ty.shape).astype(dtype)
    ty.backward(_t(torch, gy))
    gx, gw, gb = ref.conv2d_backward(
        gy, x, w, stride=stride, padding="same", dilation=dilation, groups=groups
    )
    assert_close(gx, tx.grad.numpy(), dtype)
    assert_close(gw, tw.grad.numpy(), dtype)
    assert_close(gb, tb.grad.numpy(), dtype)


def test_conv2d_backward_output_mask_and_uncovered_input(torch):
    x, w, _, kw = _conv_data((1, 3, 2, (8, 8), (3, 3), 3, 0, 1, 1), np.float64, with_bias=False)
    y = ref.conv2d(x, w, **kw)
    assert y.shape == (1, 2, 2, 2)  # rows/cols 6, 7 are never read
    gy = np.ones_like(y)
    gx, gw, gb = ref.conv2d_backward(gy, x, w, **kw, output_mask=(True, False, False))
    assert gw is None and gb is None
    assert np.all(gx[..., 6:, :] == 0) and np.all(gx[..., :, 6:] == 0)
    gx2, gw2, gb2 = ref.conv2d_backward(gy, x, w, **kw, output_mask=(False, True, True))
    assert gx2 is None
    np.testing.assert_array_equal(gb2, gy.sum(axis=(0, 2, 3)))
    full = ref.conv2d_backward(gy, x, w, **kw)
    np.testing.assert_array_equal(full[0], gx)
    np.testing.assert_array_equal(full[1], gw2)
    out = torch.ops.aten.convolution_backward(
        _t(torch, gy),
        _t(torch, x),
        _t(torch, w),
        [2],
        [3, 3],
        [0, 0],
        [1, 1],
        False,
        [0, 0],
        1,
        [True, True, True],
    )
    for mine, theirs in zip(full, out):
        assert_close(mine, theirs.numpy(), np.float64)


def test_conv2d_inf_weight_with_padding_is_nan_at_border():
    x = np.ones((1, 1, 3, 3))
    w = np.zeros((1, 1, 3, 3))
    w[0, 0, 0, 0] = np.inf
    with np.errstate(invalid="ignore"):
        y = ref.conv2d(x, w, padding=1)
    # tap (0, 0) reads padding for output row 0 / column 0: 0 * inf = nan (as im2col)
    assert np.isnan(y[0, 0, 0, :]).all() and np.isnan(y[0, 0, :, 0]).all()
    assert np.isposinf(y[0, 0, 1:, 1:]).all()


def test_conv2d_keeps_dtype_and_rejects_mixed_dtypes():
    x, w, b, kw = _conv_data(CONV_CASES[2], np.float32)
    y = ref.conv2d(x, w, b, **kw)
    assert y.dtype == np.float32
    gy = np.ones_like(y)
    assert all(g.dtype == np.float32 for g in ref.conv2d_backward(gy, x, w, **kw))
    with pytest.raises(TypeError):
        ref.conv2d(x, w.astype(np.float64), **kw)
    with pytest.raises(TypeError):
        ref.conv2d(x, w, b.astype(np.float64), **kw)
    with pytest.raises(TypeError):
        ref.conv2d(x.astype(np.int64), w.astype(np.int64))


def test_conv2d_errors():
    x = np.zeros((2, 6, 5, 5))
    with pytest.raises(ValueError, match="4-D"):
        ref.conv2d(x[0], np.zeros((4, 6, 3, 3)))
    with pytest.raises(ValueError, match="4-D"):
        ref.conv2d(x, np.zeros((4, 6, 3)))
    with pytest.raises(ValueError, match=r"\(4, 5, 3, 3\)"):
        ref.conv2d(x, np.zeros((4, 5, 3, 3)))  # channel mismatch
    with pytest.raises(ValueError, match="groups"):
        ref.conv2d(x, np.zeros((4, 1, 3, 3)), groups=4)  # 4 does not divide 6
    with pytest.raises(ValueError, match="groups"):
        ref.conv2d(x, np.zeros((5, 3, 3, 3)), groups=2)  # 2 does not divide K=5
    with pytest.raises(ValueError, match="bias"):
        ref.conv2d(x, np.zeros((4, 6, 3, 3)), np.zeros(3))
    with pytest.raises(ValueError, match="output size"):
        ref.conv2d(x, np.zeros((4, 6, 7, 3)))
    with pytest.raises(ValueError, match="padding"):
        ref.conv2d(x, np.zeros((4, 6, 3, 3)), padding="full")
    with pytest.raises(ValueError, match="stride"):
        ref.conv2d(x, np.zeros((4, 6, 3, 3)), stride=0)
    with pytest.raises(ValueError, match="grad_output"):
        ref.conv2d_backward(np.zeros((2, 4, 4, 4)), x, np.zeros((4, 6, 3, 3)))


# ---------------------------------------------------------------------------
# max_pool2d
# ---------------------------------------------------------------------------

# (N, C, (H, W), kernel, stride, padding, dilation, ceil_mode)
MAX_POOL_CASES = [
    (1, 1, (4, 4), 2, None, 0, 1, False),
    (2, 3, (7, 9), 3, 2, 1, 1, False),
    (2, 3, (7, 9), 3, 2, 1, 1, True),
    (1, 2, (8, 8), (3, 2), (2, 3), (1, 1), (1, 2), True),
    (1, 7, (10, 11), 4, 3, 2, 1, True),
    (1, 16, (9, 9), 3, 1, 1, 2, False),
    (2, 2, (5, 6), 2, 2, 1, 1, True),
    (1, 8, (13, 13), 3, 2, 0, 1, True),
    (1, 15, (6, 7), (2, 3), 1, (1, 1), 1, False),
    (1, 17, (11, 10), 5, 2, 2, (2, 1), True),
    (1, 3, (4, 5), 2, 1, 1, 2, True),
]


def _pool_input(shape, dtype, kind, key):
    rng = _rng(kind, key, dtype)
    if kind == "randn":
        x = rng.standard_normal(shape)
    elif kind == "ties":
        x = rng.integers(0, 3, shape).astype(float)
    elif kind == "nan":
        x = rng.integers(0, 4, shape).astype(float)
        x[rng.random(shape) < 0.3] = np.nan  # several NaNs per window
    elif kind == "inf":
        x = rng.integers(0, 3, shape).astype(float)
        x[rng.random(shape) < 0.7] = -np.inf  # many windows all -inf
        x[0, 0] = -np.inf  # a whole plane of -inf
        x[rng.random(shape) < 0.05] = np.inf
    else:
        raise AssertionError(kind)
    return x.astype(dtype)


def _max_pool_kwargs(kernel_size, stride, padding, dilation, ceil_mode) -> dict:
    """max_pool2d's keyword arguments, the same for the reference and torch."""
    return {
        "kernel_size": kernel_size,
        "stride": stride,
        "padding": padding,
        "dilation": dilation,
        "ceil_mode": ceil_mode,
    }


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["randn", "ties", "nan", "inf"])
@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=str)
def test_max_pool2d_and_backward_match_torch(torch, case, kind, dtype):
    N, C, (H, W), k, stride, padding, dilation, ceil_mode = case
    x = _pool_input((N, C, H, W), dtype, kind, case)
    kw = _max_pool_kwargs(k, stride, padding, dilation, ceil_mode)
    tx = _t(torch, x).requires_grad_()
    ty, tidx = torch.nn.functional.max_pool2d(tx, return_indices=True, **kw)
    y, idx = ref.max_pool2d(x, return_indices=True, **kw)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ty.detach().numpy())  # NaN-aware, exact
    np.testing.assert_array_equal(idx, tidx.numpy())
    np.testing.assert_array_equal(ref.max_pool2d(x, **kw), y)

    gy = _rng("gy", case).standard_normal(y.shape).astype(dtype)
    ty.backward(_t(torch, gy))
    gx = ref.max_pool2d_backward(gy, idx, x.shape)
    assert gx.dtype == dtype
    if dtype == np.float64:  # same accumulation order as torch's CPU kernel
        np.testing.assert_array_equal(gx, tx.grad.numpy())
    else:
        assert_close(gx, tx.grad.numpy(), dtype)


def test_max_pool2d_lecture_example():
    x = np.array([[2, 3, 4, 3], [4, 3, 2, 0], [1, 0, 5, 7], [2, 3, 5, 6]], dtype=np.float64)[
        None, None
    ]
    y, idx = ref.max_pool2d(x, 2, 2, return_indices=True)
    np.testing.assert_array_equal(y[0, 0], [[4, 4], [3, 7]])
    # flat positions h*W + w of 4 (1,0), 4 (0,2), 3 (3,1), 7 (2,3)
    np.testing.assert_array_equal(idx[0, 0], [[4, 2], [13, 11]])
    mask = ref.max_pool2d_backward(np.ones_like(y), idx, x.shape)
    np.testing.assert_array_equal(
        mask[0, 0], [[0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1], [0, 1, 0, 0]]
    )


def test_max_pool2d_ties_nan_and_neginf_rules():
    # ties -> first maximum in row-major order
    y, idx = ref.max_pool2d(np.array([[[[5.0, 1.0], [5.0, 5.0]]]]), 2, return_indices=True)
    assert y.item() == 5.0 and idx.item() == 0
    # several NaNs -> the LAST NaN (PyTorch's CPU NCHW kernel)
    y, idx = ref.max_pool2d(np.array([[[[1.0, np.nan], [np.nan, 2.0]]]]), 2, return_indices=True)
    assert np.isnan(y.item()) and idx.item() == 2
    # all -inf -> -inf and the first in-bounds position (with padding: not the padded corner)
    x = np.full((1, 1, 3, 3), -np.inf, dtype=np.float32)
    y, idx = ref.max_pool2d(x, 3, 2, padding=1, return_indices=True)
    assert y.dtype == np.float32 and np.all(y == -np.inf)
    np.testing.assert_array_equal(idx[0, 0], [[0, 1], [3, 4]])


def test_max_pool2d_window_entirely_in_padding_mirrors_torch(torch):
    # H=1, k=2, dilation=2, padding=1: window taps at rows -1 and 1, both outside.
    x = np.arange(5.0).reshape(1, 1, 1, 5)
    kw = {"kernel_size": 2, "stride": 1, "padding": 1, "dilation": (2, 1)}
    y, idx = ref.max_pool2d(x, return_indices=True, **kw)
    ty, tidx = torch.nn.functional.max_pool2d(_t(torch, x), return_indices=True, **kw)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
    assert np.all(y == -np.inf)


def test_max_pool2d_errors():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="half"):
        ref.max_pool2d(x, 2, padding=2)
    with pytest.raises(ValueError, match="output size"):
        ref.max_pool2d(x, 5)
    with pytest.raises(ValueError, match="4-D"):
        ref.max_pool2d(x[0], 2)


def test_max_pool2d_backward_errors_and_order():
    gy = np.ones((1, 2, 2, 2))
    idx = np.zeros((1, 2, 2, 2), dtype=np.int64)
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        ref.max_pool2d_backward(gy, idx + 9, (1, 2, 3, 3))
    with pytest.raises(ValueError, match=r"\[0, 9\)"):
        ref.max_pool2d_backward(gy, idx - 1, (1, 2, 3, 3))
    with pytest.raises(ValueError, match="indices shape"):
        ref.max_pool2d_backward(gy, idx[..., :1], (1, 2, 3, 3))
    with pytest.raises(ValueError, match="input_shape"):
        ref.max_pool2d_backward(gy, idx, (1, 3, 3, 3))
    with pytest.raises(TypeError):
        ref.max_pool2d_backward(gy, idx.astype(np.float64), (1, 2, 3, 3))
    # in-order float accumulation: (1e16 + 1) + 1 - 1e16 == 0 in float64, not 2
    g = np.array([1e16, 1.0, 1.0, -1e16]).reshape(1, 1, 2, 2)
    out = ref.max_pool2d_backward(g, np.zeros((1, 1, 2, 2), dtype=np.int64), (1, 1, 2, 2))
    assert out[0, 0, 0, 0] == ((1e16 + 1.0) + 1.0) - 1e16
    assert out.sum() == out[0, 0, 0, 0]


# ---------------------------------------------------------------------------
# avg_pool2d
# ---------------------------------------------------------------------------

# (N, C, (H, W), kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
AVG_POOL_CASES = [
    (1, 1, (4, 4), 2, None, 0, False, True, None),
    (2, 3, (7, 9), 3, 2, 1, False, True, None),
    (2, 3, (7, 9), 3, 2, 1, True, False, None),
    (1, 3, (7, 9), 3, 2, 1, True, True, None),
    (1, 2, (8, 7), (3, 2), (2, 3), (1, 1), True, False, None),
    (1, 7, (10, 11), 4, 3, 2, True, True, None),
    (2, 8, (5, 6), 2, 2, 1, True, False, None),
    (1, 15, (9, 9), 3, 1, 1, False, True, 5),
    (1, 16, (9, 9), 3, 2, 1, True, False, -3),
    (1, 17, (6, 7), (2, 3), 1, (1, 1), False, False, None),
    (1, 2, (11, 11), 5, 4, 2, True, True, None),
    (1, 2, (11, 11), 5, 4, 2, True, False, 7),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=str)
def test_avg_pool2d_and_backward_match_torch(torch, case, dtype):
    N, C, (H, W), k, stride, padding, ceil_mode, cip, div = case
    rng = _rng("avg", case)
    x = rng.standard_normal((N, C, H, W)).astype(dtype)
    kw = {
        "kernel_size": k,
        "stride": stride,
        "padding": padding,
        "ceil_mode": ceil_mode,
        "count_include_pad": cip,
        "divisor_override": div,
    }
    tx = _t(torch, x).requires_grad_()
    ty = torch.nn.functional.avg_pool2d(tx, **kw)
    y = ref.avg_pool2d(x, **kw)
    assert_close(y, ty.detach().numpy(), dtype)

    gy = rng.standard_normal(y.shape).astype(dtype)
    ty.backward(_t(torch, gy))
    gx = ref.avg_pool2d_backward(gy, x.shape, **kw)
    assert_close(gx, tx.grad.numpy(), dtype)


def test_avg_pool2d_divisors_by_hand():
    x = np.ones((1, 1, 3, 3))
    # 2x2/2, padding 1: windows cover 1, 2, 2, 4 input pixels; pool_size 4 everywhere
    np.testing.assert_array_equal(ref.avg_pool2d(x, 2, 2, 1)[0, 0], [[0.25, 0.5], [0.5, 1.0]])
    np.testing.assert_array_equal(
        ref.avg_pool2d(x, 2, 2, 1, count_include_pad=False)[0, 0], np.ones((2, 2))
    )
    np.testing.assert_array_equal(
        ref.avg_pool2d(x, 2, 2, 1, divisor_override=2)[0, 0], [[0.5, 1], [1, 2]]
    )
    # ceil_mode overhang past H + pad is not counted: 3x3, k=2, s=2, ceil -> windows [0,2) and [2,3)
    np.testing.assert_array_equal(ref.avg_pool2d(x, 2, 2, 0, ceil_mode=True)[0, 0], np.ones((2, 2)))
    g = ref.avg_pool2d_backward(np.ones((1, 1, 2, 2)), x.shape, 2, 2, 0, ceil_mode=True)
    np.testing.assert_array_equal(g[0, 0], [[0.25, 0.25, 0.5], [0.25, 0.25, 0.5], [0.5, 0.5, 1.0]])


def test_avg_pool2d_float32_summation_order():
    # row-major accumulation from +0.0 in float32: ((1e8 + 1) + 1) + -1e8 = 0 (not 2)
    x = np.array([1e8, 1.0, 1.0, -1e8], dtype=np.float32).reshape(1, 1, 2, 2)
    y = ref.avg_pool2d(x, 2, divisor_override=1)
    assert y.dtype == np.float32
    expected = ((np.float32(1e8) + np.float32(1)) + np.float32(1)) + np.float32(-1e8)
    assert y.item() == expected == 0.0


def _window_loop_avg_pool(x, k, stride, pad, ceil_mode, cip, div, gy=None):
    """Naive kernel looping over windows (p, q) in row-major order, as the C++ one does.

    Returns the forward output, or with ``gy`` the input gradient (scatter
    ``dx[window] += gy[p, q] / divisor``). Arithmetic in x's dtype.
    """
    N, C, H, W = x.shape
    P, Q = ref.pool2d_output_hw((H, W), k, stride, pad, 1, ceil_mode)
    out = np.zeros((N, C, P, Q) if gy is None else x.shape, dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for p in range(P):
                for q in range(Q):
                    h0, w0 = p * stride - pad, q * stride - pad
                    h1, w1 = min(h0 + k, H + pad), min(w0 + k, W + pad)
                    pool_size = (h1 - h0) * (w1 - w0)
                    h0, w0, h1, w1 = max(h0, 0), max(w0, 0), min(h1, H), min(w1, W)
                    d = div if div is not None else pool_size if cip else (h1 - h0) * (w1 - w0)
                    d = x.dtype.type(d)
                    if gy is None:
                        acc = x.dtype.type(0)
                        for h in range(h0, h1):
                            for w in range(w0, w1):
                                acc = acc + x[n, c, h, w]
                        out[n, c, p, q] = acc / d
                    else:
                        g = gy[n, c, p, q] / d
                        for h in range(h0, h1):
                            for w in range(w0, w1):
                                out[n, c, h, w] = out[n, c, h, w] + g
    return out


@pytest.mark.parametrize(
    "k, stride, pad, ceil_mode, cip, div",
    [
        (3, 1, 1, False, True, None),
        (4, 2, 2, True, False, None),
        (3, 2, 0, True, True, 3),
        (5, 1, 2, False, False, None),
    ],
)
def test_avg_pool2d_bitwise_equals_window_loop_kernel_float32(k, stride, pad, ceil_mode, cip, div):
    rng = _rng("bitwise-avg", k, stride, pad)
    # wide dynamic range so that the summation order shows in the float32 bits
    x = (rng.standard_normal((1, 2, 9, 10)) * 10.0 ** rng.integers(-3, 4, (1, 2, 9, 10))).astype(
        np.float32
    )
    kw = {
        "kernel_size": k,
        "stride": stride,
        "padding": pad,
        "ceil_mode": ceil_mode,
        "count_include_pad": cip,
        "divisor_override": div,
    }
    y = ref.avg_pool2d(x, **kw)
    np.testing.assert_array_equal(y, _window_loop_avg_pool(x, k, stride, pad, ceil_mode, cip, div))
    gy = (rng.standard_normal(y.shape) * 10.0 ** rng.integers(-3, 4, y.shape)).astype(np.float32)
    gx = ref.avg_pool2d_backward(gy, x.shape, **kw)
    assert gx.dtype == np.float32
    np.testing.assert_array_equal(
        gx, _window_loop_avg_pool(x, k, stride, pad, ceil_mode, cip, div, gy)
    )


def test_pool_float32_bitwise_equals_torch_cpu(torch):
    """torch's CPU NCHW kernels use the same orders: float32 results are identical."""
    rng = _rng("bitwise-torch")
    x = (rng.standard_normal((2, 3, 13, 12)) * 10.0 ** rng.integers(-3, 4, (2, 3, 13, 12))).astype(
        np.float32
    )
    F = torch.nn.functional
    for kw in [
        {"kernel_size": 3, "stride": 1, "padding": 1},
        {
            "kernel_size": (4, 3),
            "stride": (2, 1),
            "padding": (2, 1),
            "ceil_mode": True,
            "count_include_pad": False,
        },
    ]:
        tx = _t(torch, x).requires_grad_()
        ty = F.avg_pool2d(tx, **kw)
        gy = rng.standard_normal(ty.shape).astype(np.float32)
        ty.backward(_t(torch, gy))
        np.testing.assert_array_equal(ref.avg_pool2d(x, **kw), ty.detach().numpy())
        np.testing.assert_array_equal(ref.avg_pool2d_backward(gy, x.shape, **kw), tx.grad.numpy())
    kw = {"kernel_size": 3, "stride": 1, "padding": 1}
    tx = _t(torch, x).requires_grad_()
    ty = F.max_pool2d(tx, **kw)
    gy = rng.standard_normal(ty.shape).astype(np.float32)
    ty.backward(_t(torch, gy))
    _, idx = ref.max_pool2d(x, return_indices=True, **kw)
    np.testing.assert_array_equal(ref.max_pool2d_backward(gy, idx, x.shape), tx.grad.numpy())


def test_avg_pool2d_errors():
    x = np.zeros((1, 1, 4, 4))
    with pytest.raises(ValueError, match="divisor_override"):
        ref.avg_pool2d(x, 2, divisor_override=0)
    with pytest.raises(ValueError, match="half"):
        ref.avg_pool2d(x, 3, padding=2)
    with pytest.raises(ValueError, match="output size"):
        ref.avg_pool2d(x, 5)
    with pytest.raises(ValueError, match="grad_output"):
        ref.avg_pool2d_backward(np.zeros((1, 1, 3, 3)), x.shape, 2)
    with pytest.raises(ValueError, match="input_shape"):
        ref.avg_pool2d_backward(np.zeros((1, 1, 2, 2)), (1, 1, 4), 2)


# ---------------------------------------------------------------------------
# linear
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("B, fin, fout", [(1, 1, 1), (3, 7, 5), (8, 16, 17), (2, 15, 3)])
def test_linear_matches_torch(torch, B, fin, fout, dtype):
    rng = _rng("linear", B, fin, fout)
    x = rng.standard_normal((B, fin)).astype(dtype)
    w = rng.standard_normal((fout, fin)).astype(dtype)
    b = rng.standard_normal(fout).astype(dtype)
    F = torch.nn.functional
    assert_close(
        ref.linear(x, w, b), F.linear(_t(torch, x), _t(torch, w), _t(torch, b)).numpy(), dtype
    )
    assert_close(ref.linear(x, w), F.linear(_t(torch, x), _t(torch, w)).numpy(), dtype)


def test_linear_errors():
    with pytest.raises(ValueError):
        ref.linear(np.zeros((2, 3)), np.zeros((4, 5)))
    with pytest.raises(ValueError, match="bias"):
        ref.linear(np.zeros((2, 3)), np.zeros((4, 3)), np.zeros(3))
    with pytest.raises(TypeError):
        ref.linear(np.zeros((2, 3), np.float32), np.zeros((4, 3)))


# ---------------------------------------------------------------------------
# Property tests (small, fast)
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(1, 2),
    cg=st.integers(1, 3),
    kg=st.integers(1, 3),
    groups=st.integers(1, 3),
    hw=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    rs=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    padding=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    seed=st.integers(0, 2**16),
)
def test_conv2d_property_matches_torch(n, cg, kg, groups, hw, rs, stride, padding, dilation, seed):
    torch = pytest.importorskip("torch")
    H, W = hw
    R, S = rs
    P, Q = ref.conv2d_output_hw(hw, rs, stride, padding, dilation)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, cg * groups, H, W))
    w = rng.standard_normal((kg * groups, cg, R, S))
    kw = {"stride": stride, "padding": padding, "dilation": dilation, "groups": groups}
    if P <= 0 or Q <= 0:
        with pytest.raises(ValueError, match="output size"):
            ref.conv2d(x, w, **kw)
        return
    tx, tw = _t(torch, x).requires_grad_(), _t(torch, w).requires_grad_()
    ty = torch.nn.functional.conv2d(tx, tw, **kw)
    assert_close(ref.conv2d(x, w, **kw), ty.detach().numpy(), np.float64)
    gy = rng.standard_normal(ty.shape)
    ty.backward(_t(torch, gy))
    gx, gw, _ = ref.conv2d_backward(gy, x, w, **kw)
    assert_close(gx, tx.grad.numpy(), np.float64)
    assert_close(gw, tw.grad.numpy(), np.float64)


@settings(max_examples=60, deadline=None)
@given(
    hw=st.tuples(st.integers(1, 8), st.integers(1, 8)),
    k=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad_frac=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    dilation=st.tuples(st.integers(1, 2), st.integers(1, 2)),
    ceil_mode=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_max_pool2d_property_matches_torch(hw, k, stride, pad_frac, dilation, ceil_mode, seed):
    torch = pytest.importorskip("torch")
    padding = (min(pad_frac[0], k[0] // 2), min(pad_frac[1], k[1] // 2))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 3, (1, 2, *hw)).astype(np.float32)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[rng.random(x.shape) < 0.2] = -np.inf
    kw = _max_pool_kwargs(k, stride, padding, dilation, ceil_mode)
    P, Q = ref.pool2d_output_hw(hw, k, stride, padding, dilation, ceil_mode)
    if P <= 0 or Q <= 0:
        with pytest.raises(ValueError, match="output size"):
            ref.max_pool2d(x, **kw)
        return
    y, idx = ref.max_pool2d(x, return_indices=True, **kw)
    ty, tidx = torch.nn.functional.max_pool2d(_t(torch, x), return_indices=True, **kw)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(idx, tidx.numpy())
