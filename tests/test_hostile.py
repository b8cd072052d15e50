"""Hostile inputs: every class of shared/reference/hostile-inputs.md, for every
entry point it applies to, plus guard bytes around every output and the
randomized (hypothesis) comparison with the reference at scale.

Entry points (``ENTRIES``; each is one pytest id, so a failure names it):

=============================  ===============================================
``conv2d-<algo>``              forward, algo in direct / im2col / auto
``backward_input-<algo>``      ``conv2d_backward(..., output_mask=(1, 0, 0))``
``backward_weight-<algo>``     ``output_mask=(0, 1, 0)``
``backward_bias-<algo>``       ``output_mask=(0, 0, 1)`` (the bias gradient)
``max_pool2d``                 with ``return_indices=True``
``max_pool2d_values``          without indices (the kernel's other path)
``max_pool2d_backward``, ``avg_pool2d``, ``avg_pool2d_backward``, ``linear``
=============================  ===============================================

Sections, in the order of the list (tick them off):

* Types: ``test_float_arguments_reject_every_other_dtype``,
  ``test_indices_reject_every_other_dtype``, ``test_non_arrays_rejected``
  (lists, None, scalars, array-likes); mixed float32/float64 is the float64
  case of the first one (one argument float64, the others float32).
  Non-native byte order, misaligned data and strides that are not a multiple
  of 4 bytes are layouts (handled by a copy), below.
* Layouts: ``test_layout_gives_the_contiguous_result`` (every entry point,
  every array argument, every layout of ``LAYOUTS``, bitwise, and the memory
  behind the argument unchanged), ``test_every_argument_odd_at_once``,
  ``test_outputs_are_fresh_writable_arrays``.
* Shapes: ranks, channels and groups, bias shapes, N = 0, zero-sized
  dimensions, kernels larger than the padded input.
* Parameters: non-positive, huge, non-int, wrong-length and out-of-range
  parameters, bool flags, strings.
* Sizes: products over int64 (ValueError), sizes that fit int64 but not in
  memory (MemoryError from the failed allocation), the exact 2**24+1 size,
  and ``@pytest.mark.bigmem`` runs with more than 2**31 elements.
* Backward: grad_output shapes, max-pool indices, input_shape.
* Numerics: max-pool NaN / -inf windows, non-finite operands with zero
  padding for every algorithm and ISA, the caller's floating-point mode.
* Runtime: another thread writing into the inputs (and into max-pool indices)
  during a call. The other runtime items (many threads, the GIL, Ctrl-C, fork,
  memory, valgrind) are in test_process.py.
* Guard bytes: with ``_core._set_output_guard(64)`` every output of every entry
  point, algorithm and ISA leaves its sentinels untouched and equals the
  unguarded result bitwise.
* Randomized: hypothesis over every parameter, algorithm and ISA against the
  float64 reference (conv, tolerance of test_conv2d.py) and exactly (pools).

"Handle" means: the result is bitwise the result for a contiguous float32 copy.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest
from cases import (
    AVG_POOL_CASES,
    CONV_CASES,
    MAX_POOL_CASES,
    PADDING_ONLY_TAP_CASES,
    ConvCase,
    PoolCase,
    conv_problems,
    ids,
    pool_input,
    pool_problems,
    rng_for,
)
from conftest import require_memory
from hypothesis import given
from hypothesis import strategies as st
from test_conv2d import (
    assert_same_nonfinite,
    assert_within_rounding,
    reduction_lengths,
    reference_abs,
    reference_passes,
    runnable_isas,
)

import fastconv
from fastconv import _core
from fastconv import reference as ref

ALGOS = (*_core.conv_algos()[1:], "auto")
CONV_PASSES = ("forward", "backward_input", "backward_weight", "backward_bias")
INT64_MAX = 2**63 - 1


def _f32(key, *shape):
    return rng_for("hostile", key, shape).standard_normal(shape).astype(np.float32)


# ---------------------------------------------------------------------------
# Entry points: valid contiguous arrays, and a call that returns its outputs
# ---------------------------------------------------------------------------

CONV_KW = {"stride": (2, 1), "padding": (1, 0)}  # x (2,3,6,7), w (4,3,3,2) -> y (2,4,3,6)
CONV_DW_KW = {"padding": 1, "groups": 3}  # x (1,3,6,7), w (3,1,3,3): size-1 dimensions
X_POOL = (2, 3, 7, 8)
MAX_KW = {"kernel_size": 3, "stride": 2, "padding": 1, "dilation": 1, "ceil_mode": False}
AVG_KW = {
    "kernel_size": 3,
    "stride": 2,
    "padding": 1,
    "ceil_mode": True,
    "count_include_pad": False,
    "divisor_override": None,
}


@dataclass(frozen=True)
class Entry:
    name: str
    family: str  # the op name that starts every message ("conv2d_backward: ...")
    arrays: tuple  # the array arguments
    make: Callable[[], dict]  # fresh valid (contiguous) arrays
    run: Callable[..., tuple]  # run(arrays, **params) -> tuple of output arrays
    params: dict = field(default_factory=dict)  # the parameters of the valid call
    optional: tuple = ()  # arrays that may be None
    algo: str | None = None
    pass_: str | None = None

    def call(self, a: dict, **overrides) -> tuple:
        return self.run(a, **{**self.params, **overrides})

    def __repr__(self) -> str:
        return self.name


@functools.cache
def _conv_arrays(depthwise: bool) -> dict:
    if depthwise:
        x, w, kw = _f32("x_dw", 1, 3, 6, 7), _f32("w_dw", 3, 1, 3, 3), CONV_DW_KW
    else:
        x, w, kw = _f32("x", 2, 3, 6, 7), _f32("w", 4, 3, 3, 2), CONV_KW
    y_shape = ref.conv2d(x, w, **kw).shape
    return {"x": x, "weight": w, "bias": _f32("b", w.shape[0]), "grad_output": _f32("dy", *y_shape)}


def _fresh(arrays: dict) -> dict:
    return {k: v.copy() for k, v in arrays.items()}


def _conv_forward(a, algo, **p):
    return (fastconv.conv2d(a["x"], a["weight"], a.get("bias"), **p, algo=algo),)


def _conv_backward(a, algo, output_mask, **p):
    out = fastconv.conv2d_backward(
        a["grad_output"], a["x"], a["weight"], **p, algo=algo, output_mask=output_mask
    )
    assert isinstance(out, tuple) and len(out) == 3
    return tuple(o for o in out if o is not None)


def conv_entry(pass_: str, algo: str, depthwise: bool = False) -> Entry:
    kw = dict(CONV_DW_KW if depthwise else CONV_KW)
    make = lambda: _fresh(_conv_arrays(depthwise))
    suffix = "_dw" if depthwise else ""
    if pass_ == "forward":
        return Entry(
            f"conv2d{suffix}-{algo}",
            "conv2d",
            ("x", "weight", "bias"),
            lambda: {k: v for k, v in make().items() if k != "grad_output"},
            functools.partial(_conv_forward, algo=algo),
            kw,
            optional=("bias",),
            algo=algo,
            pass_=pass_,
        )
    mask = tuple(p == pass_ for p in CONV_PASSES[1:])
    return Entry(
        f"{pass_}{suffix}-{algo}",
        "conv2d_backward",
        ("grad_output", "x", "weight"),
        lambda: {k: v for k, v in make().items() if k != "bias"},
        functools.partial(_conv_backward, algo=algo, output_mask=mask),
        kw,
        algo=algo,
        pass_=pass_,
    )


@functools.cache
def _pool_arrays() -> dict:
    x = _f32("px", *X_POOL)
    _, idx = ref.max_pool2d(x, **MAX_KW, return_indices=True)
    y_avg = ref.avg_pool2d(x, **AVG_KW)
    return {
        "x": x,
        "indices": idx,
        "grad_output": _f32("pdy", *idx.shape),
        "grad_output_avg": _f32("ady", *y_avg.shape),
    }


def _max_pool(a, **p):
    out = fastconv.max_pool2d(a["x"], **p)
    return out if isinstance(out, tuple) else (out,)


def _max_pool_backward(a, input_shape):
    return (fastconv.max_pool2d_backward(a["grad_output"], a["indices"], input_shape),)


def _avg_pool(a, **p):
    return (fastconv.avg_pool2d(a["x"], **p),)


def _avg_pool_backward(a, input_shape, **p):
    return (fastconv.avg_pool2d_backward(a["grad_output"], input_shape, **p),)


def _linear(a):
    return (fastconv.linear(a["x"], a["weight"], a.get("bias")),)


def _linear_arrays(in1: bool) -> dict:
    if in1:  # in_features = 1: size-1 dimensions in x and weight
        return {"x": _f32("lx1", 6, 1), "weight": _f32("lw1", 5, 1), "bias": _f32("lb1", 5)}
    return {"x": _f32("lx", 3, 5, 7), "weight": _f32("lw", 4, 7), "bias": _f32("lb", 4)}


def _pool_make(*names, rename=None):
    def make():
        a = _fresh(_pool_arrays())
        out = {n: a[n] for n in names}
        if rename:
            out[rename[1]] = a[rename[0]]
        return out

    return make


OTHER_ENTRIES = [
    Entry(
        "max_pool2d",
        "max_pool2d",
        ("x",),
        _pool_make("x"),
        _max_pool,
        {**MAX_KW, "return_indices": True},
    ),
    Entry(
        "max_pool2d_values",
        "max_pool2d",
        ("x",),
        _pool_make("x"),
        _max_pool,
        {**MAX_KW, "return_indices": False},
    ),
    Entry(
        "max_pool2d_backward",
        "max_pool2d_backward",
        ("grad_output", "indices"),
        _pool_make("grad_output", "indices"),
        _max_pool_backward,
        {"input_shape": X_POOL},
    ),
    Entry("avg_pool2d", "avg_pool2d", ("x",), _pool_make("x"), _avg_pool, dict(AVG_KW)),
    Entry(
        "avg_pool2d_backward",
        "avg_pool2d_backward",
        ("grad_output",),
        _pool_make(rename=("grad_output_avg", "grad_output")),
        _avg_pool_backward,
        {"input_shape": X_POOL, **AVG_KW},
    ),
    Entry(
        "linear",
        "linear",
        ("x", "weight", "bias"),
        lambda: _linear_arrays(False),
        _linear,
        optional=("bias",),
    ),
]

CONV_ENTRIES = [conv_entry(p, a) for p in CONV_PASSES for a in ALGOS]
ENTRIES = CONV_ENTRIES + OTHER_ENTRIES
BY_NAME = {e.name: e for e in ENTRIES}


def entries(*families) -> list:
    return [e for e in ENTRIES if e.family in families]


def _ids(cases) -> list:
    return ["-".join(str(p) for p in c) for c in cases]


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_the_valid_calls_succeed(entry):
    """The baselines that every test below breaks in exactly one place."""
    out = entry.call(entry.make())
    assert out and all(isinstance(o, np.ndarray) for o in out)


# ===========================================================================
# Types
# ===========================================================================

BAD_FLOAT_DTYPES = [
    "float64",  # with the other arguments float32: the mixed float32/float64 call
    "float16",
    "longdouble",
    "complex64",
    "complex128",
    "int8",
    "int32",
    "int64",
    "uint8",
    "uint64",
    "bool",
    "object",
    "<U3",
    "S3",
    ">f8",
]
BAD_INDEX_DTYPES = ["int32", "uint64", "int16", "float32", "float64", "bool", "object", "<U3"]

FLOAT_ARGS = [(e, n) for e in ENTRIES for n in e.arrays if n != "indices"]
INDEX_ARGS = [(e, "indices") for e in ENTRIES if "indices" in e.arrays]


@pytest.mark.parametrize("dtype", BAD_FLOAT_DTYPES)
@pytest.mark.parametrize("entry, arg", FLOAT_ARGS, ids=_ids(FLOAT_ARGS))
def test_float_arguments_reject_every_other_dtype(entry, arg, dtype):
    a = entry.make()
    a[arg] = a[arg].astype(dtype)
    msg = (
        rf"^{entry.family}: {arg} must have dtype float32, got "
        rf"{re.escape(str(a[arg].dtype))} \(fastconv never casts silently"
    )
    with pytest.raises(TypeError, match=msg):
        entry.call(a)


@pytest.mark.parametrize("dtype", BAD_INDEX_DTYPES)
@pytest.mark.parametrize("entry, arg", INDEX_ARGS, ids=_ids(INDEX_ARGS))
def test_indices_reject_every_other_dtype(entry, arg, dtype):
    a = entry.make()
    a[arg] = a[arg].astype(dtype)
    msg = rf"^{entry.family}: indices must have dtype int64, got {re.escape(str(a[arg].dtype))}"
    with pytest.raises(TypeError, match=msg):
        entry.call(a)


class _ArrayLike:
    """Has __array__ (NumPy would convert it); fastconv must not."""

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        return self.a


NON_ARRAYS = {
    "list": lambda a: a.tolist(),
    "tuple": lambda a: tuple(a.tolist()),
    "float": lambda a: 1.5,
    "int": lambda a: 3,
    "numpy_scalar": lambda a: a.dtype.type(1),
    "str": lambda a: "x",
    "bytes": lambda a: a.tobytes(),
    "memoryview": lambda a: memoryview(a),
    "array_like": _ArrayLike,
    "None": lambda a: None,
}
ALL_ARGS = [(e, n) for e in ENTRIES for n in e.arrays]


@pytest.mark.parametrize("kind", list(NON_ARRAYS))
@pytest.mark.parametrize("entry, arg", ALL_ARGS, ids=_ids(ALL_ARGS))
def test_non_arrays_rejected(entry, arg, kind):
    a = entry.make()
    if kind == "None" and arg in entry.optional:
        out = entry.call({**a, arg: None})  # the documented default: no bias
        want = entry.call({k: v for k, v in a.items() if k != arg})
        assert all(o.tobytes() == w.tobytes() for o, w in zip(out, want))
        return
    bad = NON_ARRAYS[kind](a[arg])
    dtype = "int64" if arg == "indices" else "float32"
    msg = (
        rf"^{entry.family}: {arg} must be a numpy\.ndarray of {dtype}, "
        rf"got {re.escape(type(bad).__name__)}$"
    )
    with pytest.raises(TypeError, match=msg):
        entry.call({**a, arg: bad})


# ===========================================================================
# Layouts (all must be handled: bitwise the result of a contiguous copy)
# ===========================================================================
# Each layout takes a C-contiguous array and returns an array of the same shape
# and dtype kind, laid out differently in memory (with the same values, except
# the broadcasts, whose values are constant along the broadcast axis).


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
    fill = np.nan if a.dtype.kind == "f" else -(2**62)
    buf = np.full(tuple(2 * n + 1 for n in a.shape), fill, a.dtype)
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


def odd_byte_strides(a):
    """Strides that are not a multiple of the item size (itemsize + 2 bytes apart)."""
    strides, s = [], a.itemsize + 2
    for n in reversed(a.shape):
        strides.insert(0, s)
        s *= max(n, 1)
    buf = np.zeros(s + a.itemsize + 8, np.uint8)
    b = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1, strides=tuple(strides))
    b[...] = a
    assert a.size <= 1 or any(st % a.itemsize for st in b.strides)
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
    "odd_byte_strides": odd_byte_strides,
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


def _sgemm_entry(name, trans):
    if trans:
        make = lambda: {"a": _f32("ga", 17, 9), "b": _f32("gb", 1, 17), "c": _f32("gc", 9, 1)}
        run = lambda a: (
            _core.sgemm(a["a"], a["b"], a["c"], alpha=1.0, beta=-1.0, trans_a=True, trans_b=True),
        )
    else:
        make = lambda: {"a": _f32("ga", 9, 17), "b": _f32("gb", 17, 1), "c": _f32("gc", 9, 1)}
        run = lambda a: (_core.sgemm(a["a"], a["b"], a["c"], alpha=0.5, beta=2.0),)
    return Entry(name, "sgemm", ("a", "b", "c"), make, run)


# Every entry point, plus depthwise convolutions and in_features = 1 (size-1
# dimensions for size1_huge_strides), plus the raw sgemm test hook.
LAYOUT_ENTRIES = (
    ENTRIES
    + [conv_entry(p, a, depthwise=True) for p in CONV_PASSES for a in ALGOS]
    + [
        Entry(
            "linear_in1",
            "linear",
            ("x", "weight", "bias"),
            lambda: _linear_arrays(True),
            _linear,
        ),
        _sgemm_entry("sgemm", False),
        _sgemm_entry("sgemm_tt", True),
    ]
)


def _applicable(layout, a):
    """Layouts that differ from C order for an array of this shape."""
    if layout == "size1_huge_strides":
        return 1 in a.shape
    if layout in ("fortran", "transposed"):
        return a.ndim >= 2
    return True


LAYOUT_CASES = [
    (e, name, layout)
    for e in LAYOUT_ENTRIES
    for name in e.arrays
    for layout in LAYOUTS
    if _applicable(layout, e.make()[name])
]


def assert_bitwise(got, want, what):
    assert isinstance(got, np.ndarray), what
    assert got.dtype == want.dtype and got.shape == want.shape, what
    assert got.tobytes() == want.tobytes(), f"{what}: results differ"


@pytest.mark.parametrize("entry, name, layout", LAYOUT_CASES, ids=_ids(LAYOUT_CASES))
def test_layout_gives_the_contiguous_result(entry, name, layout):
    args = entry.make()
    a = args[name]
    b = LAYOUTS[layout](a)
    assert b.shape == a.shape
    before = memory_snapshot(b)
    b_values = native_copy(b)
    got = entry.call({**args, name: b})
    want = entry.call({**args, name: b_values})
    assert len(got) == len(want)
    for i, (g, w) in enumerate(zip(got, want)):
        assert_bitwise(g, w, f"{entry} output {i} with {name} {layout}")
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


ODD_AT_ONCE = [neg_strides, misaligned, big_endian, odd_byte_strides, fortran]


@pytest.mark.parametrize("entry", LAYOUT_ENTRIES, ids=str)
def test_every_argument_odd_at_once(entry):
    """All array arguments in (different) odd layouts in the same call."""
    args = entry.make()
    odd = {n: ODD_AT_ONCE[i % len(ODD_AT_ONCE)](a) for i, (n, a) in enumerate(args.items())}
    for g, w in zip(entry.call(odd), entry.call(args)):
        assert_bitwise(g, w, str(entry))


@pytest.mark.parametrize("entry", LAYOUT_ENTRIES, ids=str)
def test_outputs_are_fresh_writable_arrays(entry):
    """fastconv writes only into arrays it allocates: every output is a new, writable,
    aligned, C-contiguous array sharing no memory with any (read-only) input."""
    args = {n: read_only(a) for n, a in entry.make().items()}
    outs = entry.call(args)
    for o in outs:
        assert o.flags.c_contiguous and o.flags.writeable and o.flags.aligned
        # Outputs of 256 KiB or more are fastconv's recycled buffers (src/outputs.cpp,
        # OutputCache), owned through a capsule instead of by the array itself.
        assert o.flags.owndata or type(o.base).__name__ == "PyCapsule"
        for a in args.values():
            assert not np.shares_memory(o, a)
    for i, o in enumerate(outs):
        for o2 in outs[i + 1 :]:
            assert not np.shares_memory(o, o2)


# ===========================================================================
# Shapes
# ===========================================================================

RANK_CASES = [
    (e, n, change)
    for e in ENTRIES
    for n in e.arrays
    for change in ("drop", "add", "0d")
    if not (e.family == "linear" and n == "x")  # x of linear may have any rank >= 1
]


@pytest.mark.parametrize("entry, arg, change", RANK_CASES, ids=_ids(RANK_CASES))
def test_wrong_rank(entry, arg, change):
    a = entry.make()
    good = a[arg]
    bad = {"drop": good[0, ...], "add": good[None], "0d": good.reshape(-1)[0, ...]}[change]
    assert bad.ndim != good.ndim
    msg = rf"^{entry.family}: {arg} must be {good.ndim}-D .*got shape {re.escape(str(bad.shape))}$"
    with pytest.raises(ValueError, match=msg):
        entry.call({**a, arg: bad})


def test_linear_x_rank():
    w = _f32("w", 4, 7)
    with pytest.raises(ValueError, match=r"^linear: x must have at least 1 dimension"):
        fastconv.linear(np.zeros((), np.float32), w)
    x1, x3 = _f32("x1", 7), _f32("x3", 2, 3, 7)
    assert_bitwise(fastconv.linear(x1, w), fastconv.linear(x1[None], w)[0], "1-D x")
    assert_bitwise(
        fastconv.linear(x3, w), fastconv.linear(x3.reshape(6, 7), w).reshape(2, 3, 4), "3-D x"
    )


@pytest.mark.parametrize("entry", CONV_ENTRIES, ids=str)
def test_conv_channels_and_groups(entry):
    a = entry.make()
    op = entry.family

    def run(x_shape, w_shape, groups=1):
        return entry.call(
            {**a, "x": _f32("cx", *x_shape), "weight": _f32("cw", *w_shape)}, groups=groups
        )

    with pytest.raises(
        ValueError,
        match=rf"^{op}: x has C=3 but weight expects C=4 \(C/groups=4 per group\); "
        r"x \(2, 3, 6, 7\), weight \(4, 4, 3, 2\), groups=1$",
    ):
        run((2, 3, 6, 7), (4, 4, 3, 2))
    with pytest.raises(ValueError, match=rf"^{op}: x has C=6 but weight expects C=4"):
        run((2, 6, 6, 7), (4, 2, 3, 2), groups=2)
    with pytest.raises(ValueError, match=rf"^{op}: groups=2 does not divide C=3; x \(2, 3"):
        run((2, 3, 6, 7), (4, 1, 3, 2), groups=2)
    with pytest.raises(ValueError, match=rf"^{op}: groups=2 does not divide K=3; x \(2, 4"):
        run((2, 4, 6, 7), (3, 2, 3, 2), groups=2)


BIAS_CASES = [
    (e, s) for e in entries("conv2d", "linear") for s in [(1,), (3,), (5,), (4, 1), (1, 4)]
]


@pytest.mark.parametrize("entry, shape", BIAS_CASES, ids=_ids(BIAS_CASES))
def test_bias_wrong_shape(entry, shape):
    """Bias must be (K,) (conv) or (out_features,) (linear); K = 4 here."""
    a = entry.make()
    bad = _f32("bias", *shape)
    if len(shape) != 1:
        msg = rf"^{entry.family}: bias must be 1-D .*got shape {re.escape(str(shape))}$"
    elif entry.family == "conv2d":
        msg = rf"^conv2d: bias must have shape \(K,\) = \(4,\) for weight \(4, 3, 3, 2\), got \({shape[0]},\)$"
    else:
        msg = rf"^linear: bias must have shape \(out_features,\) = \(4,\), got \({shape[0]},\)$"
    with pytest.raises(ValueError, match=msg):
        entry.call({**a, "bias": bad})


@pytest.mark.parametrize("entry", entries("conv2d", "linear"), ids=str)
def test_bias_of_length_one_with_one_filter_is_fine(entry):
    a = entry.make()
    a["weight"] = a["weight"][:1].copy()
    a["bias"] = np.array([2.5], np.float32)
    (y,) = entry.call(a)
    (y0,) = entry.call({**a, "bias": None})
    assert y.shape[-1 if entry.family == "linear" else 1] == 1
    np.testing.assert_allclose(y, y0 + np.float32(2.5), rtol=1e-6, atol=1e-6)


def _empty_batch_args(entry):
    a = entry.make()
    for n in ("x", "grad_output", "indices"):
        if n in a:
            a[n] = a[n][:0]
    params = {}
    if "input_shape" in entry.params:
        params["input_shape"] = (0, *entry.params["input_shape"][1:])
    return a, params


GUARD = 64  # sentinel elements on each side of every output in the guard tests
F32_SENTINEL = 0x7FC0DEAD
I64_SENTINEL = 0x5A5A5A5A5A5A5A5A


def assert_guards_intact(out: np.ndarray, guard: int, what: str = ""):
    """out is a view into out.base with `guard` untouched sentinels on each side."""
    base = out.base
    assert isinstance(base, np.ndarray) and base.ndim == 1, f"{what}: not a guarded output"
    assert base.size == out.size + 2 * guard, what
    if out.size:  # (NumPy may give an empty view any data pointer)
        offset = (out.ctypes.data - base.ctypes.data) // base.itemsize
        assert offset == guard, f"{what}: the output starts at {offset}, not {guard}"
    if out.dtype == np.float32:
        bits, sentinel = base.view(np.uint32), F32_SENTINEL
    else:
        assert out.dtype == np.int64, what
        bits, sentinel = base.view(np.uint64), I64_SENTINEL
    head, tail = bits[:guard], bits[guard + out.size :]
    for side, part in (("before", head), ("after", tail)):
        bad = np.flatnonzero(part != sentinel)
        assert bad.size == 0, (
            f"{what}: {bad.size} sentinel(s) {side} the output overwritten, e.g. element "
            f"{int(bad[0])} of the guard = {int(part[bad[0]]):#x}"
        )


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_empty_batch(entry, isa, output_fill, output_guard):
    """N = 0: an empty result of the right shape, zero weight and bias gradients
    (written, not left as the NaN pre-fill), nothing written outside."""
    full = entry.call(entry.make())
    a, params = _empty_batch_args(entry)
    output_fill(np.nan)
    output_guard(8)
    out = entry.call(a, **params)
    assert len(out) == len(full)
    for o, f in zip(out, full):
        assert o.dtype == f.dtype
        if entry.pass_ in ("backward_weight", "backward_bias"):
            assert o.shape == f.shape
            assert (o.view(np.uint32) == 0).all(), f"{entry}: gradient not +0 for N = 0: {o}"
        else:
            assert o.shape == (0, *f.shape[1:])
        assert_guards_intact(o, 8, str(entry))


def test_linear_empty_inner_batch_dimension():
    y = fastconv.linear(np.zeros((3, 0, 7), np.float32), _f32("w", 4, 7), _f32("b", 4))
    assert y.shape == (3, 0, 4) and y.dtype == np.float32


ZERO_DIM_CASES = (
    [(e, "x", d) for e in CONV_ENTRIES for d in (1, 2, 3)]
    + [(e, "weight", d) for e in CONV_ENTRIES for d in (0, 1, 2, 3)]
    + [(e, "x", d) for e in entries("max_pool2d", "avg_pool2d") for d in (1, 2, 3)]
    + [(e, "input_shape", d) for e in entries("max_pool2d_backward", "avg_pool2d_backward") for d in (1, 2, 3)]
    + [(e, "grad_output", d) for e in entries("conv2d_backward", "max_pool2d_backward", "avg_pool2d_backward") for d in (2, 3)]
)  # fmt: skip


@pytest.mark.parametrize("entry, arg, dim", ZERO_DIM_CASES, ids=_ids(ZERO_DIM_CASES))
def test_zero_sized_dimensions_rejected(entry, arg, dim):
    """C, H, W, K, C/groups, R, S, P or Q = 0: ValueError naming the shape."""
    a, params, op = entry.make(), {}, entry.family
    if arg == "input_shape":
        shape = list(entry.params["input_shape"])
        shape[dim] = 0
        params["input_shape"] = tuple(shape)
        msg = rf"^{op}: input_shape of shape {re.escape(str(tuple(shape)))} must have C, H, W >= 1"
    else:
        shape = list(a[arg].shape)
        shape[dim] = 0
        a[arg] = np.zeros(shape, a[arg].dtype)
        if arg == "x":
            msg = rf"^{op}: x of shape {re.escape(str(tuple(shape)))} must have C, H, W >= 1 \(N may be 0\)"
        elif arg == "weight":
            msg = rf"^{op}: weight must have K, C/groups, R, S >= 1"
        elif op == "max_pool2d_backward":
            a["indices"] = np.zeros(shape, np.int64)
            msg = r"^max_pool2d_backward: grad_output .* does not match input_shape .*P and Q must be >= 1"
        else:
            msg = rf"^{op}: grad_output has shape {re.escape(str(tuple(shape)))} but the forward output"
    with pytest.raises(ValueError, match=msg):
        entry.call(a, **params)


@pytest.mark.parametrize("in_features, out_features", [(0, 4), (7, 0), (0, 0)])
def test_linear_zero_features(in_features, out_features):
    """in_features or out_features = 0: PyTorch's result (an empty sum is 0, so y is
    the bias; no output columns), or a ValueError that names linear's argument, never
    a message about an internal routine."""
    x = np.ones((3, in_features), np.float32)
    w = np.ones((out_features, in_features), np.float32)
    b = np.arange(out_features, dtype=np.float32)
    try:
        y = fastconv.linear(x, w, b)
    except ValueError as e:
        assert str(e).startswith("linear:") and "features" in str(e), (
            f"the error names an internal routine, not linear's arguments: {e}"
        )
        return
    np.testing.assert_array_equal(y, np.broadcast_to(b, (3, out_features)))


@pytest.mark.parametrize("entry", CONV_ENTRIES, ids=str)
@pytest.mark.parametrize(
    "x_hw, r, kw, out",
    [
        ((4, 4), 5, {}, "(0, 0)"),
        ((4, 9), 5, {}, "(0, 5)"),
        ((4, 4), 3, {"dilation": 3}, "(-2, -2)"),
        ((3, 3), 7, {"padding": 1}, "(-1, -1)"),
        ((2, 2), 4, {"stride": 3}, "(0, 0)"),
        ((5, 5), 3, {"dilation": (1, 4)}, "(3, -3)"),
    ],
)
def test_kernel_larger_than_padded_input(entry, x_hw, r, kw, out):
    """Output size <= 0: ValueError with the computed size (the reference's number)."""
    kw = {"stride": 1, "padding": 0, "dilation": 1, **kw}
    pair = lambda v: v if isinstance(v, tuple) else (v, v)
    sizes = [
        ref.conv2d_output_size(
            n, r, pair(kw["stride"])[i], 2 * pair(kw["padding"])[i], pair(kw["dilation"])[i]
        )
        for i, n in enumerate(x_hw)
    ]
    assert out == f"({sizes[0]}, {sizes[1]})"  # the expected text is the real computed size
    a = {"x": _f32("x", 1, 2, *x_hw), "weight": _f32("w", 3, 2, r, r), "bias": _f32("b", 3)}
    a["grad_output"] = _f32("dy", 1, 3, 1, 1)
    a = {k: v for k, v in a.items() if k in entry.arrays}
    msg = rf"^{entry.family}: the dilated kernel is larger than the padded input \(output size {re.escape(out)} <= 0\)"
    with pytest.raises(ValueError, match=msg):
        entry.call(a, **kw)
    with pytest.raises(ValueError, match=msg.replace(entry.family, "conv2d_choose_algo")):
        _core.conv2d_choose_algo("forward", a["x"].shape, a["weight"].shape, kw["stride"], kw["padding"], kw["dilation"], 1)  # fmt: skip


POOL_FWD = entries("max_pool2d", "avg_pool2d") + entries("avg_pool2d_backward")


@pytest.mark.parametrize("entry", POOL_FWD, ids=str)
def test_pool_window_larger_than_input(entry):
    for hw, k, out in [((2, 2), 3, "(0, 0)"), ((3, 2), 3, "(1, 0)"), ((2, 9), (1, 10), "(2, 0)")]:
        a = entry.make()
        params = {"kernel_size": k, "stride": 1, "padding": 0, "ceil_mode": False}
        if "x" in a:
            a["x"] = _f32("px", 1, 1, *hw)
        else:
            params["input_shape"] = (1, 1, *hw)
            a["grad_output"] = _f32("pdy", 1, 1, 1, 1)
        with pytest.raises(
            ValueError, match=rf"^{entry.family}: output size {re.escape(out)} <= 0"
        ):
            entry.call(a, **params)


# ===========================================================================
# Parameters
# ===========================================================================

# family -> {parameter: kind}; kind: "pos" (>= 1), "nonneg" (>= 0) for pairs,
# "groups" and "divisor" for plain ints.
PARAMS = {
    "conv2d": {"stride": "pos", "padding": "nonneg", "dilation": "pos", "groups": "groups"},
    "conv2d_backward": {"stride": "pos", "padding": "nonneg", "dilation": "pos", "groups": "groups"},
    "max_pool2d": {"kernel_size": "pos", "stride": "pos", "padding": "nonneg", "dilation": "pos"},
    "avg_pool2d": {"kernel_size": "pos", "stride": "pos", "padding": "nonneg", "divisor_override": "divisor"},
    "avg_pool2d_backward": {"kernel_size": "pos", "stride": "pos", "padding": "nonneg", "divisor_override": "divisor"},
}  # fmt: skip
PARAM_CASES = [(e, p) for e in ENTRIES for p in PARAMS.get(e.family, {})]


def _pair_text(v):
    a, b = (v, v) if isinstance(v, int) else v
    return rf"\({a}, {b}\)"


NONPOSITIVE = {
    "pos": [0, -1, (1, 0), (-2, 1), -(2**31)],
    "nonneg": [-1, (0, -1), (-3, 0), -(2**31)],
    "groups": [0, -1, -(2**31)],
    "divisor": [0],
}


@pytest.mark.parametrize("entry, param", PARAM_CASES, ids=_ids(PARAM_CASES))
def test_out_of_range_params(entry, param):
    kind = PARAMS[entry.family][param]
    for v in NONPOSITIVE[kind]:
        if kind == "groups":
            msg = rf"^{entry.family}: groups must be in \[1, 2147483647\], got {v}$"
        elif kind == "divisor":
            msg = rf"^{entry.family}: divisor_override must not be 0$"
        else:
            lo = 1 if kind == "pos" else 0
            msg = rf"^{entry.family}: {param} must be in \[{lo}, 2147483647\], got {_pair_text(v)}$"
        with pytest.raises(ValueError, match=msg):
            entry.call(entry.make(), **{param: v})


POOL_PARAM_ENTRIES = entries("max_pool2d", "avg_pool2d", "avg_pool2d_backward")


@pytest.mark.parametrize("entry", POOL_PARAM_ENTRIES, ids=str)
@pytest.mark.parametrize(
    "kernel, padding", [(3, 2), (2, 2), (1, 1), ((3, 2), (1, 2)), (4, 3), ((5, 1), (3, 0))]
)
def test_pool_padding_over_half_the_kernel(entry, kernel, padding):
    """PyTorch's rule: padding <= kernel_size // 2 (of the undilated kernel)."""
    msg = rf"^{entry.family}: padding \(.*\) must be at most half of kernel_size"
    with pytest.raises(ValueError, match=msg):
        entry.call(entry.make(), kernel_size=kernel, stride=1, padding=padding)


@pytest.mark.parametrize("entry", POOL_PARAM_ENTRIES, ids=str)
def test_pool_padding_at_half_the_kernel_is_fine(entry):
    for kernel, padding in [(3, 1), (4, 2), ((5, 2), (2, 1))]:
        a, params = entry.make(), {"kernel_size": kernel, "stride": 1, "padding": padding}
        if entry.family == "avg_pool2d_backward":
            kw = {k: v for k, v in entry.params.items() if k != "input_shape"}
            y = ref.avg_pool2d(_f32("px", *X_POOL), **{**kw, **params})
            a["grad_output"] = _f32("pdy", *y.shape)
        (out, *_) = entry.call(a, **params)
        assert out.shape[:2] == (2, 3)


HUGE = [2**31, 2**32, 2**62, 2**63 - 1, 2**63, 2**64, 2**70, -(2**63), -(2**63) - 1, -(2**70)]


@pytest.mark.parametrize("value", HUGE, ids=str)
@pytest.mark.parametrize("entry, param", PARAM_CASES, ids=_ids(PARAM_CASES))
def test_huge_params(entry, param, value):
    """2**31 and beyond, as an int and inside a pair: rejected before any arithmetic."""
    kind = PARAMS[entry.family][param]
    fits = -(2**63) <= value < 2**63
    if not fits:
        msg = rf"^{entry.family}: {param} = {value} does not fit in int64$"
    elif kind == "groups":
        msg = rf"^{entry.family}: groups must be in \[1, 2147483647\], got {value}$"
    elif kind == "divisor":
        return  # any non-zero int64 is a valid divisor (no arithmetic on it but one division)
    else:
        msg = rf"^{entry.family}: {param} must be in \[\d, 2147483647\], got"
    forms = [value] if kind in ("groups", "divisor") else [value, (1, value), (value, 1)]
    for v in forms:
        with pytest.raises(ValueError, match=msg):
            entry.call(entry.make(), **{param: v})


BAD_INTS = [True, False, 1.0, 2.5, "1", np.float32(1), np.float64(2), np.bool_(True), None, 1 + 0j]
NONE_IS_DEFAULT = {("max_pool2d", "stride"), ("avg_pool2d", "stride"), ("avg_pool2d_backward", "stride"),
                   ("avg_pool2d", "divisor_override"), ("avg_pool2d_backward", "divisor_override")}  # fmt: skip


def _bad_id(v):
    return f"{type(v).__name__}({v!r})"


@pytest.mark.parametrize("value", BAD_INTS, ids=_bad_id)
@pytest.mark.parametrize("entry, param", PARAM_CASES, ids=_ids(PARAM_CASES))
def test_non_int_params_rejected(entry, param, value):
    """bools, floats, strings, None where an int belongs: TypeError, as an int and in a pair."""
    if value is None and (entry.family, param) in NONE_IS_DEFAULT:
        return  # documented: stride=None is kernel_size, divisor_override=None is none
    if isinstance(value, str) and param == "padding" and entry.family.startswith("conv2d"):
        return  # a string padding is a mode: test_unknown_padding_string
    msg = rf"^{entry.family}: {param} must be an int, got {type(value).__name__}"
    forms = [value] if PARAMS[entry.family][param] in ("groups", "divisor") else [value, (1, value)]
    for v in forms:
        with pytest.raises(TypeError, match=msg):
            entry.call(entry.make(), **{param: v})


PAIR_PARAM_CASES = [(e, p) for e, p in PARAM_CASES if PARAMS[e.family][p] in ("pos", "nonneg")]


@pytest.mark.parametrize("entry, param", PAIR_PARAM_CASES, ids=_ids(PAIR_PARAM_CASES))
def test_pairs_of_wrong_length_or_type(entry, param):
    for v in [(1, 2, 3), (), (1,), [1, 1, 1]]:
        if v == () and (entry.family, param) in NONE_IS_DEFAULT:
            continue  # an empty pooling stride is PyTorch's default (test_pool2d)
        msg = rf"^{entry.family}: {param} must be an int or a pair of ints, got .* of length {len(v)}$"
        with pytest.raises(ValueError, match=msg):
            entry.call(entry.make(), **{param: v})
    for v in [np.array([1, 1]), {1: 1}, {1, 2}, range(2)]:
        with pytest.raises(TypeError, match=rf"^{entry.family}: {param} must be an int"):
            entry.call(entry.make(), **{param: v})


BOOL_FLAGS = [
    (e, f)
    for e in ENTRIES
    for f in {"max_pool2d": ("ceil_mode", "return_indices"),
              "avg_pool2d": ("ceil_mode", "count_include_pad"),
              "avg_pool2d_backward": ("ceil_mode", "count_include_pad")}.get(e.family, ())
]  # fmt: skip


@pytest.mark.parametrize("value", [1, 0, "yes", "", None, 1.0, np.int64(1)], ids=_bad_id)
@pytest.mark.parametrize("entry, flag", BOOL_FLAGS, ids=_ids(BOOL_FLAGS))
def test_bool_flags_reject_non_bools(entry, flag, value):
    with pytest.raises(TypeError, match=rf"^{entry.family}: {flag} must be a bool, got"):
        entry.call(entry.make(), **{flag: value})


@pytest.mark.parametrize("entry, flag", BOOL_FLAGS, ids=_ids(BOOL_FLAGS))
def test_numpy_bools_are_bools(entry, flag):
    a, v = entry.make(), entry.params[flag]
    for g, w in zip(entry.call(a, **{flag: np.bool_(v)}), entry.call(a, **{flag: v})):
        assert_bitwise(g, w, f"{entry} {flag}={v}")


@pytest.mark.parametrize("entry", entries("conv2d_backward"), ids=str)
@pytest.mark.parametrize(
    "mask, msg",
    [
        ((1, 1, 1), "output_mask must be a bool"),
        ((True, None, True), "output_mask must be a bool"),
        ((True, True), "output_mask must be a tuple of 3 bools"),
        ((True,) * 4, "output_mask must be a tuple of 3 bools"),
        ("abc", "output_mask must be a bool"),  # fastconv.functional makes it a tuple
        (None, ""),  # not iterable (the message is Python's)
    ],
    ids=repr,
)
def test_output_mask_validated(entry, mask, msg):
    with pytest.raises(TypeError, match=rf"^conv2d_backward: {msg}" if msg else None):
        entry.call(entry.make(), output_mask=mask)


@pytest.mark.parametrize("entry", CONV_ENTRIES, ids=str)
def test_unknown_strings(entry):
    op = entry.family
    for algo in ["fft", "winograd", "AUTO", "", "direct "]:
        with pytest.raises(ValueError, match=rf"^{op}: algo must be one of 'auto', 'direct', 'im2col', 'implicit', got '{re.escape(algo)}'$"):  # fmt: skip
            entry.call(entry.make(), algo=algo)
    for algo, name in [(1, "int"), (None, "NoneType"), (b"auto", "bytes")]:
        with pytest.raises(TypeError, match=rf"^{op}: algo must be a str, got {name}$"):
            entry.call(entry.make(), algo=algo)
    for padding in ["full", "SAME", "", "causal", "1"]:
        msg = rf"^{op}: padding must be an int, a pair of ints, 'same' or 'valid', got '{padding}'$"
        with pytest.raises(ValueError, match=msg):
            entry.call(entry.make(), padding=padding)
    # A Python str may hold NUL: the whole string is the name, not its C prefix.
    for algo in ["direct\0junk", "auto\0", "im2col\0\0"]:
        msg = rf"^{op}: algo must be one of 'auto', 'direct', 'im2col', 'implicit', got {re.escape(repr(algo))}$"
        with pytest.raises(ValueError, match=msg):
            entry.call(entry.make(), algo=algo)
    for padding in ["same\0", "valid\0x"]:
        with pytest.raises(ValueError, match=re.escape(f"got {padding!r}")):
            entry.call(entry.make(), padding=padding)


@pytest.mark.parametrize("entry", ENTRIES, ids=str)
def test_numpy_integers_are_ints(entry):
    """np.int64, np.int32, np.uint8 ... are ints; the result is bitwise the same."""
    types = [np.int64, np.int32, np.uint8, np.int16]
    conv = lambda v, i: (
        tuple(types[(i + j) % 4](x) for j, x in enumerate(v))
        if isinstance(v, tuple)
        else types[i % 4](v)
    )
    np_params = {
        k: conv(v, i)
        for i, (k, v) in enumerate(entry.params.items())
        if k in PARAMS.get(entry.family, {}) or k == "input_shape"
        if v is not None
    }
    a = entry.make()
    for g, w in zip(entry.call(a, **np_params), entry.call(a)):
        assert_bitwise(g, w, str(entry))


# ===========================================================================
# Sizes
# ===========================================================================

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
    ids=str,
)
def test_shape_products_overflow_int64(x_shape, w_shape, padding):
    """conv2d_choose_algo validates shapes without arrays: every product is checked."""
    with pytest.raises(ValueError, match=r"^conv2d_choose_algo: .*(int64 can count|too large)"):
        _core.conv2d_choose_algo("forward", x_shape, w_shape, 1, padding, 1, 1)


