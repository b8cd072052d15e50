"""What ``fastconv train`` keeps between runs: checkpoints, metrics files, LR schedules.

* :func:`save_checkpoint` / :func:`load_checkpoint`: one ``.npz`` file holding
  the model's state dict (``model/<name>``), the optimiser's state
  (``optimizer/<param index>/<key>`` arrays) and, as JSON in ``meta``, the
  epochs done, the optimiser's hyper-parameters and the scheduler's state.
  ``numpy.load(allow_pickle=False)`` reads it: no code runs on loading.
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

from .data import Compose, RandomCrop, RandomHorizontalFlip

__all__ = [
    "SCHEDULERS",
    "augmentation",
    "build_scheduler",
    "load_checkpoint",
    "optimizer_state_dict",
    "prepare",
    "save_checkpoint",
    "write_metrics",
]

FORMAT = "fastconv-checkpoint-1"

# --------------------------------------------------------------------------
# Optimiser state in PyTorch's layout: {"state": {index: {...}}, "param_groups": [...]}
# --------------------------------------------------------------------------


def optimizer_state_dict(optimizer: Any) -> dict:
    """``optimizer.state_dict()``, or the same layout built from its ``state`` and groups."""
    if hasattr(optimizer, "state_dict"):
        return optimizer.state_dict()
    index = {id(p): i for i, p in enumerate(p for g in optimizer.param_groups for p in g["params"])}
    groups = [
        {
            **{k: v for k, v in g.items() if k != "params"},
            "params": [index[id(p)] for p in g["params"]],
        }
        for g in optimizer.param_groups
    ]
    state = {index[id(p)]: dict(s) for p, s in optimizer.state.items()}
    return {"state": state, "param_groups": groups}


def _load_optimizer_state(optimizer: Any, sd: dict) -> None:
    if hasattr(optimizer, "load_state_dict"):
        optimizer.load_state_dict(sd)
        return
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if len(sd["param_groups"]) != len(optimizer.param_groups):
        raise ValueError(
            f"the checkpoint's optimizer has {len(sd['param_groups'])} parameter groups, "
            f"this one {len(optimizer.param_groups)}"
        )
    for group, saved in zip(optimizer.param_groups, sd["param_groups"]):
        for k, v in saved.items():
            if k != "params":
                group[k] = tuple(v) if isinstance(group.get(k), tuple) else v
    optimizer.state = {}
    for i, s in sd["state"].items():
        p = params[int(i)]
        for k, v in s.items():
            if isinstance(v, np.ndarray) and v.shape != p.shape:
                raise ValueError(
                    f"the checkpoint's optimizer state {k!r} of parameter {i} has shape "
                    f"{v.shape}, the parameter {p.shape}"
                )
        optimizer.state[p] = {
            k: v.astype(p.dtype) if isinstance(v, np.ndarray) else v for k, v in s.items()
        }


# --------------------------------------------------------------------------
# Checkpoints
# --------------------------------------------------------------------------


def _json_value(v: Any) -> Any:
    if isinstance(v, (np.integer, np.floating, np.bool_)):
        return v.item()
    if isinstance(v, tuple):
        return list(v)
    return v


def save_checkpoint(
    path: str | os.PathLike, model: Any, optimizer: Any, epoch: int, scheduler: Any = None
) -> None:
    """Write model, optimiser (and scheduler) state after ``epoch`` epochs to one ``.npz``.

    The file is written under a temporary name and renamed, so an interrupted
    write never leaves a damaged checkpoint behind.
    """
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    osd = optimizer_state_dict(optimizer)
    scalars: dict[str, dict] = {}
    for i, s in osd["state"].items():
        for k, v in s.items():
            if isinstance(v, np.ndarray):
                arrays[f"optimizer/{i}/{k}"] = v
            else:
                scalars.setdefault(str(i), {})[k] = _json_value(v)
    groups = [{k: _json_value(v) for k, v in g.items()} for g in osd["param_groups"]]
    meta = {
        "format": FORMAT,
        "epoch": int(epoch),
        "optimizer": type(optimizer).__name__,
        "param_groups": groups,
        "optimizer_scalars": scalars,
        "scheduler": None if scheduler is None else scheduler.state_dict(),
    }
    arrays["meta"] = np.array(json.dumps(meta, default=_json_value))
    path = os.fspath(path)
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
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
        entries = {k: f[k] for k in f.files}
    if "meta" not in entries:  # a model saved by Module.save: weights only
        model.load_state_dict(entries)
        return 0
    meta = json.loads(str(entries.pop("meta")))
    if meta.get("format") != FORMAT:
        raise ValueError(f"{path}: not a fastconv checkpoint (format {meta.get('format')!r})")
    if meta["optimizer"] != type(optimizer).__name__:
        raise ValueError(
            f"{path}: the checkpoint was trained with {meta['optimizer']}, not "
            f"{type(optimizer).__name__} (pass the same --optimizer)"
        )
    model.load_state_dict({k[6:]: v for k, v in entries.items() if k.startswith("model/")})
    state: dict[int, dict] = {int(i): dict(s) for i, s in meta["optimizer_scalars"].items()}
    for k, v in entries.items():
        if k.startswith("optimizer/"):
            _, i, key = k.split("/", 2)
            state.setdefault(int(i), {})[key] = v
    _load_optimizer_state(optimizer, {"state": state, "param_groups": meta["param_groups"]})
    if scheduler is not None and meta["scheduler"] is not None:
        scheduler.load_state_dict(meta["scheduler"])
    return int(meta["epoch"])


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
