"""fastconv.bench_plot, ``fastconv bench --plot``: the data it draws and the PNG it writes."""

from __future__ import annotations

import math

import pytest

from fastconv import bench
from fastconv.bench_report import Result

pytest.importorskip("matplotlib")

from fastconv import bench_plot  # noqa: E402


def _r(layer: str, op: str, strategy: str, rate: float | None, unit: str = "GFLOP/s", **kw):
    suite = layer.split(".")[0]
    median = None if rate is None else 1.0
    return Result(suite, layer, op, strategy, unit=unit, rate=rate, median_ms=median, **kw)


def test_plot_draws_gflops_per_layer_and_the_peak(tmp_path):
    results = [
        _r("mnist.conv1", "fwd", "reference", 1.5),
        _r("mnist.conv1", "fwd", "auto", 40.0),
        _r("mnist.conv1", "bwd_input", "reference", 2.0),
        _r("mnist.conv1", "bwd_input", "auto", 30.0, status="MISMATCH (rel. error 1e-2)"),
        _r("mnist.pool1", "fwd", "auto", 20.0, unit="GB/s"),  # not FLOPs: left out
        _r("mnist.dense1", "fwd", "auto", 80.0),
        _r("alexnet.conv2", "fwd", "reference", 25.0),
        _r("alexnet.conv2", "fwd", "auto", None, status="skipped (quick mode, big layer)"),
    ]
    path = tmp_path / "p.png"
    drawn = bench_plot.plot(results, ["reference", "auto"], str(path), peak_gflops=150.0)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    assert drawn["peak_gflops"] == 150.0
    mnist, alexnet = drawn["panels"]["mnist"], drawn["panels"]["alexnet"]
    assert list(drawn["panels"]) == ["mnist", "alexnet"]
    assert mnist["labels"] == ["conv1 fwd", "conv1 bwd_input", "dense1 fwd"]
    assert mnist["gflops"]["reference"][:2] == [1.5, 2.0] and math.isnan(
        mnist["gflops"]["reference"][2]
    )
    assert mnist["gflops"]["auto"][0] == 40.0 and math.isnan(mnist["gflops"]["auto"][1])
    assert mnist["gflops"]["auto"][2] == 80.0
    assert alexnet["labels"] == ["conv2 fwd"] and math.isnan(alexnet["gflops"]["auto"][0])


def test_bench_plot_option_writes_the_png(tmp_path, capsys):
    path = tmp_path / "bench.png"
    argv = ["--shape", "2,4,8,8,4,3,3", "--strategies", "reference,auto", "--repeats", "1"]
    assert bench.main([*argv, "--plot", str(path)]) == 0
    assert f"wrote {path}" in capsys.readouterr().out
    assert path.read_bytes()[:4] == b"\x89PNG" and path.stat().st_size > 10_000
