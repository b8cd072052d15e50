"""fastconv.optim and fastconv.nn.utils against torch, step by step.

Every optimiser runs on the same initial float32 weights and the same
gradients as its ``torch.optim`` twin, with parameter groups that differ in
their options (weight decay, amsgrad, maximize, ...), and the weights must
agree after every step; the clipping functions must return torch's norm and
leave torch's gradients, non-finite ones included. Skipped without torch.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastconv import nn, optim
from fastconv.nn import utils

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (5,), (2, 1, 3, 3), (7,)]
STEPS = 8

# (optimiser, defaults, options of the second group): the first two parameters
# are group 0 with the defaults, the last two group 1 with its own options.
CASES = [
    ("SGD", {"lr": 0.05}, {"lr": 0.1, "momentum": 0.9, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True}, {"maximize": True, "dampening": 0}),
    ("SGD", {"lr": 0.02, "momentum": 0.9, "dampening": 0.5, "maximize": True}, {"lr": 0.2}),
    ("Adam", {}, {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"amsgrad": True, "weight_decay": 0.1}, {"maximize": True, "betas": (0.5, 0.9)}),
    ("Adam", {"lr": 0.03, "eps": 1e-4, "maximize": True}, {"weight_decay": 0.3}),
    ("AdamW", {}, {"weight_decay": 0.0, "lr": 0.02}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.5, "amsgrad": True}, {"amsgrad": False}),
    ("AdamW", {"lr": 0.01, "maximize": True}, {"betas": (0.8, 0.99), "eps": 1e-3}),
    ("RMSprop", {}, {"centered": True, "momentum": 0.5}),
    ("RMSprop", {"lr": 0.003, "centered": True, "weight_decay": 0.1}, {"maximize": True}),
    ("RMSprop", {"momentum": 0.9, "alpha": 0.9}, {"lr": 0.001, "momentum": 0.0}),
    # torch takes initial_accumulator_value from the constructor only, for every group
    ("Adagrad", {"initial_accumulator_value": 0.5}, {"lr_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "weight_decay": 0.2, "maximize": True}, {"eps": 1e-3}),
]


def _ids():
    return [f"{i}-{name}" for i, (name, _, _) in enumerate(CASES)]


def _problem(seed):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)]
    return init, grads


def _groups(params, options):
    return [{"params": params[:2]}, {"params": params[2:], **options}]


def _run_ours(name, defaults, options, init, grads):
    params = [nn.Parameter(w.copy()) for w in init]
    opt = getattr(optim, name)(_groups(params, options), **defaults)
    out = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()
        out.append([p.data.copy() for p in params])
    return out


def _run_torch(name, defaults, options, init, grads):
    params = [torch.tensor(w.copy(), requires_grad=True) for w in init]
    opt = getattr(torch.optim, name)(_groups(params, options), **defaults)
    out = []
    for gs in grads:
        for p, g in zip(params, gs):
            p.grad = torch.tensor(g)
        opt.step()
        out.append([p.detach().numpy().copy() for p in params])
    return out, opt


@pytest.mark.parametrize("name, defaults, options", CASES, ids=_ids())
def test_param_groups_match_torch(name, defaults, options):
    init, grads = _problem(3)
    ours = _run_ours(name, defaults, options, init, grads)
    theirs, _ = _run_torch(name, defaults, options, init, grads)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        for x, y in zip(a, b):
            np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-6, err_msg=f"step {step}")
    # the run moved the weights well beyond the tolerance
    assert max(np.abs(x - w).max() for x, w in zip(ours[-1], init)) > 1e-3


@pytest.mark.parametrize("name, defaults, options", CASES, ids=_ids())
def test_loads_torch_state_dict_and_continues_as_torch(name, defaults, options):
    """Torch's state dict (tensors, a float ``step``) loads into ours; the next steps agree."""
    init, grads = _problem(4)
    k = STEPS // 2
    theirs, topt = _run_torch(name, defaults, options, init, grads[:k])
    params = [nn.Parameter(w.copy()) for w in theirs[-1]]
    opt = getattr(optim, name)(_groups(params, {}), **defaults)
    opt.load_state_dict(topt.state_dict())
    assert opt.param_groups[1]["lr"] == topt.param_groups[1]["lr"]
    for gs in grads[k:]:
        for p, g, tp in zip(
            params, gs, topt.param_groups[0]["params"] + topt.param_groups[1]["params"]
        ):
            p.grad = g.copy()
            tp.grad = torch.tensor(g)
        opt.step()
        topt.step()
    tparams = topt.param_groups[0]["params"] + topt.param_groups[1]["params"]
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_defaults_match_torch():
    """Same default hyper-parameters in every group as torch (minus torch's backend flags)."""
    backend = {"foreach", "capturable", "differentiable", "fused"}
    for name in ("SGD", "Adam", "AdamW", "RMSprop", "Adagrad"):
        ours = getattr(optim, name)([nn.Parameter(np.ones(2))]).defaults
        theirs = getattr(torch.optim, name)([torch.ones(2, requires_grad=True)]).defaults
        assert ours == {k: v for k, v in theirs.items() if k not in backend}, name


