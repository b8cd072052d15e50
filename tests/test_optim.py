"""fastconv.optim: PyTorch's update rules, in place.

Each optimiser is run for several steps on the same parameters and the same
sequence of gradients as ``torch.optim`` (when torch is importable) and as a
direct float64 transcription of the formulas in its docstring (always), and
the parameters must agree after every step.
"""

from __future__ import annotations

import math
import pickle
import re

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
    ("SGD", {"lr": 0.05, "momentum": 0.9, "maximize": True, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True, "weight_decay": 0.05}),
    ("Adam", {"lr": 0.01, "maximize": True, "betas": (0.5, 0.6)}),
    ("AdamW", {}),
    ("AdamW", {"lr": 0.02, "weight_decay": 0.3, "amsgrad": True, "maximize": True}),
    ("RMSprop", {"lr": 0.003, "centered": True, "momentum": 0.5, "maximize": True}),
    ("Adagrad", {"lr": 0.1, "initial_accumulator_value": 0.3, "maximize": True}),
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
        "AdamW": {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2},
        "RMSprop": {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0},
        "Adagrad": {"lr": 1e-2, "lr_decay": 0.0, "weight_decay": 0.0, "eps": 1e-10},
    }[name]
    hp.update(kw)
    sign = -1.0 if hp.get("maximize") else 1.0
    history = []
    ws = [w.astype(np.float64) for w in init]
    state = [{} for _ in ws]
    for t, gs in enumerate(grads, start=1):
        for w, g, s in zip(ws, gs, state):
            if name == "AdamW":  # decoupled: the weights decay, the gradient does not
                w *= 1 - hp["lr"] * hp["weight_decay"]
                g = sign * g.astype(np.float64)
            else:
                g = sign * g.astype(np.float64) + hp["weight_decay"] * w
            if name == "SGD":
                if hp["momentum"]:
                    if "b" not in s:
                        s["b"] = g.copy()
                    else:
                        s["b"] = hp["momentum"] * s["b"] + (1 - hp["dampening"]) * g
                    g = g + hp["momentum"] * s["b"] if hp["nesterov"] else s["b"]
                w -= hp["lr"] * g
            elif name in ("Adam", "AdamW"):
                b1, b2 = hp["betas"]
                s["m"] = b1 * s.get("m", 0) + (1 - b1) * g
                s["v"] = b2 * s.get("v", 0) + (1 - b2) * g * g
                mhat = s["m"] / (1 - b1**t)
                v = s["v"]
                if hp.get("amsgrad"):
                    v = s["vmax"] = np.maximum(s.get("vmax", 0), v)
                denom = np.sqrt(v) / math.sqrt(1 - b2**t) + hp["eps"]
                w -= hp["lr"] * mhat / denom
            elif name == "RMSprop":
                s["sq"] = hp["alpha"] * s.get("sq", 0) + (1 - hp["alpha"]) * g * g
                sq = s["sq"]
                if hp.get("centered"):
                    s["a"] = hp["alpha"] * s.get("a", 0) + (1 - hp["alpha"]) * g
                    sq = sq - s["a"] ** 2
                avg = np.sqrt(sq) + hp["eps"]
                if hp["momentum"]:
                    s["b"] = hp["momentum"] * s.get("b", 0) + g / avg
                    w -= hp["lr"] * s["b"]
                else:
                    w -= hp["lr"] * g / avg
            else:  # Adagrad
                s["sum"] = s.get("sum", hp.get("initial_accumulator_value", 0)) + g * g
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


