"""Hostile inputs (shared/reference/hostile-inputs.md, issue 2): every bad
argument of every op raises the right exception with a message naming it.

TypeError for types and dtypes (never a silent cast), ValueError for shapes,
values and sizes that do not fit (never a crash or a MemoryError).
"""

from __future__ import annotations

import re

import numpy as np
import pytest

import fastconv
from fastconv import _core
from fastconv import reference as ref


def f32(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# One valid call per op; the tests below break one argument at a time
# ---------------------------------------------------------------------------


def _valid_args():
    _, idx = fastconv.max_pool2d(f32(2, 3, 6, 6), 2, return_indices=True)
    return {
        "conv2d": {"x": f32(2, 3, 6, 6), "weight": f32(4, 3, 3, 3), "bias": f32(4)},
        "conv2d_backward": {
            "grad_output": f32(2, 4, 6, 6),
            "x": f32(2, 3, 6, 6),
            "weight": f32(4, 3, 3, 3),
        },
        "max_pool2d": {"x": f32(2, 3, 6, 6)},
        "max_pool2d_backward": {"grad_output": f32(2, 3, 3, 3), "indices": idx},
        "avg_pool2d": {"x": f32(2, 3, 6, 6)},
        "avg_pool2d_backward": {"grad_output": f32(2, 3, 3, 3)},
        "linear": {"x": f32(5, 7), "weight": f32(4, 7), "bias": f32(4)},
    }


def _call(op, a):
    if op == "conv2d":
        return fastconv.conv2d(a["x"], a["weight"], a["bias"], padding=1)
    if op == "conv2d_backward":
        return fastconv.conv2d_backward(a["grad_output"], a["x"], a["weight"], padding=1)
    if op == "max_pool2d":
        return fastconv.max_pool2d(a["x"], 2)
    if op == "max_pool2d_backward":
        return fastconv.max_pool2d_backward(a["grad_output"], a["indices"], (2, 3, 6, 6))
    if op == "avg_pool2d":
        return fastconv.avg_pool2d(a["x"], 2)
    if op == "avg_pool2d_backward":
        return fastconv.avg_pool2d_backward(a["grad_output"], (2, 3, 6, 6), 2)
    if op == "linear":
        return fastconv.linear(a["x"], a["weight"], a["bias"])
    raise ValueError(op)


ARRAY_ARGS = [(op, name) for op, args in _valid_args().items() for name in args]
FLOAT_ARGS = [(op, name) for op, name in ARRAY_ARGS if name != "indices"]
OPTIONAL_ARGS = {("conv2d", "bias"), ("linear", "bias")}


def _with(op, **changes):
    a = _valid_args()[op]
    a.update(changes)
    return a


@pytest.mark.parametrize("op", list(_valid_args()))
def test_the_valid_calls_succeed(op):
    """The baselines that every error test breaks in exactly one place."""
    out = _call(op, _valid_args()[op])
    assert out is not None


# ---------------------------------------------------------------------------
# Types and dtypes
# ---------------------------------------------------------------------------

BAD_FLOAT_DTYPES = [
    "float64",
    "float16",
    "int32",
    "int64",
    "bool",
    "complex64",
    "object",
    "<U3",
    ">f8",
    "uint8",
]


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES)
@pytest.mark.parametrize("op, name", FLOAT_ARGS, ids=[f"{o}-{n}" for o, n in FLOAT_ARGS])
def test_float_arguments_reject_other_dtypes(op, name, dtype):
    good = _valid_args()[op][name]
    bad = good.astype(dtype)
    with pytest.raises(
        TypeError, match=rf"{name} must have dtype float32, got {re.escape(str(bad.dtype))}"
    ):
        _call(op, _with(op, **{name: bad}))


@pytest.mark.parametrize("dtype", ["int32", "uint64", "float32", "float64", "bool", "object"])
def test_indices_reject_other_dtypes(dtype):
    good = _valid_args()["max_pool2d_backward"]["indices"]
    bad = good.astype(dtype)
    with pytest.raises(
        TypeError, match=rf"indices must have dtype int64, got {re.escape(str(bad.dtype))}"
    ):
        _call("max_pool2d_backward", _with("max_pool2d_backward", indices=bad))


