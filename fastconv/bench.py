"""Benchmark CPU convolution strategies side by side on named layers: ``fastconv bench``.

Run ``fastconv bench`` (or ``python -m fastconv bench``). For every layer of
the chosen suites (:mod:`fastconv._shapes`; ``--shape`` adds any layer) and
every op (conv ``fwd``, ``bwd_input``, ``bwd_weight``; pool ``fwd``, ``bwd``;
linear ``fwd``), each strategy of the registry (:mod:`fastconv.bench_strategies`:
``reference``, ``cython``, each fastconv algorithm, ``auto``, ``torch``) is
timed side by side in the same run, and one table per suite prints a row per
layer-op with a cell per strategy, then each strategy's geometric-mean
speed-up over the reference and over torch.

Method: the inputs of a layer-op are allocated once (:mod:`fastconv.bench_cases`);
every strategy is called once as a warm-up, the baseline first (the
reference, else torch), and each result is checked against the baseline's.
Then each strategy's samples are taken in interleaved blocks (A B C A B C
...) so that drifts of a noisy machine hit all of them alike, and the median
is reported. A block that follows another library's thread pool starts with
0.15 s of untimed calls: on a 2-core machine the pool that ran last
(OpenBLAS spins for up to ~0.1 s after a call) slows the next library's first
calls by milliseconds, so per-call A B A B interleaving would measure thread
hand-over rather than kernels (see :func:`fastconv._timing.time_interleaved`);
fastconv's algorithms and the Cython loops share one OpenMP pool, so no
settling between them. A strategy stops after
``--repeats`` samples, or once its samples add up to the per-cell time budget
(at least one sample is always taken). The ops allocate their outputs on
every call, so every strategy pays its allocations, as a caller would. The
load probe (:class:`fastconv._timing.CpuMonitor`) marks rows during which
other processes used the CPUs.

The thread count (``--threads``, default fastconv's) is imposed on fastconv,
on NumPy's BLAS with threadpoolctl when it is installed (the ``[bench]``
extra) and on PyTorch, so the comparison is like for like.

Modules: :mod:`fastconv._timing` (timing harness, load probe),
:mod:`fastconv.bench_cases` (suites, ops, inputs), :mod:`fastconv.bench_strategies`
(the registry), :mod:`fastconv.bench_report` (header, tables, summaries),
:mod:`fastconv.bench_json` (``--json``), :mod:`fastconv.bench_plot`
(``--plot``); this one measures each row and holds the command line.
``--suite gemm`` runs :mod:`fastconv.bench_gemm`.
"""

from __future__ import annotations

import argparse
import sys
import time
import tracemalloc
from collections.abc import Sequence
from typing import Any, Callable

import numpy as np

import fastconv
from fastconv import _core, bench_json
from fastconv._shapes import SUITES, LayerShape, parse_shape
from fastconv._timing import CpuMonitor, limit_blas_threads, time_interleaved
from fastconv.bench_cases import (
    Case,
    KernelNames,
    Settings,
    auto_picks,
    layer_ops,
    make_case,
    select_shapes,
)
from fastconv.bench_report import (
    Progress,
    Result,
    Table,
    environment,
    print_footer,
    print_header,
    summary_lines,
)
from fastconv.bench_strategies import Strategy, parse_strategies, select, torch_module

__all__ = ["add_arguments", "main", "measure_row", "run", "run_benchmark", "settings_from_args"]

# --------------------------------------------------------------------------
# Measuring one row (one layer-op, every strategy)
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


def _mismatch(got: list[np.ndarray], expected: list[np.ndarray]) -> str | None:
    """A note when ``got`` differs from the baseline's (relative to the data's scale)."""
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


def _first_call(strategy: Strategy, fn: Callable[[], object]) -> tuple[object, int | None]:
    """Call ``fn`` once; returns its result and the peak bytes it held beyond its inputs
    and outputs (see :attr:`Strategy.memory`), or ``None`` when not measured."""
    if strategy.memory == "workspace":
        _core.release_workspace()
        _core._reset_workspace_peak()
        result = fn()
        return result, int(_core.workspace_bytes()["peak"])
    if strategy.memory == "tracemalloc" and not tracemalloc.is_tracing():
        tracemalloc.start()
        try:
            result = fn()
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        outputs = sum(a.nbytes for a in _as_arrays(result))
        return result, max(0, peak - outputs)
    return fn(), None