INVALID = [
    ("SGD", {"lr": -1}, "Invalid learning rate: -1"),
    ("SGD", {"lr": float("nan")}, "Invalid learning rate: nan"),
    ("SGD", {"momentum": -0.5}, "Invalid momentum value: -0.5"),
    ("SGD", {"weight_decay": -1e-4}, "Invalid weight_decay value: -0.0001"),
    ("SGD", {"lr": 0.1, "nesterov": True}, "Nesterov momentum requires a momentum and zero"),
    ("SGD", {"momentum": 0.9, "dampening": 0.1, "nesterov": True}, "zero dampening"),
    ("Adam", {"betas": (1.0, 0.9)}, "Invalid beta parameter at index 0: 1.0"),
    ("AdamW", {"betas": (0.9, -0.1)}, "Invalid beta parameter at index 1: -0.1"),
    ("Adam", {"eps": -1e-8}, "Invalid epsilon value: -1e-08"),
    ("AdamW", {"lr": -0.1}, "Invalid learning rate: -0.1"),
    ("RMSprop", {"alpha": -0.9}, "Invalid alpha value: -0.9"),
    ("RMSprop", {"momentum": -1}, "Invalid momentum value: -1"),
    ("Adagrad", {"lr_decay": -1}, "Invalid lr_decay value: -1"),
    ("Adagrad", {"initial_accumulator_value": -1}, "Invalid initial_accumulator_value value"),
]


@pytest.mark.parametrize("name, kw, message", INVALID)
def test_invalid_hyper_parameters_in_torch_words(name, kw, message):
    """Torch's messages (ValueError); the same arguments fail in torch too."""
    with pytest.raises(ValueError, match=re.escape(message)):
        getattr(optim, name)([nn.Parameter(np.ones(2))], **kw)


def test_invalid_arguments():
    p = [nn.Parameter(np.ones(2))]
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.Adam([])
    with pytest.raises(TypeError, match="optimizer can only optimize Tensors, but one of the"):
        optim.Adam([np.ones(2)])
    with pytest.raises(TypeError, match="should be an iterable of Tensors or dicts"):
        optim.Adam(p[0])
    with pytest.raises(TypeError, match="Invalid learning rate: expected a number, got str"):
        optim.SGD(p, lr="0.1")
    with pytest.raises(TypeError, match="betas must be a pair"):
        optim.Adam(p, betas=0.9)
    with pytest.raises(ValueError, match="some parameters appear in more than one parameter"):
        optim.SGD([{"params": p}, {"params": p}], lr=0.1)
    with pytest.raises(ValueError, match="more than one"):
        optim.SGD(p + p, lr=0.1)
    with pytest.raises(ValueError, match="non-leaf"):
        optim.SGD([p[0] * 2], lr=0.1)


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


# ---- add_param_group, closure -------------------------------------------------


def test_add_param_group_takes_the_defaults_and_trains():
    a, b, c = (nn.Parameter(np.ones(2)) for _ in range(3))
    opt = optim.Adam([a], lr=0.1, amsgrad=True)
    group = {"params": b, "lr": 0.5}
    opt.add_param_group(group)
    assert opt.param_groups[1] is group and group["params"] == [b]
    assert group["lr"] == 0.5 and group["amsgrad"] is True and group["betas"] == (0.9, 0.999)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a, c]})
    assert len(opt.param_groups) == 2
    with pytest.raises(TypeError, match="param_group must be a dict"):
        opt.add_param_group([c])
    with pytest.raises(TypeError, match="ordered collections"):
        opt.add_param_group({"params": {c}})
    for p in (a, b):
        p.grad = np.ones(2, np.float32)
    opt.step()
    # Adam's first step moves each weight by lr (its group's) against the gradient's sign
    np.testing.assert_allclose(a.data, [0.9, 0.9], rtol=1e-6)
    np.testing.assert_allclose(b.data, [0.5, 0.5], rtol=1e-6)


def test_named_parameters_as_params():
    model = nn.Linear(3, 2)
    opt = optim.SGD(model.named_parameters(), lr=0.1)
    assert opt.param_groups[0]["param_names"] == ["weight", "bias"]
    assert opt.param_groups[0]["params"] == [model.weight, model.bias]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["weight", "bias"]


def test_step_closure_returns_the_loss():
    w = nn.Parameter(np.array([3.0], np.float32))
    opt = optim.SGD([w], lr=0.25)

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 9.0
    np.testing.assert_array_equal(w.data, [1.5])  # 3 - 0.25 * 6


# ---- state dicts and resuming ---------------------------------------------------

