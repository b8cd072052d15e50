"""fastconv.optim.lr_scheduler: torch's learning-rate sequences, bitwise, and resuming.

Each scheduler drives an optimiser with two parameter groups (different
learning rates) for 30 steps next to its ``torch.optim.lr_scheduler`` twin;
every learning rate (and OneCycleLR's momentum or beta1) must be equal, not
just close. A scheduler rebuilt from ``state_dict`` (or a file) must continue
with the same values as one that never stopped.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from fastconv import nn, optim
from fastconv.optim import lr_scheduler

OneCycleLR = lr_scheduler.OneCycleLR
ReduceLROnPlateau = lr_scheduler.ReduceLROnPlateau
StepLR = lr_scheduler.StepLR

STEPS = 30

# (optimiser, its arguments, scheduler, its arguments)
SGD_M = ("SGD", {"lr": 0.1, "momentum": 0.9})
ADAM = ("Adam", {"lr": 0.01})
CASES = [
    (*SGD_M, "StepLR", {"step_size": 3, "gamma": 0.5}),
    (*SGD_M, "StepLR", {"step_size": 1}),
    (*SGD_M, "MultiStepLR", {"milestones": [2, 5, 5, 9, 20], "gamma": 0.3}),
    (*ADAM, "ExponentialLR", {"gamma": 0.9}),
    (*SGD_M, "CosineAnnealingLR", {"T_max": 10, "eta_min": 0.001}),
    (*ADAM, "CosineAnnealingLR", {"T_max": 7}),
    (*SGD_M, "OneCycleLR", {"max_lr": 0.5, "total_steps": STEPS}),
    (*ADAM, "OneCycleLR", {"max_lr": [0.05, 0.02], "total_steps": STEPS}),
    (*SGD_M, "OneCycleLR", {"max_lr": 1.0, "total_steps": STEPS, "three_phase": True}),
    (*ADAM, "OneCycleLR", {"max_lr": 0.1, "epochs": 3, "steps_per_epoch": 10, "three_phase": True}),
    (
        *SGD_M,
        "OneCycleLR",
        {"max_lr": 0.3, "total_steps": 33, "pct_start": 0.4, "anneal_strategy": "linear",
         "div_factor": 10.0, "final_div_factor": 100.0, "base_momentum": [0.8, 0.7]},
    ),
    ("Adagrad", {"lr": 0.1}, "OneCycleLR", {"max_lr": 0.2, "total_steps": STEPS, "cycle_momentum": False}),
    ("RMSprop", {"lr": 0.1, "momentum": 0.5}, "OneCycleLR", {"max_lr": 0.2, "total_steps": STEPS}),
]  # fmt: skip


def _ids():
    return [f"{i}-{c[2]}-{c[0]}" for i, c in enumerate(CASES)]


def _groups(params):
    return [{"params": params[:1]}, {"params": params[1:], "lr": 0.03}]


def _trace(sched, opt):
    """The values a step leaves: get_last_lr() and each group's lr, momentum, betas."""
    groups = [(g["lr"], g.get("momentum"), tuple(g.get("betas", ()))) for g in opt.param_groups]
    return list(sched.get_last_lr()), groups


def _ours(opt_name, opt_kw, name, kw, steps=STEPS):
    params = [nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))]
    opt = getattr(optim, opt_name)(_groups(params), **opt_kw)
    sched = getattr(lr_scheduler, name)(opt, **kw)
    out = [_trace(sched, opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(_trace(sched, opt))
    return out, opt, sched


def _torch(opt_name, opt_kw, name, kw, steps=STEPS):
    torch = pytest.importorskip("torch")
    params = [torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)]
    opt = getattr(torch.optim, opt_name)(_groups(params), **opt_kw)
    sched = getattr(torch.optim.lr_scheduler, name)(opt, **kw)
    out = [_trace(sched, opt)]
    for _ in range(steps):
        opt.step()
        sched.step()
        out.append(_trace(sched, opt))
    return out


@pytest.mark.parametrize("opt_name, opt_kw, name, kw", CASES, ids=_ids())
def test_sequence_equals_torch(opt_name, opt_kw, name, kw):
    ours, _, _ = _ours(opt_name, opt_kw, name, kw)
    theirs = _torch(opt_name, opt_kw, name, kw)
    for step, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, f"step {step}"
    assert len({lrs[0][0] for lrs in ours}) > 2, "the schedule changes the lr"


@pytest.mark.parametrize(
    "name, kw",
    [
        ("StepLR", {"step_size": 4, "gamma": 0.5}),
        ("MultiStepLR", {"milestones": [3, 3, 8]}),
        ("ExponentialLR", {"gamma": 0.8}),
        ("CosineAnnealingLR", {"T_max": 6, "eta_min": 0.01}),
    ],
)
def test_step_with_epoch_uses_torch_closed_form(name, kw):
    torch = pytest.importorskip("torch")
    _, opt, sched = _ours("SGD", {"lr": 0.1}, name, kw, steps=0)
    topt = torch.optim.SGD(
        _groups([torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)]), lr=0.1
    )
    tsched = getattr(torch.optim.lr_scheduler, name)(topt, **kw)
    opt.step()
    topt.step()
    for epoch in [5, 2, 11, 0, 7]:
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tsched.step(epoch)
        assert sched.get_last_lr() == tsched.get_last_lr(), epoch


