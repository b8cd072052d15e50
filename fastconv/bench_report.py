"""What ``fastconv bench`` prints: the header (machine, method, legend), one table per
suite with its summary, and the footer.

:func:`environment` describes the machine and the build (the ``machine`` of
the JSON output, also used by ``benchmarks/train_compare.py``);
:class:`Result` is one strategy on one layer-op (a cell of the table, a
record of ``--json``); :class:`Table` prints one row per layer and op with
one column per strategy as results arrive; :func:`summary_lines` gives each
strategy's geometric-mean speed-up over the reference and over torch;
:class:`Progress` is the progress bar on stderr. Tests:
``tests/test_bench_report.py``.
"""

from __future__ import annotations

import os
import platform
import sys
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import numpy as np

import fastconv
from fastconv._timing import BUSY_CPUS, geometric_mean
from fastconv.bench_cases import Settings
from fastconv.bench_strategies import Strategy

__all__ = [
    "Progress",
    "Result",
    "Table",
    "environment",
    "print_footer",
    "print_header",
    "summary_lines",
]


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def _allocator() -> str:
    """Which malloc the process runs with and its tuning (first-touch costs depend on it)."""
    preload = os.environ.get("LD_PRELOAD", "")
    for name in ("jemalloc", "tcmalloc", "mimalloc"):
        if name in preload:
            return f"{name} (LD_PRELOAD)"
    libc, version = platform.libc_ver()
    base = f"{libc} {version} malloc".strip() if libc else "system malloc"
    tuned = [f"{k}={v}" for k, v in sorted(os.environ.items()) if k.startswith("MALLOC_")]
    return f"{base}, " + (" ".join(tuned) if tuned else "default settings (no MALLOC_* tuning)")


def environment(threads: int, blas_note: str, torch_mod: Any = None) -> dict[str, Any]:
    """Everything the header prints, as a dict (also stored in the JSON output)."""
    cfg = fastconv.show_config()
    try:
        ncpu = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        ncpu = os.cpu_count() or 0
    try:
        load = " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        load = "n/a"
    env: dict[str, Any] = {
        "fastconv_version": fastconv.__version__,
        "isa_active": cfg.get("isa_active"),
        "isa_detected": cfg.get("isa_detected"),
        "isas_compiled": cfg.get("isas_compiled"),
        "openmp_runtime": cfg.get("openmp_runtime"),
        "threads": threads,
        "cpu": _cpu_model(),
        "cpus_available": ncpu,
        "load_average": load,
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_note,
        "allocator": _allocator(),
        "kernels": cfg.get("kernels", {}),
    }
    if torch_mod is not None:
        env["torch"] = torch_mod.__version__
        env["torch_threads"] = torch_mod.get_num_threads()
    return env