# ---- clipping -------------------------------------------------------------


def _grad_pairs(arrays):
    ours, theirs = [], []
    for a in arrays:
        p = nn.Parameter(np.zeros(a.shape, a.dtype))
        p.grad = None if a is None else a.copy()
        tp = torch.zeros(a.shape, dtype=torch.from_numpy(a).dtype, requires_grad=True)
        tp.grad = torch.from_numpy(a.copy())
        ours.append(p)
        theirs.append(tp)
    return ours, theirs


def _grads_f32(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(scale * rng.standard_normal(s)).astype(np.float32) for s in SHAPES]


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, "inf", 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = _grad_pairs(_grads_f32(5))
    total = utils.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert isinstance(total, np.float32)
    np.testing.assert_allclose(total, ttotal.item(), rtol=1e-6)
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=2e-6, atol=1e-7)
    if max_norm < total and norm_type != 0.0:  # clipped: the new norm is max_norm
        assert float(utils.get_total_norm([p.grad for p in ours], norm_type)) == pytest.approx(
            max_norm, rel=1e-4
        )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("norm_type", [2.0, math.inf])
def test_clip_grad_norm_nonfinite_matches_torch(bad, norm_type):
    arrays = _grads_f32(6)
    arrays[1][2] = bad
    ours, theirs = _grad_pairs(arrays)
    total = utils.clip_grad_norm_(ours, 1.0, norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type)
    np.testing.assert_array_equal(total, ttotal.item())
    for p, tp in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), equal_nan=True)
    ours, theirs = _grad_pairs(arrays)
    before = [p.grad.copy() for p in ours]
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        utils.clip_grad_norm_(ours, 1.0, norm_type, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, norm_type, error_if_nonfinite=True)
    for p, b in zip(ours, before):  # nothing changed
        np.testing.assert_array_equal(p.grad, b)


def test_clip_grad_norm_float64_single_tensor_and_missing_grads():
    a = np.random.default_rng(7).standard_normal((4, 5))
    p = nn.Parameter(np.zeros((4, 5)), dtype=np.float64)
    p.grad = a.copy()
    tp = torch.zeros(4, 5, dtype=torch.float64, requires_grad=True)
    tp.grad = torch.from_numpy(a.copy())
    total = utils.clip_grad_norm_(p, 0.1)
    ttotal = torch.nn.utils.clip_grad_norm_(tp, 0.1)
    assert isinstance(total, np.float64)
    np.testing.assert_allclose(total, ttotal.item(), rtol=1e-12)
    np.testing.assert_allclose(p.grad, tp.grad.numpy(), rtol=1e-12)
    empty = [nn.Parameter(np.ones(3))]
    assert (
        utils.clip_grad_norm_(empty, 1.0)
        == torch.nn.utils.clip_grad_norm_([torch.ones(3, requires_grad=True)], 1.0).item()
    )


@pytest.mark.parametrize("clip_value", [0.3, 1.0, 0.0])
def test_clip_grad_value_matches_torch(clip_value):
    arrays = _grads_f32(8, scale=2.0)
    arrays[0][0, 0], arrays[0][0, 1], arrays[2][0, 0, 0, 0] = np.nan, np.inf, -np.inf
    ours, theirs = _grad_pairs(arrays)
    assert utils.clip_grad_value_(ours, clip_value) is None
    torch.nn.utils.clip_grad_value_(theirs, clip_value)
    for p, tp in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, tp.grad.numpy())
    assert np.nanmax(np.abs(ours[0].grad)) <= clip_value
