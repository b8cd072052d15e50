"""fastconv.strategies.cython (the Cython baseline of ``fastconv bench``) against the reference.

The same oracles as the fast ops: convolutions within the rounding bound of
the float64 reference (``test_conv2d.assert_within_rounding``), on every case
of ``cases.CONV_CASES`` and ``PADDING_ONLY_TAP_CASES`` plus the corner cases
below; max pooling bitwise equal to the reference (values, indices and the
backward scatter) on every case of ``cases.MAX_POOL_CASES`` and every input
kind of ``test_pool2d``; the same on the random problems of ``cases``
(hypothesis). Then: output_mask, thread-count determinism,
non-contiguous inputs, and the errors of every check (TypeError for dtypes,
ValueError naming the shapes).

Everything but the missing-module test skips when the module is not built.
"""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
from cases import (
    CONV_CASES,
    MAX_POOL_CASES,
    PADDING_ONLY_TAP_CASES,
    ConvCase,
    conv_problems,
    ids,
    pool_input,
    pool_problems,
    rng_for,
)
from child import run_child
from hypothesis import given
from hypothesis import strategies as st
from test_conv2d import (
    PASSES,
    ConvData,
    assert_within_rounding,
    conv_data,
    reduction_lengths,
    reference_abs,
    reference_passes,
    rounding_bound,
)
from test_gemm import OBJDUMP, _avx_lines, _disassemble
from test_pool2d import MAX_INPUTS, assert_identical, make_x

import fastconv
from fastconv import reference as ref
from fastconv import strategies

cy = strategies.cython
needs_cython = pytest.mark.skipif(
    strategies.cython_error is not None,
    reason=f"the Cython strategy is not available: {strategies.cython_error}",
)

# fmt: off
EXTRA_CONV_CASES = [
    ConvCase("empty_batch",       N=0, C=3, H=5, W=6, K=4, R=3, S=3, padding=1),
    ConvCase("empty_batch_g2_s2", N=0, C=4, H=7, W=5, K=2, R=2, S=3, stride=2, groups=2),
    ConvCase("zero_channels",     N=2, C=0, H=4, W=5, K=3, R=3, S=3),
    ConvCase("zero_filters",      N=2, C=3, H=4, W=5, K=0, R=3, S=3, padding=1),
    ConvCase("odd_asym_all",      N=3, C=6, H=13, W=11, K=9, R=3, S=2, stride=(2, 3),
             padding=(1, 0), dilation=(1, 2), groups=3),
    ConvCase("same_even_s2_d2",   N=2, C=4, H=9, W=12, K=6, R=4, S=2, stride=(2, 1),
             padding="same", dilation=(2, 1), groups=2, bias=False),
    ConvCase("valid_g4_nobias",   N=2, C=8, H=6, W=7, K=4, R=2, S=3, padding="valid", groups=4,
             bias=False),
]
# fmt: on
ALL_CONV_CASES = CONV_CASES + PADDING_ONLY_TAP_CASES + EXTRA_CONV_CASES
MASKS = list(itertools.product((False, True), repeat=3))


def cython_passes(case: ConvCase, d, output_mask=(True, True, True)) -> dict:
    """The strategy's result of every pass wanted by output_mask."""
    y = cy.conv2d(d.x, d.w, d.b, **case.kwargs)
    grads = cy.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, output_mask=output_mask)
    return dict(zip(PASSES, (y, *grads)))


# ---------------------------------------------------------------------------
# Convolution
# ---------------------------------------------------------------------------


@needs_cython
@pytest.mark.parametrize("case", ALL_CONV_CASES, ids=ids(ALL_CONV_CASES))
def test_conv_matches_reference(case):
    d = conv_data(case)
    for pass_, got in cython_passes(case, d).items():
        assert_within_rounding(got, d.ref[pass_], d.ref_abs[pass_], d.L[pass_], f"{pass_}")


@needs_cython
@given(conv_problems(), st.integers(1, 2))
def test_random_conv_matches_reference(problem, threads):
    case, seed = problem
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape).astype(np.float32)
    w = rng.standard_normal(case.w_shape).astype(np.float32)
    b = rng.standard_normal(case.K).astype(np.float32) if case.bias else None
    dy = rng.standard_normal(case.y_shape).astype(np.float32)
    d = ConvData(
        x,
        w,
        b,
        dy,
        reference_passes(case, x, w, b, dy),
        reference_abs(case, x, w, b, dy),
        reduction_lengths(case, case.bias),
    )
    for pass_, got in cython_passes(case, d).items():
        assert_within_rounding(got, d.ref[pass_], d.ref_abs[pass_], d.L[pass_], f"{pass_} {case}")


@needs_cython
@pytest.mark.parametrize("case", [CONV_CASES[3], EXTRA_CONV_CASES[4]], ids=lambda c: c.name)
def test_conv_backward_output_mask(case):
    """Each mask computes exactly the wanted gradients, bitwise equal to the full call."""
    d = conv_data(case)
    full = cython_passes(case, d)
    for mask in MASKS:
        grads = cy.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, output_mask=mask)
        for want, pass_, got in zip(mask, PASSES[1:], grads):
            if not want:
                assert got is None, (mask, pass_)
            else:
                assert_identical(got, full[pass_], f"{pass_} with mask {mask}")