def print_header(
    env: dict[str, Any],
    settings: Settings,
    strategies: Sequence[Strategy],
    skipped: dict[str, str],
    out: TextIO,
) -> None:
    """The lines above the tables: build, machine, libraries, timing method, then the
    legend (what a cell holds, each strategy, the skipped ones and why)."""

    def p(line: str = "") -> None:
        # Long lines (several BLAS libraries loaded) wrap under the value column.
        print(textwrap.fill(line, 119, subsequent_indent=" " * 9) if line else "", file=out)

    p(
        f"fastconv {env['fastconv_version']}  ISA {env['isa_active']} "
        f"(detected {env['isa_detected']}; compiled {','.join(env['isas_compiled'] or [])})  "
        f"threads {env['threads']} ({env['openmp_runtime']})"
    )
    p(f"CPU      {env['cpu']}, {env['cpus_available']} CPUs, load average {env['load_average']}")
    if env.get("fp32_peak_gflops"):
        p(f"peak     FP32 FMA {env['fp32_peak_gflops']:.1f} GFLOP/s (probe, {env['threads']} thr.)")
    p(f"numpy    {env['numpy']}, BLAS: {env['blas']}")
    if "torch" in env:
        p(f"torch    {env['torch']}, {env['torch_threads']} threads")
    p(f"malloc   {env['allocator']}")
    p(
        f"timing   {settings.mode} mode: {settings.warmup} warm-up call (its result checked), "
        f"then up to {settings.repeats} samples ({settings.max_time:g} s budget) per cell"
    )
    blocks = "1 block" if settings.rounds == 1 else f"{settings.rounds} interleaved blocks"
    p(
        f"         in {blocks}, each after {settings.settle:g} s of untimed settling calls "
        "when another thread pool ran last; median reported"
    )
    p()
    p("legend   cell = median ms, then GFLOP/s (GB/s for pools); * = fastest in the row;")
    p("         ! = result differs from the baseline's (see --json); - = op not implemented;")
    p(
        f"         skip = quick mode: conv op above {settings.quick_max_flops / 1e9:g} GFLOP "
        "(--full, or naming the strategy, runs it);"
    )
    p(f"         busy N = other processes used N CPUs (>= {BUSY_CPUS:g}) while the row ran;")
    p("         GFLOP/s: conv 2*N*K*P*Q*C/G*R*S per pass (bwd = 2 passes), linear 2*B*in*out")
    for s in strategies:
        p(f"  {s.name:<10} {s.description}")
    for name, reason in skipped.items():
        p(f"  {name:<10} SKIPPED: {_clip(reason, 96)}")


@dataclass
class Result:
    """One strategy on one layer-op: a cell of the table and one record of ``--json``."""

    suite: str
    layer: str
    op: str
    strategy: str
    kernel: str = ""
    work: float = 0.0  # FLOPs or bytes of one call
    unit: str = "GFLOP/s"
    #: "ok", "MISMATCH (...)", "error: ...", "unsupported" or "skipped (...)".
    status: str = "ok"
    samples_ms: list[float] = field(default_factory=list)
    median_ms: float | None = None
    rate: float | None = None  # work / median, in units of `unit`
    #: Bytes the strategy held at most during its first call beyond inputs and
    #: outputs (fastconv: its workspaces; reference and cython: NumPy's
    #: allocations, from tracemalloc; torch: not measured).
    extra_bytes: int | None = None
    best: bool = False  # the fastest of its row
    speedup_vs_reference: float | None = None  # reference median / this median
    speedup_vs_torch: float | None = None
    #: CPUs used by other processes (and stolen) while the row was timed.
    busy_cpus: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.median_ms is not None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


def _x(v: float) -> str:
    """A speed-up ratio with 3 significant digits: ``0.93x``, ``13.0x``, ``108x``."""
    return f"{v:.2f}x" if v < 10 else f"{v:.1f}x" if v < 100 else f"{v:.0f}x"


def _ms(v: float) -> str:
    """Milliseconds with 3-4 significant digits in at most 5 characters (below 100 s)."""
    digits = 3 if v < 10 else 2 if v < 100 else 1 if v < 1000 else 0
    return f"{v:.{digits}f}"


def _rate(v: float) -> str:
    return f"{v:.1f}" if v < 100 else f"{v:.0f}"