PLATEAU = [
    {},
    {"mode": "max", "patience": 2, "factor": 0.5},
    {"threshold_mode": "abs", "threshold": 0.05, "patience": 1, "cooldown": 2},
    {"mode": "max", "threshold_mode": "abs", "threshold": 0.1, "patience": 0, "min_lr": 0.004},
    {"patience": 1, "factor": 0.3, "min_lr": [0.02, 0.001], "cooldown": 1, "eps": 1e-3},
]
METRICS = [1.0, 0.9, 0.95, 0.9, 0.91, 0.85, 0.9, 0.9, 1.2, 0.84, 0.8, 0.8, 0.8, 0.8, 0.9] * 3


@pytest.mark.parametrize("kw", PLATEAU, ids=[str(i) for i in range(len(PLATEAU))])
def test_reduce_on_plateau_equals_torch(kw):
    torch = pytest.importorskip("torch")
    _, opt, _ = _ours("SGD", {"lr": 0.1}, "StepLR", {"step_size": 1000}, steps=0)
    sched = ReduceLROnPlateau(opt, **kw)
    topt = torch.optim.SGD(
        _groups([torch.ones(2, requires_grad=True), torch.ones(3, requires_grad=True)]), lr=0.1
    )
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw)
    lrs = set()
    for i, m in enumerate(METRICS):
        # the metric as a float, a one-element fastconv Tensor or a 0-d array
        sched.step([m, nn.Parameter(np.array([m])), np.array(m)][i % 3])
        tsched.step(m)
        assert sched.get_last_lr() == tsched.get_last_lr(), i
        assert (sched.best, sched.num_bad_epochs, sched.cooldown_counter) == (
            tsched.best,
            tsched.num_bad_epochs,
            tsched.cooldown_counter,
        ), i
        lrs.add(sched.get_last_lr()[0])
    assert len(lrs) > 1, "the lr was reduced"


RESUMABLE = [c for c in CASES if c[0] != "Adagrad"] + [
    ("SGD", {"lr": 0.1}, "ReduceLROnPlateau", {"patience": 1})
]


