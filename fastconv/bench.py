"""Benchmark fastconv's kernels against the NumPy reference (and PyTorch) on named layers.

Run ``python -m fastconv.bench`` (or ``fastconv bench``). For every layer of
the chosen suites (see :mod:`fastconv._shapes`) and every pass, each contender
is timed side by side in the same run:

* ``fastconv[direct]`` and ``fastconv[im2col]`` for convolutions, marked with
  ``*`` when it is the algorithm ``algo="auto"`` picks for that pass (when
  auto would mix algorithms across the passes of a full backward, a separate
  ``fastconv[auto]`` row is timed); ``fastconv`` for pooling and linear;
* ``reference``: :mod:`fastconv.reference`, plain NumPy on OpenBLAS, the
  baseline of the speed-up column;
* ``torch`` with ``--torch`` when PyTorch is importable.

Method: inputs are allocated once per layer and pass; every contender is
called once as a warm-up (its result is checked against the baseline's), then
each contender's samples are taken in interleaved blocks (A B C A B C ...) so
that drifts of a noisy machine hit all of them alike, and the median is
reported. Each block starts with 0.15 s of untimed calls: on a 2-core machine
the thread pool that ran last (OpenBLAS spins for up to ~0.1 s after a call)
slows the next library's first calls by milliseconds, so per-call A B A B
interleaving would measure thread hand-over rather than kernels (see
:func:`time_interleaved`). A contender stops after ``--repeats`` samples, or
earlier once its samples add up to the per-row time budget (at least one
sample is always taken). The ops allocate their outputs on every call (the
API has no ``out=``), so every contender pays its allocations, as a caller
would.

The fastconv thread count (``--threads``, default fastconv's) is also imposed
on NumPy's BLAS with threadpoolctl when it is installed (the ``[bench]``
extra) and on PyTorch, so the comparison is like for like.

Rates: a convolution pass (forward, backward-input or backward-weight) costs
``2*N*K*P*Q*(C/G)*R*S`` FLOPs; ``backward`` (all three gradients) is counted
as two passes (the bias sum is not counted). Pools report the bytes they must
read and write (input, output and int64 indices) per second.

Modules: :mod:`fastconv._timing` (the timing harness), :mod:`fastconv.bench_cases`
(suites, passes, contenders), :mod:`fastconv.bench_report` (header, table,
footer); this one measures each layer-pass and holds the command line.
``--suite gemm`` runs :mod:`fastconv.bench_gemm`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Callable

import numpy as np

import fastconv
from fastconv import _core
from fastconv._shapes import SUITES, LayerShape

# The timing harness and the cases live in their own modules; these names are
# re-exported because they have always been importable from here.
from fastconv._timing import CpuMonitor, Timing, limit_blas_threads, time_interleaved
from fastconv.bench_cases import (
    CONV_ALGOS,
    DEFAULT_SUITES,
    Contender,
    KernelNames,
    Settings,
    layer_contenders,
    layer_passes,
    make_contenders,
    passes_of,
    select_shapes,
)
from fastconv.bench_report import Row, Table, environment, print_footer, print_header

__all__ = [
    "CONV_ALGOS",
    "DEFAULT_SUITES",
    "Contender",
    "CpuMonitor",
    "Row",
    "Settings",
    "Timing",
    "add_arguments",
    "environment",
    "limit_blas_threads",
    "main",
    "make_contenders",
    "passes_of",
    "run",
    "run_benchmark",
    "select_shapes",
    "settings_from_args",
    "time_interleaved",
]

# --------------------------------------------------------------------------
# Measuring one layer-pass
# --------------------------------------------------------------------------


def _as_arrays(result: object) -> list[np.ndarray]:
    items = result if isinstance(result, (tuple, list)) else (result,)
    arrays = []
    for a in items:
        if a is None:
            continue
        if hasattr(a, "numpy"):  # torch tensor
            a = a.numpy()
        arrays.append(np.asarray(a))
    return arrays


def _mismatch(result: object, expected: list[np.ndarray]) -> str | None:
    """A note when ``result`` differs from the baseline's (relative to the data's scale)."""
    got = _as_arrays(result)
    if len(got) != len(expected):
        return f"MISMATCH ({len(got)} outputs vs {len(expected)})"
    for g, e in zip(got, expected):
        if g.shape != e.shape:
            return f"MISMATCH (shape {g.shape} vs {e.shape})"
        if e.dtype.kind in "iu":
            if not np.array_equal(g, e):
                return "MISMATCH (indices differ)"
            continue
        scale = max(1.0, float(np.abs(e).max(initial=0.0)))
        err = float(np.abs(g.astype(np.float64) - e).max(initial=0.0)) / scale
        if not err <= 1e-4:  # float32 sums of up to a few thousand terms
            return f"MISMATCH (rel. error {err:.1e})"
    return None


def _with_workspace_peak(label: str, fn: Callable[[], object], peaks: dict[str, int]):
    """fn, whose first call starts from released workspaces and records their peak bytes."""
    first = [True]

    def call() -> object:
        if not first[0]:
            return fn()
        first[0] = False
        _core.release_workspace()
        _core._reset_workspace_peak()
        result = fn()
        peaks[label] = int(_core.workspace_bytes()["peak"])
        return result

    return call


def _measure(
    contenders: list[Contender], settings: Settings, peaks: dict[str, int] | None = None
) -> dict[str, tuple[Timing, str]]:
    """Time the runnable contenders; returns label -> (timing, status).

    The first warm-up result of every contender is checked against the
    baseline's (status ``MISMATCH ...`` when it differs).
    """
    runnable = [c for c in contenders if c.fn is not None]
    # The baseline warms up first so that the others can be checked against it.
    runnable.sort(key=lambda c: c.label != settings.baseline)
    has_base = bool(runnable) and runnable[0].label == settings.baseline
    expected: list[np.ndarray] = []
    notes: dict[str, str] = {}

    def check(i: int, result: object) -> None:
        if has_base and i == 0:
            expected.extend(_as_arrays(result))
        elif has_base:
            note = _mismatch(result, expected)
            if note:
                notes[runnable[i].label] = note

    fns = [
        _with_workspace_peak(c.label, c.fn, peaks)  # type: ignore[arg-type]
        if peaks is not None and c.label.startswith("fastconv")
        else c.fn
        for c in runnable
    ]
    timings = time_interleaved(
        fns,  # type: ignore[arg-type]
        repeats=settings.repeats,
        max_time=settings.max_time,
        min_repeats=settings.min_repeats,
        warmup=settings.warmup,
        rounds=settings.rounds,
        settle=settings.settle,
        on_warmup=check,
    )
    return {c.label: (t, notes.get(c.label, "ok")) for c, t in zip(runnable, timings)}


def _rows_for(
    s: LayerShape,
    pass_: str,
    settings: Settings,
    kernels: KernelNames,
    torch: Any,
    monitor: CpuMonitor,
) -> list[Row]:
    contenders, work, unit = layer_contenders(s, pass_, settings, kernels, torch)
    monitor.interval()
    peaks: dict[str, int] = {}
    results = _measure(contenders, settings, peaks)
    load = monitor.interval()
    base = results.get(settings.baseline)
    base_median = base[0].median if base else None
    scale = 1e9  # GFLOP/s or GB/s
    rows = []
    for c in contenders:
        row = Row(s.name, pass_, c.label, c.kernel, work=work, unit=unit, auto=c.auto)
        if c.label not in results:
            row.status = c.skip or "skipped"
        else:
            timing, row.status = results[c.label]
            med = timing.median
            row.median_ms = med * 1e3
            row.samples_ms = [t * 1e3 for t in timing.samples]
            row.rate = work / med / scale if work else None
            row.speedup = base_median / med if base_median else None
            row.extra_bytes = peaks.get(c.label)
            if load is not None:
                row.background_cpus, row.steal_cpus = load
        rows.append(row)
    return rows


def _import_torch(threads: int) -> Any:
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def run_benchmark(
    shapes: Sequence[LayerShape],
    settings: Settings,
    threads: int,
    out: Any = None,
) -> tuple[dict[str, Any], list[Row]]:
    """Time every pass of ``shapes`` and print the table as it goes.

    Returns the environment dict (the header) and all rows.
    """
    out = out or sys.stdout
    fastconv.set_num_threads(threads)
    torch = None
    if settings.torch or "torch" in settings.contenders:
        torch = _import_torch(threads)
        if torch is not None and "torch" not in settings.contenders:
            settings = replace(settings, contenders=(*settings.contenders, "torch"))
    kernels = KernelNames()
    table = Table(settings.baseline)
    rows: list[Row] = []
    start = time.perf_counter()
    run_monitor, row_monitor = CpuMonitor(), CpuMonitor()
    with limit_blas_threads(threads) as blas_note:
        env = environment(threads, blas_note, torch)
        print_header(env, settings, out)
        print(f"\n{table.header()}", file=out)
        for s in shapes:
            flops = f", {s.flops / 1e9:.3f} GFLOP per pass" if hasattr(s, "flops") else ""
            print(f"# {s.name}: {s.describe()}{flops}", file=out)
            for pass_ in layer_passes(s, settings):
                for row in _rows_for(s, pass_, settings, kernels, torch, row_monitor):
                    rows.append(row)
                    print(table.format(row), file=out, flush=True)
    elapsed = time.perf_counter() - start
    load = run_monitor.interval()
    env["wall_time_s"] = elapsed
    env["background_cpus"], env["steal_cpus"] = load if load else (None, None)
    print_footer(table, rows, settings.baseline, elapsed, load, out)
    return env, rows


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark options to ``parser`` (shared by ``fastconv bench``)."""
    parser.add_argument(
        "--suite",
        action="append",
        choices=[*SUITES, "all", "gemm"],
        help="layer suite(s) to run; repeatable (default: mnist and alexnet); "
        "'gemm' runs the GEMM suite (fastconv.bench_gemm) instead",
    )
    parser.add_argument(
        "--layer",
        action="append",
        metavar="GLOB",
        help="only layers whose name matches, e.g. 'alexnet.conv*' (repeatable)",
    )
    parser.add_argument("--threads", type=int, help="threads for fastconv, BLAS and torch")
    parser.add_argument(
        "--batch",
        type=int,
        metavar="N",
        help="batch size of every layer instead of the suite's (e.g. 64 for alexnet)",
    )
    parser.add_argument("--repeats", type=int, help="samples per row (overrides the mode)")
    parser.add_argument("--max-time", type=float, help="time budget per row in seconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="default: few samples; big conv layers run only auto's algorithm",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every algorithm on every layer, single-gradient passes, more samples",
    )
    parser.add_argument("--torch", action="store_true", help="add PyTorch rows when installed")
    parser.add_argument(
        "--isa", choices=["scalar", "avx2", "avx512"], help="force fastconv's kernel ISA"
    )
    parser.add_argument("--json", metavar="PATH", help="write the header and all rows as JSON")
    parser.set_defaults(mode="quick")
    return parser


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Build :class:`Settings` from parsed options (``overrides`` win)."""
    kw: dict[str, Any] = {"torch": bool(getattr(args, "torch", False))}
    if args.repeats is not None:
        kw["repeats"] = max(1, args.repeats)
    if args.max_time is not None:
        kw["max_time"] = args.max_time
    kw.update(overrides)
    settings = Settings.full(**kw) if args.mode == "full" else Settings.quick(**kw)
    settings.min_repeats = min(settings.min_repeats, settings.repeats)
    return settings


def run(args: argparse.Namespace, **overrides: Any) -> int:
    """Run the benchmark described by parsed options; returns the exit status.

    ``overrides`` replace :class:`Settings` fields (e.g. ``contenders``,
    ``baseline``). fastconv's thread count and ISA are restored afterwards.
    """
    if args.suite and "gemm" in args.suite:
        if len(args.suite) > 1:
            print("--suite gemm runs alone", file=sys.stderr)
            return 2
        from fastconv import bench_gemm

        old_isa = fastconv.show_config()["isa_active"]
        try:
            if args.isa:
                _core._set_isa(args.isa)
            return bench_gemm.run(
                argparse.Namespace(
                    threads=args.threads, repeats=args.repeats, quick=args.mode == "quick"
                )
            )
        finally:
            _core._set_isa(old_isa)
    threads = fastconv.get_num_threads() if args.threads is None else args.threads
    if threads < 1:
        print(f"--threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    try:
        shapes = select_shapes(args.suite, args.layer, getattr(args, "batch", None))
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if not shapes:
        print("no layer matches the given --suite/--layer", file=sys.stderr)
        return 2
    settings = settings_from_args(args, **overrides)
    old_threads, old_isa = fastconv.get_num_threads(), fastconv.show_config()["isa_active"]
    try:
        if args.isa:
            _core._set_isa(args.isa)
        env, rows = run_benchmark(shapes, settings, threads)
    finally:
        fastconv.set_num_threads(old_threads)
        _core._set_isa(old_isa)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"environment": env, "rows": [r.to_dict() for r in rows]}, f, indent=1)
        print(f"wrote {len(rows)} rows to {args.json}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m fastconv.bench``."""
    parser = add_arguments(
        argparse.ArgumentParser(
            prog="python -m fastconv.bench",
            description=__doc__.split("\n\n")[0] if __doc__ else None,
        )
    )
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
