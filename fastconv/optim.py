"""Optimisers with PyTorch's exact update rules, updating ``param.data`` IN PLACE.

Each optimiser takes an iterable of :class:`fastconv.Tensor` parameters (or a
list of dicts, PyTorch's parameter groups, each with its own hyper-parameters)
and skips parameters whose ``.grad`` is None. The formulas are those of
``torch.optim`` (its single-tensor path, the one torch runs on the CPU),
written with in-place NumPy operations in the same order; the whole of
:meth:`Optimizer.step` is timed as ``"optimizer.step"`` by an active
:class:`fastconv.profiler.Profiler`.

The bookkeeping shared by all of them (groups, ``add_param_group``,
``zero_grad``, ``state_dict``/``load_state_dict``, ``save``/``load``) is
:class:`Optimizer`, in ``fastconv/_optim_base.py``. The learning-rate
schedulers are :mod:`fastconv.optim.lr_scheduler` (``fastconv/_lr_scheduler.py``);
:func:`save` and :func:`load` write and read nested state dicts (a training
checkpoint) as one ``.npz`` without pickle.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import _lr_scheduler as lr_scheduler
from ._optim_base import Optimizer, check_range
from ._optim_io import load, save

__all__ = [
    "SGD",
    "Adagrad",
    "Adam",
    "AdamW",
    "Optimizer",
    "RMSprop",
    "load",
    "lr_scheduler",
    "save",
]

# ``import fastconv.optim.lr_scheduler`` and ``from fastconv.optim.lr_scheduler import StepLR``.
sys.modules[__name__ + ".lr_scheduler"] = lr_scheduler


def _grad(g: np.ndarray, w: np.ndarray, maximize: bool, wd: float) -> np.ndarray:
    """The gradient the rule uses: ``-g`` when maximising, plus ``wd * w`` (L2 weight decay).

    A new array when anything is applied; ``g`` itself is never modified.
    """
    if maximize:
        g = -g
    return g + w.dtype.type(wd) * w if wd != 0 else g


def _lerp_(a: np.ndarray, b: np.ndarray, weight: float) -> None:
    """``a += weight * (b - a)`` in place, in the form torch's ``lerp_`` picks for ``weight``."""
    if abs(weight) < 0.5:
        d = b - a
        d *= weight
        a += d
    else:
        d = b - a
        d *= 1 - weight
        np.subtract(b, d, out=a)


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay.

    ``d = g + wd*w`` (``g`` negated first if ``maximize``); with momentum
    ``b = d`` at the first step, then ``b = momentum*b + (1-dampening)*d``;
    ``d = d + momentum*b`` (Nesterov) or ``d = b``; ``w -= lr*d``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_range("Invalid learning rate", lr)
        check_range("Invalid momentum value", momentum)
        check_range("Invalid weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "dampening": dampening,
                "weight_decay": weight_decay,
                "nesterov": nesterov,
                "maximize": maximize,
            },
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        d = _grad(g, w, group["maximize"], group["weight_decay"])
        momentum = group["momentum"]
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = np.array(d, copy=True)
            else:
                buf *= momentum
                buf += (1 - group["dampening"]) * d
            d = d + momentum * buf if group["nesterov"] else buf
        w -= w.dtype.type(group["lr"]) * d


