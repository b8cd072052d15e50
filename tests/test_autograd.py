"""fastconv.Tensor: the ops' gradients against central finite differences.

The gradients are checked in float64, which every op runs on the NumPy
reference (the fixture sets the default dtype with
``fastconv.tensor.backend("reference", np.float64)``): every op's analytic
gradient of ``sum(R * op(x))`` (R a fixed random array, so that every output
element gets a different weight) must match ``(f(x + eps) - f(x - eps)) /
2eps`` elementwise. The backward machinery itself (accumulation into
``.grad``, reuse of a tensor, graph release, ``no_grad``) and the profiler are
tested at the end, after the dtype rule (float32/float64 kept, kernels
chosen per call by dtype, mixed dtypes refused). :func:`gradcheck` is reused
by test_nn.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Callable

import numpy as np
import pytest

import fastconv
from fastconv import Tensor, nn, no_grad, ops, profiler, reference
from fastconv import tensor as T

# --------------------------------------------------------------------------
# Finite differences
# --------------------------------------------------------------------------


def gradcheck(
    f: Callable[[], Tensor],
    tensors: Sequence[Tensor],
    *,
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-7,
    seed: int = 0,
) -> None:
    """Check the gradients of ``sum(R * f())`` w.r.t. ``tensors`` (float64, perturbed in place).

    ``f`` recomputes the output from the current ``.data`` of ``tensors``;
    call it with the backend and dtype the tensors were made with (float64:
    ``T.backend("reference", np.float64)``).
    """
    out = f()
    R = np.random.default_rng(seed).standard_normal(out.shape).astype(out.dtype)
    for t in tensors:
        t.grad = None
    (out * R).sum().backward()
    for k, t in enumerate(tensors):
        assert t.grad is not None, f"tensor {k} got no gradient"
        assert t.grad.shape == t.shape and t.grad.dtype == t.dtype
        flat = t.data.reshape(-1)
        assert np.shares_memory(flat, t.data)
        num = np.empty(flat.size)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            with no_grad():
                fp = float((f().data * R).sum())
            flat[i] = old - eps
            with no_grad():
                fm = float((f().data * R).sum())
            flat[i] = old
            num[i] = (fp - fm) / (2 * eps)
        np.testing.assert_allclose(
            t.grad.reshape(-1), num, rtol=rtol, atol=atol, err_msg=f"gradient of tensor {k}"
        )


def _t64(rng: np.random.Generator, *shape: int, positive: bool = False) -> Tensor:
    a = rng.standard_normal(shape)
    if positive:
        a = np.abs(a) + 0.5
    return Tensor(a, requires_grad=True, dtype=np.float64)


@pytest.fixture
def f64():
    """Run the test body on the reference backend in float64."""
    with T.backend("reference", np.float64):
        yield np.random.default_rng(1234)


# --------------------------------------------------------------------------
# Elementwise arithmetic with broadcasting
# --------------------------------------------------------------------------

BROADCAST_SHAPES = [
    ((3, 4), (3, 4)),
    ((3, 4), (4,)),
    ((3, 4), (3, 1)),
    ((2, 1, 4), (3, 1)),
    ((4,), (2, 3, 4)),
    ((3, 4), ()),
    ((1, 3, 1), (2, 1, 5)),
]


@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
@pytest.mark.parametrize("sa, sb", BROADCAST_SHAPES, ids=[f"{a}-{b}" for a, b in BROADCAST_SHAPES])
def test_binary_op_gradients_broadcast(f64, op, sa, sb):
    a = _t64(f64, *sa)
    b = _t64(f64, *sb, positive=op == "div")
    fn = {
        "add": lambda: a + b,
        "sub": lambda: a - b,
        "mul": lambda: a * b,
        "div": lambda: a / b,
    }[op]
    out = fn()
    assert out.shape == np.broadcast_shapes(sa, sb)
    gradcheck(fn, [a, b])


@pytest.mark.parametrize("op", ["radd", "rsub", "rmul", "rdiv", "add", "sub", "mul", "div"])
def test_scalar_operands(f64, op):
    a = _t64(f64, 3, 4, positive=True)
    fn = {
        "radd": lambda: 2.5 + a,
        "rsub": lambda: 2.5 - a,
        "rmul": lambda: 2.5 * a,
        "rdiv": lambda: 2.5 / a,
        "add": lambda: a + 2.5,
        "sub": lambda: a - 2.5,
        "mul": lambda: a * 2.5,
        "div": lambda: a / 2.5,
    }[op]
    expect = {
        "radd": 2.5 + a.data,
        "rsub": 2.5 - a.data,
        "rmul": 2.5 * a.data,
        "rdiv": 2.5 / a.data,
        "add": a.data + 2.5,
        "sub": a.data - 2.5,
        "mul": a.data * 2.5,
        "div": a.data / 2.5,
    }[op]
    np.testing.assert_allclose(fn().data, expect)
    gradcheck(fn, [a])


def test_numpy_operands_and_dtype_kept():
    """Arrays and NumPy scalars on either side give Tensors; float32 stays float32.

    Scalars (Python or NumPy) take the tensor's dtype; arrays must have it.
    """
    a = Tensor(np.arange(6.0, dtype=np.float32).reshape(2, 3), requires_grad=True)
    assert a.dtype == np.float32
    for out in (
        np.float64(2.0) * a,
        a * np.float64(2.0),
        np.ones(3, np.float32) + a,
        a - np.ones((2, 1), np.float32),
        np.float32(1) / (a + 1),
        a + [1, 2, 3],
    ):
        assert isinstance(out, Tensor)
        assert out.dtype == np.float32
        assert out.requires_grad
    with pytest.raises(TypeError, match="float32.*float64"):
        np.ones(3) + a


def test_neg_pow_exp_log(f64):
    a = _t64(f64, 3, 5, positive=True)
    for fn in (
        lambda: -a,
        lambda: a**3,
        lambda: a**0.5,
        lambda: a.pow(-1.5),
        lambda: a.exp(),
        lambda: a.log(),
    ):
        gradcheck(fn, [a])


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "relu"])
def test_activations(f64, name):
    a = _t64(f64, 2, 3, 4, 5)
    gradcheck(lambda: getattr(a, name)(), [a])


def test_sigmoid_is_stable():
    x = Tensor(np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0], dtype=np.float32))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        y = x.sigmoid().data
    np.testing.assert_allclose(y, [0, 1.9287e-22, 0.5, 1, 1], rtol=1e-3, atol=0)


@pytest.mark.parametrize("dim", [-1, 0, 1])
def test_softmax_log_softmax(f64, dim):
    a = _t64(f64, 3, 4, 2)
    gradcheck(lambda: a.softmax(dim), [a])
    gradcheck(lambda: a.log_softmax(dim), [a])
    s = a.softmax(dim).data
    np.testing.assert_allclose(s.sum(axis=dim), 1.0)
    np.testing.assert_allclose(a.log_softmax(dim).data, np.log(s))


# --------------------------------------------------------------------------
# matmul, reductions, shapes, indexing, cat
# --------------------------------------------------------------------------

MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((2, 3, 4), (2, 4, 5)),
    ((2, 1, 3, 4), (3, 4, 2)),
    ((4,), (4, 5)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
]


@pytest.mark.parametrize("sa, sb", MATMUL_SHAPES, ids=[f"{a}@{b}" for a, b in MATMUL_SHAPES])
def test_matmul(f64, sa, sb):
    a, b = _t64(f64, *sa), _t64(f64, *sb)
    out = a @ b
    np.testing.assert_allclose(out.data, a.data @ b.data)
    gradcheck(lambda: a @ b, [a, b])


def test_rmatmul_with_array(f64):
    a = _t64(f64, 4, 2)
    m = f64.standard_normal((3, 4))
    gradcheck(lambda: m @ a, [a])


@pytest.mark.parametrize(
    "axis, keepdims",
    [
        (None, False),
        (None, True),
        (0, False),
        (1, True),
        (-1, False),
        ((0, 2), False),
        ((1, 2), True),
    ],
)
def test_sum_mean(f64, axis, keepdims):
    a = _t64(f64, 2, 3, 4)
    s = a.sum(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(s.data, a.data.sum(axis=axis, keepdims=keepdims))
    m = a.mean(axis=axis, keepdims=keepdims)
    np.testing.assert_allclose(m.data, a.data.mean(axis=axis, keepdims=keepdims))
    gradcheck(lambda: a.sum(axis=axis, keepdims=keepdims), [a])
    gradcheck(lambda: a.mean(axis=axis, keepdims=keepdims), [a])


def test_shape_ops(f64):
    a = _t64(f64, 2, 3, 4)
    assert a.reshape(6, 4).shape == (6, 4)
    assert a.reshape((4, -1)).shape == (4, 6)
    assert a.flatten().shape == (24,)  # PyTorch's default: every dim
    assert a.flatten(1).shape == (2, 12)
    assert a.flatten(0).shape == (24,)
    assert a.flatten(0, 1).shape == (6, 4)
    assert a.T.shape == (4, 3, 2)
    assert a.transpose(0, 2).shape == (4, 3, 2)
    assert a.transpose(1, 2).shape == (2, 4, 3)
    assert a.permute(1, 2, 0).shape == (3, 4, 2)
    for fn in (
        lambda: a.reshape(4, 6),
        lambda: a.flatten(1),
        lambda: a.T,
        lambda: a.transpose(1, 2) * 1.0,
        lambda: a.permute(2, 0, 1),
    ):
        gradcheck(fn, [a])


@pytest.mark.parametrize(
    "index",
    [
        0,
        -1,
        slice(1, 3),
        (slice(None), 1),
        (1, slice(0, 2), 3),
        (Ellipsis, 2),
        [0, 2, 2, 1],
        np.array([3, 0, 3]),
    ],
    ids=["int", "neg", "slice", "col", "mixed", "ellipsis", "fancy-dup", "array-dup"],
)
def test_getitem(f64, index):
    a = _t64(f64, 4, 3, 5)
    np.testing.assert_array_equal(a[index].data, a.data[index])
    gradcheck(lambda: a[index], [a])


def test_cat(f64):
    a, b, c = _t64(f64, 2, 1, 3, 3), _t64(f64, 2, 4, 3, 3), _t64(f64, 2, 2, 3, 3)
    out = T.cat([a, b, c], dim=1)
    assert out.shape == (2, 7, 3, 3)
    np.testing.assert_array_equal(out.data[:, 1:5], b.data)
    gradcheck(lambda: T.cat([a, b, c], dim=1), [a, b, c])
    gradcheck(lambda: T.cat([a, a], dim=0), [a])


def test_composite_expression(f64):
    """A small MLP-like expression mixing broadcasting, matmul and reductions."""
    x = _t64(f64, 5, 3)
    w = _t64(f64, 3, 4)
    b = _t64(f64, 4)

    def f():
        h = (x @ w + b).tanh()
        return ((h - h.mean(axis=0, keepdims=True)) ** 2).sum(axis=1) / (1.0 + x.exp().sum(axis=1))

    gradcheck(f, [x, w, b])


# --------------------------------------------------------------------------
# The fast kernels (float32) agree with the reference backend
# --------------------------------------------------------------------------


def test_relu_fast_matches_reference():
    """float32 runs on the fast kernels; they agree with the reference called directly."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4, 5, 6)).astype(np.float32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    t = Tensor(x, requires_grad=True)
    y = t.relu()
    y.backward(g)
    want = reference.relu(x)
    np.testing.assert_array_equal(y.data, want)
    np.testing.assert_array_equal(t.grad, reference.relu_backward(g, want))