def test_shape_products_that_fit_are_accepted():
    """The same validation accepts a valid, merely huge, problem (no allocation happens)."""
    got = _core.conv2d_choose_algo("forward", (2**20, 16, 2**10, 2**10), (16, 16, 3, 3), 1, 1, 1, 1)
    assert got in _core.conv_algos()[1:]


def test_huge_spatial_size_rejected():
    with pytest.raises(ValueError, match=r"spatial size too large|int64 can count"):
        _core.conv2d_choose_algo("forward", (1, 1, 2**62 + 1, 1), (1, 1, 1, 1), 1, 0, 1, 1)


@pytest.mark.parametrize(
    "padding", [2**29, 2**30, 2**31 - 1, (2**30, 2**31 - 1), (2**29, 2**30)], ids=str
)
@pytest.mark.parametrize("entry", CONV_ENTRIES, ids=str)
def test_huge_padding_on_a_tiny_array_overflows_cleanly(entry, padding):
    """The output (or the im2col workspace) would not fit: ValueError before allocating."""
    a = {"x": _f32("x", 1, 1, 1, 1), "weight": _f32("w", 1, 1, 1, 1), "bias": _f32("b", 1)}
    a["grad_output"] = _f32("dy", 1, 1, 1, 1)
    a = {k: v for k, v in a.items() if k in entry.arrays}
    msg = rf"^{entry.family}: output .* has more elements than int64 can count"
    with pytest.raises(ValueError, match=msg):
        entry.call(a, padding=padding, stride=1)


