"""Train a model on (Fashion-)MNIST: ``fastconv train`` or ``python -m fastconv.train``.

Examples::

    fastconv train                                  # Keras MNIST CNN, Fashion-MNIST, 10 epochs
    fastconv train --model lenet5 --optimizer sgd --lr 0.01 --epochs 5
    fastconv train --limit 5000 --epochs 1 --threads 1   # a quick run
    fastconv train --dataset mnist --data-dir ~/data/mnist --save mnist.npz
    fastconv train --augment --scheduler cosine --checkpoint run.npz --metrics run.json
    fastconv train --epochs 20 --resume run.npz --checkpoint run.npz   # 10 more epochs
    fastconv train --eval-only --resume run.npz

Each epoch shows a progress bar with the running loss and images/s (with
tqdm when it is installed, else a plain line now and then), then prints the
test accuracy (evaluated in batches under ``no_grad``) and the epoch's time;
the end prints the best and final test accuracy. Runs are reproducible: the
seed fixes the initial weights (``nn.manual_seed``) and the order of the
mini-batches, and fastconv's kernels give bitwise identical results for any
thread count, so the same seed gives the same accuracies.

From Python, :func:`fit` is the loop itself::

    from fastconv import datasets, models, nn, optim
    from fastconv.train import fit
    nn.manual_seed(0)
    model = models.keras_mnist_cnn()
    history = fit(model, optim.Adam(model.parameters(), lr=1e-3),
                  datasets.fashion_mnist(), epochs=10, batch_size=128, seed=0)
    print(history.final_accuracy, history.best_accuracy)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, TextIO

import numpy as np

import fastconv

from . import _train_state, datasets
from .data import DataLoader

__all__ = [
    "DATASETS",
    "MODELS",
    "OPTIMIZERS",
    "EpochStats",
    "History",
    "add_arguments",
    "build_model",
    "build_optimizer",
    "evaluate",
    "fit",
    "load_dataset",
    "main",
    "run",
]

#: ``--model`` choices -> the factory in :mod:`fastconv.models` and its arguments.
MODELS: dict[str, tuple[str, dict[str, Any]]] = {
    "keras-cnn": ("keras_mnist_cnn", {}),
    "lenet5": ("lenet5", {"input_size": 28}),
    "mlp": ("mlp_mnist", {}),
}

#: ``--optimizer`` choices -> the class in :mod:`fastconv.optim`.
OPTIMIZERS = {"adam": "Adam", "sgd": "SGD", "rmsprop": "RMSprop", "adagrad": "Adagrad"}

#: ``--dataset`` choices -> the loader in :mod:`fastconv.datasets` and a display name.
DATASETS = {"fashion-mnist": ("fashion_mnist", "Fashion-MNIST"), "mnist": ("mnist", "MNIST")}

EVAL_BATCH_SIZE = 1000


# --------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------


@dataclass
class EpochStats:
    """What one epoch of :func:`fit` measured."""

    epoch: int  #: 1-based
    train_loss: float  #: mean over the epoch's training images
    train_accuracy: float  #: fraction of training images classified right (in train mode)
    test_loss: float
    test_accuracy: float  #: fraction in [0, 1]
    time: float  #: seconds spent training (the evaluation not included)
    eval_time: float  #: seconds spent evaluating on the test set
    images_per_s: float  #: training images / ``time``
    lr: float = float("nan")  #: the first parameter group's learning rate during the epoch


@dataclass
class History:
    """Per-epoch statistics of a :func:`fit` run."""

    epochs: list[EpochStats] = field(default_factory=list)

    @property
    def test_accuracies(self) -> list[float]:
        return [e.test_accuracy for e in self.epochs]

    @property
    def best_epoch(self) -> EpochStats | None:
        """The epoch with the highest test accuracy (the first of equals)."""
        return max(self.epochs, key=lambda e: e.test_accuracy) if self.epochs else None

    @property
    def best_accuracy(self) -> float:
        best = self.best_epoch
        return best.test_accuracy if best else float("nan")

    @property
    def final_accuracy(self) -> float:
        return self.epochs[-1].test_accuracy if self.epochs else float("nan")

    def to_dict(self) -> dict[str, Any]:
        return {"epochs": [asdict(e) for e in self.epochs]}


# --------------------------------------------------------------------------
# Progress display
# --------------------------------------------------------------------------


class _PlainProgress:
    """A stand-in for tqdm when it is not installed: a line every few seconds."""

    def __init__(self, total: int, desc: str, file: TextIO, interval: float = 5.0) -> None:
        self.total, self.desc, self.file, self.interval = total, desc, file, interval
        self.n, self.postfix = 0, ""
        self.t0 = self.last = time.perf_counter()

    def update(self, n: int) -> None:
        self.n += n
        now = time.perf_counter()
        if now - self.last >= self.interval:
            self.last = now
            rate = self.n / max(now - self.t0, 1e-9)
            print(
                f"{self.desc}: {self.n}/{self.total} images, {rate:,.0f} img/s, {self.postfix}",
                file=self.file,
                flush=True,
            )

    def set_postfix_str(self, s: str, refresh: bool = True) -> None:
        self.postfix = s

    def close(self) -> None:
        pass


def _progress_bar(total: int, desc: str, enabled: bool, file: TextIO) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, desc, file)
    return tqdm(
        total=total, desc=desc, unit="img", unit_scale=False, leave=False, file=file,
        dynamic_ncols=True, mininterval=0.5,
    )  # fmt: skip


# --------------------------------------------------------------------------
# The loop
# --------------------------------------------------------------------------


def evaluate(
    model: Any,
    x: np.ndarray,
    y: np.ndarray,
    batch_size: int = EVAL_BATCH_SIZE,
    loss_fn: Any = None,
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``(x, y)``, in batches, in eval mode, no grad.

    The model's train/eval mode is restored afterwards.
    """
    from . import nn

    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    was_training = getattr(model, "training", True)
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        with fastconv.no_grad():
            for xb, yb in DataLoader((x, y), batch_size):
                logits = model(fastconv.Tensor(np.asarray(xb, dtype=np.float32)))
                total_loss += float(loss_fn(logits, yb).item()) * len(yb)
                correct += int(np.count_nonzero(logits.data.argmax(axis=1) == yb))
    finally:
        if was_training:
            model.train()
    n = max(len(y), 1)
    return total_loss / n, correct / n