@pytest.mark.parametrize("op, name", ARRAY_ARGS, ids=[f"{o}-{n}" for o, n in ARRAY_ARGS])
def test_non_arrays_rejected(op, name):
    good = _valid_args()[op][name]
    with pytest.raises(TypeError, match=rf"{name} must be a numpy\.ndarray .*got list"):
        _call(op, _with(op, **{name: good.tolist()}))
    with pytest.raises(TypeError, match=rf"{name} must be a numpy\.ndarray .*got float"):
        _call(op, _with(op, **{name: 1.5}))
    if (op, name) not in OPTIONAL_ARGS:
        with pytest.raises(TypeError, match=rf"{name} must be a numpy\.ndarray .*got NoneType"):
            _call(op, _with(op, **{name: None}))


def test_optional_bias_accepts_none():
    y = _call("conv2d", _with("conv2d", bias=None))
    assert y.shape == (2, 4, 6, 6)
    assert _call("linear", _with("linear", bias=None)).shape == (5, 4)


def test_mixed_float32_float64_rejected():
    a = _valid_args()["conv2d"]
    with pytest.raises(TypeError, match="weight must have dtype float32, got float64"):
        fastconv.conv2d(a["x"], a["weight"].astype(np.float64))
    with pytest.raises(TypeError, match="x must have dtype float32, got float64"):
        fastconv.conv2d(a["x"].astype(np.float64), a["weight"])


# ---------------------------------------------------------------------------
# Ranks and shapes
# ---------------------------------------------------------------------------

RANKED = [(op, name) for op, name in ARRAY_ARGS if not (op == "linear" and name == "x")]


@pytest.mark.parametrize("op, name", RANKED, ids=[f"{o}-{n}" for o, n in RANKED])
@pytest.mark.parametrize("change", ["drop", "add"])
def test_wrong_rank(op, name, change):
    good = _valid_args()[op][name]
    bad = good[0, ...] if change == "drop" else good[None]
    with pytest.raises(ValueError, match=rf"{name} must be {good.ndim}-D .*got shape"):
        _call(op, _with(op, **{name: bad}))


def test_linear_x_rank():
    w = f32(4, 7)
    with pytest.raises(ValueError, match="x must have at least 1 dimension"):
        fastconv.linear(np.zeros((), np.float32), w)
    assert fastconv.linear(f32(7), w).shape == (4,)
    assert fastconv.linear(f32(2, 3, 7), w).shape == (2, 3, 4)