@pytest.mark.parametrize("entry", entries("max_pool2d_backward", "avg_pool2d_backward"), ids=str)
@pytest.mark.parametrize(
    "shape",
    [(BIG, BIG, BIG, 1), (1, 1, 2**62, 2**62), (2**63 - 1, 2, 1, 1), (2, 3, 2**62, 8)],
    ids=str,
)
def test_pool_backward_input_shape_overflow(entry, shape):
    """input_shape whose product overflows int64: ValueError naming it, never an allocation."""
    a = entry.make()
    msg = rf"^{entry.family}: input_shape of shape {re.escape(str(shape))} has more elements than int64 can count$"
    with pytest.raises(ValueError, match=msg):
        entry.call(a, input_shape=shape)


@pytest.mark.parametrize("entry", entries("max_pool2d_backward", "avg_pool2d_backward"), ids=str)
def test_input_shape_entries(entry):
    a = entry.make()
    for v in (2**63, 2**64, -(2**63) - 1):
        shape = (2, 3, v, 8)
        msg = rf"^{entry.family}: input_shape = {v} does not fit in int64$"
        with pytest.raises(ValueError, match=msg):
            entry.call(a, input_shape=shape)
    for shape in [(2, 3, 7), (2, 3, 7, 8, 1), ()]:
        with pytest.raises(ValueError, match=rf"^{entry.family}: input_shape must have 4 entries"):
            entry.call(a, input_shape=shape)
    for bad in [7.0, True, None, "7", np.float64(7)]:
        with pytest.raises(TypeError, match=rf"^{entry.family}: input_shape must be an int, got"):
            entry.call(a, input_shape=(2, 3, bad, 8))
    with pytest.raises(TypeError):  # not a sequence (fastconv.functional makes it a tuple)
        entry.call(a, input_shape=7)
    for shape in [(-2, 3, 7, 8), (2, -3, 7, 8), (2, 3, -7, 8)]:
        with pytest.raises(ValueError, match=rf"^{entry.family}: input_shape of shape .* must have C, H, W >= 1 \(N may be 0\)"):  # fmt: skip
            entry.call(a, input_shape=shape)
    (want,) = entry.call(a)
    for shape in (list(X_POOL), np.array(X_POOL)):  # as good as a tuple
        (out,) = entry.call(a, input_shape=shape)
        assert_bitwise(out, want, f"input_shape as {type(shape).__name__}")


