"""Optimisers with PyTorch's exact update rules, updating ``param.data`` IN PLACE.

Each optimiser takes an iterable of :class:`fastconv.Tensor` parameters (or a
list of dicts, PyTorch's parameter groups, each with its own hyper-parameters)
and skips parameters whose ``.grad`` is None. The formulas are those of
``torch.optim`` (single-tensor path, ``maximize=False``), written with in-place
NumPy operations; the whole of :meth:`Optimizer.step` is timed as
``"optimizer.step"`` by an active :class:`fastconv.profiler.Profiler`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import numpy as np

from . import profiler
from .tensor import Tensor

__all__ = ["SGD", "Adagrad", "Adam", "Optimizer", "RMSprop"]


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and a timed ``step``."""

    def __init__(self, params: Iterable[Any], defaults: dict) -> None:
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.defaults = defaults
        self.param_groups: list[dict] = []
        seen: set[int] = set()
        for g in groups:
            group = dict(defaults)
            group.update(g)
            group["params"] = list(group["params"])
            for p in group["params"]:
                if not isinstance(p, Tensor):
                    raise TypeError(f"optimizer parameters must be Tensors, got {type(p).__name__}")
                if id(p) in seen:
                    raise ValueError("a parameter appears in more than one parameter group")
                seen.add(id(p))
            self.param_groups.append(group)
        self.state: dict[Tensor, dict] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (to None, or to zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.fill(0)

    @profiler.timed("optimizer.step")
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {}
                    self._update(p.data, p.grad, state, group)

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hp})"


def _with_weight_decay(g: np.ndarray, w: np.ndarray, wd: float) -> np.ndarray:
    """``g + wd * w`` (a new array; ``g`` itself is never modified)."""
    return g + w.dtype.type(wd) * w if wd != 0 else g


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay.

    ``d = g + wd*w``; with momentum ``b = d`` at the first step, then
    ``b = momentum*b + (1-dampening)*d``; ``d = d + momentum*b`` (Nesterov) or
    ``d = b``; ``w -= lr*d``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
    ) -> None:
        if lr < 0 or momentum < 0 or weight_decay < 0:
            raise ValueError("lr, momentum and weight_decay must be >= 0")
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
            },
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        d = _with_weight_decay(g, w, group["weight_decay"])
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
    """Adam (Kingma & Ba) with PyTorch's bias correction and L2 weight decay.

    ``m = b1*m + (1-b1)*g``, ``v = b2*v + (1-b2)*g^2``,
    ``w -= lr/(1-b1^t) * m / (sqrt(v)/sqrt(1-b2^t) + eps)``.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        if lr < 0 or eps < 0 or not (0 <= betas[0] < 1 and 0 <= betas[1] < 1):
            raise ValueError(f"invalid Adam hyper-parameters lr={lr}, betas={betas}, eps={eps}")
        super().__init__(
            params, {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        if not state:
            state["step"] = 0
            state["exp_avg"] = np.zeros_like(w)
            state["exp_avg_sq"] = np.zeros_like(w)
        b1, b2 = group["betas"]
        g = _with_weight_decay(g, w, group["weight_decay"])
        state["step"] += 1
        t = state["step"]
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= b1
        m += (1 - b1) * g  # torch: exp_avg.lerp_(grad, 1 - beta1)
        v *= b2
        v += (1 - b2) * (g * g)
        bias_correction1 = 1 - b1**t
        bias_correction2_sqrt = math.sqrt(1 - b2**t)
        denom = np.sqrt(v)
        denom /= bias_correction2_sqrt
        denom += group["eps"]
        step = m / denom
        step *= group["lr"] / bias_correction1
        w -= step


class RMSprop(Optimizer):
    """RMSprop: ``s = alpha*s + (1-alpha)*g^2``, ``w -= lr * g / (sqrt(s) + eps)`` (with momentum:
    ``b = momentum*b + g/(sqrt(s)+eps)``, ``w -= lr*b``)."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ) -> None:
        if lr < 0 or eps < 0 or alpha < 0 or momentum < 0:
            raise ValueError("lr, alpha, eps and momentum must be >= 0")
        super().__init__(
            params,
            {
                "lr": lr,
                "alpha": alpha,
                "eps": eps,
                "weight_decay": weight_decay,
                "momentum": momentum,
            },
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        if not state:
            state["step"] = 0
            state["square_avg"] = np.zeros_like(w)
            if group["momentum"] > 0:
                state["momentum_buffer"] = np.zeros_like(w)
        state["step"] += 1
        g = _with_weight_decay(g, w, group["weight_decay"])
        alpha = group["alpha"]
        s = state["square_avg"]
        s *= alpha
        s += (1 - alpha) * (g * g)
        avg = np.sqrt(s)
        avg += group["eps"]
        if group["momentum"] > 0:
            buf = state["momentum_buffer"]
            buf *= group["momentum"]
            buf += g / avg
            w -= w.dtype.type(group["lr"]) * buf
        else:
            upd = g / avg
            upd *= group["lr"]
            w -= upd


class Adagrad(Optimizer):
    """Adagrad: ``s += g^2``, ``w -= lr/(1+(t-1)*lr_decay) * g / (sqrt(s) + eps)``."""

    def __init__(
        self,
        params: Iterable[Any],
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        eps: float = 1e-10,
    ) -> None:
        if lr < 0 or lr_decay < 0 or weight_decay < 0 or eps < 0:
            raise ValueError("lr, lr_decay, weight_decay and eps must be >= 0")
        super().__init__(
            params, {"lr": lr, "lr_decay": lr_decay, "weight_decay": weight_decay, "eps": eps}
        )

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        if not state:
            state["step"] = 0
            state["sum"] = np.zeros_like(w)
        state["step"] += 1
        g = _with_weight_decay(g, w, group["weight_decay"])
        clr = group["lr"] / (1 + (state["step"] - 1) * group["lr_decay"])
        s = state["sum"]
        s += g * g
        std = np.sqrt(s)
        std += group["eps"]
        upd = g / std
        upd *= clr
        w -= upd
