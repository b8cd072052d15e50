"""Tensor's reductions and shape methods (fastconv._tensor_reduce, fastconv._tensor_shape).

Values and gradients against PyTorch (skipped without torch), including its
tie rules (``max(dim)``: the first index gets the gradient; ``max()``: ties
share it), gradients against finite differences in float64, DLPack exchange,
and the errors.
"""

from __future__ import annotations

import numpy as np
import pytest
from test_autograd import gradcheck

from fastconv import Tensor


def _x(*shape, seed=0, dtype=np.float64):
    return Tensor(
        np.random.default_rng(seed).standard_normal(shape).astype(dtype), requires_grad=True
    )


def _torch():
    return pytest.importorskip("torch")


TIES = np.array([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, -1.0, 2.0], [5.0, 5.0, 5.0, 5.0]], np.float32)

# (method, args, kwargs): the same call on ours and on torch's Tensor.
CALLS = [
    ("max", (), {}),
    ("min", (), {}),
    ("max", (1,), {}),
    ("max", (0,), {"keepdim": True}),
    ("min", (-1,), {"keepdim": True}),
    ("min", (0,), {}),
    ("sum", (), {}),
    ("sum", ((0, 1),), {"keepdim": True}),
    ("sum", (1,), {}),
    ("mean", (), {"dim": 0}),
    ("mean", (), {"dim": (0, -1), "keepdim": True}),
    ("clamp", (), {"min": 1.0, "max": 3.0}),  # values equal to a bound pass the gradient
    ("clamp", (), {"min": 2.0}),
    ("clamp", (), {"max": 2.0}),
    ("clamp", (), {"min": 4.0, "max": 1.0}),  # min > max: all max, no gradient
    ("clamp_min", (2.0,), {}),
    ("clamp_max", (2.0,), {}),
    ("flatten", (), {}),
    ("flatten", (1,), {}),
    ("permute", (1, 0), {}),
    ("unsqueeze", (1,), {}),
    ("unsqueeze", (-1,), {}),
]


@pytest.mark.parametrize("name,args,kwargs", CALLS, ids=[f"{c[0]}{c[1]}{c[2]}" for c in CALLS])
def test_methods_match_torch_with_ties(name, args, kwargs):
    torch = _torch()
    x = Tensor(TIES, requires_grad=True)
    tx = torch.tensor(TIES, requires_grad=True)
    y = getattr(x, name)(*args, **kwargs)
    ty = getattr(tx, name)(*args, **kwargs)
    if isinstance(ty, tuple):  # max/min with dim: (values, indices)
        np.testing.assert_array_equal(y.indices, ty.indices.numpy())
        assert y.indices.dtype == np.int64
        y, ty = y.values, ty.values
    assert y.shape == tuple(ty.shape)
    np.testing.assert_allclose(y.data, ty.detach().numpy(), rtol=1e-6)
    g = np.random.default_rng(1).standard_normal(y.shape).astype(np.float32)
    y.backward(g)
    ty.backward(torch.tensor(g))
    np.testing.assert_allclose(x.grad, tx.grad.numpy(), rtol=1e-6)


def test_global_max_spreads_the_gradient_over_ties():
    x = Tensor(TIES, requires_grad=True)
    x.max().backward()
    want = np.zeros_like(TIES)
    want[2] = 0.25
    np.testing.assert_array_equal(x.grad, want)
    v, i = Tensor(TIES).max(1)
    np.testing.assert_array_equal(i, [1, 0, 0])  # the first of equal values


@pytest.mark.parametrize("dim", [None, 0, 1, -1])
@pytest.mark.parametrize("keepdim", [False, True])
def test_argmax_argmin_match_torch(dim, keepdim):
    torch = _torch()
    t = torch.tensor(TIES)
    for name in ("argmax", "argmin"):
        got = getattr(Tensor(TIES), name)(dim, keepdim)
        want = getattr(t, name)(dim=dim, keepdim=keepdim).numpy()
        assert got.dtype == np.int64 and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_zero_dim_tensor_reductions_match_torch():
    torch = _torch()
    x, tx = Tensor(np.float32(3.0), requires_grad=True), torch.tensor(3.0, requires_grad=True)
    v, i = x.max(0)
    tv, ti = tx.max(0)
    assert v.shape == () and i.shape == () and int(i) == int(ti) and v.item() == tv.item()
    v.backward()
    tv.backward()
    assert x.grad == tx.grad.item()
    assert x.flatten().shape == (1,) and x.unsqueeze(0).shape == (1,) and x.squeeze().shape == ()
    assert x.argmax(0).shape == () and x.sum(0).shape == ()


