"""Memory layouts: any float32 (or int64) array gives exactly the result of a
contiguous, aligned, native-order copy of it, and is never modified.

For every op and every array argument, one argument at a time is replaced by
the same data in another layout: negative strides, Fortran order, transposed
views, strided views whose gaps hold NaN, a view at an offset inside a larger
buffer, stride-0 broadcasts, read-only, big-endian, misaligned (odd address),
and size-1 dimensions with huge strides (which NumPy calls C-contiguous).
The result must be bitwise identical to the call on ``np.array(b, order="C")``
in native byte order, and the memory behind the argument (including the gaps
and the neighbours of a view) must be unchanged.
"""

from __future__ import annotations

import numpy as np
import pytest
from cases import rng_for

import fastconv
from fastconv import _core

# ---------------------------------------------------------------------------
# Layouts: each takes a C-contiguous array and returns an array of the same
# shape and dtype kind in another layout (with the same values, except the
# broadcasts, whose values are constant along the broadcast axis).
# ---------------------------------------------------------------------------


def neg_strides(a):
    b = np.flip(np.flip(a).copy())
    assert a.size <= 1 or any(s < 0 for s in b.strides)
    return b


def fortran(a):
    return np.asfortranarray(a)


def transposed(a):
    perm = (*range(a.ndim - 2), a.ndim - 1, a.ndim - 2)  # memory order: last two swapped
    inv = tuple(int(i) for i in np.argsort(perm))
    return np.ascontiguousarray(a.transpose(perm)).transpose(inv)


def gaps_hold_nan(a):
    buf = (
        np.full(tuple(2 * n + 1 for n in a.shape), np.nan, a.dtype)
        if a.dtype.kind == "f"
        else np.full(tuple(2 * n + 1 for n in a.shape), -(2**62), a.dtype)
    )
    view = buf[tuple(slice(1, None, 2) for _ in a.shape)]
    view[...] = a
    return view


def offset_in_buffer(a):
    fill = np.nan if a.dtype.kind == "f" else -7
    buf = np.full(a.size + 40, fill, a.dtype)
    view = buf[17 : 17 + a.size].reshape(a.shape)
    view[...] = a
    return view


def broadcast_first_axis(a):
    return np.broadcast_to(a[:1], a.shape)


def broadcast_last_axis(a):
    return np.broadcast_to(a[..., :1], a.shape)


def read_only(a):
    b = a.copy()
    b.flags.writeable = False
    return b


def big_endian(a):
    return a.astype(a.dtype.newbyteorder(">"))


def misaligned(a):
    buf = bytearray(a.nbytes + 1)
    b = np.frombuffer(buf, dtype=a.dtype, count=a.size, offset=1).reshape(a.shape)
    b[...] = a
    assert b.ctypes.data % a.dtype.itemsize != 0 and not b.flags.aligned
    return b


def size1_huge_strides(a):
    strides = [2**40 + 8 if n == 1 else s for n, s in zip(a.shape, a.strides)]
    b = np.lib.stride_tricks.as_strided(a, shape=a.shape, strides=strides)
    assert b.flags.c_contiguous  # NumPy ignores the strides of size-1 dimensions
    return b


LAYOUTS = {
    "neg_strides": neg_strides,
    "fortran": fortran,
    "transposed": transposed,
    "gaps_hold_nan": gaps_hold_nan,
    "offset_in_buffer": offset_in_buffer,
    "broadcast_axis0": broadcast_first_axis,
    "broadcast_last": broadcast_last_axis,
    "read_only": read_only,
    "big_endian": big_endian,
    "misaligned": misaligned,
    "size1_huge_strides": size1_huge_strides,
}


def native_copy(b):
    return np.array(b, dtype=b.dtype.newbyteorder("="), order="C", copy=True)


def _root(b):
    r = b
    # ndarray views, and as_strided's DummyArray wrapper, keep their source in .base
    while getattr(r, "base", None) is not None and not isinstance(r, (bytes, bytearray)):
        r = r.base
    return r