@needs_cython
def test_conv_agrees_with_fastconv_functional():
    """Same semantics as fastconv.functional on a case with every parameter set."""
    case = EXTRA_CONV_CASES[4]
    d = conv_data(case)
    mine = cython_passes(case, d)
    y = fastconv.conv2d(d.x, d.w, d.b, **case.kwargs)
    theirs = dict(zip(PASSES, (y, *fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs))))
    for pass_ in PASSES:
        bound = 2 * rounding_bound(d.ref_abs[pass_], d.L[pass_])
        assert (np.abs(mine[pass_].astype(np.float64) - theirs[pass_]) <= bound).all(), pass_


@needs_cython
def test_conv_non_contiguous_inputs():
    case = CONV_CASES[3]
    d = conv_data(case)
    want = cython_passes(case, d)
    x, w = np.asfortranarray(d.x), d.w[::-1].copy()[::-1]
    dy = np.asfortranarray(d.dy)
    assert not x.flags.c_contiguous and not w.flags.c_contiguous
    got = cy.conv2d(x, w, d.b[::-1].copy()[::-1], **case.kwargs)
    assert_identical(got, want["forward"])
    for pass_, g in zip(PASSES[1:], cy.conv2d_backward(dy, x, w, **case.kwargs)):
        assert_identical(g, want[pass_], pass_)


# ---------------------------------------------------------------------------
# Max pooling: bitwise equal to the reference
# ---------------------------------------------------------------------------


def check_max_pool(x: np.ndarray, kwargs: dict, dy_rng: np.random.Generator, what: str):
    """Values, indices and the backward scatter bitwise equal to the reference's."""
    y_ref, i_ref = ref.max_pool2d(x, **kwargs, return_indices=True)
    y, idx = cy.max_pool2d(x, **kwargs, return_indices=True)
    assert_identical(y, y_ref, f"values {what}")
    assert_identical(idx, i_ref, f"indices {what}")
    assert_identical(cy.max_pool2d(x, **kwargs), y_ref, f"values without indices {what}")
    dy = dy_rng.standard_normal(y.shape).astype(np.float32)
    if ((i_ref >= 0) & (i_ref < x.shape[2] * x.shape[3])).all():
        want = ref.max_pool2d_backward(dy, i_ref, x.shape)
        assert_identical(cy.max_pool2d_backward(dy, idx, x.shape), want, f"backward {what}")
    else:  # a window with no in-bounds position: its index lies outside the plane
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
            cy.max_pool2d_backward(dy, idx, x.shape)
    return idx


@needs_cython
@pytest.mark.parametrize("kind", MAX_INPUTS)
@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=ids(MAX_POOL_CASES))
def test_max_pool_matches_reference_exactly(case, kind):
    x = make_x(case, kind)
    idx = check_max_pool(x, case.max_kwargs, rng_for("dy", case.name, kind), kind)
    functional = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)[1]
    assert_identical(idx, functional, "indices of fastconv.max_pool2d")


@needs_cython
def test_max_pool_backward_sums_overlaps_in_order():
    """Overlapping windows that pick one element add up in row-major (p, q) order."""
    x = np.zeros((1, 1, 5, 5), np.float32)
    x[0, 0, 2, 2] = 1.0
    _, idx = cy.max_pool2d(x, 3, 2, return_indices=True)
    np.testing.assert_array_equal(idx, np.full((1, 1, 2, 2), 12))
    dy = np.array([[[[1e8, 1.0], [-1e8, 3.0]]]], np.float32)
    want = np.zeros_like(x)
    want[0, 0, 2, 2] = 3.0  # ((0 + 1e8) + 1) - 1e8 + 3 in float32
    assert_identical(cy.max_pool2d_backward(dy, idx, x.shape), want)


@needs_cython
@given(pool_problems(), st.integers(1, 2))
def test_random_max_pool_matches_reference_exactly(problem, threads):
    case, kind, seed = problem
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    check_max_pool(pool_input(case.x_shape, kind, rng), case.max_kwargs, rng, f"{case} {kind}")


@needs_cython
@pytest.mark.parametrize("shape", [(0, 3, 6, 5), (2, 0, 6, 5)])
def test_max_pool_empty(shape):
    x = np.zeros(shape, np.float32)
    y, idx = cy.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    y_ref, i_ref = ref.max_pool2d(x, 3, 2, 1, ceil_mode=True, return_indices=True)
    assert_identical(y, y_ref)
    assert_identical(idx, i_ref)
    assert_identical(cy.max_pool2d_backward(y, idx, shape), np.zeros(shape, np.float32))


# ---------------------------------------------------------------------------
# Threads: bitwise identical for 1 and 2 threads
# ---------------------------------------------------------------------------


