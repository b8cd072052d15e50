"""fastconv.optim: PyTorch's update rules, in place.

Each optimiser is run for several steps on the same parameters and the same
sequence of gradients as ``torch.optim`` (when torch is importable) and as a
direct float64 transcription of the formulas in its docstring (always), and
the parameters must agree after every step.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from fastconv import Tensor, nn, optim

SHAPES = [(3, 4), (5,), (2, 1, 3, 3)]
STEPS = 6

CONFIGS = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.05, "momentum": 0.9}),
    ("SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.3, "weight_decay": 0.01}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.1}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.05}),
    ("RMSprop", {}),
    ("RMSprop", {"lr": 0.003, "alpha": 0.9, "eps": 1e-6, "weight_decay": 0.02, "momentum": 0.7}),
    ("Adagrad", {}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.03, "eps": 1e-8}),
]


def _ids():
    return [f"{n}-" + "-".join(f"{k}{v}" for k, v in kw.items()) for n, kw in CONFIGS]


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    init = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    grads = [[rng.standard_normal(s).astype(np.float32) for s in SHAPES] for _ in range(STEPS)]
    return init, grads


def _formula(name, kw, init, grads):
    """The update rules written out in float64, one parameter at a time."""
    hp = {
        "SGD": {"momentum": 0.0, "dampening": 0.0, "weight_decay": 0.0, "nesterov": False},
        "Adam": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
        "RMSprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0},
        "Adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "eps": 1e-10},
    }[name]
    hp.update(kw)
    history = []
    ws = [w.astype(np.float64) for w in init]
    state = [{} for _ in ws]
    for t, gs in enumerate(grads, start=1):
        for w, g, s in zip(ws, gs, state):
            g = g.astype(np.float64) + hp["weight_decay"] * w
            if name == "SGD":
                if hp["momentum"]:
                    if "b" not in s:
                        s["b"] = g.copy()
                    else:
                        s["b"] = hp["momentum"] * s["b"] + (1 - hp["dampening"]) * g
                    g = g + hp["momentum"] * s["b"] if hp["nesterov"] else s["b"]
                w -= hp["lr"] * g
            elif name == "Adam":
                b1, b2 = hp["betas"]
                s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
                s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
                mhat = s["m"] / (1 - b1**t)
                denom = np.sqrt(s["v"]) / math.sqrt(1 - b2**t) + hp["eps"]
                w -= hp["lr"] * mhat / denom
            elif name == "RMSprop":
                s["sq"] = hp["alpha"] * s.get("sq", 0) + (1 - hp["alpha"]) * g * g
                avg = np.sqrt(s["sq"]) + hp["eps"]
                if hp["momentum"]:
                    s["b"] = hp["momentum"] * s.get("b", 0) + g / avg
                    w -= hp["lr"] * s["b"]
                else:
                    w -= hp["lr"] * g / avg
            else:  # Adagrad
                s["sum"] = s.get("sum", 0) + g * g
                clr = hp["lr"] / (1 + (t - 1) * hp["lr_decay"])
                w -= clr * g / (np.sqrt(s["sum"]) + hp["eps"])
        history.append([w.copy() for w in ws])
    return history


def _ours(name, kw, init, grads):
    params = [nn.Parameter(w.copy()) for w in init]
    arrays = [p.data for p in params]
    opt = getattr(optim, name)(params, **kw)
    history = []
    for gs in grads:
        opt.zero_grad()
        for p, g in zip(params, gs):
            p.grad = g.copy()
        opt.step()
        history.append([p.data.copy() for p in params])
    assert all(p.data is a for p, a in zip(params, arrays)), "updates are in place"
    assert all(p.dtype == np.float32 for p in params)
    return history


@pytest.mark.parametrize("name, kw", CONFIGS, ids=_ids())
def test_optimizer_matches_formula(name, kw):
    init, grads = _problem()
    for step, (mine, ref) in enumerate(
        zip(_ours(name, kw, init, grads), _formula(name, kw, init, grads))
    ):
        for a, b in zip(mine, ref):
            np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6, err_msg=f"step {step}")


@pytest.mark.parametrize("name, kw", CONFIGS, ids=_ids())
def test_optimizer_matches_torch(name, kw):
    torch = pytest.importorskip("torch")
    init, grads = _problem(1)
    tparams = [torch.tensor(w.copy(), requires_grad=True) for w in init]
    topt = getattr(torch.optim, name)(tparams, **kw)
    mine = _ours(name, kw, init, grads)
    for step, gs in enumerate(grads):
        topt.zero_grad()
        for p, g in zip(tparams, gs):
            p.grad = torch.tensor(g)
        topt.step()
        for a, p in zip(mine[step], tparams):
            np.testing.assert_allclose(
                a, p.detach().numpy(), rtol=1e-5, atol=1e-6, err_msg=f"step {step}"
            )


def test_skips_parameters_without_grad_and_zero_grad():
    a, b = nn.Parameter(np.ones(3)), nn.Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.5, momentum=0.9)
    a.grad = np.ones(3, np.float32)
    opt.step()
    np.testing.assert_array_equal(a.data, [0.5] * 3)
    np.testing.assert_array_equal(b.data, [1, 1])
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, [0, 0, 0])
    assert b.grad is None
    opt.zero_grad()
    assert a.grad is None


def test_param_groups():
    a, b = nn.Parameter(np.ones(2)), nn.Parameter(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.1}], lr=1.0)
    a.grad = np.ones(2, np.float32)
    b.grad = np.ones(2, np.float32)
    opt.step()
    np.testing.assert_allclose(a.data, [0, 0])
    np.testing.assert_allclose(b.data, [0.9, 0.9])
    assert opt.param_groups[1]["lr"] == 0.1 and opt.param_groups[0]["lr"] == 1.0
    opt.param_groups[0]["lr"] = 0.5  # changing lr between steps (schedules)
    opt.step()
    np.testing.assert_allclose(a.data, [-0.5, -0.5])


def test_invalid_arguments():
    p = [nn.Parameter(np.ones(2))]
    with pytest.raises(ValueError):
        optim.SGD(p, lr=-1)
    with pytest.raises(ValueError):
        optim.SGD(p, lr=0.1, nesterov=True)
    with pytest.raises(ValueError):
        optim.Adam(p, betas=(1.0, 0.9))
    with pytest.raises(ValueError):
        optim.Adam([])
    with pytest.raises(TypeError):
        optim.Adam([np.ones(2)])
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD([{"params": p}, {"params": p}], lr=0.1)


def test_minimises_a_quadratic():
    """Every optimiser drives a convex quadratic's gradient to near zero."""
    target = np.array([1.0, -2.0, 3.0], np.float32)
    for name, kw in [
        ("SGD", {"lr": 0.1, "momentum": 0.5}),
        ("Adam", {"lr": 0.1}),
        ("RMSprop", {"lr": 0.01}),
        ("Adagrad", {"lr": 0.5}),
    ]:
        w = nn.Parameter(np.zeros(3, np.float32))
        opt = getattr(optim, name)([w], **kw)
        for _ in range(500):
            opt.zero_grad()
            loss = ((w - Tensor(target)) ** 2).sum()
            loss.backward()
            opt.step()
        np.testing.assert_allclose(w.data, target, atol=0.05, err_msg=name)