def test_conv_channel_mismatch():
    with pytest.raises(ValueError, match=r"x has C=3 but weight expects C=4"):
        fastconv.conv2d(f32(1, 3, 5, 5), f32(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x has C=3 but weight expects C=4"):
        fastconv.conv2d_backward(f32(1, 2, 3, 3), f32(1, 3, 5, 5), f32(2, 4, 3, 3))
    with pytest.raises(ValueError, match=r"x has C=6 but weight expects C=4"):
        fastconv.conv2d(f32(1, 6, 5, 5), f32(2, 2, 3, 3), groups=2)


def test_groups_must_divide_c_and_k():
    with pytest.raises(ValueError, match=r"groups=2 does not divide C=3"):
        fastconv.conv2d(f32(1, 3, 5, 5), f32(4, 1, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"groups=2 does not divide K=3"):
        fastconv.conv2d(f32(1, 4, 5, 5), f32(3, 2, 3, 3), groups=2)
    with pytest.raises(ValueError, match=r"groups=2 does not divide K=3"):
        fastconv.conv2d_backward(f32(1, 3, 3, 3), f32(1, 4, 5, 5), f32(3, 2, 3, 3), groups=2)


@pytest.mark.parametrize("groups", [0, -1, -(2**31)])
def test_groups_positive(groups):
    with pytest.raises(ValueError, match=rf"groups must be in \[1, 2147483647\], got {groups}"):
        fastconv.conv2d(f32(1, 4, 5, 5), f32(4, 4, 3, 3), groups=groups)


@pytest.mark.parametrize("length", [1, 3, 5])
def test_bias_wrong_length(length):
    with pytest.raises(
        ValueError, match=rf"bias must have shape \(K,\) = \(4,\).*got \({length},\)"
    ):
        fastconv.conv2d(f32(1, 3, 5, 5), f32(4, 3, 3, 3), f32(length))


def test_bias_length_one_with_one_filter_is_fine():
    assert fastconv.conv2d(f32(1, 3, 5, 5), f32(1, 3, 3, 3), f32(1)).shape == (1, 1, 3, 3)


@pytest.mark.parametrize("shape", [(1, 0, 5, 5), (1, 3, 0, 5), (1, 3, 5, 0)])
def test_empty_non_batch_dims_rejected(shape):
    x = np.zeros(shape, np.float32)
    w = f32(2, max(shape[1], 1), 1, 1)
    with pytest.raises(ValueError, match=r"must have C, H, W >= 1"):
        fastconv.conv2d(x, w)
    with pytest.raises(ValueError, match=r"must have C, H, W >= 1"):
        fastconv.max_pool2d(x, 1)
    with pytest.raises(ValueError, match=r"must have C, H, W >= 1"):
        fastconv.avg_pool2d(x, 1)


@pytest.mark.parametrize("w_shape", [(0, 3, 3, 3), (2, 3, 0, 3), (2, 3, 3, 0)])
def test_empty_weight_dims_rejected(w_shape):
    with pytest.raises(ValueError, match=r"weight must have K, C/groups, R, S >= 1"):
        fastconv.conv2d(f32(1, 3, 5, 5), np.zeros(w_shape, np.float32))


# ---------------------------------------------------------------------------
# Parameters
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["stride", "dilation"])
@pytest.mark.parametrize("value", [0, -1, (1, 0), (-2, 1)])
def test_conv_stride_dilation_positive(name, value):
    with pytest.raises(ValueError, match=rf"{name} must be in \[1, 2147483647\], got"):
        fastconv.conv2d(f32(1, 3, 9, 9), f32(2, 3, 3, 3), **{name: value})
    with pytest.raises(ValueError, match=rf"{name} must be in \[1, 2147483647\], got"):
        fastconv.conv2d_backward(f32(1, 2, 7, 7), f32(1, 3, 9, 9), f32(2, 3, 3, 3), **{name: value})


@pytest.mark.parametrize("value", [-1, (0, -1), (-3, 0)])
def test_negative_padding(value):
    with pytest.raises(ValueError, match=r"padding must be in \[0, 2147483647\], got"):
        fastconv.conv2d(f32(1, 3, 9, 9), f32(2, 3, 3, 3), padding=value)
    with pytest.raises(ValueError, match=r"padding must be in \[0, 2147483647\], got"):
        fastconv.max_pool2d(f32(1, 3, 9, 9), 3, padding=value)
    with pytest.raises(ValueError, match=r"padding must be in \[0, 2147483647\], got"):
        fastconv.avg_pool2d(f32(1, 3, 9, 9), 3, padding=value)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize(
    "name, value",
    [("kernel_size", 0), ("kernel_size", -2), ("stride", 0), ("stride", (1, -1)), ("dilation", 0)],
)
def test_pool_params_positive(op, name, value):
    if op == "avg_pool2d" and name == "dilation":
        return
    kw = {"kernel_size": 2}
    kw[name] = value
    with pytest.raises(ValueError, match=rf"{name} must be in \[1, 2147483647\], got"):
        getattr(fastconv, op)(f32(1, 3, 9, 9), **kw)


@pytest.mark.parametrize("padding", ["full", "SAME", "", "causal"])
def test_unknown_padding_string(padding):
    with pytest.raises(
        ValueError,
        match=rf"padding must be an int, a pair of ints, 'same' or 'valid', got '{padding}'",
    ):
        fastconv.conv2d(f32(1, 3, 9, 9), f32(2, 3, 3, 3), padding=padding)
    with pytest.raises(ValueError, match=r"padding must be"):
        fastconv.conv2d_backward(f32(1, 2, 7, 7), f32(1, 3, 9, 9), f32(2, 3, 3, 3), padding=padding)


@pytest.mark.parametrize("algo", ["fft", "winograd", "AUTO", ""])
def test_unknown_algo(algo):
    with pytest.raises(
        ValueError, match=rf"algo must be one of 'auto', 'direct', 'im2col', got '{algo}'"
    ):
        fastconv.conv2d(f32(1, 3, 9, 9), f32(2, 3, 3, 3), algo=algo)
    with pytest.raises(ValueError, match=r"algo must be one of"):
        fastconv.conv2d_backward(f32(1, 2, 7, 7), f32(1, 3, 9, 9), f32(2, 3, 3, 3), algo=algo)


def test_algo_must_be_a_string():
    with pytest.raises(TypeError, match=r"algo must be a str, got int"):
        fastconv.conv2d(f32(1, 3, 9, 9), f32(2, 3, 3, 3), algo=1)
    with pytest.raises(TypeError, match=r"algo must be a str, got NoneType"):
        fastconv.conv2d(f32(1, 3, 9, 9), f32(2, 3, 3, 3), algo=None)


@pytest.mark.parametrize(
    "x_hw, r, kw, out",
    [
        ((4, 4), 5, {}, "(0, 0)"),
        ((4, 9), 5, {}, "(0, 5)"),
        ((4, 4), 3, {"dilation": 3}, "(-2, -2)"),
        ((3, 3), 7, {"padding": 1}, "(-1, -1)"),
        ((2, 2), 4, {"stride": 3}, "(0, 0)"),
    ],
)
def test_kernel_larger_than_padded_input(x_hw, r, kw, out):
    x, w = f32(1, 2, *x_hw), f32(3, 2, r, r)
    P, Q = (
        ref.conv2d_output_size(
            n, r, kw.get("stride", 1), 2 * kw.get("padding", 0), kw.get("dilation", 1)
        )
        for n in x_hw
    )
    assert out == f"({P}, {Q})"  # the expected text is the real computed size
    msg = rf"kernel is larger than the padded input \(output size {re.escape(out)} <= 0\)"
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d(x, w, **kw)
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d_backward(f32(1, 3, 1, 1), x, w, **kw)
    with pytest.raises(ValueError, match=msg):
        _core.conv2d_choose_algo(
            "forward",
            x.shape,
            w.shape,
            kw.get("stride", 1),
            kw.get("padding", 0),
            kw.get("dilation", 1),
            1,
        )


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_pool_kernel_larger_than_input(op):
    with pytest.raises(ValueError, match=r"output size \(0, 0\) <= 0"):
        getattr(fastconv, op)(f32(1, 1, 2, 2), 3)
    with pytest.raises(ValueError, match=r"output size \(1, 0\) <= 0"):
        getattr(fastconv, op)(f32(1, 1, 3, 2), 3)


@pytest.mark.parametrize("kernel, padding", [(3, 2), (2, 2), (1, 1), ((3, 2), (1, 2)), (4, 3)])
def test_pool_padding_over_half_the_kernel(kernel, padding):
    msg = r"padding \(.*\) must be at most half of kernel_size"
    x = f32(1, 2, 9, 9)
    with pytest.raises(ValueError, match=msg):
        fastconv.max_pool2d(x, kernel, 1, padding)
    with pytest.raises(ValueError, match=msg):
        fastconv.avg_pool2d(x, kernel, 1, padding)
    with pytest.raises(ValueError, match=msg):
        fastconv.avg_pool2d_backward(f32(1, 2, 9, 9), x.shape, kernel, 1, padding)


def test_pool_padding_at_half_the_kernel_is_fine():
    x = f32(1, 2, 9, 9)
    assert fastconv.max_pool2d(x, 3, 1, 1).shape == (1, 2, 9, 9)
    assert fastconv.avg_pool2d(x, 4, 1, 2).shape == (1, 2, 10, 10)


def test_divisor_override_zero():
    with pytest.raises(ValueError, match="divisor_override must not be 0"):
        fastconv.avg_pool2d(f32(1, 1, 4, 4), 2, divisor_override=0)
    with pytest.raises(ValueError, match="divisor_override must not be 0"):
        fastconv.avg_pool2d_backward(f32(1, 1, 2, 2), (1, 1, 4, 4), 2, divisor_override=0)


# ---------------------------------------------------------------------------
# bools and floats where ints belong; pairs of the wrong length
# ---------------------------------------------------------------------------

CONV_INT_PARAMS = ["stride", "padding", "dilation", "groups"]
BAD_INTS = [True, False, 1.0, 2.5, "1", np.float32(1), np.bool_(True), None]


def _bad_int_id(v):
    return f"{type(v).__name__}({v!r})"


@pytest.mark.parametrize("value", BAD_INTS, ids=_bad_int_id)
@pytest.mark.parametrize("name", CONV_INT_PARAMS)
def test_conv_int_params_reject_non_ints(name, value):
    if name == "padding" and isinstance(value, str):
        return  # strings are padding modes (tested above)
    x, w = f32(1, 2, 6, 6), f32(2, 2, 3, 3)
    with pytest.raises(TypeError, match=rf"{name} must be an int"):
        fastconv.conv2d(x, w, **{name: value})
    with pytest.raises(TypeError, match=rf"{name} must be an int"):
        fastconv.conv2d_backward(f32(1, 2, 4, 4), x, w, **{name: value})
    if name != "groups":
        with pytest.raises(TypeError, match=rf"{name} must be an int"):
            fastconv.conv2d(x, w, **{name: (1, value)})


POOL_INT_PARAMS = ["kernel_size", "stride", "padding", "dilation", "divisor_override"]


@pytest.mark.parametrize("value", [v for v in BAD_INTS if v is not None], ids=_bad_int_id)
@pytest.mark.parametrize("name", POOL_INT_PARAMS)
def test_pool_int_params_reject_non_ints(name, value):
    x = f32(1, 2, 6, 6)
    kw = {"kernel_size": 2}
    kw[name] = value
    ops = []
    if name != "divisor_override":
        ops.append(lambda: fastconv.max_pool2d(x, **{k: v for k, v in kw.items()}))
    if name != "dilation":
        ops.append(lambda: fastconv.avg_pool2d(x, **kw))
        ops.append(lambda: fastconv.avg_pool2d_backward(f32(1, 2, 3, 3), x.shape, **kw))
    for op in ops:
        with pytest.raises(TypeError, match=rf"{name} must be an int"):
            op()


def test_numpy_integers_are_ints():
    x, w = f32(1, 2, 6, 6), f32(2, 2, 3, 3)
    a = fastconv.conv2d(
        x, w, stride=np.int64(2), padding=np.int32(1), dilation=np.uint8(1), groups=np.int16(1)
    )
    b = fastconv.conv2d(x, w, stride=2, padding=1)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, np.int64(2)), fastconv.max_pool2d(x, 2))