@needs_cython
def test_results_do_not_depend_on_thread_count():
    rng = rng_for("cython threads")
    f32 = lambda *s: rng.standard_normal(s).astype(np.float32)
    x, w, b = f32(5, 6, 13, 15), f32(8, 3, 3, 3), f32(8)
    kw = {"stride": (2, 1), "padding": "same", "groups": 2}
    dy = f32(5, 8, 7, 15)
    runs = []
    for threads in (1, 2, 1, 2):
        fastconv.set_num_threads(threads)
        y, idx = cy.max_pool2d(x, 3, 2, 1, return_indices=True)
        runs.append(
            [
                cy.conv2d(x, w, b, **kw),
                *cy.conv2d_backward(dy, x, w, **kw),
                y,
                idx,
                cy.max_pool2d_backward(y, idx, x.shape),
            ]
        )
    for run in runs[1:]:
        for got, want in zip(run, runs[0]):
            assert_identical(got, want)


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

X, W = np.ones((2, 4, 6, 6), np.float32), np.ones((3, 4, 3, 3), np.float32)
DY = np.ones((2, 3, 4, 4), np.float32)  # conv2d(X, W)'s output
DP = np.ones((2, 4, 3, 3), np.float32)  # max_pool2d(X, 2)'s output


@needs_cython
@pytest.mark.parametrize(
    "call",
    [
        lambda: cy.conv2d(X.astype(np.float64), W),
        lambda: cy.conv2d(X, W.astype(np.float16)),
        lambda: cy.conv2d(X, W, np.ones(3, np.float64)),
        lambda: cy.conv2d(X.astype(np.int32), W),
        lambda: cy.conv2d_backward(DY.astype(np.float64), X, W),
        lambda: cy.max_pool2d(X.astype(np.float64), 2),
        lambda: cy.max_pool2d_backward(DP, np.zeros(DP.shape, np.int32), X.shape),
        lambda: cy.max_pool2d_backward(
            DP.astype(np.float64), np.zeros(DP.shape, np.int64), X.shape
        ),
    ],
)
def test_wrong_dtypes_raise_type_error(call):
    with pytest.raises(TypeError, match="must have dtype"):
        call()


@needs_cython
@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cy.conv2d(X[0], W), r"x must be 4-D"),
        (lambda: cy.conv2d(X, W[:, :3]), r"weight shape \(3, 3, 3, 3\) needs C/groups = 3"),
        (lambda: cy.conv2d(X, W, groups=3), r"groups=3 must divide"),
        (lambda: cy.conv2d(X, W, np.ones(4, np.float32)), r"bias must have shape \(3,\)"),
        (lambda: cy.conv2d(X, W, padding="full"), r"padding must be"),
        (lambda: cy.conv2d(X, W, stride=0), r"stride must be >= 1"),
        (lambda: cy.conv2d(X, np.ones((3, 4, 7, 7), np.float32)), r"not positive"),
        (
            lambda: cy.conv2d_backward(DY[:, :2], X, W),
            r"grad_output must have shape \(2, 3, 4, 4\)",
        ),
        (lambda: cy.conv2d_backward(DY, X, W, output_mask=(True,)), r"output_mask must have 3"),
        (lambda: cy.max_pool2d(X, 2, padding=2), r"padding \(2, 2\) must be at most half"),
        (lambda: cy.max_pool2d(X, 7), r"not positive"),
        (
            lambda: cy.max_pool2d_backward(DP, np.full(DP.shape, 36, np.int64), X.shape),
            r"indices must lie in \[0, H\*W\) = \[0, 36\)",
        ),
        (
            lambda: cy.max_pool2d_backward(DP, np.zeros((2, 4, 3, 5), np.int64), X.shape),
            r"indices shape \(2, 4, 3, 5\) differs",
        ),
        (
            lambda: cy.max_pool2d_backward(DP, np.zeros(DP.shape, np.int64), (2, 4, 6)),
            r"input_shape",
        ),
        (
            lambda: cy.max_pool2d_backward(DP, np.zeros(DP.shape, np.int64), (2, 3, 6, 6)),
            r"does not match input_shape",
        ),
    ],
)
def test_bad_shapes_raise_value_error(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@needs_cython
@pytest.mark.skipif(OBJDUMP is None, reason="objdump is not installed")
def test_built_for_the_baseline_isa():
    """Baseline flags only (never -march=native): no AVX instruction in the module."""
    from fastconv import _cython_conv

    bad = _avx_lines(_disassemble(_cython_conv.__file__))
    assert not bad, "AVX in _cython_conv: " + "; ".join(f"{f}: {i}" for f, i in bad[:5])


def test_missing_module_is_reported_not_fatal():
    """Without the compiled module, the import works, cython_error says why and calls raise."""
    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'fastconv._cython_conv':\n"
        "            raise ImportError('blocked for the test')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import numpy as np\n"
        "from fastconv import strategies\n"
        "assert 'blocked for the test' in strategies.cython_error, strategies.cython_error\n"
        "try:\n"
        "    strategies.cython.conv2d(np.ones((1, 1, 3, 3), np.float32), np.ones((1, 1, 1, 1), np.float32))\n"
        "except ImportError as e:\n"
        "    assert str(e) == strategies.cython_error\n"
        "    print('ok')\n"
    )
    r = run_child([sys.executable, "-c", code], 120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stdout + r.stderr