def fit(
    model: Any,
    optimizer: Any,
    data: Sequence[np.ndarray],
    epochs: int,
    batch_size: int,
    seed: int | None,
    progress: bool = True,
    *,
    loss_fn: Any = None,
    eval_batch_size: int = EVAL_BATCH_SIZE,
    on_epoch: Callable[[EpochStats], None] | None = None,
    file: TextIO | None = None,
    log: bool | None = None,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    scheduler: Any = None,
    scheduler_step: str = "epoch",
    start_epoch: int = 0,
) -> History:
    """Train ``model`` with ``optimizer`` and test it after every epoch.

    Parameters
    ----------
    model : fastconv.nn.Module
        Takes a float32 NCHW :class:`fastconv.Tensor`, returns logits (B, classes).
    optimizer : fastconv.optim optimizer
        Over ``model.parameters()``.
    data : (x_train, y_train, x_test, y_test)
        As :func:`fastconv.datasets.fashion_mnist` returns them.
    epochs, batch_size : int
        Passes over the training set; images per step (the last batch of an
        epoch may be smaller).
    seed : int or None
        Seeds the order of the mini-batches: epoch ``e``'s order is drawn
        from ``(seed, e)`` (:class:`fastconv.data.DataLoader`), so each epoch
        has its own order and a resumed run sees the same batches. The
        initial weights are the model's: seed them with
        ``fastconv.nn.manual_seed`` before building it.
    progress : bool
        Show a progress bar per epoch (running loss, images/s) and print one
        line per epoch (losses, accuracies, time). ``False``: silent.
    loss_fn : callable, optional
        ``loss_fn(logits, labels) -> scalar Tensor``; default
        ``nn.CrossEntropyLoss()``.
    eval_batch_size : int
        Batch size of the evaluation on the test set.
    on_epoch : callable, optional
        Called with each epoch's :class:`EpochStats` as soon as it is known.
    file : text stream, optional
        Where the progress and the epoch lines go (default: sys.stdout for
        the lines, sys.stderr for the bar).
    log : bool, optional
        Print the per-epoch lines (default: as ``progress``); e.g.
        ``progress=False, log=True`` for lines without bars.
    transform : callable, optional
        Applied to each training batch of images (N, C, H, W), e.g. the
        augmentations of :mod:`fastconv.data`; reseeded per epoch through
        its ``set_epoch`` when it has one.
    scheduler : optional
        A ``fastconv.optim.lr_scheduler`` scheduler (PyTorch's interface),
        stepped after every epoch (``scheduler_step="epoch"``), after every
        batch (``"batch"``, e.g. OneCycleLR) or after every epoch with the
        test loss (``"metric"``, ReduceLROnPlateau).
    start_epoch : int
        Epochs already done (a resumed run): training runs epochs
        ``start_epoch + 1 .. epochs``.

    Returns
    -------
    History
        One :class:`EpochStats` per epoch.
    """
    from . import nn

    x_train, y_train, x_test, y_test = data
    if len(x_train) == 0:
        raise ValueError("fit: the training set is empty")
    if epochs < 0 or batch_size < 1:
        raise ValueError(f"fit: need epochs >= 0 and batch_size >= 1, got {epochs}, {batch_size}")
    if scheduler_step not in ("epoch", "batch", "metric"):
        raise ValueError(
            f"fit: scheduler_step must be 'epoch', 'batch' or 'metric', got {scheduler_step!r}"
        )
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    out = sys.stdout if file is None else file
    bar_file = sys.stderr if file is None else file
    log = progress if log is None else log
    loader = DataLoader(
        (x_train, y_train), batch_size, shuffle=True, seed=seed, transform=transform
    )
    history = History()
    n_train = len(x_train)
    for epoch in range(start_epoch + 1, epochs + 1):
        loader.set_epoch(epoch - 1)
        lr = float(optimizer.param_groups[0]["lr"])
        desc = f"epoch {epoch}/{epochs}"
        bar = _progress_bar(n_train, desc, progress, bar_file)
        model.train()
        seen, loss_sum, correct = 0, 0.0, 0
        t0 = time.perf_counter()
        try:
            for step, (xb, yb) in enumerate(loader):
                logits = model(fastconv.Tensor(np.asarray(xb, dtype=np.float32)))
                loss = loss_fn(logits, yb)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                if scheduler is not None and scheduler_step == "batch":
                    scheduler.step()
                b = len(yb)
                loss_value = float(loss.item())
                if not np.isfinite(loss_value):
                    raise FloatingPointError(
                        f"fit: the loss is {loss_value} at epoch {epoch}, step {step + 1} "
                        "(learning rate too high?)"
                    )
                seen += b
                loss_sum += loss_value * b
                correct += int(np.count_nonzero(logits.data.argmax(axis=1) == yb))
                if bar is not None:
                    bar.update(b)
                    if step % 10 == 0:
                        bar.set_postfix_str(f"loss {loss_sum / seen:.4f}", refresh=False)
        finally:
            if bar is not None:
                bar.close()
        train_time = time.perf_counter() - t0
        t1 = time.perf_counter()
        test_loss, test_acc = evaluate(model, x_test, y_test, eval_batch_size, loss_fn)
        eval_time = time.perf_counter() - t1
        stats = EpochStats(
            epoch=epoch,
            train_loss=loss_sum / seen,
            train_accuracy=correct / seen,
            test_loss=test_loss,
            test_accuracy=test_acc,
            time=train_time,
            eval_time=eval_time,
            images_per_s=seen / train_time if train_time > 0 else float("inf"),
            lr=lr,
        )
        if scheduler is not None and scheduler_step != "batch":
            scheduler.step(*((test_loss,) if scheduler_step == "metric" else ()))
        history.epochs.append(stats)
        if log:
            print(
                f"epoch {epoch:>{len(str(epochs))}}/{epochs}  "
                f"loss {stats.train_loss:.4f}  train acc {100 * stats.train_accuracy:6.2f}%  "
                f"test loss {stats.test_loss:.4f}  test acc {100 * stats.test_accuracy:6.2f}%  "
                f"time {stats.time:6.1f} s ({stats.images_per_s:,.0f} img/s; "
                f"test {stats.eval_time:.1f} s)",
                file=out,
                flush=True,
            )
        if on_epoch is not None:
            on_epoch(stats)
    return history