def memory_snapshot(b):
    """Bytes of all the memory behind b (the whole underlying buffer)."""
    r = _root(b)
    if isinstance(r, np.ndarray):
        return r.tobytes()
    if isinstance(r, (bytes, bytearray)):
        return bytes(r)
    return bytes(memoryview(r))


# ---------------------------------------------------------------------------
# Ops: a valid set of (contiguous) arguments and a call returning a tuple of arrays
# ---------------------------------------------------------------------------


def _f32(key, *shape):
    return rng_for("layout", key, shape).standard_normal(shape).astype(np.float32)


def _conv_args(depthwise):
    if depthwise:  # weight (K, 1, R, S) has a size-1 dimension
        return {
            "x": _f32("x", 1, 3, 6, 7),
            "weight": _f32("w", 3, 1, 3, 3),
            "bias": _f32("b", 3),
            "grad_output": _f32("dy", 1, 3, 6, 7),
        }
    return {
        "x": _f32("x", 2, 3, 6, 7),
        "weight": _f32("w", 4, 3, 3, 2),
        "bias": _f32("b", 4),
        "grad_output": _f32("dy", 2, 4, 3, 3),
    }


def _conv_kw(depthwise):
    return {"padding": 1, "groups": 3} if depthwise else {"stride": 2, "padding": (1, 0)}


def _maxpool_args():
    x = _f32("px", 1, 2, 7, 8)
    _, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    return {"x": x, "grad_output": _f32("pdy", *idx.shape), "indices": idx}


OPS = {
    "conv2d": (
        lambda d: _conv_args(False),
        lambda a: (fastconv.conv2d(a["x"], a["weight"], a["bias"], **_conv_kw(False)),),
        ["x", "weight", "bias"],
    ),
    "conv2d_dw_im2col": (
        lambda d: _conv_args(True),
        lambda a: (
            fastconv.conv2d(a["x"], a["weight"], a["bias"], **_conv_kw(True), algo="im2col"),
        ),
        ["x", "weight", "bias"],
    ),
    "conv2d_backward": (
        lambda d: _conv_args(False),
        lambda a: fastconv.conv2d_backward(
            a["grad_output"], a["x"], a["weight"], **_conv_kw(False)
        ),
        ["grad_output", "x", "weight"],
    ),
    "conv2d_backward_dw_direct": (
        lambda d: _conv_args(True),
        lambda a: fastconv.conv2d_backward(
            a["grad_output"], a["x"], a["weight"], **_conv_kw(True), algo="direct"
        ),
        ["grad_output", "x", "weight"],
    ),
    "max_pool2d": (
        lambda d: _maxpool_args(),
        lambda a: fastconv.max_pool2d(a["x"], 3, 2, 1, return_indices=True),
        ["x"],
    ),
    "max_pool2d_backward": (
        lambda d: _maxpool_args(),
        lambda a: (fastconv.max_pool2d_backward(a["grad_output"], a["indices"], (1, 2, 7, 8)),),
        ["grad_output", "indices"],
    ),
    "avg_pool2d": (
        lambda d: {"x": _f32("ax", 1, 3, 7, 9)},
        lambda a: (fastconv.avg_pool2d(a["x"], 3, 2, 1, count_include_pad=False),),
        ["x"],
    ),
    "avg_pool2d_backward": (
        lambda d: {"grad_output": _f32("ady", 1, 3, 4, 5)},
        lambda a: (fastconv.avg_pool2d_backward(a["grad_output"], (1, 3, 7, 9), 3, 2, 1),),
        ["grad_output"],
    ),
    "linear": (
        lambda d: {"x": _f32("lx", 3, 5, 7), "weight": _f32("lw", 4, 7), "bias": _f32("lb", 4)},
        lambda a: (fastconv.linear(a["x"], a["weight"], a["bias"]),),
        ["x", "weight", "bias"],
    ),
    "linear_in1": (  # in_features = 1: size-1 dimensions in x and weight
        lambda d: {"x": _f32("lx1", 6, 1), "weight": _f32("lw1", 5, 1), "bias": _f32("lb1", 5)},
        lambda a: (fastconv.linear(a["x"], a["weight"], a["bias"]),),
        ["x", "weight", "bias"],
    ),
    "sgemm": (
        lambda d: {"a": _f32("ga", 9, 17), "b": _f32("gb", 17, 1), "c": _f32("gc", 9, 1)},
        lambda a: (_core.sgemm(a["a"], a["b"], a["c"], alpha=0.5, beta=2.0),),
        ["a", "b", "c"],
    ),
    "sgemm_tt": (
        lambda d: {"a": _f32("ga", 17, 9), "b": _f32("gb", 1, 17), "c": _f32("gc", 9, 1)},
        lambda a: (
            _core.sgemm(a["a"], a["b"], a["c"], alpha=1.0, beta=-1.0, trans_a=True, trans_b=True),
        ),
        ["a", "b", "c"],
    ),
}


