"""fastconv.bench, the harness behind ``fastconv bench``: what it reports.

* ``test_bench_reports_workspace_peak``: a quick run on one layer writes every
  fastconv row's peak workspace bytes (the "extra MB" column), none for the
  NumPy reference; every algorithm's is positive on a stride-1 layer (direct
  keeps shifted copies of an image).
* ``test_bench_batch_option``: ``--batch`` sets every layer's batch size.
"""

from __future__ import annotations

import json

import fastconv
from fastconv import bench


def test_bench_reports_workspace_peak(tmp_path, capsys):
    out = tmp_path / "bench.json"
    assert bench.main(["--layer", "mnist.conv3", "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "extra MB" in printed
    rows = [r for r in json.loads(out.read_text())["rows"] if r["median_ms"] is not None]
    assert rows
    for r in rows:
        if r["contender"].startswith("fastconv"):
            assert isinstance(r["extra_bytes"], int) and r["extra_bytes"] >= 0, r
        else:
            assert r["extra_bytes"] is None, r
    fwd = {r["contender"]: r["extra_bytes"] for r in rows if r["pass"] == "forward"}
    assert fwd["fastconv[im2col]"] > 0 and fwd["fastconv[implicit]"] > 0, fwd
    assert fwd["fastconv[direct]"] > 0, fwd


def test_bench_batch_option(tmp_path, capsys):
    out = tmp_path / "bench.json"
    argv = ["--suite", "lenet5", "--layer", "lenet5.fc2", "--layer", "lenet5.pool2", "--batch", "3"]
    assert bench.main([*argv, "--repeats", "1", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "lenet5.pool2: N=3 " in printed and "lenet5.fc2: B=3 " in printed, printed
    shapes = {s.name: s for s in bench.select_shapes(["lenet5"], ["lenet5.*"], 3)}
    assert shapes["lenet5.fc2"].B == 3 and shapes["lenet5.conv2"].N == 3
    assert shapes["lenet5.pool2"].N == 3
    assert bench.main(["--layer", "lenet5.fc2", "--batch", "0"]) == 2


def test_kernel_names_come_from_show_config_only():
    """Row kernel names are read from ``show_config()["kernels"]``; a key the build does
    not list is shown as is, with no ISA suffix made up by the harness."""
    from fastconv.bench_cases import KernelNames

    live = KernelNames()
    assert live.table == fastconv.show_config()["kernels"]
    for key, name in live.table.items():
        assert live.get(key) == name
    table = {"conv2d_forward (algo='direct')": "conv2d_forward_direct__isaX"}
    names = KernelNames(table)
    assert names.get("max_pool2d_forward") == "max_pool2d_forward"
    assert names.conv("forward", ["direct"]) == "conv2d_forward_direct__isaX"
    # backward: two missing conv keys and the bias key, all shown by their key
    shown = names.conv("backward", ["im2col", "im2col"])
    assert shown == (
        "conv2d_backward_input (algo='im2col') + conv2d_backward_weight (algo='im2col')"
        " + conv2d_backward_bias"
    )
    assert "__" not in shown


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
    mine = {"_timing", "bench", "bench_cases", "bench_report", "bench_gemm", "cli"}
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
