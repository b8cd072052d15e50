"""The optimiser base class: parameter groups, per-parameter state, state dicts.

:class:`Optimizer` holds what every algorithm of :mod:`fastconv.optim` shares,
with ``torch.optim.Optimizer``'s names and behaviour: ``param_groups`` (each a
dict of hyper-parameters and ``"params"``; schedulers write
``param_groups[i]["lr"]``), ``state`` (per parameter), ``add_param_group``,
``zero_grad(set_to_none=True)``, ``step(closure=None)``, and
``state_dict()``/``load_state_dict()`` in torch's layout, so that a resumed
run takes bitwise the same steps as an uninterrupted one. The update rules
themselves are the subclasses' ``_update``.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from . import _optim_io, profiler
from ._grad_mode import enable_grad
from .tensor import Tensor

__all__ = ["Optimizer", "check_range"]


def check_range(what: str, value: Any, upper: float | None = None) -> None:
    """Raise unless ``0 <= value`` (``< upper`` when given), in torch's words.

    ``what`` is the start of torch's message (``"Invalid learning rate"``);
    a non-number is a ``TypeError``, NaN and out-of-range values a ``ValueError``.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{what}: expected a number, got {type(value).__name__}")
    if not (0.0 <= value and (upper is None or value < upper)):
        raise ValueError(f"{what}: {value}")


class Optimizer:
    """Base class: parameter groups, per-parameter state, ``zero_grad`` and a timed ``step``.

    Parameters
    ----------
    params : iterable
        Tensors, ``(name, tensor)`` pairs (``model.named_parameters()``), or
        dicts (parameter groups) with a ``"params"`` entry and any
        hyper-parameters that differ from ``defaults``.
    defaults : dict
        The hyper-parameters of a group that does not set them.
    """

    def __init__(self, params: Iterable[Any], defaults: dict) -> None:
        if isinstance(params, (Tensor, np.ndarray)):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors "
                f"or dicts, but got {type(params).__name__}"
            )
        self.defaults = defaults
        self.state: dict[Tensor, dict] = {}
        self.param_groups: list[dict] = []
        groups = list(params)
        if not groups:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, param_group: dict) -> None:
        """Add a group of parameters with its own hyper-parameters (torch's semantics).

        Missing hyper-parameters are taken from ``defaults`` (the dict is
        completed in place, as torch does). Used to unfreeze layers while
        training; a scheduler created before does not know the new group.

        Raises
        ------
        TypeError
            If ``param_group`` is not a dict, its ``"params"`` a set, or a
            parameter not a Tensor.
        ValueError
            If a parameter is already in a group, or names are given for
            some parameters only.
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        params = list(params)
        names = [p[0] for p in params if isinstance(p, tuple)]
        if names:
            if len(names) != len(params):
                raise ValueError(
                    "all optimizer params should be with/without names. Some param names are missing"
                )
            param_group["param_names"] = names
            params = [p[1] for p in params]
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    + type(p).__name__
                )
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
        param_group["params"] = params
        for name, default in self.defaults.items():
            param_group.setdefault(name, default)
        taken = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in taken for p in params) or len({id(p) for p in params}) != len(params):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients of all parameters (to None, or to zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.fill(0)

    @profiler.timed("optimizer.step")
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """One update of every parameter that has a gradient.

        ``closure``, if given, is called first with gradients enabled (it
        recomputes the loss and the gradients); its result is returned.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True  # read by the schedulers' order warning
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    state = self.state.get(p)
                    if state is None:
                        state = self.state[p] = {}
                    self._update(p.data, p.grad, state, group)
        return loss

    def _update(self, w: np.ndarray, g: np.ndarray, state: dict, group: dict) -> None:
        """Update ``w`` in place from its gradient ``g``, ``state`` and ``group``."""
        raise NotImplementedError

    # ---- state --------------------------------------------------------------

    def state_dict(self) -> dict:
        """The optimiser's state in torch's layout, as copies.

        ``{"state": {index: {name: array or number}}, "param_groups": [{...,
        "params": [index, ...]}]}``: parameters are numbered in the order of
        the groups, and the parameters themselves are not included. Unlike
        torch, arrays are copied, so the dict is a snapshot that later steps
        do not change. Write it with :meth:`save` or :func:`fastconv.optim.save`.
        """
        index: dict[int, int] = {}
        groups = []
        for g in self.param_groups:
            packed = {k: copy.deepcopy(v) for k, v in g.items() if k != "params"}
            for p in g["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in g["params"]]
            groups.append(packed)
        state = {
            index[id(p)] if isinstance(p, Tensor) else p: copy.deepcopy(s)
            for p, s in self.state.items()
        }
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore a :meth:`state_dict` (ours, or torch's: tensors are converted).

        The groups' hyper-parameters (``lr``, ...) are the saved ones; arrays
        are copied and cast to their parameter's dtype (``"step"`` is kept as
        a number). Load it after creating the scheduler, as in torch.

        Raises
        ------
        ValueError
            If the number of groups or of parameters in a group differs.
        """
        groups = self.param_groups
        saved_groups = copy.deepcopy(state_dict["param_groups"])
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(groups, saved_groups)):
            raise ValueError(
                "loaded state dict contains a parameter group that doesn't match the size of "
                "optimizer's group"
            )
        id_map = {
            i: p for g, s in zip(groups, saved_groups) for i, p in zip(s["params"], g["params"])
        }
        state: dict = {}
        for k, v in state_dict["state"].items():
            p = id_map.get(k)
            state[k if p is None else p] = (
                copy.deepcopy(v) if p is None else {n: _cast(n, x, p) for n, x in v.items()}
            )
        for g, s in zip(groups, saved_groups):
            for k, default in self.defaults.items():  # hyper-parameters newer than the file
                s.setdefault(k, default)
            s["params"] = g["params"]
            if "param_names" in g and "param_names" not in s:
                s["param_names"] = g["param_names"]
        self.state = state
        self.param_groups = saved_groups

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`state_dict` to an ``.npz`` file (no pickle; :mod:`fastconv._optim_io`)."""
        _optim_io.save(self.state_dict(), path)

    def load(self, path: str | os.PathLike) -> Optimizer:
        """Load a file written by :meth:`save` (``.npz`` appended if missing)."""
        self.load_state_dict(_optim_io.load(path))
        return self

    def __repr__(self) -> str:
        hp = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        return f"{type(self).__name__}({hp})"


def _cast(name: str, value: Any, param: Tensor) -> Any:
    """A copy of one saved state value, arrays (or torch tensors) as the parameter's dtype."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    arr = np.asarray(value)
    if name == "step" or arr.ndim == 0:
        return arr.item()
    if arr.dtype.kind == "f":
        return np.array(arr, dtype=param.dtype, copy=True)
    return np.array(arr, copy=True)