def test_backend_switch_and_restore():
    """backend() sets the default dtype for a block; the ops still choose by dtype."""
    assert T.get_backend() == "fastconv" and T.get_default_dtype() == np.float32
    with T.backend("reference", np.float64):
        assert T.get_backend() == "reference"
        assert Tensor([1.0]).dtype == np.float64
        assert nn.Linear(2, 3).weight.dtype == np.float64
        assert Tensor(np.ones(2, np.float32)).relu().dtype == np.float32  # still fast kernels
    assert T.get_backend() == "fastconv" and T.get_default_dtype() == np.float32
    with T.backend("reference"):
        assert T.get_default_dtype() == np.float64
    with pytest.raises(ValueError, match="unknown backend"):
        T.set_backend("cuda")
    with pytest.raises(ValueError, match="float32.*float64"), T.backend("reference", np.float32):
        pass
    with pytest.raises(TypeError):
        T.set_default_dtype(np.int32)
    T.set_backend("reference")
    try:
        assert T.get_default_dtype() == np.float64
    finally:
        T.set_backend("fastconv")
    assert T.get_default_dtype() == np.float32
    # float64 runs on the reference without any switch (it used to be refused).
    x = Tensor(np.full((1, 1, 4, 4), -1.0))
    assert x.relu().dtype == np.float64 and not x.relu().data.any()