RESUME = [
    ("SGD", {"lr": 0.05, "momentum": 0.9, "nesterov": True, "weight_decay": 1e-3}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("AdamW", {"lr": 0.01, "weight_decay": 0.1}),
    ("RMSprop", {"lr": 0.003, "centered": True, "momentum": 0.5}),
    ("Adagrad", {"lr": 0.05, "lr_decay": 0.01, "initial_accumulator_value": 0.1}),
]


def _training(name, kw, seed=0):
    """A small model, its optimiser with two groups, a scheduler and a batch."""
    nn.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    groups = [{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 0.02}]
    opt = getattr(optim, name)(groups, **kw)
    sched = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.7)
    return model, opt, sched


def _train(model, opt, sched, steps, start):
    rng = np.random.default_rng(100 + start)  # the batches depend on the step only
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        x = Tensor(rng.standard_normal((5, 4)).astype(np.float32))
        y = rng.integers(0, 3, 5)
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        sched.step()
    return [p.data.copy() for p in model.parameters()]


@pytest.mark.parametrize("name, kw", RESUME, ids=[n for n, _ in RESUME])
@pytest.mark.parametrize("through", ["state_dict", "files", "pickle"])
def test_resume_is_bitwise_the_uninterrupted_run(name, kw, through, tmp_path):
    """k steps, state dicts -> fresh model/optimiser/scheduler -> the next steps are bitwise equal."""
    k, more = 3, 3
    model, opt, sched = _training(name, kw)
    _train(model, opt, sched, k, 0)
    after_k = [p.data.copy() for p in model.parameters()]
    unbroken = _train(model, opt, sched, more, k)
    model, opt, sched = _training(name, kw)
    _train(model, opt, sched, k, 0)
    if through == "files":
        model.save(tmp_path / "model.npz")
        opt.save(tmp_path / "opt")  # .npz appended, as numpy.savez does
        sched.save(tmp_path / "sched.npz")
    elif through == "pickle":
        blob = pickle.dumps((model.state_dict(), opt.state_dict(), sched.state_dict()))
    else:
        states = (model.state_dict(), opt.state_dict(), sched.state_dict())
    _train(model, opt, sched, 2, 50)  # the originals go on: the saved state must not follow
    model, opt, sched = _training(name, kw, seed=1)  # other initial weights
    if through == "files":
        model.load(tmp_path / "model.npz")
        opt.load(tmp_path / "opt")
        sched.load(tmp_path / "sched.npz")
    else:
        states = pickle.loads(blob) if through == "pickle" else states
        model.load_state_dict(states[0])
        opt.load_state_dict(states[1])
        sched.load_state_dict(states[2])
    for p, a in zip(model.parameters(), after_k):
        np.testing.assert_array_equal(p.data, a)
    resumed = _train(model, opt, sched, more, k)
    for a, b in zip(resumed, unbroken):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert opt.param_groups[1]["lr"] == 0.02 * 0.7**3


def test_state_dict_layout_and_snapshot():
    model, opt, _ = _training("Adam", {"lr": 0.01, "amsgrad": True})
    _train(model, opt, optim.lr_scheduler.StepLR(opt, 1), 2, 0)
    sd = opt.state_dict()
    assert sorted(sd) == ["param_groups", "state"]
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3]]
    assert sd["param_groups"][1]["lr"] == opt.param_groups[1]["lr"]
    assert sorted(sd["state"][3]) == ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]
    assert sd["state"][3]["step"] == 2
    weight = list(model.parameters())[0]
    assert sd["state"][0]["exp_avg"].shape == weight.shape
    saved = sd["state"][0]["exp_avg"].copy()
    _train(model, opt, optim.lr_scheduler.StepLR(opt, 1), 1, 9)
    np.testing.assert_array_equal(sd["state"][0]["exp_avg"], saved)  # a snapshot
    assert not np.array_equal(opt.state[weight]["exp_avg"], saved)


