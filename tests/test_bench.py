"""fastconv.bench, the harness behind ``fastconv bench``: what it reports.

* ``test_bench_reports_workspace_peak``: a quick run on one layer writes every
  fastconv row's peak workspace bytes (the "extra MB" column), none for the
  NumPy reference; every algorithm's is positive on a stride-1 layer (direct
  keeps shifted copies of an image).
* ``test_bench_batch_option``: ``--batch`` sets every layer's batch size.
"""

from __future__ import annotations

import json

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