# --------------------------------------------------------------------------
# One dtype rule: arrays keep float32/float64, ops dispatch per call by dtype
# --------------------------------------------------------------------------


def test_tensor_keeps_the_dtype_of_float_arrays():
    f64, f32 = np.ones((2, 3)), np.ones((2, 3), np.float32)
    assert Tensor(f64).dtype == np.float64, "float64 is kept, not cast to float32"
    assert Tensor(f64).data is f64 and Tensor(f32).data is f32, "no copy"
    assert Tensor(np.float64(2.0)).dtype == np.float64
    assert Tensor(Tensor(f64)).dtype == np.float64
    assert Tensor([1.0, 2.0]).dtype == np.float32 and Tensor(3).dtype == np.float32
    assert T.tensor(np.arange(3), dtype=np.float32).dtype == np.float32  # explicit: converted
    assert Tensor(f64, dtype=np.float32).dtype == np.float32
    assert nn.Parameter(f64).dtype == np.float64


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32, np.uint8, np.bool_])
def test_tensor_refuses_other_dtypes(dtype):
    a = np.ones((2, 3), dtype)
    with pytest.raises(
        TypeError, match=rf"float32.*float64.*got a {np.dtype(dtype)} array.*astype"
    ):
        Tensor(a)
    with pytest.raises(TypeError, match="float32"):
        Tensor(a, dtype=dtype)
    with pytest.raises(TypeError, match=rf"{np.dtype(dtype)}"):
        Tensor(np.ones(3, np.float32)) + a  # not cast as an operand either


