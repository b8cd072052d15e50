"""fastconv.bench_report: the cells of the table, the summary lines, the busy marks and
the progress bar (drawn on a terminal only)."""

from __future__ import annotations

import io

from fastconv.bench_report import Progress, Result, Table, summary_lines


def _r(strategy: str, ms: float | None, **kw) -> Result:
    return Result("mnist", "mnist.conv1", "fwd", strategy, median_ms=ms, **kw)


def test_cells_and_busy_mark():
    table = Table(["reference", "direct", "cython", "torch"])
    rows = [
        _r("reference", 43.3961, rate=1.14, speedup_vs_torch=0.1, busy_cpus=0.6),
        _r("direct", 1.0484, rate=47.61, best=True, busy_cpus=0.6),
        _r("cython", None, status="unsupported", busy_cpus=0.6),
    ]
    line = table.row(rows)
    assert line.split() == [
        "mnist.conv1",
        "fwd",
        "43.40",
        "1.1",
        "1.048",
        "47.6*",
        "-",
        "-",
        "busy",
        "0.6",
    ]
    assert len(line) < 120
    seven = Table(["reference", "cython", "direct", "im2col", "implicit", "auto", "torch"])
    widest = [_r(n, 99999.0, rate=9999.0, busy_cpus=1.5) for n in seven.strategies]
    widest[0].layer = "custom.linear4"
    widest[0].op = "bwd_weight"
    assert len(seven.row(widest)) < 120, seven.row(widest)
    assert table.header().split() == ["layer", "op", "reference", "direct", "cython", "torch"]
    assert table.cell(_r("x", 1234.5, rate=150.2)) == " 1234  150 "
    assert table.cell(_r("x", 0.01234, rate=1.5, best=True)) == "0.012  1.5*"
    assert table.cell(_r("x", None, status="skipped (quick mode, big layer)")) == "skip"
    assert table.cell(_r("x", None, status="error: MemoryError: x")) == "error"
    quiet = [_r("direct", 1.0, rate=1.0, busy_cpus=0.1)]
    assert "busy" not in table.row(quiet)


def test_summary_against_reference_and_torch():
    rows = []
    for layer, (ref, direct, torch) in {"a": (8.0, 2.0, 4.0), "b": (2.0, 1.0, 1.0)}.items():
        for name, ms in (("reference", ref), ("direct", direct), ("torch", torch)):
            r = Result(
                "s", f"s.{layer}", "fwd", name, median_ms=ms, busy_cpus=0.5 if layer == "a" else 0.0
            )
            r.speedup_vs_reference = ref / ms if name != "reference" else None
            r.speedup_vs_torch = torch / ms if name != "torch" else None
            rows.append(r)
    lines = summary_lines(rows, ["reference", "direct", "torch"])
    assert lines[0] == "  reference  vs torch 0.50x over 2 ops (0.50x-0.50x)"
    assert (
        lines[1]
        == "  direct     vs ref 2.83x over 2 ops (2.00x-4.00x); vs torch 1.41x over 2 ops (1.00x-2.00x)"
    )
    assert lines[2] == "  torch      vs ref 2.00x over 2 ops (2.00x-2.00x)"
    assert lines[3].startswith("  busy: 1 of 2 rows ran while other processes used 0.5-0.5 CPUs")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_only_on_a_terminal():
    tty = _Terminal()
    p = Progress(4, tty)
    p.show("mnist.conv1 fwd")
    p.advance()
    p.clear()
    p.show("mnist.conv1 bwd_input")
    text = tty.getvalue()
    assert "[....................] 0/4 mnist.conv1 fwd" in text
    assert "[#####...............] 1/4 mnist.conv1 bwd_input  ETA" in text
    assert text.count("\r\033[K") == 3
    pipe = io.StringIO()
    p = Progress(4, pipe)
    p.show("x")
    p.advance()
    p.clear()
    assert pipe.getvalue() == ""


def test_ratios_keep_three_significant_digits():
    rows = []
    for layer, ref in (("a", 0.9), ("b", 13.04), ("c", 297.87)):
        r = Result("s", f"s.{layer}", "fwd", "auto", median_ms=1.0, speedup_vs_reference=ref)
        rows.append(r)
    (line,) = summary_lines(rows, ["auto"])
    assert line == "  auto       vs ref 15.2x over 3 ops (0.90x-298x)"
