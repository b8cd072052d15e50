"""fastconv.conv2d and conv2d_backward against the float64 reference.

Every (case of ``cases.CONV_CASES``) x (algo: direct, im2col, auto) x (every ISA
the CPU runs) x (pass: forward, backward-input, backward-weight, backward-bias)
is compared with :mod:`fastconv.reference` evaluated in float64 on the very
same float32 inputs.

Tolerance rule (implemented once, in :func:`assert_within_rounding`)
--------------------------------------------------------------------
Each output element is a float32 sum of ``L`` products of float32 numbers.
Whatever the order of the additions (blocked GEMM, SIMD lanes, trees, FMA or
not), the standard bound for such a dot product is ``gamma_L * sum|terms|``
with ``gamma_L = L*u / (1 - L*u)`` and ``u = 2**-24`` the unit roundoff. The
reference computes the exact products (a float32 x float32 product is exact in
float64) and sums them with a float64 error ~2**-53 smaller, so it is the exact
value for our purpose. We therefore require, element-wise::

    |fast - ref64| <= C_TOL * L * EPS32 * ref_abs + TINY

where ``EPS32 = np.finfo(np.float32).eps = 2**-23 = 2u``, ``ref_abs`` is the
same reference op applied to the absolute values of the operands (|x|, |w|,
|b| or |dy|), i.e. ``sum|terms|``, and ``TINY`` is float32's smallest normal
number (only relevant where ``ref_abs == 0``: then every term is zero and the
result must be exactly 0). ``L`` is the reduction length:

* forward: ``C/groups * R * S`` (+1 for the bias),
* backward-input: ``K/groups * R * S``,
* backward-weight and backward-bias: ``N * P * Q``.

``C_TOL = 1``: with ``EPS32 = 2u`` this is already twice the worst-case bound,
and it is still tight enough to catch a wrong index, a missing term or a wrong
padding in every case of the table (``test_tolerance_catches_*`` proves it on
the same data: perturbed reference results must fail the same check).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np
import pytest
from cases import CONV_CASES, PADDING_ONLY_TAP_CASES, ConvCase, ids, rng_for

import fastconv
from fastconv import _core
from fastconv import reference as ref

CONCRETE_ALGOS = _core.conv_algos()[1:]  # every algorithm but "auto"
ALGOS = [*CONCRETE_ALGOS, "auto"]
PASSES = ["forward", "backward_input", "backward_weight", "backward_bias"]

EPS32 = float(np.finfo(np.float32).eps)
TINY = float(np.finfo(np.float32).tiny)
C_TOL = 1.0


def runnable_isas() -> list:
    """The compiled ISAs this CPU can run (the active one is left unchanged)."""
    before = _core.build_info()["isa_active"]
    out = []
    for name in _core.build_info()["isas_compiled"]:
        try:
            _core._set_isa(name)
        except RuntimeError:
            continue
        out.append(name)
    _core._set_isa(before)
    return out


# ---------------------------------------------------------------------------
# The tolerance rule
# ---------------------------------------------------------------------------


def rounding_bound(ref_abs: np.ndarray, L: int) -> np.ndarray:
    """Largest error allowed for a float32 sum of L products with sum|terms| = ref_abs."""
    return C_TOL * L * EPS32 * np.asarray(ref_abs, dtype=np.float64) + TINY


def within_rounding(fast: np.ndarray, ref64: np.ndarray, ref_abs: np.ndarray, L: int):
    """Boolean mask of the elements that satisfy the tolerance rule (NaN fails)."""
    err = np.abs(np.asarray(fast, dtype=np.float64) - ref64)
    return err <= rounding_bound(ref_abs, L)


def assert_within_rounding(fast, ref64, ref_abs, L, what=""):
    """Assert ``|fast - ref64| <= C_TOL * L * EPS32 * ref_abs + TINY`` element-wise."""
    assert isinstance(fast, np.ndarray), f"{what}: got {type(fast).__name__}"
    assert fast.dtype == np.float32, f"{what}: dtype {fast.dtype}"
    assert fast.shape == ref64.shape, f"{what}: shape {fast.shape} != {ref64.shape}"
    ok = within_rounding(fast, ref64, ref_abs, L)
    if not ok.all():
        bad = np.argwhere(~ok)
        lines = []
        for i in bad[:5]:
            i = tuple(int(v) for v in i)
            lines.append(
                f"  at {i}: fast={float(fast[i])!r} ref={float(ref64[i])!r} "
                f"err={abs(float(fast[i]) - float(ref64[i])):.3g} "
                f"bound={float(rounding_bound(ref_abs[i], L)):.3g}"
            )
        pytest.fail(
            f"{what}: {len(bad)} of {fast.size} elements outside the rounding bound "
            f"(L={L}, C_TOL={C_TOL}):\n" + "\n".join(lines)
        )


def assert_same_nonfinite(fast, ref64, ref_abs, L, what=""):
    """NaN and +-inf exactly where the reference has them; finite elements within tolerance."""
    assert fast.shape == ref64.shape, what
    np.testing.assert_array_equal(np.isnan(fast), np.isnan(ref64), err_msg=f"{what}: NaN pattern")
    np.testing.assert_array_equal(
        np.isposinf(fast), np.isposinf(ref64), err_msg=f"{what}: +inf pattern"
    )
    np.testing.assert_array_equal(
        np.isneginf(fast), np.isneginf(ref64), err_msg=f"{what}: -inf pattern"
    )
    fin = np.isfinite(ref64)
    ref_abs = np.where(fin, ref_abs, 0.0)
    ok = within_rounding(np.where(fin, fast, 0), np.where(fin, ref64, 0), ref_abs, L)
    assert ok.all(), f"{what}: finite elements outside tolerance at {np.argwhere(~ok)[:5]}"


# ---------------------------------------------------------------------------
# Data and references, computed once per case
# ---------------------------------------------------------------------------


def reduction_lengths(case: ConvCase, with_bias: bool) -> dict:
    P, Q = case.out_hw
    Cg, Kg = case.C // case.groups, case.K // case.groups
    return {
        "forward": Cg * case.R * case.S + (1 if with_bias else 0),
        "backward_input": Kg * case.R * case.S,
        "backward_weight": case.N * P * Q,
        "backward_bias": case.N * P * Q,
    }


@dataclass
class ConvData:
    x: np.ndarray
    w: np.ndarray
    b: np.ndarray | None
    dy: np.ndarray
    ref: dict  # pass -> float64 reference
    ref_abs: dict  # pass -> float64 reference on absolute values
    L: dict  # pass -> reduction length


def make_inputs(case: ConvCase, seed_key=()):
    rng = rng_for("conv", case.name, *seed_key)
    x = rng.standard_normal(case.x_shape).astype(np.float32)
    w = rng.standard_normal(case.w_shape).astype(np.float32)
    b = rng.standard_normal(case.K).astype(np.float32) if case.bias else None
    P, Q = case.out_hw
    dy = rng.standard_normal((case.N, case.K, P, Q)).astype(np.float32)
    return x, w, b, dy


def reference_passes(case: ConvCase, x, w, b, dy):
    """float64 reference results of every pass, for the given float32 operands."""
    f64 = lambda a: None if a is None else a.astype(np.float64)
    x64, w64, b64, dy64 = f64(x), f64(w), f64(b), f64(dy)
    y = ref.conv2d(x64, w64, b64, **case.kwargs)
    dx, dw, db = ref.conv2d_backward(dy64, x64, w64, **case.kwargs)
    return {"forward": y, "backward_input": dx, "backward_weight": dw, "backward_bias": db}


def reference_abs(case: ConvCase, x, w, b, dy):
    """sum|terms| of every output element: the reference on absolute values."""
    absn = lambda a: None if a is None else np.abs(a)
    return reference_passes(case, absn(x), absn(w), absn(b), absn(dy))


@functools.cache
def conv_data(case: ConvCase) -> ConvData:
    x, w, b, dy = make_inputs(case)
    return ConvData(
        x,
        w,
        b,
        dy,
        reference_passes(case, x, w, b, dy),
        reference_abs(case, x, w, b, dy),
        reduction_lengths(case, b is not None),
    )


def run_pass(case: ConvCase, d: ConvData, pass_: str, algo: str) -> np.ndarray:
    if pass_ == "forward":
        return fastconv.conv2d(d.x, d.w, d.b, **case.kwargs, algo=algo)
    i = ["backward_input", "backward_weight", "backward_bias"].index(pass_)
    mask = tuple(j == i for j in range(3))
    out = fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo, output_mask=mask)
    assert all((o is None) == (j != i) for j, o in enumerate(out))
    return out[i]


# ---------------------------------------------------------------------------
# The matrix: case x algo x ISA x pass
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CONV_CASES, ids=ids(CONV_CASES))
@pytest.mark.parametrize("pass_", PASSES)
def test_matches_reference(pass_, case, algo, isa):
    d = conv_data(case)
    fast = run_pass(case, d, pass_, algo)
    assert_within_rounding(
        fast, d.ref[pass_], d.ref_abs[pass_], d.L[pass_], f"{pass_} {case.name} {algo} {isa}"
    )


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CONV_CASES, ids=ids(CONV_CASES))
def test_outputs_overwritten_not_read(case, algo, isa, output_fill):
    """Outputs pre-filled with NaN (or a huge value) come back finite and unchanged."""
    d = conv_data(case)
    plain_y = fastconv.conv2d(d.x, d.w, d.b, **case.kwargs, algo=algo)
    plain_g = fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo)
    for fill in (np.nan, 3.0e38):
        output_fill(fill)
        y = fastconv.conv2d(d.x, d.w, d.b, **case.kwargs, algo=algo)
        grads = fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo)
        output_fill(None)
        for name, got, plain in zip(("y", "dx", "dw", "db"), (y, *grads), (plain_y, *plain_g)):
            assert np.isfinite(got).all(), f"{name} not fully overwritten (fill {fill})"
            np.testing.assert_array_equal(got, plain, err_msg=f"{name} depends on fill {fill}")


@pytest.mark.parametrize("case", CONV_CASES, ids=ids(CONV_CASES))
def test_algos_agree(case, isa):
    """Every algorithm agrees with im2col within twice the bound; auto is bitwise the
    algo it chose."""
    d = conv_data(case)
    shapes = (d.x.shape, d.w.shape)
    chosen = {
        p: _core.conv2d_choose_algo(
            p, *shapes, case.stride, case.padding, case.dilation, case.groups
        )
        for p in ("forward", "backward_input", "backward_weight")
    }
    chosen["backward_bias"] = "direct"  # the bias gradient has one algorithm
    for pass_ in PASSES:
        r = {a: run_pass(case, d, pass_, a) for a in ALGOS}
        assert chosen[pass_] in CONCRETE_ALGOS
        np.testing.assert_array_equal(
            r["auto"], r[chosen[pass_]], err_msg=f"{pass_}: auto != {chosen[pass_]}"
        )
        bound = 2 * rounding_bound(d.ref_abs[pass_], d.L[pass_])
        for algo in CONCRETE_ALGOS:
            diff = np.abs(r[algo].astype(np.float64) - r["im2col"])
            assert (diff <= bound).all(), f"{pass_}: {algo} and im2col differ by {diff.max()}"


def test_choose_algo_names_a_real_algo():
    """conv2d_choose_algo resolves "auto" to a real algorithm, for every pass."""
    seen = set()
    for case in CONV_CASES:
        for p in ("forward", "backward_input", "backward_weight"):
            got = _core.conv2d_choose_algo(
                p,
                case.x_shape,
                case.w_shape,
                case.stride,
                case.padding,
                case.dilation,
                case.groups,
            )
            assert got in CONCRETE_ALGOS, (case.name, p, got)
            seen.add(got)
    # The table is built so that auto exercises every algorithm.
    assert seen == set(CONCRETE_ALGOS)


# ---------------------------------------------------------------------------
# The tolerance is tight: perturbed references fail it
# ---------------------------------------------------------------------------


def _shift_w(a: np.ndarray) -> np.ndarray:
    """Move every row one column to the left, zero-filling the right (an off-by-one index)."""
    out = np.zeros_like(a)
    out[..., :-1] = a[..., 1:]
    return out


@pytest.mark.parametrize("case", CONV_CASES, ids=ids(CONV_CASES))
def test_tolerance_catches_errors(case):
    """A missing term, an off-by-one index and a wrong padding each violate the bound."""
    d = conv_data(case)

    def fails(pass_, x, w, b, dy):
        perturbed = reference_passes(case, x, w, b, dy)[pass_].astype(np.float32)
        return not within_rounding(perturbed, d.ref[pass_], d.ref_abs[pass_], d.L[pass_]).all()

    x, w, b, dy = d.x, d.w, d.b, d.dy
    # Missing term: one weight tap of one filter is skipped.
    w_miss = w.copy()
    w_miss[0, 0, case.R // 2, case.S // 2] = 0
    assert fails("forward", x, w_miss, b, dy)
    assert fails("backward_input", x, w_miss, b, dy)
    # Missing term: one output gradient (of a window that reads the input) is
    # skipped. (Over the thousands of terms of the blocking cases one term of
    # size ~1 is inside the bound: L * eps * sum|terms| grows as L^2.)
    dy_miss = dy.copy()
    dy_miss[-1, -1, dy.shape[2] // 2, dy.shape[3] // 2] = 0
    if d.L["backward_bias"] <= 2048:
        assert fails("backward_weight", x, w, b, dy_miss)
        assert fails("backward_bias", x, w, b, dy_miss)
    # Off-by-one index / wrong padding: the input (gradient) read one column over.
    if case.W > 1:
        assert fails("forward", _shift_w(x), w, b, dy)
        assert fails("backward_weight", _shift_w(x), w, b, dy)
    if d.dy.shape[3] > 1:
        assert fails("backward_input", x, w, b, _shift_w(dy))
    # Missing bias.
    if b is not None:
        assert fails("forward", x, w, None, dy)


def test_tolerance_catches_wrong_padding():
    """Padding one pixel too few on the left (and one more on the right) is caught."""
    case = next(c for c in CONV_CASES if c.name == "p2_3x3")
    d = conv_data(case)
    x64, w64 = d.x.astype(np.float64), d.w.astype(np.float64)
    # top/bottom 2, left 1 and right 3 instead of 2 and 2: same output size.
    xp = np.pad(x64, ((0, 0), (0, 0), (2, 2), (1, 3)))
    wrong = ref.conv2d(xp, w64, d.b.astype(np.float64)).astype(np.float32)
    assert not within_rounding(wrong, d.ref["forward"], d.ref_abs["forward"], d.L["forward"]).all()


@pytest.mark.isolated
def test_taps_reading_only_padding():
    """Every algo, ISA and pass on shapes where some taps never read the input.

    Runs in a child process: these shapes once made im2col write outside its
    buffers. Bitwise-NaN pre-fill is on, so the outputs must also be fully written.
    """
    _core._set_output_fill(np.nan)
    failures = []
    for isa in runnable_isas():
        _core._set_isa(isa)
        for case in PADDING_ONLY_TAP_CASES:
            d = conv_data(case)
            for algo in ALGOS:
                for pass_ in PASSES:
                    fast = run_pass(case, d, pass_, algo)
                    ok = within_rounding(fast, d.ref[pass_], d.ref_abs[pass_], d.L[pass_])
                    if not ok.all():
                        failures.append(f"{case.name} {algo} {isa} {pass_}")
    assert not failures, "wrong results:\n" + "\n".join(failures)


# Random shapes: tests/test_hostile.py::test_random_conv_matches_reference draws the
# problem (cases.conv_problems), the ISA, the thread count and the output mask.


# ---------------------------------------------------------------------------
# N = 0, output_mask
# ---------------------------------------------------------------------------

EMPTY_CASES = [c for c in CONV_CASES if c.name in ("c2_k3_q8", "g2", "same_4x4_s3", "1x1_c17_k16")]


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", EMPTY_CASES, ids=ids(EMPTY_CASES))
def test_empty_batch(case, algo, isa, output_fill):
    output_fill(np.nan)  # zero gradients must be written, not left as allocated
    P, Q = case.out_hw
    x = np.zeros((0, case.C, case.H, case.W), np.float32)
    w = np.ones(case.w_shape, np.float32)
    b = np.ones(case.K, np.float32)
    y = fastconv.conv2d(x, w, b, **case.kwargs, algo=algo)
    assert y.shape == (0, case.K, P, Q) and y.dtype == np.float32
    dy = np.zeros((0, case.K, P, Q), np.float32)
    dx, dw, db = fastconv.conv2d_backward(dy, x, w, **case.kwargs, algo=algo)
    assert dx.shape == x.shape and dx.dtype == np.float32
    assert dw.shape == w.shape and dw.dtype == np.float32
    assert db.shape == (case.K,) and db.dtype == np.float32
    np.testing.assert_array_equal(dw, np.zeros_like(dw))
    np.testing.assert_array_equal(db, np.zeros_like(db))


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize(
    "mask",
    list(itertools.product([False, True], repeat=3)),
    ids=lambda m: "".join("1" if v else "0" for v in m),
)
def test_output_mask(mask, algo):
    case = next(c for c in CONV_CASES if c.name == "d2_s2")
    d = conv_data(case)
    full = fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo)
    got = fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo, output_mask=mask)
    assert isinstance(got, tuple) and len(got) == 3
    for want, g, f in zip(mask, got, full):
        if want:
            np.testing.assert_array_equal(g, f)
        else:
            assert g is None
    # A list works as well as a tuple.
    got_list = fastconv.conv2d_backward(
        d.dy, d.x, d.w, **case.kwargs, algo=algo, output_mask=list(mask)
    )
    assert [g is None for g in got_list] == [not m for m in mask]


# ---------------------------------------------------------------------------
# Non-finite values and the padding rule (0 * inf = NaN)
# ---------------------------------------------------------------------------

PAD_CASES = [
    c
    for c in CONV_CASES
    if c.name
    in (
        "c2_k3_q8",
        "c17_k15_q32",
        "p2_3x3",
        "same_4x4_even",
        "same_3x3_s2_odd",
        "d2_p2",
        "g2",
        "dw_c7_k14",
        "2x5_p1x2",
        "kernel_gt_input_p",
        "1x1_p1",
    )
]


def touches_padding(case: ConvCase) -> np.ndarray:
    """(P, Q) mask of the windows that read at least one padded position."""
    P, Q = case.out_hw
    top, _, left, _ = case.pads
    sh, sw = (case.stride, case.stride) if isinstance(case.stride, int) else case.stride
    dh, dw = (case.dilation,) * 2 if isinstance(case.dilation, int) else case.dilation
    rows = np.array(
        [any(not 0 <= p * sh - top + r * dh < case.H for r in range(case.R)) for p in range(P)]
    )
    cols = np.array(
        [any(not 0 <= q * sw - left + s * dw < case.W for s in range(case.S)) for q in range(Q)]
    )
    return rows[:, None] | cols[None, :]


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("case", PAD_CASES, ids=ids(PAD_CASES))
def test_inf_weight_nan_exactly_where_window_touches_padding(case, isa):
    rng = rng_for("inf", case.name)
    x = (np.abs(rng.standard_normal(case.x_shape)) + 0.5).astype(np.float32)
    w = np.full(case.w_shape, np.inf, np.float32)
    mask = touches_padding(case)
    assert mask.any(), "the case must have windows touching the padding"
    expected = np.where(mask, np.nan, np.inf)[None, None]
    expected = np.broadcast_to(expected, (case.N, case.K, *case.out_hw))
    r64 = ref.conv2d(x.astype(np.float64), w.astype(np.float64), **case.kwargs)
    np.testing.assert_array_equal(r64, expected)  # the reference follows the rule too
    results = {}
    for algo in ALGOS:
        y = fastconv.conv2d(x, w, **case.kwargs, algo=algo)
        np.testing.assert_array_equal(y, expected, err_msg=algo)
        results[algo] = y
    assert results["direct"].tobytes() == results["im2col"].tobytes()


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("case", PAD_CASES, ids=ids(PAD_CASES))
def test_nonfinite_operands_match_reference(case, isa):
    """One inf weight tap, inf/NaN in dy and NaN in x: same NaN/inf pattern as the reference."""
    d = conv_data(case)
    rng = rng_for("nonfinite", case.name)
    w = d.w.copy()
    w[rng.integers(case.K), rng.integers(w.shape[1]), 0, case.S - 1] = -np.inf
    dy = d.dy.copy()
    dy[0, rng.integers(case.K), 0, 0] = np.inf  # a corner window: touches the padding
    dy[-1, rng.integers(case.K), dy.shape[2] // 2, dy.shape[3] // 2] = np.nan
    x = d.x.copy()
    x[0, rng.integers(case.C), rng.integers(case.H), rng.integers(case.W)] = np.nan
    refs_w = reference_passes(case, d.x, w, d.b, d.dy)
    refs_dy = reference_passes(case, d.x, d.w, d.b, dy)
    refs_x = reference_passes(case, x, d.w, d.b, d.dy)
    per_algo = {}
    for algo in ALGOS:
        y_w = fastconv.conv2d(d.x, w, d.b, **case.kwargs, algo=algo)
        y_x = fastconv.conv2d(x, d.w, d.b, **case.kwargs, algo=algo)
        dx_w, _, _ = fastconv.conv2d_backward(d.dy, d.x, w, **case.kwargs, algo=algo)
        dx_dy, dw_dy, db_dy = fastconv.conv2d_backward(dy, d.x, d.w, **case.kwargs, algo=algo)
        _, dw_x, _ = fastconv.conv2d_backward(d.dy, x, d.w, **case.kwargs, algo=algo)
        checks = [
            ("forward inf w", y_w, refs_w["forward"], "forward"),
            ("forward NaN x", y_x, refs_x["forward"], "forward"),
            ("backward_input inf w", dx_w, refs_w["backward_input"], "backward_input"),
            ("backward_input inf/NaN dy", dx_dy, refs_dy["backward_input"], "backward_input"),
            ("backward_weight inf/NaN dy", dw_dy, refs_dy["backward_weight"], "backward_weight"),
            ("backward_bias inf/NaN dy", db_dy, refs_dy["backward_bias"], "backward_bias"),
            ("backward_weight NaN x", dw_x, refs_x["backward_weight"], "backward_weight"),
        ]
        for what, got, r64, pass_ in checks:
            assert not np.isfinite(r64).all(), f"{what}: the test must produce non-finite values"
            assert_same_nonfinite(got, r64, d.ref_abs[pass_], d.L[pass_], f"{what} {algo}")
        per_algo[algo] = [c[1] for c in checks]
    for a, b in zip(per_algo["direct"], per_algo["im2col"]):
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))


# conv2d_max_pool2d: the fused conv -> (ReLU) -> max-pool call. Pools that fit
# every case's output (1x1 outputs included): 1x1, 2x2 stride 1 with
# ceil_mode, 3x3 stride 2 padded.
FUSED_POOLS = [
    {"kernel_size": 1},
    {"kernel_size": 2, "pool_stride": 1, "ceil_mode": True},
    {"kernel_size": 3, "pool_stride": 2, "pool_padding": 1},
]


@pytest.mark.parametrize("pool", FUSED_POOLS, ids=["k1", "k2s1ceil", "k3s2p1"])
@pytest.mark.parametrize("activation", [None, "relu"])
@pytest.mark.parametrize("case", CONV_CASES, ids=ids(CONV_CASES))
def test_conv2d_max_pool2d_is_the_two_calls(case, activation, pool, isa):
    """Bitwise the same values and indices as conv2d then max_pool2d, for every
    algo (direct pools each image's output while it is in cache)."""
    d = conv_data(case)
    pk = {k.removeprefix("pool_"): v for k, v in pool.items()}
    for algo in ALGOS:
        y = fastconv.conv2d(d.x, d.w, d.b, **case.kwargs, algo=algo, activation=activation)
        try:
            want, want_idx = fastconv.max_pool2d(y, **pk, return_indices=True)
        except ValueError:  # the pool does not fit this output
            with pytest.raises(ValueError):
                fastconv.conv2d_max_pool2d(d.x, d.w, d.b, **case.kwargs, algo=algo, **pool)
            return
        got, got_idx = fastconv.conv2d_max_pool2d(
            d.x, d.w, d.b, **case.kwargs, algo=algo, activation=activation, **pool,
            return_indices=True,
        )  # fmt: skip
        assert got.tobytes() == want.tobytes(), algo
        assert got_idx.tobytes() == want_idx.tobytes(), algo
        only = fastconv.conv2d_max_pool2d(d.x, d.w, d.b, **case.kwargs, algo=algo, **pool,
                                          activation=activation)  # fmt: skip
        assert only.tobytes() == want.tobytes(), algo


def test_conv2d_max_pool2d_reference_and_errors():
    """The reference composes its two ops; bad pooling or bias arguments raise
    ValueError naming the op, a float64 input TypeError."""
    rng = rng_for("fused-pool")
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    got = fastconv.conv2d_max_pool2d(x, w, b, padding=1, activation="relu", kernel_size=2)
    x64, w64, b64 = (a.astype(np.float64) for a in (x, w, b))
    want = ref.conv2d_max_pool2d(x64, w64, b64, padding=1, activation="relu", kernel_size=2)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="conv2d_max_pool2d"):
        fastconv.conv2d_max_pool2d(x, w, b, kernel_size=20)  # window larger than the 7x7 output
    with pytest.raises(ValueError, match="conv2d_max_pool2d"):
        fastconv.conv2d_max_pool2d(x, w, b[:3], kernel_size=2)
    with pytest.raises(ValueError, match="conv2d_max_pool2d"):
        fastconv.conv2d_max_pool2d(x, w, b, kernel_size=2, pool_padding=2)  # > half the window
    with pytest.raises(TypeError):
        fastconv.conv2d_max_pool2d(x64, w, b, kernel_size=2)