def _spy(monkeypatch, calls, module, names):
    for name in names:
        fn = getattr(module, name)

        def spy(*a, _fn=fn, _name=name, **k):
            calls.append((module.__name__.rsplit(".", 1)[-1], _name))
            return _fn(*a, **k)

        monkeypatch.setattr(module, name, spy)


def test_ops_pick_their_kernels_per_call_from_the_dtype(monkeypatch):
    """float32 -> fastconv.functional, float64 -> fastconv.reference, call by call, no switch."""
    from fastconv import functional

    names = ["conv2d", "conv2d_backward", "linear", "linear_backward", "max_pool2d",
             "max_pool2d_backward", "avg_pool2d", "avg_pool2d_backward", "relu", "relu_backward"]  # fmt: skip
    calls: list = []
    _spy(monkeypatch, calls, functional, names)
    _spy(monkeypatch, calls, reference, names)
    rng = np.random.default_rng(3)
    for dtype, module in ((np.float64, "reference"), (np.float32, "functional")) * 2:
        calls.clear()
        x = Tensor(rng.standard_normal((2, 3, 6, 6)).astype(dtype), requires_grad=True)
        w = Tensor(rng.standard_normal((4, 3, 3, 3)).astype(dtype), requires_grad=True)
        lw = Tensor(rng.standard_normal((5, 4)).astype(dtype), requires_grad=True)
        h = ops.avg_pool2d(ops.max_pool2d(ops.conv2d(x, w, padding=1).relu(), 2), 3, 1, 1)
        y = ops.linear(h.sum(axis=(2, 3)), lw)
        assert y.dtype == dtype
        y.sum().backward()
        assert x.grad.dtype == w.grad.dtype == lw.grad.dtype == dtype
        assert {m for m, _ in calls} == {module}, calls
        assert {n for _, n in calls} == set(names)
    with T.backend("reference", np.float64):  # the default dtype does not choose the kernels
        calls.clear()
        Tensor(np.ones(4, np.float32)).relu()
        assert calls == [("functional", "relu")]