def _baseline_first(
    calls: list[tuple[Result, Strategy, Any]],
) -> list[tuple[Result, Strategy, Any]]:
    rank = {"reference": 0, "torch": 1}
    return sorted(calls, key=lambda c: rank.get(c[1].name, 2))


def measure_row(
    case: Case,
    strategies: Sequence[Strategy],
    settings: Settings,
    kernels: KernelNames,
    explicit: Sequence[str] = (),
    monitor: CpuMonitor | None = None,
) -> list[Result]:
    """Time every strategy on ``case``; one :class:`Result` per strategy, in their order.

    A strategy that does not implement the op is ``unsupported``; in quick
    mode one that is not ``always`` and not in ``explicit`` skips conv ops
    above ``settings.quick_max_flops``; one that raises is ``error: ...``.
    """
    s = case.shape
    results, calls = [], []
    for st in strategies:
        r = Result(s.name.split(".")[0], s.name, case.op, st.name, work=case.work, unit=case.unit)
        results.append(r)
        try:
            r.kernel = st.kernel(case, kernels)
            fn = st.bind(case)
        except Exception as e:  # a strategy must not stop the run
            r.status = f"error: {type(e).__name__}: {e}"
            continue
        big = case.kind == "conv" and s.flops > settings.quick_max_flops
        if fn is None:
            r.status = "unsupported"
        elif big and not st.always and st.name not in explicit:
            r.status = "skipped (quick mode, big layer)"
        else:
            calls.append((r, st, fn))
    if monitor is not None:
        monitor.interval()
    expected: list[np.ndarray] | None = None
    timed = []
    for r, st, fn in _baseline_first(calls):
        try:
            result, r.extra_bytes = _first_call(st, fn)
        except Exception as e:
            r.status = f"error: {type(e).__name__}: {e}"
            continue
        got = _as_arrays(result)
        del result
        if expected is None:
            expected = got
        else:
            r.status = _mismatch(got, expected) or "ok"
        timed.append((r, st, fn))
    try:
        timings = time_interleaved(
            [fn for _, _, fn in timed],
            repeats=settings.repeats,
            max_time=settings.max_time,
            min_repeats=settings.min_repeats,
            warmup=max(0, settings.warmup - 1),  # the first call above was one
            rounds=settings.rounds,
            settle=settings.settle,
            pools=[st.pool for _, st, _ in timed],
        )
    except Exception as e:
        for r, _, _ in timed:
            r.status = f"error: {type(e).__name__}: {e}"
        timings = []
    for (r, _, _), t in zip(timed, timings):
        r.samples_ms = [v * 1e3 for v in t.samples]
        r.median_ms = t.median * 1e3
        r.rate = case.work / t.median / 1e9 if case.work and t.median > 0 else None
    load = monitor.interval() if monitor is not None else None
    _compare(results, None if load is None else sum(load))
    return results


def _compare(results: list[Result], busy: float | None) -> None:
    """Fill in the speed-ups over the reference and torch, the fastest, the load."""
    ok = {r.strategy: r for r in results if r.ok}
    for r in results:
        r.busy_cpus = busy
        if not r.ok:
            continue
        for base, attr in (("reference", "speedup_vs_reference"), ("torch", "speedup_vs_torch")):
            if base in ok and base != r.strategy:
                setattr(r, attr, ok[base].median_ms / r.median_ms)
    if len(ok) > 1:
        min(ok.values(), key=lambda r: r.median_ms).best = True


# --------------------------------------------------------------------------
# A whole run
# --------------------------------------------------------------------------


def _layer_line(s: LayerShape, ops: Sequence[str]) -> str:
    """``# mnist.conv1  N=128 1->32 ...  0.050 GFLOP/pass  auto: direct/im2col/direct``."""
    line = f"# {s.name}  {s.describe()}"
    if hasattr(s, "flops"):
        line += f"  {s.flops / 1e9:.3f} GFLOP/pass"
    if s.kind == "conv":
        picks = [auto_picks(s, op)[0] for op in ops if op != "bwd"]
        line += f"  auto: {'/'.join(picks)}"
    return line