def test_load_state_dict_checks_groups_and_casts():
    a, b = nn.Parameter(np.ones(2, np.float32)), nn.Parameter(np.ones(3, np.float32))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.ones(2, np.float32), np.ones(3, np.float32)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    sd["state"][0]["momentum_buffer"] = sd["state"][0]["momentum_buffer"].astype(np.float64)
    fresh = optim.SGD([a, b], lr=0.5)
    fresh.load_state_dict(sd)
    assert fresh.param_groups[0]["lr"] == 0.1 and fresh.param_groups[0]["momentum"] == 0.9
    assert fresh.param_groups[0]["params"] == [a, b]
    assert fresh.state[a]["momentum_buffer"].dtype == np.float32


def test_save_load_nested_checkpoint(tmp_path):
    from collections import Counter

    state = {
        "model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
        "ints": {0: {"step": 3, "buf": np.ones(2, np.float64)}, 7: None},
        "t": (0.9, 0.999),
        "c": Counter([2, 5, 5]),
        "x": [float("inf"), -float("inf"), True, "min", np.float32(0.5)],
    }
    optim.save(state, tmp_path / "ckpt.npz")
    back = optim.load(tmp_path / "ckpt")
    assert back["t"] == (0.9, 0.999) and back["c"] == Counter({5: 2, 2: 1})
    assert type(back["c"]) is Counter and back["ints"][0]["step"] == 3 and back["ints"][7] is None
    assert back["x"] == [float("inf"), -float("inf"), True, "min", 0.5]
    np.testing.assert_array_equal(back["model"]["w"], state["model"]["w"])
    assert back["model"]["w"].dtype == np.float32 and back["ints"][0]["buf"].dtype == np.float64
    with pytest.raises(TypeError, match="cannot store a value of type builtin_function"):
        optim.save({"f": len}, tmp_path / "bad.npz")
    np.savez(tmp_path / "plain.npz", w=np.ones(2))
    with pytest.raises(ValueError, match="was not written by"):
        optim.load(tmp_path / "plain.npz")


# ---- gradient clipping (without torch: the definition) --------------------------


def _with_grads(arrays):
    params = [nn.Parameter(np.zeros(a.shape, a.dtype)) for a in arrays]
    for p, a in zip(params, arrays):
        p.grad = a.copy()
    return params


def test_clip_grad_norm_is_the_norm_of_the_concatenation():
    from fastconv.nn.utils import clip_grad_norm_

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(s).astype(np.float32) for s in SHAPES]
    flat = np.concatenate([a.ravel() for a in arrays]).astype(np.float64)
    params = _with_grads(arrays) + [nn.Parameter(np.ones(4))]  # one without grad
    total = clip_grad_norm_(params, max_norm=1.0)
    assert isinstance(total, np.float32) and total.item() == float(total)
    np.testing.assert_allclose(total, np.linalg.norm(flat), rtol=1e-6)
    scale = 1.0 / (np.linalg.norm(flat) + 1e-6)
    for p, a in zip(params, arrays):
        np.testing.assert_allclose(p.grad, a * scale, rtol=1e-6)
    assert params[-1].grad is None
    inf_total = nn.utils.clip_grad_norm_(_with_grads(arrays), 1e9, norm_type="inf")
    assert inf_total == np.abs(flat).max()
    unclipped = _with_grads(arrays)
    nn.utils.clip_grad_norm_(unclipped, max_norm=1e9)  # below the threshold: untouched
    for p, a in zip(unclipped, arrays):
        np.testing.assert_array_equal(p.grad, a)


def test_clip_grad_norm_nonfinite_and_value():
    arrays = [np.array([3.0, np.nan], np.float32), np.array([4.0], np.float32)]
    params = _with_grads(arrays)
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(params[1].grad, [4.0])
    assert np.isnan(nn.utils.clip_grad_norm_(params, 1.0))
    assert np.isnan(params[1].grad).all()
    params = _with_grads([np.array([-3.0, 0.5, np.inf, np.nan], np.float32)])
    nn.utils.clip_grad_value_(params, 1.0)
    np.testing.assert_array_equal(params[0].grad, [-1.0, 0.5, 1.0, np.nan])