def _mixed_ops():
    a32 = Tensor(np.ones((2, 2, 4, 4), np.float32), requires_grad=True)
    a64 = Tensor(np.ones((2, 2, 4, 4)), requires_grad=True)
    w64 = Tensor(np.ones((3, 2, 3, 3)))
    m32, m64 = Tensor(np.ones((3, 4), np.float32)), Tensor(np.ones((4, 5)))
    return {
        "conv2d": lambda: ops.conv2d(a32, w64),
        "conv2d-bias": lambda: ops.conv2d(a64, w64, Tensor(np.ones(3, np.float32))),
        "linear": lambda: ops.linear(m32, Tensor(np.ones((5, 4)))),
        "add": lambda: a32 + a64,
        "sub-array": lambda: a32 - np.ones((2, 2, 4, 4)),
        "mul": lambda: a64 * a32,
        "div": lambda: a32 / a64,
        "matmul": lambda: m32 @ m64,
        "cat": lambda: T.cat([a32, a64]),
        "mse_loss": lambda: ops.mse_loss(a32, np.zeros((2, 2, 4, 4))),
        "l1_loss": lambda: ops.l1_loss(a64, a32),
        "batch_norm": lambda: ops.batch_norm(a32, np.zeros(2), np.ones(2)),
        "backward": lambda: (a32 * 2.0).backward(np.ones((2, 2, 4, 4))),
    }


@pytest.mark.parametrize("op", list(_mixed_ops()))
def test_mixed_float_dtypes_raise_type_error_naming_both(op):
    with pytest.raises(TypeError) as info:
        _mixed_ops()[op]()
    msg = str(info.value)
    assert op.split("-")[0] in msg and "float32" in msg and "float64" in msg, msg
    assert ".float()" in msg and ".double()" in msg and "astype" in msg, msg


def test_tensor_float_and_double_convert_in_the_graph():
    x = Tensor(np.array([1.0, -2.0, 3.0], np.float32), requires_grad=True)
    assert x.float() is x and x.to(np.float32) is x
    d = x.double()
    assert d.dtype == np.float64 and d.requires_grad and d.data[1] == -2.0
    (d * d).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_array_equal(x.grad, [2.0, -4.0, 6.0])
    assert d.float().dtype == np.float32
    with pytest.raises(TypeError, match="float16"):
        x.to(np.float16)
    with no_grad():
        assert not x.double().requires_grad


# --------------------------------------------------------------------------
# Backward semantics
# --------------------------------------------------------------------------


def test_gradients_accumulate_into_leaves():
    x = Tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * 2.0).sum().backward()
    np.testing.assert_array_equal(x.grad, [2, 2, 2])
    (x * x).sum().backward()  # += 2x
    np.testing.assert_array_equal(x.grad, [4, 6, 8])
    g = x.grad
    (x * 1.0).sum().backward()
    assert x.grad is g, "accumulation is in place"
    x.zero_grad()
    assert x.grad is None


def test_tensor_used_several_times():
    x = Tensor([2.0, -1.0], requires_grad=True)
    y = x * x + x * 3.0 - x / 2.0  # dy/dx = 2x + 2.5
    y.backward([1.0, 1.0])  # a list takes the tensor's dtype
    np.testing.assert_allclose(x.grad, [6.5, 0.5])


def test_leaf_grad_does_not_alias_upstream_gradient():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    y = Tensor(np.ones(3, np.float32), requires_grad=True)
    out = x + y
    g = np.ones(3, dtype=np.float32)
    out.backward(g)
    x.grad += 5
    np.testing.assert_array_equal(y.grad, [1, 1, 1])
    np.testing.assert_array_equal(g, [1, 1, 1])


def test_backward_argument_rules():
    x = Tensor(np.ones((2, 2)), requires_grad=True)
    with pytest.raises(RuntimeError, match="one-element"):
        (x * 2.0).backward()
    with pytest.raises(ValueError, match="shape"):
        (x * 2.0).backward(np.ones(3))
    with pytest.raises(RuntimeError, match="does not require grad"):
        Tensor([1.0]).backward()
    (x * 2.0).sum(keepdims=True).backward()  # shape (1, 1): no argument needed
    np.testing.assert_array_equal(x.grad, np.full((2, 2), 2.0))


def test_graph_released_unless_retained():
    x = Tensor([1.0, 2.0], requires_grad=True)
    loss = (x * x).sum()
    loss.backward(retain_graph=True)
    loss.backward()
    np.testing.assert_array_equal(x.grad, [4, 8])
    with pytest.raises(RuntimeError, match="second time"):
        loss.backward()