@pytest.mark.parametrize("name", ["ceil_mode", "return_indices"])
@pytest.mark.parametrize("value", [1, 0, "yes", None, 1.0])
def test_max_pool_bool_flags(name, value):
    with pytest.raises(TypeError, match=rf"{name} must be a bool"):
        fastconv.max_pool2d(f32(1, 1, 4, 4), 2, **{name: value})


@pytest.mark.parametrize("name", ["ceil_mode", "count_include_pad"])
@pytest.mark.parametrize("value", [1, 0, "yes", 1.0])
def test_avg_pool_bool_flags(name, value):
    with pytest.raises(TypeError, match=rf"{name} must be a bool"):
        fastconv.avg_pool2d(f32(1, 1, 4, 4), 2, **{name: value})
    with pytest.raises(TypeError, match=rf"{name} must be a bool"):
        fastconv.avg_pool2d_backward(f32(1, 1, 2, 2), (1, 1, 4, 4), 2, **{name: value})


@pytest.mark.parametrize(
    "mask, exc, msg",
    [
        ((1, 1, 1), TypeError, "output_mask must be a bool"),
        ((True, True), TypeError, "output_mask must be a tuple of 3 bools"),
        ((True, True, True, True), TypeError, "output_mask must be a tuple of 3 bools"),
        ((True, None, True), TypeError, "output_mask must be a bool"),
    ],
)
def test_output_mask_validated(mask, exc, msg):
    with pytest.raises(exc, match=msg):
        fastconv.conv2d_backward(
            f32(1, 2, 4, 4), f32(1, 2, 6, 6), f32(2, 2, 3, 3), output_mask=mask
        )


