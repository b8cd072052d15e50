"""``fastconv bench --plot PATH.png``: GFLOP/s per layer-op for each strategy.

One panel per suite; in each, a group of bars per layer and op (convolutions
and linear layers; pools move bytes, not FLOPs, and are left out), one bar
per strategy, on a log scale, and the FP32 FMA peak measured in the same run
(``_core.fma_peak_gflops`` at the run's thread count) as a horizontal line.
Needs matplotlib (``pip install fastconv[plot]``); it is drawn without pyplot,
so no GUI backend is touched. Test: ``tests/test_bench_plot.py``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from fastconv.bench_report import Result

__all__ = ["plot", "series"]


def series(results: Sequence[Result], strategies: Sequence[str]) -> dict[str, Any]:
    """What :func:`plot` draws: ``{suite: {"labels": [...], "gflops": {strategy: [...]}}}``,
    one label per conv or linear layer-op (``conv2 fwd``), NaN where a strategy has no
    correct measurement."""
    panels: dict[str, Any] = {}
    rows: dict[tuple[str, str, str], dict[str, float]] = {}
    for r in results:
        if r.unit != "GFLOP/s":
            continue
        cells = rows.setdefault((r.suite, r.layer, r.op), {})
        if r.ok and r.rate is not None:
            cells[r.strategy] = r.rate
    for (suite, layer, op), cells in rows.items():
        panel = panels.setdefault(suite, {"labels": [], "gflops": {s: [] for s in strategies}})
        panel["labels"].append(f"{layer.split('.', 1)[-1]} {op}")
        for s in strategies:
            panel["gflops"][s].append(cells.get(s, math.nan))
    return panels


def plot(
    results: Sequence[Result],
    strategies: Sequence[str],
    path: str,
    peak_gflops: float | None = None,
    title: str = "",
) -> dict[str, Any]:
    """Draw the panels of :func:`series` into ``path`` (PNG) and return that data."""
    from matplotlib.figure import Figure

    panels = series(results, strategies)
    n = max(1, len(panels))
    widest = max((len(p["labels"]) for p in panels.values()), default=1)
    fig = Figure(figsize=(max(7.0, 0.55 * widest * max(1, len(strategies)) / 2 + 2), 3.6 * n))
    axes = fig.subplots(n, 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(strategies))
    for ax, (suite, panel) in zip(axes, panels.items()):
        xs = range(len(panel["labels"]))
        for i, s in enumerate(strategies):
            offset = (i - (len(strategies) - 1) / 2) * width
            ax.bar([x + offset for x in xs], panel["gflops"][s], width, label=s)
        if peak_gflops:
            ax.axhline(peak_gflops, color="black", linestyle="--", linewidth=1,
                       label=f"FP32 peak {peak_gflops:.0f}")  # fmt: skip
        ax.set_yscale("log")
        ax.set_ylabel("GFLOP/s")
        ax.set_title(suite)
        ax.set_xticks(list(xs))
        ax.set_xticklabels(panel["labels"], rotation=30, ha="right", fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
        if peak_gflops:
            ax.set_ylim(top=2 * peak_gflops)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if not panels:
        axes[0].text(0.5, 0.5, "no conv or linear layer measured", ha="center")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return {"peak_gflops": peak_gflops, "panels": panels}