def test_squeeze_and_sum_axis_aliases():
    a = Tensor(np.zeros((2, 1, 3, 1)))
    assert a.squeeze().shape == (2, 3)
    assert a.squeeze(1).shape == (2, 3, 1)
    assert a.squeeze(0).shape == (2, 1, 3, 1)  # not of size 1: left alone, as PyTorch
    assert a.squeeze((1, -1)).shape == (2, 3)
    b = _x(2, 3, 4)
    np.testing.assert_allclose(b.sum(axis=1, keepdims=True).data, b.data.sum(1, keepdims=True))
    np.testing.assert_allclose(b.mean(dim=[0, 2]).data, b.data.mean((0, 2)))
    np.testing.assert_allclose(b.sum(-1, True).data, b.data.sum(-1, keepdims=True))
    assert np.isnan(Tensor(np.zeros((0, 3))).mean().item())  # PyTorch: the mean of nothing is nan


CHECKS = {
    "max-dim": lambda a: a.max(1).values,
    "min-dim-keep": lambda a: a.min(0, keepdim=True).values,
    "max": lambda a: a.max(),
    "min": lambda a: a.min(),
    "clamp": lambda a: a.clamp(-0.5, 0.7),
    "clamp_min": lambda a: a.clamp_min(0.1),
    "clip": lambda a: a.clip(max=0.2),
    "sum-dim": lambda a: a.sum(dim=(0, 2), keepdim=True),
    "mean-dim": lambda a: a.mean(1),
    "squeeze": lambda a: a.unsqueeze(1).squeeze(1) * 2.0,
    "flatten": lambda a: a.flatten(1) * 1.5,
    "permute": lambda a: a.permute(2, 0, 1) * 1.5,
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_gradcheck_float64(name):
    a = _x(3, 4, 2, seed=7)
    gradcheck(lambda: CHECKS[name](a), [a])


def test_item_numpy_and_dlpack():
    a = Tensor(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert a.sum().item() == 15.0 and isinstance(a.sum().item(), float)
    assert a.numpy() is a.data
    b = np.from_dlpack(a)
    assert np.shares_memory(b, a.data) and b.shape == (2, 3)
    torch = _torch()
    t = torch.from_dlpack(a)
    assert t.dtype == torch.float32 and t.shape == (2, 3)
    a.data[0, 0] = 42.0  # shared, not copied
    assert t[0, 0].item() == 42.0


ERRORS = [
    (lambda a: a.max(3), IndexError, r"Dimension out of range \(expected to be in range of \[-3, 2\], but got 3\)"),
    (lambda a: a.sum(dim=(0, 0)), ValueError, "more than once"),
    (lambda a: a.sum(dim=0, axis=1), TypeError, "both dim=0 and axis=1"),
    (lambda a: a.mean(1.5), TypeError, "dim must be an int"),
    (lambda a: a.max((0, 1)), TypeError, "amax"),
    (lambda a: a.max(keepdim=True), TypeError, "keepdim needs a dim"),
    (lambda a: a.clamp(), ValueError, "at least one of min and max"),
    (lambda a: a.clamp(min="0"), TypeError, "min must be a number"),
    (lambda a: a.permute(0, 1), ValueError, r"the tensor has 3 .* got 2 dims"),
    (lambda a: a.permute(0, 1, 1), ValueError, "more than once"),
    (lambda a: a.unsqueeze(4), IndexError, r"\[-4, 3\]"),
    (lambda a: a.squeeze(5), IndexError, "out of range"),
    (lambda a: a.flatten(2, 1), ValueError, "start_dim 2 comes after end_dim 1"),
    (lambda a: Tensor(np.zeros((0, 2))).max(), ValueError, "no elements"),
    (lambda a: Tensor(np.zeros((0, 2))).max(0), IndexError, "dim 0 of size 0"),
    (lambda a: Tensor(np.zeros((0, 2))).argmax(), ValueError, "no elements"),
]  # fmt: skip


@pytest.mark.parametrize("call,exc,match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call(_x(2, 3, 4))