@pytest.mark.parametrize("value", [(1, 2, 3), (), (1,), [1, 1, 1]])
def test_pairs_of_wrong_length(value):
    msg = r"stride must be an int or a pair of ints, got .* of length"
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d(f32(1, 2, 6, 6), f32(2, 2, 3, 3), stride=value)
    with pytest.raises(ValueError, match=msg):
        fastconv.max_pool2d(f32(1, 2, 6, 6), 2, stride=value)
    with pytest.raises(ValueError, match=r"kernel_size must be an int or a pair"):
        fastconv.avg_pool2d(f32(1, 2, 6, 6), value)


# ---------------------------------------------------------------------------
# Huge values and sizes that overflow
# ---------------------------------------------------------------------------

HUGE = [2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**70, -(2**63) - 1, -(2**70)]


def _huge_msg(name, v):
    if -(2**63) <= v < 2**63:
        return rf"{name} must be in \[\d, 2147483647\], got"
    return rf"{name} = {v} does not fit in int64"


@pytest.mark.parametrize("value", HUGE, ids=str)
@pytest.mark.parametrize("name", ["stride", "padding", "dilation"])
def test_huge_conv_params(name, value):
    x, w = f32(1, 2, 6, 6), f32(2, 2, 3, 3)
    msg = _huge_msg(name, value)
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d(x, w, **{name: value})
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d(x, w, **{name: (1, value)})
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d_backward(f32(1, 2, 4, 4), x, w, **{name: value})