@pytest.mark.parametrize("algo", ALGOS)
def test_weight_gradient_in_waves(algo, isa):
    """Weight-gradient partials above 8 MB (here 8 chunks x 256 x 128*3*3) are
    computed one chunk per thread at a time and added into dw in chunk order:
    bitwise the same dw at 1 and 2 threads, and the reference's within rounding."""
    rng = rng_for("waves", algo)
    x = rng.standard_normal((8, 128, 4, 4)).astype(np.float32)
    w = rng.standard_normal((256, 128, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((8, 256, 2, 2)).astype(np.float32)
    before = fastconv.get_num_threads()
    try:
        got = {}
        for t in (1, 2):
            fastconv.set_num_threads(t)
            got[t] = fastconv.conv2d_backward(
                dy, x, w, algo=algo, output_mask=(False, True, False)
            )[1]
    finally:
        fastconv.set_num_threads(before)
    assert got[1].tobytes() == got[2].tobytes()
    want = ref.conv2d_backward(
        dy.astype(np.float64),
        x.astype(np.float64),
        w.astype(np.float64),
        output_mask=(False, True, False),
    )[1]
    scale = ref.conv2d_backward(
        np.abs(dy).astype(np.float64),
        np.abs(x).astype(np.float64),
        np.abs(w).astype(np.float64),
        output_mask=(False, True, False),
    )[1]
    L = x.shape[0] * dy.shape[2] * dy.shape[3]
    assert np.all(np.abs(got[1] - want) <= C_TOL * L * EPS32 * scale + TINY)