def test_requires_grad_propagation_and_detach():
    a = Tensor([1.0, 2.0], requires_grad=True)
    b = Tensor([3.0, 4.0])
    assert (a + b).requires_grad and not (b * 2.0).requires_grad
    assert (a + b).is_leaf is False and a.is_leaf
    d = a.detach()
    assert not d.requires_grad and np.shares_memory(d.data, a.data)
    out = a * b
    out.sum().backward()
    assert b.grad is None
    np.testing.assert_array_equal(a.grad, [3, 4])


def test_no_grad():
    a = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        y = a * 2.0
        assert not T.is_grad_enabled()
        with T.enable_grad():
            z = a * 3.0
    assert T.is_grad_enabled()
    assert not y.requires_grad and y._backward is None and y._prev == ()
    assert z.requires_grad

    @no_grad()
    def infer(t):
        return t.relu() * 2.0

    assert not infer(a).requires_grad
    assert infer.__name__ == "infer"

    @no_grad
    def infer2(t):
        return t * 2.0

    assert not infer2(a).requires_grad and T.is_grad_enabled()
    assert fastconv.no_grad is no_grad


def test_tensor_basics():
    t = Tensor([[1.0, 2.0], [3.0, 4.0]])
    assert t.shape == (2, 2) and t.ndim == 2 and t.dtype == np.float32
    assert t.data.flags.c_contiguous
    assert t.numpy() is t.data
    assert Tensor(5.0).item() == 5.0 and Tensor(5.0).shape == ()
    with pytest.raises(ValueError):
        t.item()
    with pytest.raises(TypeError, match="floating point"):
        Tensor(np.arange(3), dtype=np.int64)
    assert "requires_grad=True" in repr(Tensor([1.0], requires_grad=True))
    assert "grad_fn=<mul>" in repr(Tensor([1.0], requires_grad=True) * 2.0)
    assert len(t) == 2
    np.testing.assert_array_equal(np.asarray(t), t.data)
    with pytest.raises(TypeError):
        np.exp(t)  # NumPy functions do not silently drop the graph
    f32 = np.ones((2, 3), np.float32)
    assert Tensor(f32).data is f32, "no copy of a float32 C-contiguous array"
    assert Tensor(np.ones((2, 3))).dtype == np.float64, "float64 input is kept"


# --------------------------------------------------------------------------
# Profiler
# --------------------------------------------------------------------------


def test_profiler_records_ops_and_is_off_by_default():
    assert profiler.active() is None
    x = Tensor(np.random.default_rng(0).standard_normal((2, 3, 6, 6)), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((4, 3, 3, 3)), requires_grad=True)
    with profiler.Profiler() as prof:
        assert profiler.active() is prof
        y = ops.max_pool2d(ops.conv2d(x, w).relu(), 2)
        loss = ops.cross_entropy(y.flatten(1), np.array([0, 3]))
        loss.backward()
    assert profiler.active() is None
    names = set(prof.totals())
    for name in (
        "conv2d.forward",
        "conv2d.backward",
        "relu.forward",
        "relu.backward",
        "max_pool2d.forward",
        "max_pool2d.backward",
        "cross_entropy",
        "cross_entropy.backward",
    ):
        assert name in names, name
    assert prof.counts()["conv2d.forward"] == 1
    assert 0 < prof.kernel_time() <= prof.wall_time
    table = prof.table()
    assert "conv2d.forward" in table and "python overhead" in table
    n = len(prof.counts())
    ops.conv2d(x, w)  # outside: not recorded
    assert len(prof.counts()) == n and prof.counts()["conv2d.forward"] == 1
    prof.reset()
    assert prof.totals() == {} and prof.kernel_time() == 0


def test_profilers_nest():
    x = Tensor(np.ones((4, 4)))
    with profiler.Profiler() as outer:
        x.relu()
        with profiler.Profiler() as inner:
            x.tanh()
        x.sigmoid()
    assert set(inner.totals()) == {"tanh.forward"}
    assert set(outer.totals()) == {"relu.forward", "sigmoid.forward"}
    assert profiler.active() is None