@pytest.mark.parametrize("value", HUGE, ids=str)
def test_huge_groups(value):
    if -(2**63) <= value < 2**63:
        msg = rf"groups must be in \[1, 2147483647\], got {value}"
    else:
        msg = rf"groups = {value} does not fit in int64"
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d(f32(1, 2, 6, 6), f32(2, 2, 3, 3), groups=value)


@pytest.mark.parametrize("value", HUGE, ids=str)
@pytest.mark.parametrize("name", ["kernel_size", "stride", "padding", "dilation"])
def test_huge_pool_params(name, value):
    x = f32(1, 2, 6, 6)
    kw = {"kernel_size": 2}
    kw[name] = value
    msg = _huge_msg(name, value)
    with pytest.raises(ValueError, match=msg):
        fastconv.max_pool2d(x, **kw)
    if name != "dilation":
        with pytest.raises(ValueError, match=msg):
            fastconv.avg_pool2d(x, **kw)
        with pytest.raises(ValueError, match=msg):
            fastconv.avg_pool2d_backward(f32(1, 2, 3, 3), x.shape, **kw)


@pytest.mark.parametrize("value", [2**63, 2**70, -(2**70)], ids=str)
def test_huge_divisor_override(value):
    with pytest.raises(ValueError, match=rf"divisor_override = {value} does not fit in int64"):
        fastconv.avg_pool2d(f32(1, 1, 4, 4), 2, divisor_override=value)


@pytest.mark.parametrize("padding", [2**29, 2**30, 2**31 - 1, (2**30, 2**31 - 1)], ids=str)
def test_huge_padding_on_a_tiny_array_overflows_cleanly(padding):
    """The output (or its workspace) would not fit: ValueError before any allocation."""
    x, w = f32(1, 1, 1, 1), f32(1, 1, 1, 1)
    msg = r"more elements than int64 can count"
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d(x, w, padding=padding)
    with pytest.raises(ValueError, match=msg):
        fastconv.conv2d_backward(f32(1, 1, 1, 1), x, w, padding=padding)


BIG = 2**40


@pytest.mark.parametrize(
    "x_shape, w_shape, padding",
    [
        ((BIG, BIG, BIG, 1), (1, BIG, 1, 1), 0),  # x itself
        ((1, 1, 2**62, 2**62), (1, 1, 1, 1), 0),  # x
        ((1, 1, 2**31, 2**31), (1, 1, 1, 1), 2**31 - 1),  # the output
        ((BIG, 1, 1, 1), (BIG, 1, 1, 1), 0),  # N*K
        ((1, 2**21, 8, 1), (2**40, 2**21, 8, 1), 0),  # the weight
        ((1, BIG, BIG, BIG), (1, BIG, BIG, 1), 0),
    ],
)
def test_shape_products_overflow_int64(x_shape, w_shape, padding):
    with pytest.raises(ValueError, match=r"int64 can count|too large"):
        _core.conv2d_choose_algo("forward", x_shape, w_shape, 1, padding, 1, 1)


def test_huge_spatial_size_rejected():
    with pytest.raises(ValueError, match=r"spatial size too large|int64 can count"):
        _core.conv2d_choose_algo("forward", (1, 1, 2**62 + 1, 1), (1, 1, 1, 1), 1, 0, 1, 1)


@pytest.mark.parametrize(
    "shape", [(BIG, BIG, BIG, 1), (1, 1, 2**62, 2**62), (2**63 - 1, 2, 1, 1)], ids=str
)
def test_pool_backward_input_shape_overflow(shape):
    dy = f32(1, 1, 1, 1)
    # The (N, C) mismatch would also be an error; the size check must come first or
    # either must raise ValueError (never allocate).
    with pytest.raises(ValueError, match=r"int64 can count|does not match input_shape"):
        fastconv.max_pool2d_backward(dy, np.zeros((1, 1, 1, 1), np.int64), shape)
    with pytest.raises(ValueError, match=r"int64 can count|does not match|grad_output has shape"):
        fastconv.avg_pool2d_backward(dy, shape, 1)
    dy_big_nc = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match=r"int64 can count"):
        fastconv.avg_pool2d_backward(dy_big_nc, shape, 1)


