"""fastconv.bench, the harness behind ``fastconv bench``: the command line and what it reports.

* ``test_bench_reports_workspace_peak``: every fastconv result carries its peak
  workspace bytes, positive for every algorithm on a stride-1 layer; the
  reference's NumPy allocations are traced too.
* ``test_bench_batch_option``: ``--batch`` sets every layer's batch size.
* ``test_shape_option_runs_any_layer``: ``--shape`` adds conv, pool and linear
  layers (suite ``custom``) with all their ops; a bad spec is an argparse error.
* ``test_strategies_option``: unknown names are an argparse error naming them.
* ``test_table_layout``: legend first, one row per layer and op, one column per
  strategy, one best mark per row, lines under 120 characters, a summary line
  per strategy.
* ``test_bench_with_torch``: torch is a column and the summary compares with it.
* ``test_suite_gemm_runs_alone``, ``test_kernel_names_come_from_show_config_only``,
  ``test_bench_imports_no_cycle``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys

import pytest

import fastconv
from fastconv import bench
from fastconv.bench_cases import select_shapes

TINY = "2,4,8,8,4,3,3,1,1"  # a conv that runs in microseconds
FAST = ["--repeats", "1", "--max-time", "0"]


def _run(capsys, *argv: str) -> tuple[int, str]:
    status = bench.main([*argv, *FAST])
    return status, capsys.readouterr().out


def test_bench_reports_workspace_peak(tmp_path, capsys):
    out = tmp_path / "bench.json"
    strategies = "reference,direct,im2col,implicit,auto"
    status, printed = _run(
        capsys, "--layer", "mnist.conv3", "--strategies", strategies, "--json", str(out)
    )
    assert status == 0, printed
    results = [r for r in json.loads(out.read_text())["results"] if r["median_ms"] is not None]
    assert {r["op"] for r in results} == {"fwd", "bwd_input", "bwd_weight"}
    for r in results:
        assert isinstance(r["extra_bytes"], int) and r["extra_bytes"] >= 0, r
    fwd = {r["strategy"]: r["extra_bytes"] for r in results if r["op"] == "fwd"}
    assert fwd["im2col"] > 0 and fwd["implicit"] > 0 and fwd["direct"] > 0, fwd
    assert fwd["reference"] > 0, fwd  # the column matrix NumPy allocates


def test_bench_batch_option(capsys):
    argv = ["--suite", "lenet5", "--layer", "lenet5.fc2", "--layer", "lenet5.pool2", "--batch", "3"]
    status, printed = _run(capsys, *argv, "--strategies", "reference,auto")
    assert status == 0
    assert "lenet5.pool2  N=3 " in printed and "lenet5.fc2  B=3 " in printed, printed
    shapes = {s.name: s for s in select_shapes(["lenet5"], ["lenet5.*"], 3)}
    assert shapes["lenet5.fc2"].B == 3 and shapes["lenet5.conv2"].N == 3
    assert shapes["lenet5.pool2"].N == 3
    assert bench.main(["--layer", "lenet5.fc2", "--batch", "0"]) == 2


def test_shape_option_runs_any_layer(capsys):
    specs = ["--shape", TINY, "--shape", "max:2,4,8,8,2", "--shape", "avg:2,4,8,8,3,1,1"]
    status, printed = _run(capsys, *specs, "--shape", "linear:4,8,3", "--strategies", "auto")
    assert status == 0, printed
    rows = re.findall(r"^(custom\.\w+) +(\w+) ", printed, re.M)
    assert rows == [
        ("custom.conv1", "fwd"),
        ("custom.conv1", "bwd_input"),
        ("custom.conv1", "bwd_weight"),
        ("custom.max2", "fwd"),
        ("custom.max2", "bwd"),
        ("custom.avg3", "fwd"),
        ("custom.avg3", "bwd"),
        ("custom.linear4", "fwd"),
    ]
    assert "# custom.conv1  N=2 4->4 8x8 k3x3 s1 p1 -> 8x8" in printed
    assert "mnist." not in printed  # --shape alone runs no default suite
    rows = [line for line in printed.splitlines() if line.startswith("custom.")]
    assert not any("error" in row or "!" in row for row in rows), rows


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("8,16,32", "expected N,C,H,W,K,R,S"),
        ("8,16,32,32,x,3,3", "K='x' is not an integer"),
        ("8,16,3,3,32,5,5", "the output would be -1x-1"),
        ("8,16,32,32,32,3,3,1,1,1,3", "groups=3 must divide C=16"),
        ("max:1,1,4,4,2,2,2", "padding must be at most half"),
        ("pool:1,1,4,4,2", "unknown layer kind 'pool'"),
    ],
)
def test_bad_shape_is_an_argparse_error(capsys, spec, message):
    with pytest.raises(SystemExit) as e:
        bench.main(["--shape", spec])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--shape" in err and message in err, err


def test_strategies_option(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--strategies", "reference,fancy,auto"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "unknown strategy 'fancy'" in err and "choose from reference,cython,direct" in err
    with pytest.raises(SystemExit):
        bench.main(["--strategies", ","])
    assert "no strategy given" in capsys.readouterr().err
    ns = bench.add_arguments(argparse.ArgumentParser()).parse_args(["--strategies", "auto, im2col"])
    assert ns.strategies == ["auto", "im2col"]


def test_table_layout(capsys):
    strategies = "reference,direct,im2col,implicit,auto"
    status, printed = _run(
        capsys, "--shape", TINY, "--shape", "max:2,4,8,8,2", "--strategies", strategies
    )
    assert status == 0
    lines = printed.splitlines()
    assert all(len(line) < 120 for line in lines), max(lines, key=len)
    legend = next(i for i, line in enumerate(lines) if line.startswith("legend"))
    header = lines.index("== custom") + 1
    assert legend < header
    assert lines[header].split() == ["layer", "op", *strategies.split(",")]
    rows = [line for line in lines if line.startswith("custom.")]
    assert len(rows) == 5
    for row in rows:
        assert row.count("*") == 1, row  # the fastest cell of the row
    pool_fwd = rows[3].split()
    assert pool_fwd[:2] == ["custom.max2", "fwd"] and pool_fwd[4:7] == [
        "-",
        "-",
        "-",
    ]  # ref: ms, rate
    summary = lines[lines.index("custom: geometric-mean speed-up per strategy") + 1 :]
    for name in ("direct", "im2col", "implicit", "auto"):
        line = next(line for line in summary if line.split()[0] == name)
        n = 3 if name != "auto" else 5
        assert re.search(rf"vs ref [\d.]+x over {n} ops", line), line
    assert not any(line.split()[0] == "reference" for line in summary if line.strip())
    assert re.search(r"^wall time [\d.]+ s", printed, re.M)


def test_bench_with_torch(capsys):
    pytest.importorskip("torch")
    status, printed = _run(capsys, "--shape", TINY, "--strategies", "reference,auto", "--torch")
    assert status == 0
    assert re.search(r"^layer +op +reference +auto +torch$", printed, re.M), printed
    assert re.search(
        r"^  auto +vs ref [\d.]+x over 3 ops.*; vs torch [\d.]+x over 3 ops", printed, re.M
    )
    assert re.search(r"^  reference +vs torch [\d.]+x over 3 ops", printed, re.M)
    assert re.search(r"^  torch +vs ref [\d.]+x over 3 ops", printed, re.M)
    rows = [line for line in printed.splitlines() if line.startswith("custom.")]
    assert len(rows) == 3 and not any("error" in row or "!" in row for row in rows), rows


def test_suite_gemm_runs_alone(monkeypatch, capsys):
    from fastconv import bench_gemm

    seen = []
    monkeypatch.setattr(bench_gemm, "run", lambda ns: seen.append(ns) or 0)
    assert bench.main(["--suite", "gemm", "--threads", "1", "--full"]) == 0
    assert seen[0].threads == 1 and seen[0].quick is False
    assert bench.main(["--suite", "gemm", "--suite", "mnist"]) == 2
    assert bench.main(["--suite", "gemm", "--shape", TINY]) == 2


def test_kernel_names_come_from_show_config_only():
    """Kernel names are read from ``show_config()["kernels"]``; a key the build does
    not list is shown as is, with no ISA suffix made up by the harness."""
    from fastconv.bench_cases import KernelNames

    live = KernelNames()
    assert live.table == fastconv.show_config()["kernels"]
    for key, name in live.table.items():
        assert live.get(key) == name
    table = {"conv2d_forward (algo='direct')": "conv2d_forward_direct__isaX"}
    names = KernelNames(table)
    assert names.get("max_pool2d_forward") == "max_pool2d_forward"
    assert names.conv("fwd", ["direct"]) == "conv2d_forward_direct__isaX"
    # bwd: two missing conv keys and the bias key, all shown by their key
    shown = names.conv("bwd", ["im2col", "im2col"])
    assert shown == (
        "conv2d_backward_input (algo='im2col') + conv2d_backward_weight (algo='im2col')"
        " + conv2d_backward_bias"
    )
    assert names.conv("bwd_weight", ["direct"]) == "conv2d_backward_weight (algo='direct')"


def test_bench_imports_no_cycle():
    """The harness modules form a DAG: _timing imports nothing of fastconv, and
    bench_gemm does not import bench (bench runs bench_gemm for ``--suite gemm``)."""
    import ast
    from pathlib import Path

    pkg = Path(fastconv.__file__).parent
    graph = {}
    for path in pkg.glob("*.py"):
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level == 1:
                    base = node.module or ""
                elif (node.module or "").startswith("fastconv"):
                    base = node.module[len("fastconv") :].lstrip(".")
                else:
                    continue
                deps |= {base} if base else {a.name for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {
                    a.name[len("fastconv.") :] for a in node.names if a.name.startswith("fastconv.")
                }
        graph[path.stem] = {d.split(".")[0] for d in deps} - {path.stem}
    assert not graph["_timing"], graph["_timing"]
    assert "bench" not in graph["bench_gemm"], graph["bench_gemm"]
    # No cycle through any of the harness modules (depth-first search).
    mine = {m for m in graph if m.startswith("bench")} | {"_timing", "_shapes", "cli"}
    assert {"bench_strategies", "bench_json", "bench_plot"} <= mine
    state: dict[str, int] = {}

    def visit(m: str, stack: tuple[str, ...]) -> None:
        assert state.get(m) != 1, f"import cycle: {' -> '.join((*stack, m))}"
        if state.get(m) == 2 or m not in graph:
            return
        state[m] = 1
        for d in sorted(graph[m]):
            visit(d, (*stack, m))
        state[m] = 2

    for m in sorted(mine):
        visit(m, ())


def test_plot_without_matplotlib_fails_before_measuring(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    assert bench.main(["--shape", TINY, "--plot", "x.png"]) == 2
    captured = capsys.readouterr()
    assert "--plot needs matplotlib: pip install 'fastconv[plot]'" in captured.err
    assert "==" not in captured.out  # nothing was measured
