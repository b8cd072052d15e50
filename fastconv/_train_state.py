"""What ``fastconv train`` keeps between runs: checkpoints, metrics files, LR schedules.

* :func:`save_checkpoint` / :func:`load_checkpoint`: one ``.npz`` file in
  :func:`fastconv.optim.save`'s format holding the model's and the
  optimiser's state dicts, the scheduler's state and the epochs done. It is
  read with ``allow_pickle=False``: no code runs on loading.
* :func:`write_metrics`: per-epoch statistics as JSON.
* :func:`prepare`: a run's scheduler and, with ``--resume``, its restored
  state; :func:`augmentation`: ``--augment``'s transforms.
* :func:`build_scheduler`: a ``--scheduler`` spec (``step:STEP_SIZE:GAMMA``,
  ``cosine``, ``onecycle``, ...) as a ``fastconv.optim.lr_scheduler``
  scheduler (PyTorch's classes and signatures) and when to step it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from dataclasses import asdict
from typing import Any

import numpy as np

from . import _optim_io as optim_io
from .data import Compose, RandomCrop, RandomHorizontalFlip

__all__ = [
    "SCHEDULERS",
    "augmentation",
    "build_scheduler",
    "load_checkpoint",
    "prepare",
    "save_checkpoint",
    "write_metrics",
]

FORMAT = "fastconv-checkpoint-2"

# --------------------------------------------------------------------------
# Checkpoints: one file in fastconv.optim.save's format
# --------------------------------------------------------------------------


def save_checkpoint(
    path: str | os.PathLike, model: Any, optimizer: Any, epoch: int, scheduler: Any = None
) -> None:
    """Write model, optimiser (and scheduler) state after ``epoch`` epochs to one ``.npz``.

    The format is :func:`fastconv.optim.save`'s (arrays as entries, the
    structure as JSON; no pickle). The file is written under a temporary name
    and renamed, so an interrupted write never leaves a damaged checkpoint.
    """
    state = {
        "format": FORMAT,
        "epoch": int(epoch),
        "optimizer_class": type(optimizer).__name__,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": None if scheduler is None else scheduler.state_dict(),
    }
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    optim_io.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(
    path: str | os.PathLike, model: Any, optimizer: Any, scheduler: Any = None
) -> int:
    """Restore a :func:`save_checkpoint` file into ``model``, ``optimizer`` (and ``scheduler``).

    Returns the number of epochs done. A file written by ``Module.save``
    (weights only) loads into the model and returns 0. Raises ``ValueError``
    for a checkpoint of another optimiser or of other shapes.
    """
    with np.load(os.fspath(path), allow_pickle=False) as f:
        weights_only = optim_io.STATE_KEY not in f.files
        entries = {k: f[k] for k in f.files} if weights_only else None
    if weights_only:  # a model saved by Module.save
        model.load_state_dict(entries)
        return 0
    state = optim_io.load(path)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastconv train checkpoint")
    if state["optimizer_class"] != type(optimizer).__name__:
        raise ValueError(
            f"{path}: the checkpoint was trained with {state['optimizer_class']}, not "
            f"{type(optimizer).__name__} (pass the same --optimizer)"
        )
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    return int(state["epoch"])


def _json_value(v: Any) -> Any:
    """NumPy scalars as Python numbers (for json.dump)."""
    return v.item() if isinstance(v, (np.integer, np.floating, np.bool_)) else v


def write_metrics(path: str | os.PathLike, epochs: list, keep_before: int = 0) -> None:
    """Write the per-epoch statistics to ``path`` as JSON: ``{"epochs": [{...}, ...]}``.

    With ``keep_before`` (a resumed run), the epochs up to that one already
    in the file are kept in front of ``epochs``.
    """
    earlier: list = []
    if keep_before and os.path.exists(path):
        try:
            with open(path) as f:
                earlier = [e for e in json.load(f)["epochs"] if e["epoch"] <= keep_before]
        except (ValueError, KeyError, TypeError):
            earlier = []
    rows = earlier + [asdict(e) for e in epochs]
    with open(path, "w") as f:
        json.dump({"epochs": rows}, f, indent=1, default=_json_value)
        f.write("\n")


# --------------------------------------------------------------------------
# Learning-rate schedules
# --------------------------------------------------------------------------

#: ``--scheduler`` forms, for the help text.
SCHEDULERS = (
    "step:STEP_SIZE[:GAMMA]",
    "multistep:M1,M2,...[:GAMMA]",
    "exponential:GAMMA",
    "cosine[:T_MAX[:ETA_MIN]]",
    "onecycle[:MAX_LR]",
    "plateau[:FACTOR[:PATIENCE]]",
)


def build_scheduler(
    spec: str, optimizer: Any, epochs: int, steps_per_epoch: int, lr: float
) -> tuple[Any, str]:
    """A scheduler from a ``--scheduler`` spec, and when to step it: ``"epoch"``,
    ``"batch"`` (OneCycleLR, over ``epochs * steps_per_epoch`` steps) or
    ``"metric"`` (ReduceLROnPlateau, stepped with the test loss).

    ``cosine`` anneals over ``epochs`` by default; ``onecycle`` peaks at
    ``lr`` by default. Raises ``ValueError`` for a spec it cannot read.
    """
    from .optim import lr_scheduler  # imported when asked for: the schedulers' module

    name, *args = spec.split(":")
    try:
        if name == "step" and 1 <= len(args) <= 2:
            gamma = float(args[1]) if len(args) > 1 else 0.1
            return lr_scheduler.StepLR(optimizer, step_size=int(args[0]), gamma=gamma), "epoch"
        if name == "multistep" and 1 <= len(args) <= 2:
            milestones = [int(m) for m in args[0].split(",")]
            gamma = float(args[1]) if len(args) > 1 else 0.1
            return lr_scheduler.MultiStepLR(optimizer, milestones, gamma=gamma), "epoch"
        if name == "exponential" and len(args) == 1:
            return lr_scheduler.ExponentialLR(optimizer, gamma=float(args[0])), "epoch"
        if name == "cosine" and len(args) <= 2:
            t_max = int(args[0]) if args else epochs
            eta_min = float(args[1]) if len(args) > 1 else 0.0
            return lr_scheduler.CosineAnnealingLR(optimizer, T_max=t_max, eta_min=eta_min), "epoch"
        if name == "onecycle" and len(args) <= 1:
            max_lr = float(args[0]) if args else lr
            sched = lr_scheduler.OneCycleLR(
                optimizer, max_lr=max_lr, total_steps=epochs * steps_per_epoch
            )
            return sched, "batch"
        if name == "plateau" and len(args) <= 2:
            factor = float(args[0]) if args else 0.1
            patience = int(args[1]) if len(args) > 1 else 10
            return lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=factor, patience=patience
            ), "metric"
    except ValueError as e:
        raise ValueError(f"--scheduler {spec}: {e}") from None
    raise ValueError(f"--scheduler {spec}: expected one of {', '.join(SCHEDULERS)}")


# --------------------------------------------------------------------------
# A run of ``fastconv train``
# --------------------------------------------------------------------------


def prepare(args: argparse.Namespace, model: Any, optimizer: Any, n_train: int) -> tuple:
    """``(scheduler or None, when to step it, epochs done)`` for ``fastconv train``'s ``args``.

    Builds ``--scheduler`` over the run's steps, then (``--resume``) restores
    the checkpoint into the model, the optimiser and the scheduler: after the
    scheduler, whose constructor sets the optimiser's lr that the checkpoint
    then restores. Raises ``ImportError`` when the schedulers are missing.
    """
    scheduler, when = None, "epoch"
    if args.scheduler:
        steps = math.ceil(n_train / args.batch_size)
        try:
            scheduler, when = build_scheduler(
                args.scheduler, optimizer, args.epochs, steps, args.lr
            )
        except ImportError as e:
            raise ImportError(f"--scheduler needs fastconv.optim.lr_scheduler ({e})") from None
    start = load_checkpoint(args.resume, model, optimizer, scheduler) if args.resume else 0
    return scheduler, when, start


def augmentation(seed: int) -> Compose:
    """``--augment``: a random crop of the image padded by 2 pixels, and a horizontal flip."""
    return Compose([RandomCrop(28, padding=2, seed=seed), RandomHorizontalFlip(seed=seed + 1)])