TOO_BIG_FOR_MEMORY = 2**48  # bytes: more than any x86-64 process can map (47-bit user space)


def _broadcast_huge(a, nbytes=TOO_BIG_FOR_MEMORY):
    """A stride-0 view of a with the leading dimension grown to nbytes of data."""
    n = nbytes // (a[:1].nbytes or 1) + 1
    return np.broadcast_to(a[:1], (n, *a.shape[1:]))


@pytest.mark.parametrize(
    "entry", [e for e in ENTRIES if "x" in e.arrays or e.family.endswith("backward")], ids=str
)
def test_sizes_that_fit_int64_but_not_memory(entry):
    """Valid sizes too large for memory (a copied input, a pool gradient): MemoryError
    from the failed allocation (or NumPy's ValueError for more than 2**63 bytes), never
    a crash."""
    a = entry.make()
    if "x" in a:  # a stride-0 batch of 2**48 bytes: the contiguous copy cannot be made
        big = {**a, "x": _broadcast_huge(a["x"])}
        params = {}
        if "grad_output" in a:
            big["grad_output"] = np.broadcast_to(a["grad_output"][:1], (big["x"].shape[0], *a["grad_output"].shape[1:]))  # fmt: skip
    else:  # pool backward: a small grad_output, an input_shape of 2**48.6 bytes
        big, params = a, {"input_shape": (2, 3, 2**22, 2**22)}
        if entry.family == "avg_pool2d_backward":  # 2**21 windows, 2**21 apart: P = Q = 2
            big = {**a, "grad_output": _f32("dy", 2, 3, 2, 2)}
            params.update(kernel_size=2**21, stride=2**21, padding=0, ceil_mode=False)
    with pytest.raises((MemoryError, ValueError)) as info:
        entry.call(big, **params)
    if info.type is ValueError:
        assert "too big" in str(info.value) or "int64" in str(info.value), info.value
    # The process is fine afterwards.
    for g, w in zip(entry.call(entry.make()), entry.call(entry.make())):
        assert_bitwise(g, w, str(entry))


