"""Max and average pooling: exact equality with fastconv.reference, every ISA.

Pooling involves no reduction whose order could differ: max pooling selects,
and the average-pooling kernel and the reference add the window (forward) and
the scattered gradients (backward) in the same, documented order, dividing
once by the same float32 divisor. So every comparison here is bitwise
(``np.array_equal``, with ``equal_nan`` where NaNs are expected), for every
case of ``cases.MAX_POOL_CASES`` / ``AVG_POOL_CASES``, every input kind
(random, many ties, NaNs, all -inf windows, mixed non-finite) and every ISA.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import AVG_POOL_CASES, MAX_POOL_CASES, PoolCase, ids, rng_for

import fastconv
from fastconv import reference as ref

# The reference's own NaN/inf arithmetic warns; that is expected here.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")

MAX_INPUTS = ["normal", "ties", "nans", "neginf", "mixed"]
AVG_INPUTS = ["normal", "ties", "nonfinite"]


def make_x(case: PoolCase, kind: str) -> np.ndarray:
    rng = rng_for("pool", case.name, kind)
    shape = case.x_shape
    if kind == "normal":
        return rng.standard_normal(shape).astype(np.float32)
    if kind == "ties":  # integer values with many repeats: ties in most windows
        return rng.integers(0, 3, shape).astype(np.float32)
    if kind == "nans":  # several NaNs per window, at random places
        x = rng.standard_normal(shape).astype(np.float32)
        x[rng.random(shape) < 0.3] = np.nan
        return x
    if kind == "neginf":  # mostly -inf: many windows hold only -inf
        x = np.full(shape, -np.inf, np.float32)
        keep = rng.random(shape) < 0.1
        x[keep] = rng.standard_normal(int(keep.sum())).astype(np.float32)
        return x
    if kind == "mixed":  # ties, NaN, +-inf together
        x = rng.integers(-1, 2, shape).astype(np.float32)
        u = rng.random(shape)
        x[u < 0.1] = np.nan
        x[(u >= 0.1) & (u < 0.25)] = -np.inf
        x[(u >= 0.25) & (u < 0.3)] = np.inf
        return x
    if kind == "nonfinite":
        x = rng.standard_normal(shape).astype(np.float32)
        u = rng.random(shape)
        x[u < 0.05] = np.nan
        x[(u >= 0.05) & (u < 0.1)] = np.inf
        x[(u >= 0.1) & (u < 0.15)] = -np.inf
        return x
    raise ValueError(kind)


def assert_identical(got, want, what=""):
    assert isinstance(got, np.ndarray), what
    assert got.dtype == want.dtype, f"{what}: dtype {got.dtype} != {want.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    if not np.array_equal(got, want, equal_nan=got.dtype.kind == "f"):
        diff = np.argwhere(
            ~(
                (got == want) | (np.isnan(got) & np.isnan(want))
                if got.dtype.kind == "f"
                else got == want
            )
        )
        i = tuple(int(v) for v in diff[0])
        pytest.fail(
            f"{what}: {len(diff)} elements differ, first at {i}: got {got[i]!r}, want {want[i]!r}"
        )
    if got.dtype.kind == "f":  # bitwise, incl. the sign of zeros
        same = (got.view(np.uint32) == want.view(np.uint32)) | (np.isnan(got) & np.isnan(want))
        assert same.all(), f"{what}: bit patterns differ (signed zeros?)"


def indices_in_plane(idx: np.ndarray, case: PoolCase) -> bool:
    return bool(((idx >= 0) & (idx < case.H * case.W)).all())


# ---------------------------------------------------------------------------
# Max pooling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", MAX_INPUTS)
@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=ids(MAX_POOL_CASES))
def test_max_pool_forward_and_backward_exact(case, kind, isa):
    x = make_x(case, kind)
    y_ref, i_ref = ref.max_pool2d(x, **case.max_kwargs, return_indices=True)
    y, idx = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)
    assert_identical(y, y_ref, "values")
    assert_identical(idx, i_ref, "indices")
    y_only = fastconv.max_pool2d(x, **case.max_kwargs)
    assert_identical(y_only, y_ref, "values without indices")

    dy = rng_for("dy", case.name, kind).standard_normal(y.shape).astype(np.float32)
    if indices_in_plane(i_ref, case):
        dx_ref = ref.max_pool2d_backward(dy, i_ref, x.shape)
        dx = fastconv.max_pool2d_backward(dy, idx, x.shape)
        assert_identical(dx, dx_ref, "backward")
    else:  # a window with no in-bounds position: its index lies outside the plane
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
            fastconv.max_pool2d_backward(dy, idx, x.shape)
        with pytest.raises(ValueError):
            ref.max_pool2d_backward(dy, i_ref, x.shape)


def test_max_pool_empty_window_case_is_exercised():
    """The table must keep a window with no in-bounds position (index outside the plane)."""
    case = next(c for c in MAX_POOL_CASES if c.name == "empty_window_d2")
    _, idx = ref.max_pool2d(
        np.zeros(case.x_shape, np.float32), **case.max_kwargs, return_indices=True
    )
    assert not indices_in_plane(idx, case)


def test_max_pool_overlapping_backward_sums_gradients(isa):
    # A single large value at (2, 2) is the maximum of the 4 overlapping windows
    # (0..2, 0..2), (0..2, 2..4), (2..4, 0..2), (2..4, 2..4) of a 5x5 plane.
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 1.0
    _y, idx = fastconv.max_pool2d(x, 3, 2, return_indices=True)
    np.testing.assert_array_equal(idx, np.full((1, 1, 2, 2), 12))
    dy = np.array([[[[1e8, 1.0], [-1e8, 3.0]]]], np.float32)
    dx = fastconv.max_pool2d_backward(dy, idx, x.shape)
    # Row-major (p, q) order in float32: ((0 + 1e8) + 1) - 1e8 + 3 = 3, since 1e8 + 1
    # rounds to 1e8 (any other order gives 4 or 0 or 1).
    want = np.zeros_like(x)
    want[0, 0, 2, 2] = 3.0
    assert_identical(dx, want)
    assert_identical(dx, ref.max_pool2d_backward(dy, idx, x.shape))


@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=ids(MAX_POOL_CASES))
def test_max_pool_indices_match_torch(case):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for kind in MAX_INPUTS:
        x = make_x(case, kind)
        y, idx = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)
        yt, it = F.max_pool2d(torch.from_numpy(x), **case.max_kwargs, return_indices=True)
        assert_identical(y, yt.numpy(), f"values vs torch ({kind})")
        assert_identical(idx, it.numpy(), f"indices vs torch ({kind})")


@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=ids(MAX_POOL_CASES))
def test_max_pool_outputs_overwritten(case, isa, output_fill):
    x = make_x(case, "normal")
    y0, i0 = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)
    dy = np.ones(y0.shape, np.float32)
    output_fill(np.nan)  # float outputs start as NaN, index outputs as -1
    y, idx = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)
    y_only = fastconv.max_pool2d(x, **case.max_kwargs)
    # Finite input: no NaN (an empty window legitimately gives -inf).
    assert not np.isnan(y).any() and not np.isnan(y_only).any()
    assert_identical(y, y0)
    assert_identical(y_only, y0)
    assert_identical(idx, i0)
    if indices_in_plane(i0, case):
        dx = fastconv.max_pool2d_backward(dy, i0, x.shape)
        output_fill(None)
        assert np.isfinite(dx).all()
        assert_identical(dx, fastconv.max_pool2d_backward(dy, i0, x.shape))


def test_max_pool_stride_defaults_to_kernel():
    x = make_x(MAX_POOL_CASES[0], "normal")
    a = fastconv.max_pool2d(x, 2)
    b = fastconv.max_pool2d(x, 2, stride=2)
    c = fastconv.max_pool2d(x, (2, 2), (2, 2), 0, 1, False, False)
    assert a.shape == (1, 3, 4, 8)
    assert_identical(a, b)
    assert_identical(a, c)
    # An empty stride is PyTorch's "not given" too.
    assert_identical(a, fastconv.max_pool2d(x, 2, stride=()))
    assert_identical(a, fastconv.max_pool2d(x, 2, stride=[]))


def test_avg_pool_stride_defaults_to_kernel():
    x = make_x(MAX_POOL_CASES[0], "normal")
    a = fastconv.avg_pool2d(x, 2)
    assert a.shape == (1, 3, 4, 8)
    for stride in (None, (), [], 2, (2, 2)):
        assert_identical(a, fastconv.avg_pool2d(x, 2, stride=stride))
    dy = np.ones_like(a)
    want = fastconv.avg_pool2d_backward(dy, x.shape, 2)
    assert_identical(want, fastconv.avg_pool2d_backward(dy, x.shape, 2, stride=()))
    for fn in (ref.avg_pool2d, ref.max_pool2d):
        np.testing.assert_array_equal(fn(x, 2, stride=()), fn(x, 2))


# ---------------------------------------------------------------------------
# Average pooling
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", AVG_INPUTS)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=ids(AVG_POOL_CASES))
def test_avg_pool_forward_exact(case, kind, isa):
    x = make_x(case, kind)
    assert_identical(
        fastconv.avg_pool2d(x, **case.avg_kwargs), ref.avg_pool2d(x, **case.avg_kwargs)
    )


@pytest.mark.parametrize("kind", AVG_INPUTS)
@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=ids(AVG_POOL_CASES))
def test_avg_pool_backward_exact(case, kind, isa):
    y_shape = ref.avg_pool2d(np.zeros(case.x_shape, np.float32), **case.avg_kwargs).shape
    dy = make_x(PoolCase(case.name, *y_shape, kernel_size=1), kind)
    dx = fastconv.avg_pool2d_backward(dy, case.x_shape, **case.avg_kwargs)
    dx_ref = ref.avg_pool2d_backward(dy, case.x_shape, **case.avg_kwargs)
    assert_identical(dx, dx_ref)


@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=ids(AVG_POOL_CASES))
def test_avg_pool_outputs_overwritten(case, isa, output_fill):
    x = make_x(case, "normal")
    y0 = fastconv.avg_pool2d(x, **case.avg_kwargs)
    dy = make_x(PoolCase(case.name, *y0.shape, kernel_size=1), "normal")
    dx0 = fastconv.avg_pool2d_backward(dy, case.x_shape, **case.avg_kwargs)
    output_fill(np.nan)
    y = fastconv.avg_pool2d(x, **case.avg_kwargs)
    dx = fastconv.avg_pool2d_backward(dy, case.x_shape, **case.avg_kwargs)
    assert np.isfinite(y).all() and np.isfinite(dx).all()
    assert_identical(y, y0)
    assert_identical(dx, dx0)


@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=ids(AVG_POOL_CASES))
def test_avg_pool_close_to_torch(case):
    """A sanity check of the divisor rules against PyTorch (not bitwise: torch may
    sum in another order)."""
    torch = pytest.importorskip("torch")
    x = make_x(case, "normal")
    y = fastconv.avg_pool2d(x, **case.avg_kwargs)
    kw = dict(case.avg_kwargs)
    yt = torch.nn.functional.avg_pool2d(torch.from_numpy(x), **kw).numpy()
    np.testing.assert_allclose(y, yt, rtol=1e-6, atol=1e-6)


def test_avg_pool_divisor_rules_by_hand():
    """3x3 windows, stride 2, padding 1 on a 4x4 plane of ones."""
    x = np.ones((1, 1, 4, 4), np.float32)
    # Window (0,0) covers 2x2 input + 5 padding; window (1,1) covers 3x3 input... of a 4x4:
    # rows 1..3, cols 1..3 -> 9 inputs.
    inc = fastconv.avg_pool2d(x, 3, 2, 1, count_include_pad=True)
    exc = fastconv.avg_pool2d(x, 3, 2, 1, count_include_pad=False)
    div = fastconv.avg_pool2d(x, 3, 2, 1, divisor_override=2)
    np.testing.assert_array_equal(inc[0, 0], np.float32([[4 / 9, 6 / 9], [6 / 9, 9 / 9]]))
    np.testing.assert_array_equal(exc[0, 0], np.ones((2, 2), np.float32))
    np.testing.assert_array_equal(div[0, 0], np.float32([[2, 3], [3, 4.5]]))
