"""What ``fastconv bench`` prints: the header (machine and method), the table, the summary.

:func:`environment` describes the machine and the build (also stored in the
JSON output and used by ``benchmarks/train_compare.py``); :class:`Row` is one
line of the table and one record of ``--json``; :class:`Table` formats rows
in fixed-width columns as results arrive; :func:`print_footer` explains the
columns, gives each suite's geometric-mean speed-up and warns when other
processes loaded the machine.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import fastconv
from fastconv._timing import geometric_mean
from fastconv.bench_cases import Settings

__all__ = ["Row", "Table", "environment", "print_footer", "print_header"]


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


def print_header(env: dict[str, Any], settings: Settings, out: Any) -> None:
    """The lines above the table: build, machine, libraries, allocator and timing method."""

    def p(line: str) -> None:
        print(line, file=out)

    p(
        f"fastconv {env['fastconv_version']}  ISA {env['isa_active']} "
        f"(detected {env['isa_detected']}; compiled {','.join(env['isas_compiled'] or [])})  "
        f"threads {env['threads']} ({env['openmp_runtime']})"
    )
    p(f"CPU     {env['cpu']}, {env['cpus_available']} CPUs, load average {env['load_average']}")
    p(f"numpy   {env['numpy']}, BLAS: {env['blas']}")
    if "torch" in env:
        p(f"torch   {env['torch']}, {env['torch_threads']} threads")
    elif settings.torch:
        p("torch   not importable: no torch rows")
    p(f"malloc  {env['allocator']}")
    p(
        f"timing  {settings.mode} mode: {settings.warmup} warm-up call, then up to "
        f"{settings.repeats} samples (at least {settings.min_repeats}; {settings.max_time:g} s "
        f"budget) per row in {settings.rounds} interleaved blocks, each after "
        f"{settings.settle:g} s of untimed settling calls; median reported"
    )


@dataclass
class Row:
    """One line of the result table (and one record of ``--json``)."""

    layer: str
    pass_: str
    contender: str
    kernel: str
    median_ms: float | None = None
    samples_ms: list[float] = field(default_factory=list)
    work: float = 0.0  # FLOPs or bytes of one call
    unit: str = "GFLOP/s"
    rate: float | None = None  # work / median, in units of `unit`
    speedup: float | None = None  # baseline median / this median
    auto: bool = False
    status: str = "ok"
    #: Workspace bytes a fastconv contender held at most during its first call
    #: (beyond inputs and outputs; workspaces released before it).
    extra_bytes: int | None = None
    #: CPUs used by other processes (and stolen) while this layer-pass was timed.
    background_cpus: float | None = None
    steal_cpus: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["pass"] = d.pop("pass_")
        return d


class Table:
    """Fixed-width table printed row by row as results arrive."""

    def __init__(self, baseline: str) -> None:
        ratio = "vs ref" if baseline == "reference" else f"vs {baseline}"
        self.cols = (("layer", 14, "<"), ("pass", 15, "<"), ("contender", 21, "<"),
                     ("ms", 10, ">"), ("n", 3, ">"), ("bg", 4, ">"), ("rate", 15, ">"),
                     (ratio, max(8, len(ratio)), ">"), ("extra MB", 8, ">"),
                     ("kernel", 0, "<"))  # fmt: skip

    def line(self, values: Sequence[str]) -> str:
        return "  ".join(
            f"{v:{align}{width}}" for (_, width, align), v in zip(self.cols, values)
        ).rstrip()

    def header(self) -> str:
        return self.line([name for name, _, _ in self.cols])

    def format(self, row: Row) -> str:
        label = row.contender
        if row.auto and label.startswith("fastconv[") and not label.startswith("fastconv[auto"):
            label += "*"
        if row.median_ms is None:
            return self.line([row.layer, row.pass_, label, "-", "0", "", "-", "-", "", row.status])
        rate = f"{row.rate:.1f} {row.unit}" if row.rate is not None else "-"
        ratio = f"{row.speedup:.2f}x" if row.speedup is not None else "-"
        kernel = row.kernel if row.status == "ok" else f"{row.kernel}  <- {row.status}"
        bg = "" if row.background_cpus is None else f"{row.background_cpus + row.steal_cpus:.1f}"
        extra = "" if row.extra_bytes is None else f"{row.extra_bytes / 2**20:.1f}"
        return self.line([row.layer, row.pass_, label, f"{row.median_ms:.3f}",
                          str(len(row.samples_ms)), bg, rate, ratio, extra, kernel])  # fmt: skip


def _summary(rows: list[Row], baseline: str) -> list[str]:
    """Geometric-mean speed-up of what ``algo='auto'`` runs over the baseline, per suite."""
    lines = []
    suites: dict[str, list[float]] = {}
    for r in rows:
        if r.auto and r.speedup and r.contender != baseline and r.contender.startswith("fastconv"):
            suites.setdefault(r.layer.split(".")[0], []).append(r.speedup)
    for name, ratios in suites.items():
        g = geometric_mean(ratios)
        lines.append(
            f"{name}: fastconv (auto's choice) vs {baseline}: geometric mean {g:.2f}x over "
            f"{len(ratios)} layer-passes (min {min(ratios):.2f}x, max {max(ratios):.2f}x)"
        )
    return lines


def print_footer(
    table: Table,
    rows: list[Row],
    baseline: str,
    elapsed: float,
    load: tuple[float, float] | None,
    out: Any,
) -> None:
    """The lines below the table: what the columns mean, the per-suite summary, the
    wall time and the load other processes put on the machine (``load`` from
    :class:`fastconv._timing.CpuMonitor` over the whole run)."""
    print(file=out)
    print(
        "* = the algorithm algo='auto' picks for this pass; "
        "bg = CPUs used by other processes (incl. hypervisor steal) while the row ran; "
        f"{table.cols[7][0]} = {baseline} median / this median (>1: faster); "
        "rate: GFLOP/s (conv: 2*N*K*P*Q*C/G*R*S per pass, backward = 2 passes) or GB/s (pools)",
        file=out,
    )
    for line in _summary(rows, baseline):
        print(line, file=out)
    print(f"wall time {elapsed:.1f} s", file=out, end="")
    if load is not None:
        others, steal = load
        print(f"; other processes used {others:.2f} CPUs on average, steal {steal:.2f}", file=out)
        if others + steal > 0.2:
            print(
                "WARNING: the machine was busy; rows with a high bg are unreliable, rerun them",
                file=out,
            )
    else:
        print(file=out)
