"""fastconv (and PyTorch) at 2 threads on a loaded 2-core machine, against the quiet 1-thread time.

On a machine with as many cores as threads, another runnable thread takes a
core away for whole scheduler slices (4 ms here), and an OpenMP region whose
worker is off the CPU waits for it at every barrier. This script measures how
much that costs, per op, in three conditions at 2 threads:

``quiet``
    nothing else running;
``busy``
    beside one other process spinning on a core (``while True: pass``);
``matmul``
    each call right after a 2-thread ``numpy.matmul`` (OpenBLAS's workers
    keep spinning for a while after a call).

Each is reported as the ratio of its median to the quiet 1-thread median of
the same library (the target: at most 1.5 for every op in both loaded
conditions). The ops: every layer of the Keras MNIST CNN and of LeNet-5 at
batch 128 (the ``mnist`` and ``lenet5`` suites of ``fastconv bench``): conv
forward and backward (all three gradients), pool forward and backward,
linear forward; fastconv with ``algo="auto"``, PyTorch's CPU ops on the same
buffers when torch is importable.

Usage (from the repository root)::

    python benchmarks/contention.py                    # both suites, fastconv and torch
    python benchmarks/contention.py --suite mnist --no-torch --samples 31
    python benchmarks/contention.py --json contention.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np

try:
    import fastconv
except ImportError:  # run from a source checkout without installing: use the checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import fastconv

from fastconv._shapes import SUITES
from fastconv.bench_cases import layer_ops, make_case
from fastconv.bench_strategies import registry

CONDITIONS = ("quiet1", "quiet2", "busy", "matmul")
LOADED = ("busy", "matmul")
TARGET = 1.5


def _set_threads(lib: str, n: int, torch: object) -> None:
    if lib == "torch":
        torch.set_num_threads(n)  # type: ignore[attr-defined]
    else:
        fastconv.set_num_threads(n)


@contextlib.contextmanager
def spinner() -> Iterator[None]:
    """Another process spinning on one core while the block runs."""
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it start and reach the scheduler's steady state
        yield
    finally:
        proc.kill()
        proc.wait()


def _solo() -> bool:
    """Whether fastconv runs on one thread now because it saw contention."""
    state = getattr(fastconv._core, "_contention_state", None)  # absent in older builds
    return bool(state and state()["solo_for_ms"] > 0)


def _samples(
    fn: Callable[[], object],
    n: int,
    before: Callable[[], object] | None,
    budget: float,
    solo: list[bool] | None = None,
) -> list[float]:
    """n timed calls of fn (fewer if they exceed ``budget`` seconds), each after
    ``before()``; appends to ``solo`` whether fastconv was in its one-thread fallback."""
    out: list[float] = []
    spent = 0.0
    for _ in range(n):
        if before is not None:
            before()
        if solo is not None:
            solo.append(_solo())
        t0 = time.perf_counter()
        fn()
        dt = time.perf_counter() - t0
        out.append(dt)
        spent += dt
        if spent > budget and len(out) >= 5:
            break
    return out


def _flag(ratio: float) -> str:
    """``*`` after a ratio above the target."""
    return "*" if ratio > TARGET else " "


def _ops(suites: Sequence[str], torch: object) -> list[tuple[str, dict[str, Callable[[], object]]]]:
    """(row name, {library: call}) for every layer-op of the suites: conv and pool
    ``fwd`` and ``bwd`` (all gradients), linear ``fwd``; fastconv is the ``auto``
    strategy of the registry."""
    strategies = registry()
    libs = {"fastconv": strategies["auto"]}
    if torch is not None:
        libs["torch"] = strategies["torch"]
    rows = []
    for suite in suites:
        for shape in SUITES[suite]:
            for op in ("fwd", "bwd"):
                if op not in layer_ops(shape):
                    continue
                case = make_case(shape, op)
                calls = {lib: s.bind(case) for lib, s in libs.items()}
                rows.append((f"{shape.name}.{op}", {k: f for k, f in calls.items() if f}))
    return rows


def run(args: argparse.Namespace) -> int:
    torch = None
    if not args.no_torch:
        try:
            import torch as torch_mod

            torch = torch_mod
        except ImportError:
            print("torch not importable: fastconv only")
    libs = ["fastconv"] + (["torch"] if torch is not None else [])
    rows = _ops(args.suite, torch)
    # The matmul that precedes each call in the "matmul" condition: ~1 ms on 2 threads.
    m = np.random.default_rng(0).standard_normal((384, 384), dtype=np.float32)

    def matmul() -> object:
        return np.matmul(m, m)

    cfg = fastconv.show_config()
    print(
        f"fastconv {cfg['version']} ISA {cfg['isa_active']} ({cfg['openmp_runtime']}); "
        f"{os.cpu_count()} CPUs; numpy {np.__version__}"
        + (f"; torch {torch.__version__}" if torch is not None else "")
    )
    print(
        f"{args.samples} samples per cell (median; at most {args.budget:g} s per cell); "
        "ratio = median / quiet 1-thread median of the same library; "
        f"target <= {TARGET:g} in busy and matmul"
    )
    # times[lib][row][condition] = samples
    times: dict[str, dict[str, dict[str, list[float]]]] = {
        lib: {name: {} for name, _ in rows} for lib in libs
    }
    solo: dict[str, dict[str, float]] = {name: {} for name, _ in rows}
    for cond in CONDITIONS:
        threads = 1 if cond == "quiet1" else 2
        before = matmul if cond == "matmul" else None
        with spinner() if cond == "busy" else contextlib.nullcontext():
            for name, calls in rows:
                for lib in libs:
                    if lib not in calls:
                        continue
                    _set_threads(lib, threads, torch)
                    fn = calls[lib]
                    fn()  # warm-up (and wakes this library's threads)
                    if cond != "matmul":
                        time.sleep(args.settle)  # the other library's spinning threads go idle
                        fn()
                    flags: list[bool] = []
                    times[lib][name][cond] = _samples(
                        fn, args.samples, before, args.budget, flags if lib == "fastconv" else None
                    )
                    if lib == "fastconv":
                        solo[name][cond] = sum(flags) / len(flags)
        print(f"  {cond} done", file=sys.stderr)

    worst = {lib: 0.0 for lib in libs}
    header = (
        f"{'op':32s}"
        + "".join(
            f" | {lib + ' ms 1t':>13s} {'2t':>5s} {'busy':>5s} {'matmul':>6s}" for lib in libs
        )
        + " | 1-thread fallback b/m"
    )
    print(header)
    print("-" * len(header))
    records = []
    for name, _ in rows:
        line = f"{name:32s}"
        for lib in libs:
            t = times[lib][name]
            if not t:
                line += f" | {'-':>13s} {'':>5s} {'':>5s} {'':>6s}"
                continue
            med = {c: statistics.median(s) for c, s in t.items()}
            base = med["quiet1"]
            ratio = {c: med[c] / base for c in CONDITIONS}
            for c in LOADED:
                worst[lib] = max(worst[lib], ratio[c])
            line += (
                f" | {base * 1e3:13.3f} {ratio['quiet2']:5.2f} {ratio['busy']:4.2f}"
                f"{_flag(ratio['busy'])} {ratio['matmul']:5.2f}{_flag(ratio['matmul'])}"
            )
            records.append(
                {
                    "op": name,
                    "library": lib,
                    "median_ms": {c: med[c] * 1e3 for c in CONDITIONS},
                    "ratio_to_quiet1": ratio,
                    "samples_ms": {c: [v * 1e3 for v in s] for c, s in t.items()},
                    "one_thread_share": solo[name] if lib == "fastconv" else None,
                }
            )
        s = solo[name]
        line += f" | {s.get('busy', 0):4.0%} / {s.get('matmul', 0):4.0%}"
        print(line)
    print(
        "(* above the target; 1-thread fallback: share of fastconv's calls that ran on one"
        " thread because it had seen contention, busy / matmul)"
    )
    for lib in libs:
        n_over = sum(
            1
            for r in records
            if r["library"] == lib and any(r["ratio_to_quiet1"][c] > TARGET for c in LOADED)
        )
        print(f"{lib}: worst loaded ratio {worst[lib]:.2f}; ops above {TARGET:g}: {n_over}")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": cfg, "rows": records}, indent=1))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python benchmarks/contention.py", description=__doc__)
    p.add_argument(
        "--suite", action="append", choices=sorted(SUITES), help="default: mnist, lenet5"
    )
    p.add_argument("--samples", type=int, default=21, help="timed calls per cell (default 21)")
    p.add_argument("--budget", type=float, default=1.0, help="seconds per cell at most")
    p.add_argument("--settle", type=float, default=0.15, help="idle seconds before a cell")
    p.add_argument("--no-torch", action="store_true", help="fastconv only")
    p.add_argument("--json", help="write every sample to this file")
    args = p.parse_args(argv)
    args.suite = args.suite or ["mnist", "lenet5"]
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