def test_input_shape_overflow_message_names_the_shape():
    shape = (BIG, BIG, BIG, 1)
    text = re.escape(str(shape))
    with pytest.raises(ValueError, match=rf"{text} has more elements than int64 can count"):
        fastconv.max_pool2d_backward(f32(1, 1, 1, 1), np.zeros((1, 1, 1, 1), np.int64), shape)
    with pytest.raises(ValueError, match=rf"{text} has more elements than int64 can count"):
        fastconv.avg_pool2d_backward(f32(1, 1, 1, 1), shape, 1)


@pytest.mark.parametrize("shape", [(1, 1, 4), (1, 1, 4, 4, 1), ()])
def test_input_shape_wrong_length(shape):
    with pytest.raises(ValueError, match=r"input_shape must have 4 entries"):
        fastconv.max_pool2d_backward(f32(1, 1, 2, 2), np.zeros((1, 1, 2, 2), np.int64), shape)
    with pytest.raises(ValueError, match=r"input_shape must have 4 entries"):
        fastconv.avg_pool2d_backward(f32(1, 1, 2, 2), shape, 2)


@pytest.mark.parametrize("bad", [1.0, True, None, "4"], ids=_bad_int_id)
def test_input_shape_entries_must_be_ints(bad):
    shape = (1, 1, bad, 4)
    with pytest.raises(TypeError, match=r"input_shape must be an int"):
        fastconv.max_pool2d_backward(f32(1, 1, 2, 2), np.zeros((1, 1, 2, 2), np.int64), shape)
    with pytest.raises(TypeError, match=r"input_shape must be an int"):
        fastconv.avg_pool2d_backward(f32(1, 1, 2, 2), shape, 2)


def test_exact_output_size_at_2_pow_24_plus_1():
    """A 2**24+1 wide input: sizes are integer arithmetic, exact (float32 would round)."""
    n = 2**24 + 1
    x = (np.arange(n, dtype=np.int64) % 7).astype(np.float32).reshape(1, 1, 1, n)
    w = np.array([1, 2, 4], np.float32).reshape(1, 1, 1, 3)
    y = fastconv.conv2d(x, w)
    assert y.shape == (1, 1, 1, n - 2)
    xi = np.arange(n, dtype=np.int64) % 7
    for q in [0, 1, 2**23, 2**24 - 3, n - 3]:
        assert y[0, 0, 0, q] == xi[q] + 2 * xi[q + 1] + 4 * xi[q + 2], q
    y2 = fastconv.conv2d(x, w, stride=2, padding=(0, 1))
    assert y2.shape == (1, 1, 1, 2**23 + 1)
    last = 2**23  # window starts at 2*last - 1 = n - 2: taps n-2, n-1, and padding
    assert y2[0, 0, 0, last] == xi[n - 2] + 2 * xi[n - 1]
    del y, y2
    yp = fastconv.max_pool2d(x, (1, 2))
    assert yp.shape == (1, 1, 1, 2**23)
    assert yp[0, 0, 0, -1] == max(xi[n - 3], xi[n - 2])
    ya = fastconv.avg_pool2d(x, (1, 3), stride=(1, 1))
    assert ya.shape == (1, 1, 1, n - 2)
    assert ya[0, 0, 0, -1] == np.float32(xi[n - 3] + xi[n - 2] + xi[n - 1]) / np.float32(3)


# ---------------------------------------------------------------------------
# Backward: grad_output and indices
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("dim", range(4))
@pytest.mark.parametrize("delta", [-1, 1])
def test_conv_backward_grad_output_wrong_shape(dim, delta):
    x, w = f32(2, 3, 6, 6), f32(4, 3, 3, 3)
    shape = [2, 4, 6, 6]
    shape[dim] += delta
    if shape[dim] == 0 and dim == 0:
        shape[dim] = 3
    with pytest.raises(
        ValueError,
        match=r"grad_output has shape .* but the forward output .* "
        r"has shape \(2, 4, 6, 6\)",
    ):
        fastconv.conv2d_backward(f32(*shape), x, w, padding=1)


@pytest.mark.parametrize("dim", range(4))
@pytest.mark.parametrize("delta", [-1, 1])
def test_avg_pool_backward_grad_output_wrong_shape(dim, delta):
    shape = [2, 3, 3, 3]
    shape[dim] += delta
    with pytest.raises(
        ValueError,
        match=r"grad_output has shape .* but the forward output "
        r"for input_shape \(2, 3, 6, 6\) has shape \(2, 3, 3, 3\)",
    ):
        fastconv.avg_pool2d_backward(f32(*shape), (2, 3, 6, 6), 2)