class Table:
    """One suite's table, printed row by row: layer, op, then one 11-character cell per
    strategy (median ms, rate, mark) and ``busy N`` when the machine was busy: 119
    characters with 7 strategies."""

    CELL = 11

    def __init__(self, strategies: Sequence[str]) -> None:
        self.strategies = list(strategies)

    def _line(self, layer: str, op: str, cells: Sequence[str], note: str = "") -> str:
        body = " ".join(f"{c:>{self.CELL}}" for c in cells)
        return f"{layer:<14} {op:<10} {body}{note}".rstrip()

    def header(self) -> str:
        return self._line("layer", "op", self.strategies)

    def cell(self, r: Result | None) -> str:
        if r is None or r.status == "unsupported":
            return "-"
        if r.status.startswith("skipped"):
            return "skip"
        if r.median_ms is None:
            return "error"
        rate = _rate(r.rate) if r.rate is not None else "-"
        mark = "*" if r.best else "!" if r.status != "ok" else " "
        return f"{_ms(r.median_ms):>5} {rate:>4}{mark}"

    def row(self, results: Sequence[Result]) -> str:
        """The line of one layer-op (``results`` of any strategies, in any order)."""
        by_name = {r.strategy: r for r in results}
        first = results[0]
        busy = first.busy_cpus
        note = f" busy {busy:.1f}" if busy is not None and busy >= BUSY_CPUS else ""
        cells = [self.cell(by_name.get(n)) for n in self.strategies]
        return self._line(first.layer, first.op, cells, note)


def _ratio_text(ratios: list[float], against: str) -> str:
    if not ratios:
        return ""
    g = geometric_mean(ratios)
    return f"vs {against} {_x(g)} over {len(ratios)} ops ({_x(min(ratios))}-{_x(max(ratios))})"


def summary_lines(results: Sequence[Result], strategies: Sequence[str]) -> list[str]:
    """Per strategy, the geometric-mean speed-up over the reference and over torch (on
    the ops both ran correctly), then how many rows ran on a busy machine."""
    lines = []
    for name in strategies:
        mine = [r for r in results if r.strategy == name and r.ok]
        parts = [
            _ratio_text([r.speedup_vs_reference for r in mine if r.speedup_vs_reference], "ref"),
            _ratio_text([r.speedup_vs_torch for r in mine if r.speedup_vs_torch], "torch"),
        ]
        parts = [p for p in parts if p]
        if parts:
            lines.append(f"  {name:<10} " + "; ".join(parts))
    rows = {(r.layer, r.op): r.busy_cpus for r in results}
    busy = [b for b in rows.values() if b is not None and b >= BUSY_CPUS]
    if busy:
        lines.append(
            f"  busy: {len(busy)} of {len(rows)} rows ran while other processes used "
            f"{min(busy):.1f}-{max(busy):.1f} CPUs: their times are unreliable, rerun them"
        )
    return lines


def print_footer(elapsed: float, load: tuple[float, float] | None, out: TextIO) -> None:
    """The last line: the wall time and the load other processes put on the machine
    (``load`` from :class:`fastconv._timing.CpuMonitor` over the whole run)."""
    print(f"wall time {elapsed:.1f} s", file=out, end="")
    if load is None:
        print(file=out)
        return
    others, steal = load
    print(f"; other processes used {others:.2f} CPUs on average, steal {steal:.2f}", file=out)
    if others + steal >= BUSY_CPUS:
        print(
            "WARNING: the machine was busy; rows marked busy are unreliable, rerun them", file=out
        )


class Progress:
    """A one-line progress bar on ``stream`` (default stderr), drawn only when it is a
    terminal: ``[#####.....] 12/40 mnist.conv2 bwd_input  ETA 20 s``."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.enabled = bool(isatty and isatty())
        self.total, self.done, self.start = max(1, total), 0, time.perf_counter()
        self.shown = False

    def text(self, label: str) -> str:
        width = 20
        filled = width * self.done // self.total
        bar = "#" * filled + "." * (width - filled)
        elapsed = time.perf_counter() - self.start
        eta = f"  ETA {elapsed / self.done * (self.total - self.done):.0f} s" if self.done else ""
        return f"[{bar}] {self.done}/{self.total} {label}{eta}"[:119]

    def show(self, label: str) -> None:
        """Draw the bar for the row about to run."""
        if self.enabled:
            self.stream.write("\r\033[K" + self.text(label))
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        """Erase the bar (before a table line is printed to the same terminal)."""
        if self.shown:
            self.stream.write("\r\033[K")
            self.stream.flush()
            self.shown = False

    def advance(self) -> None:
        self.done += 1