@pytest.mark.parametrize("entry", CONV_ENTRIES, ids=str)
def test_huge_output_fails_allocation_cleanly(entry):
    """padding 2**25 on a 1x1 input: a 2**52-element output fits int64 but not memory."""
    a = {"x": _f32("x", 1, 1, 1, 1), "weight": _f32("w", 1, 1, 1, 1), "bias": _f32("b", 1)}
    if entry.family == "conv2d_backward":
        # grad_output must have the output's shape: a stride-0 view of it.
        a["grad_output"] = np.broadcast_to(np.float32(1), (1, 1, 2**26 + 1, 2**26 + 1))
    a = {k: v for k, v in a.items() if k in entry.arrays}
    with pytest.raises((MemoryError, ValueError)):
        entry.call(a, padding=2**25, stride=1)


def test_exact_output_size_at_2_pow_24_plus_1():
    """A 2**24+1 wide input: sizes are integer arithmetic, exact (float32 would round)."""
    n = 2**24 + 1
    x = (np.arange(n, dtype=np.int64) % 7).astype(np.float32).reshape(1, 1, 1, n)
    w = np.array([1, 2, 4], np.float32).reshape(1, 1, 1, 3)
    xi = np.arange(n, dtype=np.int64) % 7
    for algo in ALGOS:
        y = fastconv.conv2d(x, w, algo=algo)
        assert y.shape == (1, 1, 1, n - 2)
        for q in [0, 1, 2**23, 2**24 - 3, n - 3]:
            assert y[0, 0, 0, q] == xi[q] + 2 * xi[q + 1] + 4 * xi[q + 2], (algo, q)
        y2 = fastconv.conv2d(x, w, stride=2, padding=(0, 1), algo=algo)
        assert y2.shape == (1, 1, 1, 2**23 + 1)
        last = 2**23  # window starts at 2*last - 1 = n - 2: taps n-2, n-1, and padding
        assert y2[0, 0, 0, last] == xi[n - 2] + 2 * xi[n - 1]
        del y, y2
    yp, ip = fastconv.max_pool2d(x, (1, 2), return_indices=True)
    assert yp.shape == (1, 1, 1, 2**23)
    assert yp[0, 0, 0, -1] == max(xi[n - 3], xi[n - 2])
    assert ip[0, 0, 0, -1] == (n - 3 if xi[n - 3] >= xi[n - 2] else n - 2)
    ya = fastconv.avg_pool2d(x, (1, 3), stride=(1, 1))
    assert ya.shape == (1, 1, 1, n - 2)
    assert ya[0, 0, 0, -1] == np.float32(xi[n - 3] + xi[n - 2] + xi[n - 1]) / np.float32(3)
    assert fastconv.avg_pool2d_backward(ya, x.shape, (1, 3), stride=(1, 1)).shape == x.shape
    assert fastconv.max_pool2d_backward(yp, ip, x.shape).shape == x.shape


# --- More than 2**31 elements (64-bit indexing), where memory allows --------

T_BIG = 2**31 + 2**27  # elements: 8.5 GiB of float32, indices up to 2**31 + 2**27 - 1


def _big_zeros(shape):
    """Zeros from calloc: pages are only mapped when touched."""
    return np.zeros(shape, np.float32)