@pytest.mark.parametrize("dim", [0, 1])
def test_max_pool_backward_grad_output_nc_mismatch(dim):
    shape = [2, 3, 3, 3]
    shape[dim] += 1
    idx = np.zeros(shape, np.int64)
    with pytest.raises(
        ValueError, match=r"grad_output .* does not match input_shape \(2, 3, 6, 6\)"
    ):
        fastconv.max_pool2d_backward(f32(*shape), idx, (2, 3, 6, 6))


@pytest.mark.parametrize("dim", range(4))
def test_max_pool_backward_indices_shape_mismatch(dim):
    dy = f32(2, 3, 3, 3)
    shape = [2, 3, 3, 3]
    shape[dim] += 1
    with pytest.raises(ValueError, match=r"indices .* and grad_output .* must have the same shape"):
        fastconv.max_pool2d_backward(dy, np.zeros(shape, np.int64), (2, 3, 6, 6))


@pytest.mark.parametrize(
    "bad_value, where", [(-1, 0), (36, 5), (-(2**62), 53), (2**62, 17), (37, 53)]
)
def test_max_pool_backward_indices_out_of_range(bad_value, where, output_fill):
    x = f32(2, 3, 6, 6)
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    dy = f32(*y.shape, seed=1)
    good = fastconv.max_pool2d_backward(dy, idx, x.shape)
    bad = idx.copy()
    bad.reshape(-1)[where] = bad_value
    bad2 = bad.copy()
    dy_copy = dy.copy()
    msg = (
        rf"indices must lie in \[0, H\*W\) = \[0, 36\).*found {bad_value} "
        rf"at flat position {where}"
    )
    with pytest.raises(ValueError, match=msg):
        fastconv.max_pool2d_backward(dy, bad, x.shape)
    # Several bad indices: the message names the first, whatever the thread count.
    if where + 1 < bad2.size:
        bad2.reshape(-1)[where + 1 :] = -5
        first = (bad_value, where)
    else:
        bad2.reshape(-1)[0] = -5
        first = (-5, 0)
    for threads in (1, 2, 4):
        fastconv.set_num_threads(threads)
        with pytest.raises(ValueError, match=rf"found {first[0]} at flat position {first[1]}"):
            fastconv.max_pool2d_backward(dy, bad2, x.shape)
    # Nothing else happened: inputs untouched, and the next valid call is correct.
    np.testing.assert_array_equal(dy, dy_copy)
    output_fill(np.nan)
    again = fastconv.max_pool2d_backward(dy, idx, x.shape)
    np.testing.assert_array_equal(again, good)
    np.testing.assert_array_equal(again, ref.max_pool2d_backward(dy, idx, x.shape))


def test_max_pool_backward_empty_indices():
    dx = fastconv.max_pool2d_backward(
        np.zeros((0, 2, 2, 2), np.float32), np.zeros((0, 2, 2, 2), np.int64), (0, 2, 4, 4)
    )
    assert dx.shape == (0, 2, 4, 4) and dx.dtype == np.float32


def test_max_pool_backward_index_range_is_per_plane():
    """An index valid as a flat offset into the whole tensor but not into one plane."""
    dy = f32(1, 2, 1, 1)
    idx = np.array([0, 16], np.int64).reshape(1, 2, 1, 1)  # plane is 4x4 = 16
    with pytest.raises(ValueError, match=r"found 16 at flat position 1"):
        fastconv.max_pool2d_backward(dy, idx, (1, 2, 4, 4))


# ---------------------------------------------------------------------------
# N = 0 for pooling (conv: test_conv2d.py::test_empty_batch)
# ---------------------------------------------------------------------------


def test_pool_empty_batch(output_fill):
    output_fill(np.nan)
    x = np.zeros((0, 3, 7, 7), np.float32)
    y, idx = fastconv.max_pool2d(x, 3, 2, return_indices=True)
    assert y.shape == (0, 3, 3, 3) and idx.shape == (0, 3, 3, 3) and idx.dtype == np.int64
    assert fastconv.max_pool2d_backward(y, idx, x.shape).shape == x.shape
    a = fastconv.avg_pool2d(x, 3, 2, 1)
    assert a.shape == (0, 3, 4, 4)
    assert fastconv.avg_pool2d_backward(a, x.shape, 3, 2, 1).shape == x.shape


def test_linear_empty_batch():
    y = fastconv.linear(np.zeros((0, 7), np.float32), f32(4, 7), f32(4))
    assert y.shape == (0, 4)
