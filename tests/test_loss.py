"""The losses of :mod:`fastconv._ops_loss` (``fastconv.ops.<name>``) and their modules.

* Values and gradients against ``torch.nn.functional`` (skipped without
  torch) for every reduction and the weighted, ignored, smoothed and
  probability-target cases, including torch's edge cases (all targets ignored,
  probabilities of exactly 0 and 1, an empty batch).
* Gradients against finite differences in float64 (:func:`test_autograd.gradcheck`).
* Argument errors: wrong target dtypes and shapes, bad reductions, weights.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_autograd import gradcheck

from fastconv import Tensor, nn, ops

REDUCTIONS = ("mean", "sum", "none")


def _rng(seed=0):
    return np.random.default_rng(seed)


def _labels(shape, C, seed=1, ignore=None):
    t = _rng(seed).integers(0, C, shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
    return t


def _torch():
    return pytest.importorskip("torch")


def _parity(name, x, target, kwargs, target_grad=False, rtol=1e-5, atol=1e-6):
    """ops.<name> and torch.nn.functional.<name> agree on the loss and the gradients."""
    torch = _torch()
    tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    xt = Tensor(x, requires_grad=True)
    ours_t = Tensor(target, requires_grad=True) if target_grad else target
    loss = getattr(ops, name)(xt, ours_t, **kwargs)
    tx = torch.tensor(x, requires_grad=True)
    tt = torch.tensor(target, requires_grad=target_grad)
    tl = getattr(torch.nn.functional, name)(tx, tt, **tk)
    assert loss.shape == tuple(tl.shape) and loss.dtype == x.dtype
    np.testing.assert_allclose(loss.data, tl.detach().numpy(), rtol=rtol, atol=atol)
    g = _rng(5).standard_normal(loss.shape).astype(x.dtype)
    loss.backward(g)
    tl.backward(torch.tensor(g))
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=rtol, atol=atol)
    if target_grad:
        np.testing.assert_allclose(ours_t.grad, tt.grad.numpy(), rtol=rtol, atol=atol)


# --------------------------------------------------------------------------
# Cross entropy and NLL against PyTorch
# --------------------------------------------------------------------------

CE_CASES = {
    "plain": {},
    "weight": {"weight": np.array([0.2, 1.0, 3.0, 0.5], np.float32)},
    "ignore": {"ignore_index": 2},
    "ignore-weight": {"ignore_index": 1, "weight": np.array([1, 2, 3, 4], np.float32)},
    "smoothing": {"label_smoothing": 0.1},
    "smoothing-weight-ignore": {
        "label_smoothing": 0.3,
        "weight": np.array([0.2, 1.0, 3.0, 0.5], np.float32),
        "ignore_index": 0,
    },
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", list(CE_CASES))
@pytest.mark.parametrize("shape", [(6, 4), (4,), (3, 4, 2, 3)], ids=["NC", "C", "NCHW"])
def test_cross_entropy_labels_match_torch(shape, case, reduction):
    x = (_rng().standard_normal(shape) * 3).astype(np.float32)
    t_shape = () if len(shape) == 1 else shape[:1] + shape[2:]
    kwargs = dict(CE_CASES[case], reduction=reduction)
    t = _labels(t_shape, 4)
    if "ignore_index" in kwargs and t.ndim:
        t.reshape(-1)[::3] = kwargs["ignore_index"]  # some ignored, some not
    _parity("cross_entropy", x, t, kwargs)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["plain", "weight", "smoothing", "smoothing-weight-ignore"])
@pytest.mark.parametrize("shape", [(5, 4), (2, 4, 3)], ids=["NC", "NCL"])
def test_cross_entropy_probabilities_match_torch(shape, case, reduction):
    x = _rng().standard_normal(shape).astype(np.float32)
    q = _rng(2).random(shape).astype(np.float32)
    q /= q.sum(axis=1, keepdims=True)
    kwargs = {k: v for k, v in CE_CASES[case].items() if k != "ignore_index"}
    _parity("cross_entropy", x, q, dict(kwargs, reduction=reduction), target_grad=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("case", ["plain", "weight", "ignore", "ignore-weight"])
@pytest.mark.parametrize("shape", [(6, 4), (4,), (3, 4, 2, 3)], ids=["NC", "C", "NCHW"])
def test_nll_loss_matches_torch(shape, case, reduction):
    x = _rng().standard_normal(shape).astype(np.float32)
    t = _labels(() if len(shape) == 1 else shape[:1] + shape[2:], 4)
    kwargs = dict(CE_CASES[case], reduction=reduction)
    if "ignore_index" in kwargs and t.ndim:
        t.reshape(-1)[::2] = kwargs["ignore_index"]
    _parity("nll_loss", x, t, kwargs)


@pytest.mark.parametrize("name", ["cross_entropy", "nll_loss"])
def test_all_ignored_and_empty_batch_give_nan_like_torch(name):
    torch = _torch()
    x = _rng().standard_normal((3, 4)).astype(np.float32)
    for target, xx in ((np.full(3, -100), x), (np.zeros(0, np.int64), x[:0])):
        xt = Tensor(xx, requires_grad=True)
        loss = getattr(ops, name)(xt, target)
        tx = torch.tensor(xx, requires_grad=True)
        tl = getattr(torch.nn.functional, name)(tx, torch.tensor(target))
        assert math.isnan(loss.item()) and math.isnan(tl.item())
        loss.backward()
        tl.backward()
        np.testing.assert_array_equal(xt.grad, tx.grad.numpy())  # zeros: nothing selected
        assert getattr(ops, name)(Tensor(xx), target, reduction="sum").item() == 0


def test_weighted_mean_divides_by_the_weights_of_the_kept_targets():
    z = Tensor(np.zeros((3, 2)))  # every sample's loss is log 2
    w = np.array([1.0, 3.0])
    loss = ops.cross_entropy(z, np.array([0, 1, 1]), weight=w, ignore_index=0)
    # kept: samples 1 and 2, weight 3 each: (3 log2 + 3 log2) / 6
    assert loss.item() == pytest.approx(math.log(2))
    loss = ops.cross_entropy(z, np.array([0, 1, 1]), weight=w, reduction="sum")
    assert loss.item() == pytest.approx(7 * math.log(2))
    per = ops.nll_loss(
        Tensor([[-1.0, -2.0], [-3.0, -4.0]]), [1, -100], weight=[2.0, 5.0], reduction="none"
    )
    np.testing.assert_allclose(per.data, [10.0, 0.0])


# --------------------------------------------------------------------------
# Element-wise losses against PyTorch
# --------------------------------------------------------------------------


def _pair(shape=(3, 5), seed=0):
    r = _rng(seed)
    return r.standard_normal(shape).astype(np.float32), r.standard_normal(shape).astype(np.float32)


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("name", ["mse_loss", "l1_loss", "huber_loss"])
def test_regression_losses_match_torch(name, reduction):
    x, t = _pair((4, 3, 2))
    t[0, 0, 0] = x[0, 0, 0]  # |d| = 0: l1's gradient is 0
    _parity(name, x, t, {"reduction": reduction}, target_grad=True)


@pytest.mark.parametrize("delta", [0.3, 1.0, 2.5])
def test_huber_delta_matches_torch(delta):
    x, t = _pair((6, 4), seed=3)
    x *= 2
    _parity("huber_loss", x, t, {"delta": delta}, target_grad=True)


BCE_WEIGHTS = {
    "none": {},
    "weight": {"weight": np.array([0.5, 1.0, 2.0, 0.0, 3.0], np.float32)},
    "weight-full": {"weight": _rng(4).random((3, 5)).astype(np.float32)},
}


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weights", list(BCE_WEIGHTS))
def test_binary_cross_entropy_matches_torch(weights, reduction):
    r = _rng(1)
    x = r.uniform(0.02, 0.98, (3, 5)).astype(np.float32)
    t = r.random((3, 5)).astype(np.float32)
    t[0] = np.round(t[0])  # hard 0/1 targets too
    _parity(
        "binary_cross_entropy", x, t, dict(BCE_WEIGHTS[weights], reduction=reduction),
        target_grad=True, rtol=1e-4,
    )  # fmt: skip


def test_binary_cross_entropy_clamps_the_log_at_minus_100():
    torch = _torch()
    x = np.array([0.0, 1.0, 0.0, 1.0, 0.5], np.float32)
    t = np.array([1.0, 0.0, 0.0, 1.0, 1.0], np.float32)
    xt = Tensor(x, requires_grad=True)
    loss = ops.binary_cross_entropy(xt, t, reduction="none")
    np.testing.assert_allclose(loss.data, [100, 100, 0, 0, math.log(2)], rtol=1e-6)
    loss.sum().backward()
    tx = torch.tensor(x, requires_grad=True)
    torch.nn.functional.binary_cross_entropy(tx, torch.tensor(t), reduction="sum").backward()
    np.testing.assert_allclose(xt.grad, tx.grad.numpy(), rtol=1e-6)
    assert np.all(np.isfinite(xt.grad))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("pos_weight", [None, "vector", "full"])
@pytest.mark.parametrize("weight", [None, "vector"])
def test_bce_with_logits_matches_torch(weight, pos_weight, reduction):
    x, _ = _pair((4, 5), seed=2)
    x *= 4
    x[0, :2] = [80.0, -80.0]  # far in the tails: no overflow
    t = _rng(3).random((4, 5)).astype(np.float32)
    kwargs = {"reduction": reduction}
    if weight:
        kwargs["weight"] = _rng(6).random(5).astype(np.float32)
    if pos_weight == "vector":
        kwargs["pos_weight"] = np.array([1.0, 2.0, 0.5, 3.0, 1.5], np.float32)
    elif pos_weight == "full":
        kwargs["pos_weight"] = _rng(7).random((4, 5)).astype(np.float32) * 3
    _parity("binary_cross_entropy_with_logits", x, t, kwargs, target_grad=True, rtol=1e-4)


# --------------------------------------------------------------------------
# Finite differences (float64)
# --------------------------------------------------------------------------


def _x64(*shape, seed=0):
    return Tensor(_rng(seed).standard_normal(shape), requires_grad=True)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_classification_losses_gradcheck(reduction):
    z = _x64(5, 4, 2)
    t = _labels((5, 2), 4, ignore=-100)
    w = np.array([0.5, 1.0, 2.0, 1.5])
    for kw in ({}, {"weight": w}, {"weight": w, "label_smoothing": 0.2}):
        gradcheck(lambda kw=kw: ops.cross_entropy(z, t, reduction=reduction, **kw), [z])
        if "label_smoothing" not in kw:
            gradcheck(lambda kw=kw: ops.nll_loss(z, t, reduction=reduction, **kw), [z])
    q = Tensor(_rng(3).random((5, 4, 2)), requires_grad=True)
    gradcheck(lambda: ops.cross_entropy(z, q, w, reduction=reduction, label_smoothing=0.1), [z, q])


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_elementwise_losses_gradcheck(reduction):
    a, b = _x64(3, 4), _x64(3, 4, seed=1)
    gradcheck(lambda: ops.mse_loss(a, b, reduction=reduction), [a, b])
    gradcheck(lambda: ops.l1_loss(a, b, reduction=reduction), [a, b])
    gradcheck(lambda: ops.huber_loss(a, b, reduction=reduction, delta=0.7), [a, b])
    p = Tensor(_rng(2).uniform(0.1, 0.9, (3, 4)), requires_grad=True)
    q = Tensor(_rng(3).random((3, 4)), requires_grad=True)
    w, pw = _rng(4).random(4), _rng(5).random(4) * 2
    gradcheck(lambda: ops.binary_cross_entropy(p, q, w, reduction=reduction), [p, q])
    gradcheck(
        lambda: ops.binary_cross_entropy_with_logits(a, q, w, reduction=reduction, pos_weight=pw),
        [a, q],
    )


# --------------------------------------------------------------------------
# Modules
# --------------------------------------------------------------------------


def test_modules_match_their_functions_and_torch_defaults():
    torch = _torch()
    x, t = _pair((4, 3))
    p = 1 / (1 + np.exp(-x))
    tb = (t > 0).astype(np.float32)
    labels = np.array([0, 2, 1, 2])
    w = np.array([1.0, 2.0, 0.5], np.float32)
    cases = [
        (nn.CrossEntropyLoss(w, ignore_index=1, label_smoothing=0.2), x, labels,
         torch.nn.CrossEntropyLoss(torch.tensor(w), ignore_index=1, label_smoothing=0.2)),
        (nn.NLLLoss(w, reduction="sum"), x, labels, torch.nn.NLLLoss(torch.tensor(w), reduction="sum")),
        (nn.BCELoss(w), p, tb, torch.nn.BCELoss(torch.tensor(w))),
        (nn.BCEWithLogitsLoss(pos_weight=w), x, tb, torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))),
        (nn.HuberLoss(delta=0.5), x, t, torch.nn.HuberLoss(delta=0.5)),
        (nn.MSELoss(reduction="none"), x, t, torch.nn.MSELoss(reduction="none")),
        (nn.L1Loss(), x, t, torch.nn.L1Loss()),
    ]  # fmt: skip
    for ours, xi, ti, theirs in cases:
        got = ours(Tensor(xi), ti).data
        want = theirs(torch.tensor(xi), torch.tensor(ti)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6, err_msg=repr(ours))


def test_module_weights_are_buffers_and_follow_the_dtype():
    ce = nn.CrossEntropyLoss(weight=[1.0, 2.0, 3.0])
    assert list(ce.state_dict()) == ["weight"] and ce.weight.dtype == np.float32
    ce.double()
    z = Tensor(np.zeros((2, 3)))  # float64
    assert ce(z, [0, 1]).item() == pytest.approx(math.log(3))
    assert (
        nn.BCEWithLogitsLoss(pos_weight=np.ones(3)).state_dict()["pos_weight"].dtype == np.float64
    )
    assert nn.MSELoss().state_dict() == {}


def test_legacy_spellings():
    """fastconv's earlier positional reduction, and PyTorch's deprecated flags."""
    x, t = Tensor(np.array([[1.0, 2.0]])), np.array([[0.0, 0.0]])
    assert nn.MSELoss("sum")(x, t).item() == 5
    assert ops.mse_loss(x, t, "sum").item() == 5
    assert ops.l1_loss(x, t, size_average=False).item() == 3
    assert ops.l1_loss(x, t, reduce=False).shape == (1, 2)
    assert nn.CrossEntropyLoss("sum").reduction == "sum"
    assert ops.cross_entropy(Tensor(np.zeros((2, 2))), [0, 1], "sum").item() == pytest.approx(
        2 * math.log(2)
    )
    assert nn.NLLLoss(size_average=False).reduction == "sum"


# --------------------------------------------------------------------------
# Errors
# --------------------------------------------------------------------------

Z = Tensor(np.zeros((2, 3), np.float32))
ERRORS = [
    (lambda: ops.cross_entropy(Z, [0, 1], reduction="avg"), ValueError,
     "cross_entropy: reduction must be one of 'mean', 'sum', 'none', got 'avg'"),
    (lambda: ops.cross_entropy(Z, np.zeros((2, 3), np.int64)), TypeError,
     r"class probabilities and must be float32 or float64, got int64"),
    (lambda: ops.cross_entropy(Z, np.zeros((2, 3))), TypeError, "float32 but target is float64"),
    (lambda: ops.cross_entropy(Z, np.array([0, 1.0])), TypeError, "integer class labels"),
    (lambda: ops.cross_entropy(Z, [[0, 1]]), ValueError, r"got \(2, 3\) and \(1, 2\)"),
    (lambda: ops.cross_entropy(Z, [0, 3]), IndexError, "target 3 is out of bounds for 3 classes"),
    (lambda: ops.cross_entropy(Z, [0, -100], ignore_index=1), IndexError, "target -100"),
    (lambda: ops.cross_entropy(Z, [0, 1], weight=[1.0, 2.0]), ValueError,
     r"weight must have shape \(3,\).*got \(2,\)"),
    (lambda: ops.cross_entropy(Z, [0, 1], weight=np.ones(3)), TypeError, "float64"),
    (lambda: ops.cross_entropy(Z, [0, 1], label_smoothing=1.5), ValueError, r"\[0, 1\]"),
    (lambda: ops.cross_entropy(Tensor(1.0), 0), ValueError, "class dim"),
    (lambda: ops.nll_loss(Z, Tensor([0.0, 1.0])), TypeError, "integer class labels.*Tensor"),
    (lambda: ops.binary_cross_entropy(Z + 2, np.zeros((2, 3), np.float32)), ValueError,
     "all elements of input should be between 0 and 1"),
    (lambda: ops.binary_cross_entropy(Z, np.full((2, 3), 2, np.float32)), ValueError,
     "all elements of target should be between 0 and 1"),
    (lambda: ops.binary_cross_entropy(Z, np.zeros(3, np.float32)), ValueError,
     r"input shape \(2, 3\) and target shape \(3,\) differ"),
    (lambda: ops.binary_cross_entropy_with_logits(Z, np.zeros((2, 3), np.float32),
                                                  pos_weight=np.ones(2, np.float32)),
     ValueError, r"pos_weight of shape \(2,\) does not broadcast"),
    (lambda: ops.huber_loss(Z, np.zeros((2, 3), np.float32), delta=0), ValueError, "delta must be > 0"),
    (lambda: nn.HuberLoss(delta=-1), ValueError, r"HuberLoss: delta must be > 0, got -1"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=2), ValueError,
     r"CrossEntropyLoss: label_smoothing must be in \[0, 1\]"),
    (lambda: nn.NLLLoss(ignore_index=1.5), TypeError, "NLLLoss: ignore_index must be an int"),
    (lambda: nn.BCELoss(reduction="avg"), ValueError, "BCELoss: reduction must be one of"),
]  # fmt: skip


@pytest.mark.parametrize("call,exc,match", ERRORS, ids=[str(i) for i in range(len(ERRORS))])
def test_errors(call, exc, match):
    with pytest.raises(exc, match=match):
        call()