@pytest.mark.bigmem
def test_bigmem_max_pool_in_plane_index_beyond_2_pow_31():
    """One (1, 1, 69632, 32768) plane of 2**31 + 2**27 elements: max pooling with
    indices, whose values exceed 2**31 (int64), and their backward."""
    require_memory(13 * 2**30, "max pool over 2**31+ elements")
    H, W = 69632, 32768
    assert H * W == T_BIG
    x = _big_zeros((1, 1, H, W))
    marks = {  # flat in-plane index -> value (each alone in its window)
        3 * W + 21: 9.0,
        65600 * W + 1234: 7.0,  # 2149581... > 2**31
        (H - 1) * W + (W - 1): 8.0,  # the last element
    }
    for i, v in marks.items():
        x[0, 0, i // W, i % W] = v
    y, idx = fastconv.max_pool2d(x, (2, 8), return_indices=True)
    del x
    assert y.shape == idx.shape == (1, 1, H // 2, W // 8)
    for i, v in marks.items():
        p, q = i // W // 2, i % W // 8
        assert y[0, 0, p, q] == v and idx[0, 0, p, q] == i, (i, y[0, 0, p, q], idx[0, 0, p, q])
    # Windows of zeros: the first position of the window (ties go to the first).
    for p, q in [(0, 0), (2**15, 0), (2**15, 4095), (H // 2 - 1, 17)]:
        assert y[0, 0, p, q] == 0 and idx[0, 0, p, q] == 2 * p * W + 8 * q, (p, q)
    assert idx[0, 0, 2**15, 0] == 2**31
    dy = np.zeros(y.shape, np.float32)
    del y
    dy[0, 0, 2**15, 0] = 3.5  # routed to flat index 2**31
    for k, i in enumerate(marks):
        dy[0, 0, i // W // 2, i % W // 8] = 1.5 + k
    dx = fastconv.max_pool2d_backward(dy, idx, (1, 1, H, W)).reshape(-1)
    del idx, dy
    assert dx[2**31] == 3.5
    for k, i in enumerate(marks):
        assert dx[i] == 1.5 + k, i
    for i in [0, 2**31 - 1, 2**31 + 1, T_BIG - 2, 65600 * W + 1235]:
        assert dx[i] == 0, i


@pytest.mark.bigmem
def test_bigmem_pools_with_planes_beyond_2_pow_31():
    """(2, 17, 8192, 8192): planes 32 and 33 start at and beyond element 2**31."""
    require_memory(13 * 2**30, "pools over 2**31+ elements")
    shape = (2, 17, 8192, 8192)
    x = _big_zeros(shape)
    x[1, 16, 100, 16:24] = 8.0  # plane 33: one row of the 2x8 window (50, 2)
    x[1, 15, 0, 0] = 16.0  # plane 32: starts at exactly 2**31
    x[0, 0, 8191, 8191] = 4.0  # plane 0, last element
    ya = fastconv.avg_pool2d(x, (2, 8))
    ym = fastconv.max_pool2d(x, (2, 8))
    del x
    assert ya.shape == ym.shape == (2, 17, 4096, 1024)
    assert ya[1, 16, 50, 2] == 4.0 and ym[1, 16, 50, 2] == 8.0
    assert ya[1, 15, 0, 0] == 1.0 and ym[1, 15, 0, 0] == 16.0
    assert ya[0, 0, 4095, 1023] == 0.25 and ym[0, 0, 4095, 1023] == 4.0
    for i in [(1, 16, 50, 1), (1, 16, 4095, 1023), (1, 15, 0, 1), (0, 0, 0, 0)]:
        assert ya[i] == 0 and ym[i] == 0, i
    del ym, ya
    # The backward with 1x1 windows 2x8 apart (a dense 2x8 scatter over 2**31+
    # elements takes ~20 s): dx is zero but at the window positions.
    dy = np.zeros((2, 17, 4096, 1024), np.float32)
    dy[1, 16, 50, 2] = 32.0
    dy[1, 15, 4095, 1023] = 16.0
    dy[0, 0, 0, 0] = 2.0
    dx = fastconv.avg_pool2d_backward(dy, shape, 1, stride=(2, 8))
    del dy
    assert dx[1, 16, 100, 16] == 32.0 and dx[1, 15, 8190, 8184] == 16.0 and dx[0, 0, 0, 0] == 2.0
    for i in [(1, 16, 100, 17), (1, 16, 101, 16), (1, 15, 8191, 8191), (1, 15, 0, 0), (0, 0, 0, 1)]:
        assert dx[i] == 0, i
    assert np.count_nonzero(dx[1, 16, 96:104]) == 1


@pytest.mark.bigmem
@pytest.mark.parametrize("algo", _core.conv_algos()[1:])
def test_bigmem_conv_output_beyond_2_pow_31(algo):
    """x (1, 1, 8192, 16384) -> y (1, 17, 8192, 16384): 2**31 + 2**27 output
    elements, filter 16's plane starting at element 2**31."""
    require_memory(12 * 2**30, "a conv output of 2**31+ elements")
    H, W, K = 8192, 16384, 17
    assert K * H * W == T_BIG
    x = np.zeros((1, 1, H, W), np.float32)
    x[0, 0, 0, 0], x[0, 0, 4000, 9999], x[0, 0, H - 1, W - 1] = 3.0, 5.0, 7.0
    w = np.arange(1, K + 1, dtype=np.float32).reshape(K, 1, 1, 1)
    b = np.full(K, 0.5, np.float32)
    y = fastconv.conv2d(x, w, b, algo=algo)
    assert y.shape == (1, K, H, W)
    for k in (0, 15, 16):
        assert y[0, k, 0, 0] == 3.0 * (k + 1) + 0.5
        assert y[0, k, 4000, 9999] == 5.0 * (k + 1) + 0.5
        assert y[0, k, H - 1, W - 1] == 7.0 * (k + 1) + 0.5
        assert y[0, k, 1, 0] == 0.5 and y[0, k, H - 1, W - 2] == 0.5
    assert y.reshape(-1)[2**31] == 3.0 * 17 + 0.5
    assert y.reshape(-1)[-1] == 7.0 * 17 + 0.5


@pytest.mark.bigmem
@pytest.mark.parametrize("algo", _core.conv_algos()[1:])
def test_bigmem_conv_input_beyond_2_pow_31(algo):
    """x (1, 17, 8192, 16384) of 2**31 + 2**27 elements, channel 16 starting at
    element 2**31; a 1x1 conv with stride 2 reads it (im2col: a 2.1 GiB column buffer)."""
    require_memory(14 * 2**30, "a conv input of 2**31+ elements")
    C, H, W = 17, 8192, 16384
    x = _big_zeros((1, C, H, W))
    x[0, 16, 0, 0], x[0, 16, 4000, 10000], x[0, 16, H - 2, W - 2] = 3.0, 5.0, 7.0
    x[0, 0, 2, 2] = 1.0
    x[0, 16, 1, 1] = 1e30  # never read (odd row and column; stride 2)
    w = np.arange(1, C + 1, dtype=np.float32).reshape(1, C, 1, 1)
    y = fastconv.conv2d(x, w, stride=2, algo=algo)
    del x
    assert y.shape == (1, 1, H // 2, W // 2)
    assert y[0, 0, 0, 0] == 3.0 * 17
    assert y[0, 0, 2000, 5000] == 5.0 * 17
    assert y[0, 0, H // 2 - 1, W // 2 - 1] == 7.0 * 17
    assert y[0, 0, 1, 1] == 1.0
    assert np.count_nonzero(y) == 4


# ===========================================================================
# Backward
# ===========================================================================


# The forward output a grad_output must match, as each backward entry names it.
GRAD_OUTPUT_FORWARD = {
    "conv2d_backward": r"x \(2, 3, 6, 7\) and weight \(4, 3, 3, 2\) has shape \(2, 4, 3, 6\)",
    "avg_pool2d_backward": r"input_shape \(2, 3, 7, 8\) has shape \(2, 3, 4, 5\)",
}


@pytest.mark.parametrize("entry", entries(*GRAD_OUTPUT_FORWARD), ids=str)
@pytest.mark.parametrize("dim", range(4))
@pytest.mark.parametrize("delta", [-1, 1])
def test_backward_grad_output_wrong_shape(entry, dim, delta):
    a = entry.make()
    shape = list(a["grad_output"].shape)
    shape[dim] += delta
    a["grad_output"] = _f32("dy", *shape)
    msg = (
        rf"^{entry.family}: grad_output has shape {re.escape(str(tuple(shape)))} but the forward "
        rf"output for {GRAD_OUTPUT_FORWARD[entry.family]}$"
    )
    with pytest.raises(ValueError, match=msg):
        entry.call(a)


@pytest.mark.parametrize("dim", [0, 1])
def test_max_pool_backward_grad_output_nc_mismatch(dim):
    shape = [2, 3, 4, 4]
    shape[dim] += 1
    with pytest.raises(
        ValueError,
        match=r"^max_pool2d_backward: grad_output .* does not match input_shape \(2, 3, 7, 8\) "
        r"\(N and C must agree",
    ):
        fastconv.max_pool2d_backward(_f32("dy", *shape), np.zeros(shape, np.int64), X_POOL)


@pytest.mark.parametrize("dim", range(4))
def test_max_pool_backward_indices_shape_mismatch(dim):
    dy = _f32("dy", 2, 3, 4, 4)
    shape = [2, 3, 4, 4]
    shape[dim] += 1
    msg = r"^max_pool2d_backward: indices .* and grad_output .* must have the same shape$"
    with pytest.raises(ValueError, match=msg):
        fastconv.max_pool2d_backward(dy, np.zeros(shape, np.int64), X_POOL)


@pytest.mark.parametrize(
    "bad_value, where", [(-1, 0), (56, 5), (-(2**62), 53), (2**62, 17), (57, 71), (INT64_MAX, 3)]
)
def test_max_pool_backward_indices_out_of_range(bad_value, where, output_fill):
    """Every index is checked before anything is written (PyTorch's CPU kernel does not)."""
    x = _f32("x", *X_POOL)  # planes of 7x8 = 56
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    dy = _f32("dy", *y.shape)
    good = fastconv.max_pool2d_backward(dy, idx, x.shape)
    bad = idx.copy()
    bad.reshape(-1)[where] = bad_value
    dy_copy, bad_copy = dy.copy(), bad.copy()
    msg = (
        rf"^max_pool2d_backward: indices must lie in \[0, H\*W\) = \[0, 56\) for input planes "
        rf"of 7x8; found {bad_value} at flat position {where}$"
    )
    with pytest.raises(ValueError, match=msg):
        fastconv.max_pool2d_backward(dy, bad, x.shape)
    # Several bad indices: the message names the first, whatever the thread count.
    bad2 = bad.copy()
    if where + 1 < bad2.size:
        bad2.reshape(-1)[where + 1 :] = -5
        first = (bad_value, where)
    else:
        bad2.reshape(-1)[0] = -5
        first = (-5, 0)
    for threads in (1, 2, 4):
        fastconv.set_num_threads(threads)
        with pytest.raises(ValueError, match=rf"found {first[0]} at flat position {first[1]}$"):
            fastconv.max_pool2d_backward(dy, bad2, x.shape)
    # Nothing else happened: inputs untouched, and the next valid call is correct.
    np.testing.assert_array_equal(dy, dy_copy)
    np.testing.assert_array_equal(bad, bad_copy)
    output_fill(np.nan)
    again = fastconv.max_pool2d_backward(dy, idx, x.shape)
    assert_bitwise(again, good, "after the error")
    np.testing.assert_array_equal(again, ref.max_pool2d_backward(dy, idx, x.shape))


def test_max_pool_backward_index_range_is_per_plane():
    """An index valid as a flat offset into the whole tensor but not into one plane."""
    dy = _f32("dy", 1, 2, 1, 1)
    idx = np.array([0, 16], np.int64).reshape(1, 2, 1, 1)  # plane is 4x4 = 16
    with pytest.raises(ValueError, match=r"found 16 at flat position 1$"):
        fastconv.max_pool2d_backward(dy, idx, (1, 2, 4, 4))


def test_max_pool_backward_input_shape_inconsistent_with_indices():
    """A smaller input_shape than the forward's: indices out of its planes, rejected;
    a larger one is a valid (if unusual) request: the same flat positions."""
    x = _f32("x", *X_POOL)
    _, idx = fastconv.max_pool2d(x, 3, 2, 1, return_indices=True)
    dy = _f32("dy", *idx.shape)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\) = \[0, 42\)"):
        fastconv.max_pool2d_backward(dy, idx, (2, 3, 7, 6))
    big = fastconv.max_pool2d_backward(dy, idx, (2, 3, 9, 9))
    np.testing.assert_array_equal(big, ref.max_pool2d_backward(dy, idx, (2, 3, 9, 9)))


def test_choose_algo_inconsistent_weight_shape():
    with pytest.raises(ValueError, match=r"^conv2d_choose_algo: x has C=3 but weight expects C=5"):
        _core.conv2d_choose_algo("forward", (2, 3, 6, 7), (4, 5, 3, 3), 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"^conv2d_choose_algo: pass must be 'forward'"):
        _core.conv2d_choose_algo("backward", (2, 3, 6, 7), (4, 3, 3, 3), 1, 0, 1, 1)
    with pytest.raises(ValueError, match=r"^conv2d_choose_algo: x_shape must have 4 entries"):
        _core.conv2d_choose_algo("forward", (2, 3, 6), (4, 3, 3, 3), 1, 0, 1, 1)


# ===========================================================================
# Numerics
# ===========================================================================


def _max_rule(values, positions):
    """fastconv's (and PyTorch's) window rule: the first maximum in row-major window
    order; a NaN always wins (the last NaN of the window); an all -inf window gives
    -inf and its first position."""
    best, best_i = -np.inf, positions[0]
    for v, i in zip(values, positions):
        if v > best or np.isnan(v):
            best, best_i = v, i
    return best, best_i


@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@pytest.mark.parametrize("W", [8, 18, 34, 80])  # windows per row around the SIMD widths
def test_max_pool_nan_wins_and_all_neginf_windows(isa, W):
    """2x2 windows, stride 2, six window patterns in turn: finite, one NaN, two NaNs,
    all -inf, NaN with +inf, NaN with -inf. Forward values and indices follow the
    rule exactly; the backward routes each gradient to the chosen index."""
    rng = rng_for("nanwin", W)
    H, nq = 4, W // 2
    x = rng.standard_normal((2, 3, H, W)).astype(np.float32)
    for n in range(2):
        for c in range(3):
            for p in range(H // 2):
                for q in range(nq):
                    win = [
                        (2 * p, 2 * q),
                        (2 * p, 2 * q + 1),
                        (2 * p + 1, 2 * q),
                        (2 * p + 1, 2 * q + 1),
                    ]
                    kind, j = (q + p + c) % 6, (q // 6 + n) % 4

                    def at(k, v, n=n, c=c, win=win):
                        x[(n, c, *win[k])] = v

                    if kind == 1:
                        at(j, np.nan)
                    elif kind == 2:
                        at(j, np.nan)
                        at((j + 2) % 4, np.nan)
                    elif kind == 3:
                        for k in range(4):
                            at(k, -np.inf)
                    elif kind == 4:
                        at(j, np.inf)
                        at((j + 1) % 4, np.nan)
                    elif kind == 5:
                        for k in range(4):
                            at(k, -np.inf)
                        at(j, np.nan)
    y, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    assert_bitwise(fastconv.max_pool2d(x, 2), y, "values without indices")
    for n, c, p, q in np.ndindex(*y.shape):
        pos = [(2 * p + r) * W + 2 * q + s for r in (0, 1) for s in (0, 1)]
        want_v, want_i = _max_rule([x[n, c].reshape(-1)[i] for i in pos], pos)
        got_v = y[n, c, p, q]
        where = (n, c, p, q)
        assert (np.isnan(want_v) and np.isnan(got_v)) or got_v == want_v, f"{where}: {got_v}"
        assert idx[n, c, p, q] == want_i, (n, c, p, q, int(idx[n, c, p, q]), want_i)
    assert np.isnan(y).any() and np.isneginf(y).any()
    dy = (np.arange(y.size, dtype=np.float32) + 1).reshape(y.shape)
    dx = fastconv.max_pool2d_backward(dy, idx, x.shape)
    want = np.zeros(x.shape, np.float32)
    for n, c, p, q in np.ndindex(*y.shape):
        want[n, c].reshape(-1)[idx[n, c, p, q]] += dy[n, c, p, q]
    assert_bitwise(dx, want, "backward")


def test_max_pool_all_neginf_with_padding(isa):
    """An all -inf plane, 3x3 windows with padding 1: every window gives -inf and its
    first in-bounds position (padding is never selected); gradients of overlapping
    windows add up there."""
    x = np.full((1, 2, 5, 19), -np.inf, np.float32)
    y, idx = fastconv.max_pool2d(x, 3, 1, 1, return_indices=True)
    assert y.shape == x.shape and np.isneginf(y).all()
    P, Q = y.shape[2:]
    first = np.array([[max(p - 1, 0) * 19 + max(q - 1, 0) for q in range(Q)] for p in range(P)])
    np.testing.assert_array_equal(idx[0, 0], first)
    np.testing.assert_array_equal(idx[0, 1], first)
    dy = np.ones(y.shape, np.float32)
    dx = fastconv.max_pool2d_backward(dy, idx, x.shape)
    want = np.zeros(x.shape, np.float32)
    np.add.at(want.reshape(1, 2, -1), (0, slice(None), first.reshape(-1)), 1.0)
    assert_bitwise(dx, want, "backward")


NONFINITE_CASES = [
    c
    for c in CONV_CASES
    if c.name
    in (
        "p2_3x3",
        "same_4x4_even",
        "d2_s2",
        "g2",
        "dw_c7_k14",
        "kernel_gt_input_p",
        "s3_k2_gaps",
        "c17_k15_q32",
    )
]


def _nonfinite_perturbations(case: ConvCase, d):
    """(label, x, w, b, dy) with one +inf, -inf or NaN in one operand, at a corner
    (a window touching the padding) or in the middle."""
    P, Q = case.out_hw
    spots = {
        "x": [(0, 0, 0, 0), (case.N - 1, case.C - 1, case.H // 2, case.W // 2)],
        "w": [(0, 0, 0, 0), (case.K - 1, case.C // case.groups - 1, case.R // 2, case.S // 2)],
        "b": [(0,), (case.K - 1,)],
        "dy": [(0, 0, 0, 0), (case.N - 1, case.K - 1, P // 2, Q // 2)],
    }
    for operand, where in spots.items():
        if operand == "b" and d.b is None:
            continue
        for k, spot in enumerate(where):
            for value in (np.inf, -np.inf, np.nan):
                ops = {"x": d.x, "w": d.w, "b": d.b, "dy": d.dy}
                a = ops[operand].copy()
                a[spot] = value
                ops[operand] = a
                yield f"{value} in {operand} at {'corner' if k == 0 else 'middle'}", ops


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the reference's inf * 0
@pytest.mark.parametrize("case", NONFINITE_CASES, ids=ids(NONFINITE_CASES))
def test_conv_nonfinite_operands_same_pattern_as_reference(case, isa):
    """+-inf or NaN in x, w, b or grad_output, with zero padding: NaN and +-inf exactly
    where the float64 reference has them (padded zeros are multiplied: 0*inf = NaN),
    for every pass and algorithm; finite elements within the rounding bound."""
    from test_conv2d import conv_data

    d = conv_data(case)
    for label, ops in _nonfinite_perturbations(case, d):
        refs = reference_passes(case, ops["x"], ops["w"], ops["b"], ops["dy"])
        per_algo = {}
        for algo in ALGOS:
            y = fastconv.conv2d(ops["x"], ops["w"], ops["b"], **case.kwargs, algo=algo)
            grads = fastconv.conv2d_backward(
                ops["dy"], ops["x"], ops["w"], **case.kwargs, algo=algo
            )
            per_algo[algo] = (y, *grads)
            for pass_, got in zip(CONV_PASSES, per_algo[algo]):
                what = f"{pass_} {algo} {isa}: {label}"
                assert_same_nonfinite(got, refs[pass_], d.ref_abs[pass_], d.L[pass_], what)
        for i, pass_ in enumerate(CONV_PASSES):
            for algo in ("im2col", "auto"):
                np.testing.assert_array_equal(
                    np.isnan(per_algo[algo][i]),
                    np.isnan(per_algo["direct"][i]),
                    err_msg=f"{pass_} {algo}: {label}",
                )


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_linear_nonfinite_operands_same_pattern_as_reference(isa):
    x, w, b = _f32("lx", 9, 37), _f32("lw", 19, 37), _f32("lb", 19)
    L = x.shape[1] + 1
    ref_abs = np.abs(x).astype(np.float64) @ np.abs(w).astype(np.float64).T + np.abs(b)
    for operand, spot in [
        ("x", (0, 0)),
        ("x", (8, 20)),
        ("w", (0, 36)),
        ("w", (18, 5)),
        ("b", (3,)),
    ]:
        for value in (np.inf, -np.inf, np.nan):
            ops = {"x": x.copy(), "w": w.copy(), "b": b.copy()}
            ops[operand][spot] = value
            r64 = ref.linear(*(ops[k].astype(np.float64) for k in ("x", "w", "b")))
            assert not np.isfinite(r64).all()
            got = fastconv.linear(ops["x"], ops["w"], ops["b"])
            assert_same_nonfinite(got, r64, ref_abs, L, f"linear {value} in {operand} at {spot}")


# --- The caller's floating-point mode ---------------------------------------
# Read (and set) the calling thread's MXCSR and x87 control word through C's
# <fenv.h> (x86-64 glibc: fenv_t is the x87 environment, then mxcsr).


class _FEnv(ctypes.Structure):
    _fields_ = [("x87", ctypes.c_uint16 * 14), ("mxcsr", ctypes.c_uint32)]


def _libm():
    import platform

    if platform.machine() not in ("x86_64", "AMD64") or ctypes.sizeof(_FEnv) != 32:
        pytest.skip("reads the x86-64 MXCSR through glibc's fenv_t")
    return ctypes.CDLL(ctypes.util.find_library("m"))


MXCSR_CONTROL = 0xFFC0  # DAZ, exception masks, rounding control, FTZ (not the sticky flags)
MXCSR_FTZ_DAZ = 0x8040
FE_TOWARDZERO = 0x0C00


def fp_mode(libm):
    e = _FEnv()
    assert libm.fegetenv(ctypes.byref(e)) == 0
    return {
        "mxcsr": hex(e.mxcsr & MXCSR_CONTROL),
        "x87_cw": hex(e.x87[0] & 0x0F3F),
        "round": libm.fegetround(),
    }


@pytest.mark.parametrize("mode", ["default", "ftz_daz_toward_zero"])
def test_the_callers_floating_point_mode_never_changes(isa, mode):
    """Every entry point leaves the caller's MXCSR (FTZ, DAZ, rounding, exception
    masks) and x87 control word as it found them: both the default mode and a
    non-default one the caller chose."""
    libm = _libm()
    saved = _FEnv()
    assert libm.fegetenv(ctypes.byref(saved)) == 0
    fastconv.set_num_threads(2)
    calls = [(e, e.make()) for e in ENTRIES]
    changed = []
    try:
        if mode != "default":
            assert libm.fesetround(FE_TOWARDZERO) == 0
            e = _FEnv()
            libm.fegetenv(ctypes.byref(e))
            e.mxcsr |= MXCSR_FTZ_DAZ
            assert libm.fesetenv(ctypes.byref(e)) == 0
        before = fp_mode(libm)
        if mode != "default":
            assert int(before["mxcsr"], 16) & MXCSR_FTZ_DAZ == MXCSR_FTZ_DAZ
        for entry, a in calls:
            entry.call(a)
            after = fp_mode(libm)
            if after != before:
                changed.append((entry.name, before, after))
    finally:
        libm.fesetenv(ctypes.byref(saved))
    assert fp_mode(libm) == fp_mode(libm)  # restored
    assert not changed, f"the floating-point mode changed: {changed}"


TINY = np.float32(np.finfo(np.float32).smallest_subnormal)


def _subnormal(a):
    a = np.asarray(a, np.float32)
    return bool(((a != 0) & (np.abs(a) < np.finfo(np.float32).tiny)).all())


def test_subnormals_survive_every_entry_point(isa):
    """Kernels neither flush subnormal results to zero nor treat subnormal inputs as
    zero, on the calling thread and on OpenMP's workers (several planes, 2 threads).
    Every expected value is an exact small multiple of the smallest subnormal."""
    fastconv.set_num_threads(2)
    t = TINY
    x = np.full((2, 2, 5, 9), 3 * t, np.float32)
    w = np.ones((4, 2, 1, 1), np.float32)
    ones = np.ones_like(x)
    dy = np.full((2, 4, 5, 9), 3 * t, np.float32)
    checks = []
    for algo in ALGOS:
        checks.append((f"conv2d {algo}", fastconv.conv2d(x, w, algo=algo), 6 * t))
        dx, dw, db = fastconv.conv2d_backward(dy, ones, w, algo=algo)
        checks += [
            (f"dx {algo}", dx, 12 * t),
            (f"dw {algo}", dw, 270 * t),
            (f"db {algo}", db, 270 * t),
        ]
    xm = (t * (1 + np.arange(2 * 4 * 6 * 10) % 5)).astype(np.float32).reshape(2, 4, 6, 10)
    ym, im = fastconv.max_pool2d(xm, 2, return_indices=True)
    ym_ref, im_ref = ref.max_pool2d(xm, 2, return_indices=True)
    checks.append(("max_pool2d", ym, ym_ref))
    np.testing.assert_array_equal(im, im_ref)
    dym = np.full(ym.shape, 3 * t, np.float32)
    dxm = fastconv.max_pool2d_backward(dym, im, xm.shape)
    np.testing.assert_array_equal(dxm, ref.max_pool2d_backward(dym, im, xm.shape))
    assert _subnormal(dxm[dxm != 0]) and np.count_nonzero(dxm) == ym.size
    xa = np.full((2, 4, 6, 10), 4 * t, np.float32)
    checks.append(("avg_pool2d", fastconv.avg_pool2d(xa, 2), 4 * t))
    dya = np.full((2, 4, 3, 5), 8 * t, np.float32)
    checks.append(("avg_pool2d_backward", fastconv.avg_pool2d_backward(dya, xa.shape, 2), 2 * t))
    xl, wl, bl = (
        np.full((6, 2), 3 * t, np.float32),
        np.ones((5, 2), np.float32),
        np.full(5, t, np.float32),
    )
    checks.append(("linear", fastconv.linear(xl, wl, bl), 7 * t))
    for what, got, want in checks:
        want = np.broadcast_to(np.asarray(want, np.float32), got.shape)
        assert _subnormal(want), what
        np.testing.assert_array_equal(got, want, err_msg=what)
    # And the caller's own arithmetic afterwards: subnormals exist, rounding is to nearest.
    assert np.float32(t * 5) / np.float32(5) == t
    assert np.float32(1) + np.float32(2**-24) == np.float32(1)  # ties to even, not upward
    assert np.float32(1) + np.float32(3 * 2**-25) == np.float32(1 + 2**-23)


# ===========================================================================
# Runtime (many threads, Ctrl-C, fork and memory: test_process.py)
# ===========================================================================


def _midsize_calls():
    """Each entry point on inputs big enough that NumPy releases the GIL while
    writing into them and the calls take a while: (name, arrays, call)."""
    conv = {"x": _f32("rx", 2, 8, 24, 24), "weight": _f32("rw", 8, 8, 3, 3), "bias": _f32("rb", 8)}
    conv["grad_output"] = _f32("rdy", 2, 8, 24, 24)
    px = _f32("rpx", 2, 8, 48, 48)
    _, idx = fastconv.max_pool2d(px, 3, 2, 1, return_indices=True)
    out = []
    for algo in ALGOS:
        out.append((f"conv2d-{algo}", {k: conv[k] for k in ("x", "weight", "bias")},
                    lambda a, algo=algo: fastconv.conv2d(a["x"], a["weight"], a["bias"], padding=1, algo=algo)))  # fmt: skip
        out.append((f"conv2d_backward-{algo}", {k: conv[k] for k in ("grad_output", "x", "weight")},
                    lambda a, algo=algo: fastconv.conv2d_backward(a["grad_output"], a["x"], a["weight"], padding=1, algo=algo)))  # fmt: skip
    out += [
        ("max_pool2d", {"x": px}, lambda a: fastconv.max_pool2d(a["x"], 3, 2, 1, return_indices=True)),
        ("max_pool2d_backward", {"grad_output": _f32("rpdy", *idx.shape)},
         lambda a: fastconv.max_pool2d_backward(a["grad_output"], idx, px.shape)),
        ("avg_pool2d", {"x": px}, lambda a: fastconv.avg_pool2d(a["x"], 3, 2, 1)),
        ("avg_pool2d_backward", {"grad_output": _f32("rady", 2, 8, 24, 24)},
         lambda a: fastconv.avg_pool2d_backward(a["grad_output"], px.shape, 3, 2, 1)),
        ("linear", {"x": _f32("rlx", 64, 128), "weight": _f32("rlw", 96, 128), "bias": _f32("rlb", 96)},
         lambda a: fastconv.linear(a["x"], a["weight"], a["bias"])),
    ]  # fmt: skip
    return out


class _Writer:
    """A thread that keeps overwriting arrays (alternating value sets) until stopped,
    pausing `pause` seconds after each round."""

    def __init__(self, targets, pause=0.0):
        self.targets, self.pause, self.stop, self.rounds = targets, pause, threading.Event(), 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.is_set():
            for arr, values in self.targets:
                for v in values:
                    np.copyto(arr, v)
            self.rounds += 1
            if self.pause:
                time.sleep(self.pause)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        assert not self.thread.is_alive()


@pytest.mark.isolated
def test_another_thread_writing_into_the_inputs():
    """Results are unspecified, but nothing crashes: a Python thread keeps writing
    NaN, +-inf, huge, subnormal and normal values into every float input of every
    entry point (contiguous, and strided views that are copied) during the calls."""
    fastconv.set_num_threads(2)
    for name, arrays, call in _midsize_calls():
        for strided in (False, True):
            targets, args = [], {}
            for k, a in arrays.items():
                # strided: every other element of buf (a view with gaps, copied by fastconv)
                shape = (*a.shape, 2) if strided else a.shape
                buf = np.zeros(shape, np.float32)
                normal = np.stack([a, a], -1) if strided else a.copy()
                values = [np.full(shape, v, np.float32) for v in (np.nan, np.inf, -3e38, TINY)]
                targets.append((buf, [*values, normal]))
                args[k] = buf[..., 0] if strided else buf
            t0, n = time.perf_counter(), 0
            with _Writer(targets) as writer:
                while n < 40 or (writer.rounds < 3 and time.perf_counter() - t0 < 5):
                    out = call(args)
                    n += 1
            outs = out if isinstance(out, tuple) else (out,)
            assert all(o is None or o.dtype in (np.float32, np.int64) for o in outs), name
            assert writer.rounds > 0, f"{name}: the writer never ran"


@pytest.mark.isolated
def test_another_thread_writing_into_max_pool_indices():
    """max_pool2d_backward checks every index, then scatters; another thread turning
    valid indices into out-of-range ones meanwhile must not make it write out of
    bounds. Each call either returns or raises ValueError; nothing crashes."""
    fastconv.set_num_threads(1)
    x = _f32("tx", 4, 16, 128, 128)
    _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
    dy = np.ones(idx.shape, np.float32)
    # The second half of the indices turns far out of range (both signs) for a
    # moment, then valid again for a while: a call may check valid indices and
    # then read bad ones.
    second = idx.reshape(-1)[idx.size // 2 :]
    good = second.copy()
    states = [np.full_like(good, 2**40), good, np.full_like(good, -(2**40)), good]
    outcomes = {"returned": 0, "ValueError": 0}
    t0 = time.perf_counter()
    with _Writer([(second, states)], pause=0.002):
        while time.perf_counter() - t0 < 3.0:
            try:
                fastconv.max_pool2d_backward(dy, idx, x.shape)
                outcomes["returned"] += 1
            except ValueError as e:
                assert "indices must lie in" in str(e)
                outcomes["ValueError"] += 1
    assert sum(outcomes.values()) > 10, outcomes


# ===========================================================================
# Guard bytes: nothing is written outside an output, every element is written
# ===========================================================================
# With _set_output_guard(GUARD), each new output is the middle of a larger
# array whose GUARD elements on each side hold a sentinel, and whose interior
# starts as the float32 sentinel (a NaN), so "bitwise equal to the unguarded
# result" also proves that every output element was written.


def _check_guarded(output_guard, fn, what):
    output_guard(0)
    plain = fn()
    output_guard(GUARD)
    try:
        guarded = fn()
    finally:
        output_guard(0)
    assert len(guarded) == len(plain), what
    for i, (g, p) in enumerate(zip(guarded, plain)):
        assert_guards_intact(g, GUARD, f"{what} output {i}")
        assert_bitwise(g, p, f"{what} output {i} (guarded vs plain)")


def _conv_guard_run(case, d, algo):
    def fn():
        y = fastconv.conv2d(d.x, d.w, d.b, **case.kwargs, algo=algo)
        grads = fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo)
        masked = [
            fastconv.conv2d_backward(d.dy, d.x, d.w, **case.kwargs, algo=algo, output_mask=m)
            for m in ((True, False, False), (False, True, False), (False, False, True))
        ]
        return (y, *grads, *(o for m in masked for o in m if o is not None))

    return fn


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CONV_CASES, ids=ids(CONV_CASES))
def test_guard_conv(case, algo, isa, output_guard):
    """Tile edges (C, K in 1..17, Q around 8/16/32), strides (also larger than the
    kernel), padding forms, dilation, groups, depthwise, 1x1, N = 1 and 3."""
    from test_conv2d import conv_data

    _check_guarded(
        output_guard, _conv_guard_run(case, conv_data(case), algo), f"{case.name} {algo} {isa}"
    )


@pytest.mark.isolated
def test_guard_conv_padding_only_taps():
    """Taps that read only padding (they once made im2col write out of bounds): every
    algo and ISA, in a child process."""
    from test_conv2d import conv_data

    set_guard = _core._set_output_guard
    for isa in runnable_isas():
        _core._set_isa(isa)
        for case in PADDING_ONLY_TAP_CASES:
            for algo in ALGOS:
                _check_guarded(
                    set_guard,
                    _conv_guard_run(case, conv_data(case), algo),
                    f"{case.name} {algo} {isa}",
                )


def _pool_x(case: PoolCase):
    return rng_for("guard", case.name).standard_normal(case.x_shape).astype(np.float32)


@pytest.mark.parametrize("case", MAX_POOL_CASES, ids=ids(MAX_POOL_CASES))
def test_guard_max_pool(case, isa, output_guard):
    x = _pool_x(case)

    def fn():
        y, idx = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)
        out = [y, idx, fastconv.max_pool2d(x, **case.max_kwargs)]
        if ((idx >= 0) & (idx < case.H * case.W)).all():  # else: an empty window (-inf)
            dy = rng_for("guard dy", case.name).standard_normal(y.shape).astype(np.float32)
            out.append(fastconv.max_pool2d_backward(dy, idx, x.shape))
        return tuple(out)

    _check_guarded(output_guard, fn, f"{case.name} {isa}")


@pytest.mark.parametrize("case", AVG_POOL_CASES, ids=ids(AVG_POOL_CASES))
def test_guard_avg_pool(case, isa, output_guard):
    x = _pool_x(case)
    y_shape = ref.avg_pool2d(x, **case.avg_kwargs).shape
    dy = rng_for("guard dy", case.name).standard_normal(y_shape).astype(np.float32)

    def fn():
        return (
            fastconv.avg_pool2d(x, **case.avg_kwargs),
            fastconv.avg_pool2d_backward(dy, x.shape, **case.avg_kwargs),
        )

    _check_guarded(output_guard, fn, f"{case.name} {isa}")


# (batch shape, in_features, out_features) around the GEMM tiles (14 x 32, K blocks of 256)
LINEAR_SHAPES = [((1,), 1, 1), ((7,), 3, 5), ((14,), 17, 15), ((15,), 16, 16), ((13,), 31, 33),
                 ((33,), 64, 32), ((2, 3), 300, 130), ((29,), 257, 47), ((4, 1, 5), 8, 1)]  # fmt: skip


@pytest.mark.parametrize("batch, n_in, n_out", LINEAR_SHAPES, ids=str)
def test_guard_linear_and_sgemm(batch, n_in, n_out, isa, output_guard):
    x, w, b = _f32("gx", *batch, n_in), _f32("gw", n_out, n_in), _f32("gb", n_out)
    x2 = x.reshape(-1, n_in)
    c = _f32("gc", x2.shape[0], n_out)

    def fn():
        return (
            fastconv.linear(x, w, b),
            fastconv.linear(x, w),
            _core.sgemm(x2, w, trans_b=True),
            _core.sgemm(x2.T.copy(), w.T.copy(), c, alpha=0.5, beta=-2.0, trans_a=True),
        )

    _check_guarded(output_guard, fn, f"linear {batch} {n_in}->{n_out} {isa}")


# ===========================================================================
# Randomized correctness (hypothesis): every parameter, algorithm and ISA
# ===========================================================================
# Profiles (conftest.py): "ci" (the default) and "long" (--hypothesis-profile=long).
# Each example runs every algorithm and every pass; the ISA and the thread count
# are drawn too. Conv: the tolerance rule of test_conv2d.py; pools: exact.

RANDOM_ISAS = runnable_isas()
MASKS = st.tuples(st.booleans(), st.booleans(), st.booleans())


@pytest.mark.isolated
@given(conv_problems(), st.sampled_from(RANDOM_ISAS), st.integers(1, 3), MASKS)
def test_random_conv_matches_reference(problem, isa, threads, mask):
    case, seed = problem
    _core._set_isa(isa)
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(case.x_shape).astype(np.float32)
    w = rng.standard_normal(case.w_shape).astype(np.float32)
    b = rng.standard_normal(case.K).astype(np.float32) if case.bias else None
    dy = rng.standard_normal((case.N, case.K, *case.out_hw)).astype(np.float32)
    refs = reference_passes(case, x, w, b, dy)
    ref_abs = reference_abs(case, x, w, b, dy)
    L = reduction_lengths(case, case.bias)
    results = {}
    for algo in ALGOS:
        y = fastconv.conv2d(x, w, b, **case.kwargs, algo=algo)
        grads = fastconv.conv2d_backward(dy, x, w, **case.kwargs, algo=algo)
        results[algo] = (y, *grads)
        for pass_, got in zip(CONV_PASSES, results[algo]):
            assert_within_rounding(
                got, refs[pass_], ref_abs[pass_], L[pass_], f"{pass_} {algo} {isa} {case}"
            )
        masked = fastconv.conv2d_backward(dy, x, w, **case.kwargs, algo=algo, output_mask=mask)
        for want, got, full in zip(mask, masked, grads):
            assert (got is None) == (not want)
            if want:
                assert_bitwise(got, full, f"output_mask {mask} {algo}")
    for i, pass_ in enumerate(CONV_PASSES[:3]):
        chosen = _core.conv2d_choose_algo(pass_, case.x_shape, case.w_shape, case.stride, case.padding, case.dilation, case.groups)  # fmt: skip
        assert_bitwise(results["auto"][i], results[chosen][i], f"{pass_}: auto is {chosen}")


@pytest.mark.isolated
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")
@given(pool_problems(), st.sampled_from(RANDOM_ISAS), st.integers(1, 3))
def test_random_pools_match_reference_exactly(problem, isa, threads):
    from test_pool2d import assert_identical

    case, kind, seed = problem
    _core._set_isa(isa)
    fastconv.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    x = pool_input(case.x_shape, kind, rng)
    # Max pooling: values, indices, the values-only path, the backward.
    y_ref, i_ref = ref.max_pool2d(x, **case.max_kwargs, return_indices=True)
    y, idx = fastconv.max_pool2d(x, **case.max_kwargs, return_indices=True)
    assert_identical(y, y_ref, f"max values {case} {kind} {isa}")
    assert_identical(idx, i_ref, f"max indices {case} {kind} {isa}")
    assert_identical(fastconv.max_pool2d(x, **case.max_kwargs), y_ref, "max values only")
    dy = rng.standard_normal(y.shape).astype(np.float32)
    if ((i_ref >= 0) & (i_ref < case.H * case.W)).all():
        dx = fastconv.max_pool2d_backward(dy, idx, x.shape)
        assert_identical(dx, ref.max_pool2d_backward(dy, i_ref, x.shape), f"max backward {case}")
    else:  # a window with no in-bounds position: its index is outside the plane
        with pytest.raises(ValueError, match=r"indices must lie in \[0, H\*W\)"):
            fastconv.max_pool2d_backward(dy, idx, x.shape)
    # Average pooling, forward and backward.
    ya = fastconv.avg_pool2d(x, **case.avg_kwargs)
    assert_identical(ya, ref.avg_pool2d(x, **case.avg_kwargs), f"avg {case} {kind} {isa}")
    dya = pool_input(ya.shape, "normal", rng)
    dxa = fastconv.avg_pool2d_backward(dya, case.x_shape, **case.avg_kwargs)
    assert_identical(
        dxa, ref.avg_pool2d_backward(dya, case.x_shape, **case.avg_kwargs), f"avg backward {case}"
    )