def _applicable(layout, a):
    """Layouts that differ from C order for an array of this shape."""
    if layout == "size1_huge_strides":
        return 1 in a.shape
    if layout in ("fortran", "transposed"):
        return a.ndim >= 2
    return True


CASES = [
    (op, name, layout)
    for op, (make, _, names) in OPS.items()
    for name in names
    for layout in LAYOUTS
    if _applicable(layout, make(None)[name])
]


def assert_bitwise(got, want, what):
    assert isinstance(got, np.ndarray), what
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert got.tobytes() == want.tobytes(), f"{what}: results differ"


@pytest.mark.parametrize("op, name, layout", CASES, ids=["-".join(c) for c in CASES])
def test_layout_gives_the_contiguous_result(op, name, layout):
    make, call, _ = OPS[op]
    args = make(None)
    a = args[name]
    b = LAYOUTS[layout](a)
    assert b.shape == a.shape
    before = memory_snapshot(b)
    b_values = native_copy(b)
    got = call(dict(args, **{name: b}))
    want = call(dict(args, **{name: b_values}))
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_bitwise(g, w, f"{op} output {i} with {name} {layout}")
    assert memory_snapshot(b) == before, "the argument's memory (or its neighbours) changed"
    np.testing.assert_array_equal(native_copy(b), b_values)


def test_layouts_that_keep_values_really_keep_them():
    """Sanity check of the helpers: the value-preserving layouts do preserve values."""
    a = _f32("sanity", 1, 3, 4, 5)
    for name, f in LAYOUTS.items():
        if name.startswith("broadcast"):
            continue
        b = f(a)
        np.testing.assert_array_equal(b, a, err_msg=name)
        if name not in ("read_only", "big_endian"):
            assert b.ctypes.data != a.ctypes.data or b.strides != a.strides, name
    assert not np.isnan(gaps_hold_nan(a)).any() and np.isnan(_root(gaps_hold_nan(a))).any()


def test_every_argument_with_several_odd_layouts_at_once():
    """All arguments of conv2d_backward non-contiguous at the same time."""
    args = _conv_args(False)
    odd = {
        "grad_output": neg_strides(args["grad_output"]),
        "x": misaligned(args["x"]),
        "weight": big_endian(args["weight"]),
    }
    got = fastconv.conv2d_backward(odd["grad_output"], odd["x"], odd["weight"], **_conv_kw(False))
    want = fastconv.conv2d_backward(
        args["grad_output"], args["x"], args["weight"], **_conv_kw(False)
    )
    for g, w in zip(got, want):
        assert_bitwise(g, w, "conv2d_backward")


def test_outputs_are_fresh_c_contiguous_arrays():
    args = _conv_args(False)
    x_f = fortran(args["x"])
    y = fastconv.conv2d(x_f, args["weight"], args["bias"], **_conv_kw(False))
    assert y.flags.c_contiguous and y.flags.writeable
    assert not np.shares_memory(y, x_f)
    c = read_only(_f32("gc", 9, 1))
    out = _core.sgemm(_f32("ga", 9, 17), _f32("gb", 17, 1), c, beta=1.0)
    assert not np.shares_memory(out, c)  # sgemm returns a new array, never writes c