@pytest.mark.parametrize("opt_name, opt_kw, name, kw", RESUMABLE)
@pytest.mark.parametrize("through", ["state_dict", "file"])
def test_resume_continues_the_same_sequence(opt_name, opt_kw, name, kw, through, tmp_path):
    """k steps, state dicts to a fresh optimiser and scheduler: the rest equals an unbroken run."""
    k = 11

    def run(opt, sched, steps, start):
        out = []
        for i in range(start, start + steps):
            opt.step()
            sched.step(METRICS[i]) if name == "ReduceLROnPlateau" else sched.step()
            out.append(_trace(sched, opt))
        return out

    def build():
        params = [nn.Parameter(np.ones(2)), nn.Parameter(np.ones(3))]
        opt = getattr(optim, opt_name)(_groups(params), **opt_kw)
        return opt, getattr(lr_scheduler, name)(opt, **kw)

    opt, sched = build()
    unbroken = run(opt, sched, STEPS - 1, 0)
    opt, sched = build()
    run(opt, sched, k, 0)
    if through == "file":
        optim.save({"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, tmp_path / "c")
        state = optim.load(tmp_path / "c")
    else:
        state = {"optimizer": opt.state_dict(), "scheduler": sched.state_dict()}
    opt2, sched2 = build()
    opt2.load_state_dict(state["optimizer"])
    sched2.load_state_dict(state["scheduler"])
    assert run(opt2, sched2, STEPS - 1 - k, k) == unbroken[k:]


def test_scheduler_save_load_methods(tmp_path):
    _, opt, sched = _ours(
        "SGD", {"lr": 0.1, "momentum": 0.9}, "MultiStepLR", {"milestones": [2, 4, 4]}
    )
    sched.save(tmp_path / "s.npz")
    _, _, fresh = _ours("SGD", {"lr": 0.1, "momentum": 0.9}, "MultiStepLR", {"milestones": [1]}, 0)
    assert fresh.load(tmp_path / "s.npz") is fresh
    assert fresh.state_dict() == sched.state_dict()
    assert type(fresh.milestones).__name__ == "Counter" and fresh.milestones[4] == 2


def test_initial_lr_and_last_epoch():
    params = [nn.Parameter(np.ones(2))]
    opt = optim.SGD(params, lr=0.2)
    with pytest.raises(KeyError, match="initial_lr"):
        StepLR(opt, 2, last_epoch=4)
    sched = StepLR(opt, 2, gamma=0.5)
    assert opt.param_groups[0]["initial_lr"] == 0.2 and sched.base_lrs == [0.2]
    assert sched.last_epoch == 0 and sched.get_last_lr() == [0.2]
    opt.step()
    sched.step()
    sched.step()
    assert sched.last_epoch == 2 and opt.param_groups[0]["lr"] == 0.1
    resumed = StepLR(opt, 2, gamma=0.5, last_epoch=sched.last_epoch)  # initial_lr is kept
    assert resumed.base_lrs == [0.2] and resumed.last_epoch == 3


def test_warns_when_stepped_before_the_optimizer():
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    sched = StepLR(opt, 2)
    with pytest.warns(UserWarning, match="before `optimizer.step"):
        sched.step()
    opt2 = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    sched2 = StepLR(opt2, 2)
    opt2.step()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sched2.step()


def test_one_cycle_past_the_end_and_errors():
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    sched = OneCycleLR(opt, max_lr=1.0, total_steps=3)
    opt.step()
    for _ in range(3):
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 4 times"):
        sched.step()
    with pytest.raises(ValueError, match="total_steps OR"):
        OneCycleLR(opt, max_lr=1.0)
    with pytest.raises(ValueError, match="positive integer total_steps"):
        OneCycleLR(opt, max_lr=1.0, total_steps=0)
    with pytest.raises(ValueError, match="pct_start"):
        OneCycleLR(opt, max_lr=1.0, total_steps=10, pct_start=1)
    with pytest.raises(ValueError, match="anneal_strategy"):
        OneCycleLR(opt, max_lr=1.0, total_steps=10, anneal_strategy="cosine")
    with pytest.raises(ValueError, match="max_lr must have the same length"):
        OneCycleLR(opt, max_lr=[1.0, 2.0], total_steps=10)
    adagrad = optim.Adagrad([nn.Parameter(np.ones(2))])
    with pytest.raises(ValueError, match="momentum or beta1"):
        OneCycleLR(adagrad, max_lr=1.0, total_steps=10)


def test_import_paths():
    """``fastconv.optim.lr_scheduler`` imports as torch's does (a flat module registered by name)."""
    import fastconv.optim.lr_scheduler as by_path
    from fastconv.optim.lr_scheduler import CosineAnnealingLR

    assert by_path is lr_scheduler and CosineAnnealingLR is lr_scheduler.CosineAnnealingLR
    assert optim.lr_scheduler.ExponentialLR is lr_scheduler.ExponentialLR


def test_argument_errors():
    opt = optim.SGD([nn.Parameter(np.ones(2))], lr=0.1)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        StepLR("sgd", 2)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        ReduceLROnPlateau(None)
    for bad in (0, -2, 1.5, True):
        with pytest.raises(ValueError, match="StepLR: step_size must be a positive integer"):
            StepLR(opt, bad)
    with pytest.raises(ValueError, match="T_max must be a positive number, got 0"):
        lr_scheduler.CosineAnnealingLR(opt, 0)
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode relative is unknown"):
        ReduceLROnPlateau(opt, threshold_mode="relative")
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])