# --------------------------------------------------------------------------
# Building blocks of the command
# --------------------------------------------------------------------------


def build_model(name: str) -> Any:
    """A fresh model by ``--model`` name (seed with ``nn.manual_seed`` first)."""
    from . import models

    factory, kwargs = MODELS[name]
    return getattr(models, factory)(**kwargs)


def build_optimizer(name: str, params: Any, lr: float, momentum: float = 0.9) -> Any:
    """An optimizer by ``--optimizer`` name; ``momentum`` is used by SGD only."""
    from . import optim

    cls = getattr(optim, OPTIMIZERS[name])
    if name == "sgd":
        return cls(params, lr=lr, momentum=momentum)
    return cls(params, lr=lr)


def load_dataset(
    name: str, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(x_train, y_train, x_test, y_test)`` of a ``--dataset`` name."""
    loader, _ = DATASETS[name]
    return getattr(datasets, loader)(data_dir)


def count_parameters(model: Any) -> int:
    return int(sum(np.asarray(p.data).size for p in model.parameters()))


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or not np.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Declare ``fastconv train``'s options on ``parser`` (and return it)."""
    parser.add_argument(
        "--model", choices=list(MODELS), default="keras-cnn",
        help="keras-cnn: the Keras MNIST CNN (93,322 parameters); lenet5: LeNet-5 on 28x28; "
        "mlp: the dense 784-512-10 net (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--dataset", choices=list(DATASETS), default="fashion-mnist",
        help="default: %(default)s (Debian: apt-get install dataset-fashion-mnist)",
    )  # fmt: skip
    parser.add_argument(
        "--data-dir", metavar="DIR", default=None,
        help="folder holding the four IDX files (train-images-idx3-ubyte, ...; .gz or not); "
        "default: Debian's /usr/share/datasets/fashion-mnist for fashion-mnist",
    )  # fmt: skip
    parser.add_argument("--epochs", type=_positive_int, default=10, help="default: %(default)s")
    parser.add_argument(
        "--batch-size", type=_positive_int, default=128, help="default: %(default)s"
    )
    parser.add_argument(
        "--optimizer", choices=list(OPTIMIZERS), default="adam", help="default: %(default)s"
    )
    parser.add_argument("--lr", type=_positive_float, default=1e-3, help="default: %(default)g")
    parser.add_argument(
        "--momentum", type=float, default=0.9, help="SGD's momentum (default: %(default)g)"
    )
    parser.add_argument(
        "--threads", type=_positive_int, default=None,
        help="threads of fastconv's kernels (and NumPy's BLAS); default: fastconv's "
        "(OMP_NUM_THREADS or all cores)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=0,
        help="seeds the initial weights and the batch order (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--save", metavar="PATH", default=None, help="save the trained model there (model.save)"
    )
    parser.add_argument(
        "--checkpoint", metavar="PATH", default=None,
        help="after every epoch, save the model, the optimizer's state, the scheduler's and "
        "the epoch count there (one .npz), for --resume",
    )  # fmt: skip
    parser.add_argument(
        "--resume", metavar="PATH", default=None,
        help="continue from a --checkpoint file (same --model and --optimizer): the epoch "
        "count goes on up to --epochs; a --save file loads the weights only",
    )  # fmt: skip
    parser.add_argument(
        "--eval-only", action="store_true",
        help="only evaluate on the test set (the model of --resume) and exit",
    )  # fmt: skip
    parser.add_argument(
        "--metrics", metavar="PATH.json", default=None,
        help="write the per-epoch loss, accuracy, images/s and learning rate there as JSON",
    )  # fmt: skip
    parser.add_argument(
        "--scheduler", metavar="SPEC", default=None,
        help="a learning-rate schedule of fastconv.optim.lr_scheduler: "
        + ", ".join(_train_state.SCHEDULERS)
        + " (e.g. step:5:0.5; cosine anneals over --epochs; onecycle peaks at --lr, per batch)",
    )  # fmt: skip
    parser.add_argument(
        "--augment", action="store_true",
        help="augment the training images: random crop with 2 pixels of padding and a random "
        "horizontal flip (seeded by --seed)",
    )  # fmt: skip
    parser.add_argument(
        "--limit", type=_positive_int, default=None, metavar="N",
        help="train on the first N training images only (quick runs)",
    )  # fmt: skip
    parser.add_argument(
        "--no-progress", dest="progress", action="store_false",
        help="no progress bar (the per-epoch lines are still printed)",
    )  # fmt: skip
    return parser


def _print_header(args: argparse.Namespace, model: Any, data: Sequence[np.ndarray]) -> None:
    x_train, _, x_test, _ = data
    cfg = fastconv.show_config()
    name = DATASETS[args.dataset][1]
    opt = OPTIMIZERS[args.optimizer]
    if args.optimizer == "sgd":
        opt += f" (momentum {args.momentum:g})"
    print(
        f"fastconv {fastconv.__version__} train: {args.model} "
        f"({count_parameters(model):,} parameters) on {name}, "
        f"{len(x_train):,} training / {len(x_test):,} test images "
        f"{'x'.join(map(str, x_train.shape[1:]))}"
    )
    print(
        f"{opt} lr {args.lr:g}, batch {args.batch_size}, {args.epochs} epochs, seed {args.seed}; "
        f"{fastconv.get_num_threads()} threads, ISA {cfg.get('isa_active')}",
        flush=True,
    )


def run(args: argparse.Namespace) -> int:
    """Run ``fastconv train`` with parsed ``args``; returns the exit status."""
    try:
        data = load_dataset(args.dataset, args.data_dir)
    except (FileNotFoundError, ValueError) as e:
        print(f"fastconv train: {e}", file=sys.stderr)
        return 1
    x_train, y_train, x_test, y_test = data
    if x_train.shape[1:] != (1, 28, 28):
        print(
            f"fastconv train: the models take 1x28x28 images, the dataset has "
            f"{'x'.join(map(str, x_train.shape[1:]))}",
            file=sys.stderr,
        )
        return 1
    if args.limit is not None:
        x_train, y_train = x_train[: args.limit], y_train[: args.limit]
    data = (x_train, y_train, x_test, y_test)

    from . import nn
    from ._timing import limit_blas_threads

    old_threads = fastconv.get_num_threads()
    threads = old_threads if args.threads is None else args.threads
    try:
        fastconv.set_num_threads(threads)
        with limit_blas_threads(threads):
            nn.manual_seed(args.seed)
            model = build_model(args.model)
            optimizer = build_optimizer(args.optimizer, model.parameters(), args.lr, args.momentum)
            try:
                scheduler, when, start = _train_state.prepare(args, model, optimizer, len(x_train))
            except (ImportError, OSError, ValueError, RuntimeError) as e:
                print(f"fastconv train: {e}", file=sys.stderr)
                return 1
            if args.eval_only:
                return _eval_only(args, model, x_test, y_test)
            _print_header(args, model, data)
            if start:
                print(f"resumed from {args.resume} after epoch {start}", flush=True)
            history = History()

            def after_epoch(stats: EpochStats) -> None:
                history.epochs.append(stats)
                if args.checkpoint:
                    _train_state.save_checkpoint(
                        args.checkpoint, model, optimizer, stats.epoch, scheduler
                    )
                if args.metrics:
                    _train_state.write_metrics(args.metrics, history.epochs, keep_before=start)

            t0 = time.perf_counter()
            try:
                fit(
                    model, optimizer, data, args.epochs, args.batch_size, args.seed,
                    progress=getattr(args, "progress", True), log=True, on_epoch=after_epoch,
                    transform=_train_state.augmentation(args.seed) if args.augment else None,
                    scheduler=scheduler, scheduler_step=when, start_epoch=start,
                )  # fmt: skip
            except FloatingPointError as e:
                print(f"fastconv train: {e}", file=sys.stderr)
                return 1
            total = time.perf_counter() - t0
    finally:
        fastconv.set_num_threads(old_threads)

    if not history.epochs:
        print(f"nothing to train: {args.resume} is already at epoch {start} of {args.epochs}")
        return 0
    best = history.best_epoch
    assert best is not None
    print(
        f"best test accuracy {100 * best.test_accuracy:.2f}% (epoch {best.epoch}), "
        f"final {100 * history.final_accuracy:.2f}% after {len(history.epochs)} epochs; "
        f"{total:.1f} s in all, "
        f"{len(x_train) * len(history.epochs) / sum(e.time for e in history.epochs):,.0f}"
        " training img/s"
    )
    if args.save:
        model.save(args.save)
        print(f"saved the model to {args.save}")
    return 0


def _eval_only(args: argparse.Namespace, model: Any, x: np.ndarray, y: np.ndarray) -> int:
    """``--eval-only``: the test loss and accuracy (and ``--metrics``), no training."""
    if not args.resume:
        print("fastconv train: --eval-only needs --resume PATH", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    loss, acc = evaluate(model, x, y)
    seconds = time.perf_counter() - t0
    rate = len(y) / seconds if seconds > 0 else float("inf")
    print(f"{args.resume}: test loss {loss:.4f}  test acc {100 * acc:6.2f}%  ({rate:,.0f} img/s)")
    if args.metrics:
        result = {"test_loss": loss, "test_accuracy": acc, "images_per_s": rate}
        with open(args.metrics, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fastconv.train``."""
    parser = add_arguments(
        argparse.ArgumentParser(
            prog="python -m fastconv.train", description="train a model on (Fashion-)MNIST"
        )
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