class Adam(Optimizer):
    """Adam (Kingma & Ba) with PyTorch's bias correction, AMSGrad and L2 or decoupled weight decay.

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g^2`` (AMSGrad: ``v`` is then
    replaced by the running maximum ``max(v_max, v)`` in the denominator),
    ``w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``. The weight decay is
    added to ``g`` (L2), or with ``decoupled_weight_decay=True`` (:class:`AdamW`)
    applied to the weights first: ``w *= 1 - lr*wd``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
    ) -> None:
        check_range("Invalid learning rate", lr)
        check_range("Invalid epsilon value", eps)
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"betas must be a pair of floats, got {betas!r}")
        check_range("Invalid beta parameter at index 0", betas[0], upper=1.0)
        check_range("Invalid beta parameter at index 1", betas[1], upper=1.0)
        check_range("Invalid weight_decay value", weight_decay)
        super().__init__(
            params,
            {
                "lr": lr,
                "betas": tuple(betas),
                "eps": eps,
                "weight_decay": weight_decay,
                "amsgrad": amsgrad,
                "maximize": maximize,
                "decoupled_weight_decay": decoupled_weight_decay,
            },
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        amsgrad = group["amsgrad"]
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
            if amsgrad:
                state["max_exp_avg_sq"] = np.zeros_like(w)
        b1, b2 = group["betas"]
        lr, wd = group["lr"], group["weight_decay"]
        state["step"] += 1
        t = state["step"]
        decoupled = group["decoupled_weight_decay"]
        if decoupled and wd != 0:
            w *= 1 - lr * wd
        g = _grad(g, w, group["maximize"], 0 if decoupled else wd)
        m, v = state["exp_avg"], state["exp_avg_sq"]
        _lerp_(m, g, 1 - b1)
        v *= b2
        v += (1 - b2) * g * g
        step_size = lr / (1 - b1**t)
        bias_correction2_sqrt = (1 - b2**t) ** 0.5
        if amsgrad:
            np.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
        denom = np.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += group["eps"]
        step = m / denom
        step *= -step_size
        w += step


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter): ``w *= 1 - lr*wd`` before the step.

    As ``torch.optim.AdamW``: :class:`Adam` with ``decoupled_weight_decay=True``
    and ``weight_decay=1e-2`` by default.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
        )


class RMSprop(Optimizer):
    """RMSprop: ``s = alpha*s + (1-alpha)*g^2``, ``w -= lr * g / (sqrt(s) + eps)``.

    Centered: ``a = alpha*a + (1-alpha)*g`` and ``sqrt(s - a^2)`` replaces
    ``sqrt(s)``. With momentum: ``b = momentum*b + g/(sqrt(s)+eps)``, ``w -= lr*b``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        check_range("Invalid learning rate", lr)
        check_range("Invalid epsilon value", eps)
        check_range("Invalid momentum value", momentum)
        check_range("Invalid weight_decay value", weight_decay)
        check_range("Invalid alpha value", alpha)
        super().__init__(
            params,
            {
                "lr": lr,
                "momentum": momentum,
                "alpha": alpha,
                "eps": eps,
                "centered": centered,
                "weight_decay": weight_decay,
                "maximize": maximize,
            },
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(w)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(w)
            if group["centered"]:
                state["grad_avg"] = np.zeros_like(w)
        state["step"] += 1
        g = _grad(g, w, group["maximize"], group["weight_decay"])
        alpha = group["alpha"]
        s = state["square_avg"]
        s *= alpha
        s += (1 - alpha) * g * g
        if group["centered"]:
            a = state["grad_avg"]
            _lerp_(a, g, 1 - alpha)
            avg = s - a * a
            np.sqrt(avg, out=avg)
        else:
            avg = np.sqrt(s)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / avg
            w -= w.dtype.type(group["lr"]) * buf
        else:
            upd = g / avg
            upd *= -group["lr"]
            w += upd


class Adagrad(Optimizer):
    """Adagrad: ``s += g^2``, ``w -= lr/(1+(t-1)*lr_decay) * g / (sqrt(s) + eps)``.

    ``s`` starts at ``initial_accumulator_value``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
    ) -> None:
        check_range("Invalid learning rate", lr)
        check_range("Invalid lr_decay value", lr_decay)
        check_range("Invalid weight_decay value", weight_decay)
        check_range("Invalid initial_accumulator_value value", initial_accumulator_value)
        check_range("Invalid epsilon value", eps)
        super().__init__(
            params,
            {
                "lr": lr,
                "lr_decay": lr_decay,
                "eps": eps,
                "weight_decay": weight_decay,
                "initial_accumulator_value": initial_accumulator_value,
                "maximize": maximize,
            },
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = np.full_like(w, group["initial_accumulator_value"])
        state["step"] += 1
        g = _grad(g, w, group["maximize"], group["weight_decay"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        std = np.sqrt(s)
        std += group["eps"]
        upd = g / std
        upd *= -clr
        w += upd
