"""fastconv vs PyTorch training the Keras MNIST CNN on Fashion-MNIST, side by side.

Two modes (from the repository root)::

    python benchmarks/train_compare.py                 # full runs: 10 epochs each
    python benchmarks/train_compare.py --epochs 2 --limit 10000
    python benchmarks/train_compare.py --step-only     # one training step, timed

Full runs
    The same recipe in both libraries: the Keras MNIST CNN (93,322
    parameters), Adam lr 1e-3, batch 128, seed 0 (``fastconv.nn.manual_seed``
    / ``torch.manual_seed``, each library's default initialisation), the same
    mini-batch order (:func:`fastconv.datasets.batches` with one seeded
    generator), the same thread count (``torch.set_num_threads``). Prints the
    test accuracy and the training images/s of every epoch for both, then the
    final and best accuracies. fastconv is trained with
    :func:`fastconv.train.fit`, the loop of ``fastconv train``.

``--step-only``
    One full training step (forward, cross-entropy, backward, Adam) at batch
    128, on a rotation of 16 real batches, timed with
    :func:`fastconv._timing.time_interleaved` (warm-up, interleaved blocks of
    fastconv and torch after settling calls, median) at 1 and 2 threads, and
    again in a child process with the other malloc setting (glibc's default,
    or ``MALLOC_MMAP_THRESHOLD_=2000000000 MALLOC_TRIM_THRESHOLD_=4000000000``,
    which keeps freed buffers mapped: PyTorch's step depends on it, see
    shared/reference/perf-anchors.md). Then fastconv's step under
    :class:`fastconv.profiler.Profiler`: each op's share of the step and the
    Python overhead (step time minus time in kernels; budget 10%).

PyTorch is optional: without it only fastconv's side runs. The header gives
the ISA, threads, CPU, versions and the malloc setting.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import fastconv
except ImportError:  # run from a source checkout without installing: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fastconv

from fastconv import datasets
from fastconv._timing import CpuMonitor, limit_blas_threads, time_interleaved
from fastconv.bench_report import environment

BATCH = 128
SEED = 0
LR = 1e-3
TUNED_MALLOC = {"MALLOC_MMAP_THRESHOLD_": "2000000000", "MALLOC_TRIM_THRESHOLD_": "4000000000"}
OVERHEAD_BUDGET = 0.10  # Python overhead must stay under 10% of the step
TARGET_ACCURACY = 0.905  # fastconv after 10 epochs (PyTorch reached 90.8% on the anchor machine)
_CHILD_FLAG = "--_child-json"


# --------------------------------------------------------------------------
# The two implementations of the recipe
# --------------------------------------------------------------------------


def import_torch() -> Any:
    try:
        import torch
    except ImportError:
        return None
    return torch


def torch_keras_cnn(torch: Any) -> Any:
    """The Keras MNIST CNN in PyTorch (PyTorch's default initialisation)."""
    tnn = torch.nn
    return tnn.Sequential(
        tnn.Conv2d(1, 32, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(32, 64, 3), tnn.ReLU(), tnn.MaxPool2d(2),
        tnn.Conv2d(64, 64, 3), tnn.ReLU(),
        tnn.Flatten(), tnn.Linear(576, 64), tnn.ReLU(), tnn.Linear(64, 10),
    )  # fmt: skip


def fastconv_setup(seed: int = SEED) -> tuple[Any, Any, Any]:
    from fastconv import models, nn, optim

    nn.manual_seed(seed)
    model = models.keras_mnist_cnn()
    return model, optim.Adam(model.parameters(), lr=LR), nn.CrossEntropyLoss()


def torch_setup(torch: Any, seed: int = SEED) -> tuple[Any, Any, Any]:
    torch.manual_seed(seed)
    model = torch_keras_cnn(torch)
    return model, torch.optim.Adam(model.parameters(), lr=LR), torch.nn.CrossEntropyLoss()


def torch_fit(
    torch: Any, data: Sequence[np.ndarray], epochs: int, seed: int, on_epoch: Any = None
) -> list[dict[str, float]]:
    """The loop of :func:`fastconv.train.fit`, in PyTorch, on the same batches."""
    x_train, y_train, x_test, y_test = data
    model, opt, loss_fn = torch_setup(torch, seed)
    rng = np.random.default_rng(seed)  # the same batch order as fit()
    history = []
    for epoch in range(1, epochs + 1):
        model.train()
        seen, loss_sum = 0, 0.0
        t0 = time.perf_counter()
        for xb, yb in datasets.batches(x_train, y_train, BATCH, shuffle=True, seed=rng):
            logits = model(torch.from_numpy(xb))
            loss = loss_fn(logits, torch.from_numpy(yb))
            opt.zero_grad()
            loss.backward()
            opt.step()
            seen += len(yb)
            loss_sum += float(loss.item()) * len(yb)
        train_time = time.perf_counter() - t0
        model.eval()
        correct = 0
        with torch.no_grad():
            for xb, yb in datasets.batches(x_test, y_test, 1000, shuffle=False):
                correct += int((model(torch.from_numpy(xb)).argmax(1).numpy() == yb).sum())
        stats = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "test_accuracy": correct / len(y_test),
            "time": train_time,
            "images_per_s": seen / train_time,
        }
        history.append(stats)
        if on_epoch is not None:
            on_epoch(stats)
    return history


# --------------------------------------------------------------------------
# Header
# --------------------------------------------------------------------------


def _malloc_setting() -> str:
    tuned = all(os.environ.get(k) == v for k, v in TUNED_MALLOC.items())
    if tuned:
        return "tuned"
    if any(k.startswith("MALLOC_") for k in os.environ):
        return "custom"
    return "default"


def print_header(threads: int, blas_note: str, torch: Any) -> None:
    env = environment(threads, blas_note, torch)
    print(
        f"fastconv {env['fastconv_version']}  ISA {env['isa_active']} "
        f"(detected {env['isa_detected']}; compiled {','.join(env['isas_compiled'] or [])})  "
        f"threads {threads} ({env['openmp_runtime']})"
    )
    print(f"CPU      {env['cpu']}, {env['cpus_available']} CPUs, load {env['load_average']}")
    print(f"python   {env['python']}, numpy {env['numpy']}, BLAS: {env['blas']}")
    if torch is not None:
        print(f"torch    {torch.__version__} (threads set to the same count)")
    else:
        print("torch    not importable: fastconv only")
    print(f"malloc   {env['allocator']}")


# --------------------------------------------------------------------------
# Full training runs
# --------------------------------------------------------------------------


def _fmt(v: float | None, spec: str, width: int) -> str:
    return f"{'-':>{width}}" if v is None else f"{v:{width}{spec}}"


def run_full(args: argparse.Namespace, data: Sequence[np.ndarray], torch: Any) -> int:
    from fastconv.train import fit

    x_train = data[0]
    print(
        f"\nrecipe   Keras MNIST CNN on Fashion-MNIST ({len(x_train):,} train / "
        f"{len(data[2]):,} test), Adam lr {LR:g}, batch {BATCH}, seed {args.seed}, "
        f"{args.epochs} epochs, the same batch order in both"
    )
    if args.same_init:
        print("         --same-init: fastconv starts from torch's initial weights")
    if torch is not None:
        print(
            f"         torch runs with this process's malloc setting ({_malloc_setting()}); "
            "rerun with MALLOC_MMAP_THRESHOLD_=2000000000 MALLOC_TRIM_THRESHOLD_=4000000000 "
            "for its tuned-allocator speed"
        )
    monitor = CpuMonitor()
    fc_busy: list[float | None] = []
    th_busy: list[float | None] = []

    def busy(into: list) -> None:
        iv = monitor.interval()
        into.append(None if iv is None else iv[0] + iv[1])

    print("\n== fastconv ==", flush=True)
    model, opt, _ = fastconv_setup(args.seed)
    if args.same_init and torch is not None:
        torch.manual_seed(args.seed)
        sd = torch_keras_cnn(torch).state_dict()
        model.load_state_dict({k: v.detach().numpy().copy() for k, v in sd.items()})
    monitor.interval()
    fc = fit(
        model, opt, data, args.epochs, BATCH, args.seed, progress=not args.no_progress,
        log=True, on_epoch=lambda _: busy(fc_busy),
    )  # fmt: skip
    th: list[dict[str, float]] = []
    if torch is not None:
        print("\n== torch ==", flush=True)

        def show(s: dict[str, float]) -> None:
            busy(th_busy)
            print(
                f"epoch {s['epoch']:>2}/{args.epochs}  loss {s['train_loss']:.4f}  "
                f"test acc {100 * s['test_accuracy']:6.2f}%  time {s['time']:6.1f} s "
                f"({s['images_per_s']:,.0f} img/s)",
                flush=True,
            )

        monitor.interval()
        th = torch_fit(torch, data, args.epochs, args.seed, on_epoch=show)

    print("\n        test accuracy       train img/s         train loss        other CPUs busy")
    print("epoch  fastconv    torch  fastconv    torch  fastconv    torch  fastconv    torch")
    for i, e in enumerate(fc.epochs):
        t = th[i] if th else {}
        tb = th_busy[i] if th_busy else None
        print(
            f"{e.epoch:>5}  {100 * e.test_accuracy:7.2f}% "
            + (_fmt(100 * t["test_accuracy"], ".2f", 7) + "%" if t else f"{'-':>8}")
            + f"  {e.images_per_s:8,.0f} "
            + _fmt(t.get("images_per_s"), ",.0f", 8)
            + f"  {e.train_loss:8.4f} "
            + _fmt(t.get("train_loss"), ".4f", 8)
            + "  "
            + _fmt(fc_busy[i], ".2f", 8)
            + " "
            + _fmt(tb, ".2f", 8)
        )
    print(
        "(other CPUs busy: CPUs used by other processes, or stolen, during that epoch; "
        "more than ~0.1 means the speed of that epoch is disturbed)"
    )
    fc_rate = sum(len(x_train) for _ in fc.epochs) / sum(e.time for e in fc.epochs)
    fc_med = statistics.median(e.images_per_s for e in fc.epochs)
    best = fc.best_epoch
    assert best is not None
    print(
        f"\nfastconv: final {100 * fc.final_accuracy:.2f}%, best {100 * best.test_accuracy:.2f}% "
        f"(epoch {best.epoch}); {fc_rate:,.0f} img/s over the run, median epoch {fc_med:,.0f}"
    )
    if th:
        th_rate = sum(len(x_train) for _ in th) / sum(t["time"] for t in th)
        th_med = statistics.median(t["images_per_s"] for t in th)
        tbest = max(th, key=lambda t: t["test_accuracy"])
        print(
            f"torch:    final {100 * th[-1]['test_accuracy']:.2f}%, "
            f"best {100 * tbest['test_accuracy']:.2f}% (epoch {tbest['epoch']}); "
            f"{th_rate:,.0f} img/s over the run, median epoch {th_med:,.0f} "
            f"({_malloc_setting()} malloc)"
        )
        print(
            f"speed:    fastconv/torch {fc_rate / th_rate:.2f}x over the run, "
            f"{fc_med / th_med:.2f}x by median epoch"
        )
    if args.epochs == 10 and len(x_train) == 60000:
        ok = fc.final_accuracy >= TARGET_ACCURACY
        print(
            f"target:   fastconv >= {100 * TARGET_ACCURACY:.1f}% after 10 epochs: "
            f"{'met' if ok else 'NOT met'} ({100 * fc.final_accuracy:.2f}%)"
        )
    return 0


# --------------------------------------------------------------------------
# One training step, timed
# --------------------------------------------------------------------------


def step_batches(data: Sequence[np.ndarray] | None, count: int = 16) -> list:
    """``count`` batches of 128: real Fashion-MNIST ones when available, else random."""
    if data is not None:
        x, y = data[0], data[1]
        gen = datasets.batches(x, y, BATCH, shuffle=True, seed=SEED, drop_last=True)
        return [b for _, b in zip(range(count), gen)]
    rng = np.random.default_rng(SEED)
    return [
        (rng.random((BATCH, 1, 28, 28), dtype=np.float32), rng.integers(0, 10, BATCH))
        for _ in range(count)
    ]


def rotating_step(model: Any, opt: Any, loss_fn: Any, batches: list) -> Any:
    """One training step per call, on the next of ``batches`` (either library)."""
    model.train()
    state = {"i": 0}

    def step() -> None:
        x, y = batches[state["i"] % len(batches)]
        state["i"] += 1
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()

    return step


def make_fastconv_step(batches: list) -> tuple[Any, Any]:
    model, opt, loss_fn = fastconv_setup()
    tensors = [(fastconv.Tensor(x), y) for x, y in batches]
    return rotating_step(model, opt, loss_fn, tensors), model


def make_torch_step(torch: Any, batches: list) -> Any:
    model, opt, loss_fn = torch_setup(torch)
    tensors = [(torch.from_numpy(x), torch.from_numpy(np.asarray(y))) for x, y in batches]
    return rotating_step(model, opt, loss_fn, tensors)


def measure_steps(
    thread_counts: Sequence[int], repeats: int, data: Sequence[np.ndarray] | None, torch: Any
) -> dict[str, dict[str, float | None]]:
    """Median seconds per step of fastconv and torch at each thread count."""
    batches = step_batches(data)
    out: dict[str, dict[str, float | None]] = {}
    for t in thread_counts:
        fastconv.set_num_threads(t)
        fns = [make_fastconv_step(batches)[0]]
        if torch is not None:
            torch.set_num_threads(t)
            fns.append(make_torch_step(torch, batches))
        with limit_blas_threads(t):
            timings = time_interleaved(
                fns, repeats=repeats, warmup=3, rounds=3, settle=0.15, min_repeats=repeats
            )
        out[str(t)] = {
            "fastconv": timings[0].median,
            "torch": timings[1].median if torch is not None else None,
            "fastconv_samples": len(timings[0].samples),
        }
    return out


def profile_step(threads: int, data: Sequence[np.ndarray] | None, steps: int) -> None:
    """fastconv's step under the profiler: per-op shares and the Python overhead."""
    from fastconv import profiler

    fastconv.set_num_threads(threads)
    step, _ = make_fastconv_step(step_batches(data))
    with limit_blas_threads(threads):
        for _ in range(5):
            step()
        # The step without the profiler, to see what profiling itself costs.
        plain = []
        faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(steps):
            t0 = time.perf_counter()
            step()
            plain.append(time.perf_counter() - t0)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / steps
        with profiler.Profiler() as prof:
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            wall = time.perf_counter() - t0
    kernels = float(prof.kernel_time())
    per_step, kern_step = wall / steps, kernels / steps
    overhead = per_step - kern_step
    print(f"\nfastconv's step under the profiler, {threads} thread(s), {steps} steps:")
    print(prof.table(wall, steps=steps))
    verdict = "OK" if overhead <= OVERHEAD_BUDGET * per_step else "OVER BUDGET"
    print(
        f"  step {1e3 * per_step:.2f} ms under the profiler "
        f"(median {1e3 * statistics.median(plain):.2f} ms without), in kernels "
        f"{1e3 * kern_step:.2f} ms: Python overhead {1e3 * overhead:.2f} ms = "
        f"{100 * overhead / per_step:.1f}% of the step (budget {100 * OVERHEAD_BUDGET:.0f}%: "
        f"{verdict}); {faults:,.0f} minor page faults per step (fresh memory touched; "
        "FASTCONV_OUTPUT_CACHE_MB=0 turns off the output-buffer cache)"
    )


def run_child_steps(args: argparse.Namespace, env_malloc: str) -> dict | None:
    """The step timings in a child process with the other malloc setting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    if env_malloc == "tuned":
        env.update(TUNED_MALLOC)
    pkg_parent = str(Path(fastconv.__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_parent + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--step-only", _CHILD_FLAG,
        "--threads-list", ",".join(map(str, args.threads_list)), "--repeats", str(args.repeats),
    ]  # fmt: skip
    if args.data_dir:
        cmd += ["--data-dir", args.data_dir]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False, timeout=1200)
    if r.returncode != 0:
        print(f"child with {env_malloc} malloc failed:\n{r.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(r.stdout.strip().splitlines()[-1])


def run_step_only(args: argparse.Namespace, data: Sequence[np.ndarray] | None, torch: Any) -> int:
    here = _malloc_setting()
    if getattr(args, "_child_json", False):
        print(json.dumps(measure_steps(args.threads_list, args.repeats, data, torch)))
        return 0
    what = "Fashion-MNIST batches" if data is not None else "random batches (no Fashion-MNIST)"
    print(
        f"\none training step of the Keras MNIST CNN: forward, cross-entropy, backward, Adam; "
        f"batch {BATCH}, a rotation of 16 {what}; median of {args.repeats} steps after 3 "
        f"warm-up steps, fastconv and torch interleaved in 3 blocks"
    )
    results = {here: measure_steps(args.threads_list, args.repeats, data, torch)}
    other = "tuned" if here != "tuned" else "default"
    if not args.no_child:
        child = run_child_steps(args, other)
        if child is not None:
            results[other] = child
    print(
        f"\n{'threads':>7}  {'malloc':<8} {'fastconv ms':>11} {'img/s':>7}  "
        f"{'torch ms':>9} {'img/s':>7}  {'torch/fastconv':>14}"
    )
    for t in args.threads_list:
        for malloc in ("default", "tuned", "custom"):
            if malloc not in results:
                continue
            r = results[malloc][str(t)]
            fc, th = r["fastconv"], r["torch"]
            line = f"{t:>7}  {malloc:<8} {1e3 * fc:11.2f} {BATCH / fc:7,.0f}  "
            if th is not None:
                line += f"{1e3 * th:9.2f} {BATCH / th:7,.0f}  {th / fc:13.2f}x"
            print(line)
    print(
        "malloc: default = glibc's defaults; tuned = "
        + " ".join(f"{k}={v}" for k, v in TUNED_MALLOC.items())
        + " (applies to both libraries in that process)"
    )
    for t in args.threads_list:
        profile_step(t, data, args.profile_steps)
    return 0


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/train_compare.py", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--epochs", type=int, default=10, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=SEED, help="default: %(default)s")
    parser.add_argument(
        "--threads", type=int, default=None,
        help="threads for both libraries in full runs (default: fastconv's)",
    )  # fmt: skip
    parser.add_argument("--data-dir", default=None, help="folder of the Fashion-MNIST IDX files")
    parser.add_argument("--limit", type=int, default=None, help="first N training images only")
    parser.add_argument("--no-torch", action="store_true", help="fastconv only")
    parser.add_argument(
        "--same-init", action="store_true",
        help="start fastconv from torch's initial weights (separates the luck of the "
        "initial draw from differences in the implementations)",
    )  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--step-only", action="store_true", help="time one training step")
    parser.add_argument(
        "--threads-list", type=_int_list, default=[1, 2],
        help="--step-only: thread counts (default: 1,2)",
    )  # fmt: skip
    parser.add_argument("--repeats", type=int, default=30, help="--step-only: timed steps")
    parser.add_argument(
        "--profile-steps", type=int, default=20, help="--step-only: steps under the profiler"
    )
    parser.add_argument(
        "--no-child", action="store_true",
        help="--step-only: skip the child process with the other malloc setting",
    )  # fmt: skip
    parser.add_argument(_CHILD_FLAG, dest="_child_json", action="store_true",
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args(argv)

    torch = None if args.no_torch else import_torch()
    try:
        data: tuple | None = datasets.fashion_mnist(args.data_dir)
    except FileNotFoundError as e:
        if not args.step_only:
            print(f"train_compare: {e}", file=sys.stderr)
            return 1
        data = None
    if data is not None and args.limit:
        data = (data[0][: args.limit], data[1][: args.limit], data[2], data[3])

    threads = fastconv.get_num_threads() if args.threads is None else args.threads
    old_threads = fastconv.get_num_threads()
    try:
        if args.step_only:
            if not args._child_json:
                with limit_blas_threads(threads) as blas:
                    print_header(
                        max(args.threads_list), blas, torch
                    )  # thread counts: see the table
            return run_step_only(args, data, torch)
        fastconv.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        with limit_blas_threads(threads) as blas:
            print_header(threads, blas, torch)
            return run_full(args, data, torch)
    finally:
        fastconv.set_num_threads(old_threads)


if __name__ == "__main__":
    sys.exit(main())