def run_benchmark(
    shapes: Sequence[LayerShape],
    settings: Settings,
    threads: int,
    strategy_names: Sequence[str] | None = None,
    out: Any = None,
    peak: float | None = None,
) -> dict[str, Any]:
    """Time every op of ``shapes`` with the strategies named (default: all available),
    print the tables as it goes, and return the JSON document of the run
    (:func:`fastconv.bench_json.document`) with the :class:`Result` records under
    ``"results"``."""
    out = out or sys.stdout
    strategies, skipped = select(strategy_names)
    explicit = list(strategy_names or ())
    fastconv.set_num_threads(threads)
    torch = torch_module()[0] if any(s.name == "torch" for s in strategies) else None
    if torch is not None:
        torch.set_num_threads(threads)
    kernels = KernelNames()
    names = [s.name for s in strategies]
    suites: dict[str, list[LayerShape]] = {}
    for s in shapes:
        suites.setdefault(s.name.split(".")[0], []).append(s)
    progress = Progress(sum(len(layer_ops(s, settings)) for s in shapes))
    results: list[Result] = []
    summary: dict[str, list[str]] = {}
    start = time.perf_counter()
    run_monitor, row_monitor = CpuMonitor(), CpuMonitor()
    with limit_blas_threads(threads) as blas_note:
        env = environment(threads, blas_note, torch)
        env["fp32_peak_gflops"] = peak
        print_header(env, settings, strategies, skipped, out)
        table = Table(names)
        for suite, layers in suites.items():
            print(f"\n== {suite}\n{table.header()}", file=out)
            mine: list[Result] = []
            for s in layers:
                ops = layer_ops(s, settings)
                print(_layer_line(s, ops), file=out, flush=True)
                for op in ops:
                    progress.show(f"{s.name} {op}")
                    row = measure_row(
                        make_case(s, op), strategies, settings, kernels, explicit, row_monitor
                    )
                    progress.clear()
                    progress.advance()
                    print(table.row(row), file=out, flush=True)
                    mine += row
            summary[suite] = summary_lines(mine, names)
            print(f"{suite}: geometric-mean speed-up per strategy", file=out)
            print("\n".join(summary[suite]), file=out)
            results += mine
    elapsed = time.perf_counter() - start
    load = run_monitor.interval()
    print(file=out)
    print_footer(elapsed, load, out)
    doc = bench_json.document(env, settings, strategies, skipped, results, summary, elapsed, load)
    doc["results"] = results
    return doc


# --------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------


def _shape_arg(text: str) -> LayerShape:
    try:
        return parse_shape(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the benchmark options to ``parser`` (shared by ``fastconv bench``)."""
    parser.add_argument(
        "--suite",
        action="append",
        choices=[*SUITES, "all", "gemm"],
        help="layer suite(s) to run; repeatable (default: mnist and alexnet, none with "
        "--shape); 'gemm' runs the GEMM suite (fastconv.bench_gemm) instead",
    )
    parser.add_argument(
        "--shape",
        action="append",
        type=_shape_arg,
        metavar="SPEC",
        help="add a layer (suite 'custom'; repeatable): N,C,H,W,K,R,S[,stride[,pad[,dilation"
        "[,groups]]]] for a conv, max:N,C,H,W,k[,stride[,pad]] or avg:... for a pool, "
        "linear:B,in,out",
    )
    parser.add_argument(
        "--strategies",
        type=parse_strategies,
        metavar="A,B,...",
        help="strategies to compare, comma-separated (default: all available): "
        "reference, cython, each fastconv algorithm, auto, torch",
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
    parser.add_argument("--repeats", type=int, help="samples per cell (overrides the mode)")
    parser.add_argument("--max-time", type=float, help="time budget per cell in seconds")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--quick",
        dest="mode",
        action="store_const",
        const="quick",
        help="default: few samples; on conv layers above 1 GFLOP only reference, auto, torch "
        "and the strategies named in --strategies run",
    )
    mode.add_argument(
        "--full",
        dest="mode",
        action="store_const",
        const="full",
        help="every strategy on every layer, plus conv 'bwd' (all gradients), more samples",
    )
    parser.add_argument(
        "--torch", action="store_true", help="add torch to --strategies (the default has it)"
    )
    parser.add_argument(
        "--isa", choices=["scalar", "avx2", "avx512"], help="force fastconv's kernel ISA"
    )
    parser.add_argument(
        "--json", metavar="PATH", help="write the run as JSON (fastconv.bench_json)"
    )
    parser.add_argument(
        "--plot", metavar="PATH", help="draw GFLOP/s per layer to a PNG (needs matplotlib)"
    )
    parser.set_defaults(mode="quick")
    return parser


def settings_from_args(args: argparse.Namespace, **overrides: Any) -> Settings:
    """Build :class:`Settings` from parsed options (``overrides`` win)."""
    kw: dict[str, Any] = {}
    if args.repeats is not None:
        kw["repeats"] = max(1, args.repeats)
    if args.max_time is not None:
        kw["max_time"] = args.max_time
    kw.update(overrides)
    settings = Settings.full(**kw) if args.mode == "full" else Settings.quick(**kw)
    settings.min_repeats = min(settings.min_repeats, settings.repeats)
    return settings


def _run_gemm(args: argparse.Namespace) -> int:
    from fastconv import bench_gemm

    old_isa = fastconv.show_config()["isa_active"]
    try:
        if args.isa:
            _core._set_isa(args.isa)
        quick = args.mode == "quick"
        ns = argparse.Namespace(threads=args.threads, repeats=args.repeats, quick=quick)
        return bench_gemm.run(ns)
    finally:
        _core._set_isa(old_isa)


def run(args: argparse.Namespace) -> int:
    """Run the benchmark described by parsed options; returns the exit status.

    fastconv's thread count and ISA are restored afterwards.
    """
    if args.suite and "gemm" in args.suite:
        if len(args.suite) > 1 or getattr(args, "shape", None):
            print("--suite gemm runs alone", file=sys.stderr)
            return 2
        return _run_gemm(args)
    threads = fastconv.get_num_threads() if args.threads is None else args.threads
    if threads < 1:
        print(f"--threads must be >= 1, got {threads}", file=sys.stderr)
        return 2
    try:
        shapes = select_shapes(
            args.suite, args.layer, args.batch, getattr(args, "shape", None) or ()
        )
    except ValueError as e:
        print(e, file=sys.stderr)
        return 2
    if not shapes:
        print("no layer matches the given --suite/--shape/--layer", file=sys.stderr)
        return 2
    names = getattr(args, "strategies", None)
    if getattr(args, "torch", False) and names is not None and "torch" not in names:
        names = [*names, "torch"]
    plot_path = getattr(args, "plot", None)
    if plot_path:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("--plot needs matplotlib: pip install 'fastconv[plot]'", file=sys.stderr)
            return 2
    settings = settings_from_args(args)
    old_threads, old_isa = fastconv.get_num_threads(), fastconv.show_config()["isa_active"]
    try:
        if args.isa:
            _core._set_isa(args.isa)
        peak = _core.fma_peak_gflops(threads) if (args.json or plot_path) else None
        doc = run_benchmark(shapes, settings, threads, names, peak=peak)
    finally:
        fastconv.set_num_threads(old_threads)
        _core._set_isa(old_isa)
    results = doc["results"]
    if args.json:
        bench_json.write(args.json, {**doc, "results": [r.to_dict() for r in results]})
        print(f"wrote {len(results)} results to {args.json}")
    if plot_path:
        from fastconv import bench_plot

        names_run = [s["name"] for s in doc["strategies"] if s["available"]]
        m = doc["machine"]
        title = f"fastconv {m['fastconv_version']}, {m['cpu']}, {m['isa_active']}, {threads} thr."
        bench_plot.plot(results, names_run, plot_path, peak, title)
        print(f"wrote {plot_path}")
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
