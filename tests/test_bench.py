"""fastconv.bench, the harness behind ``fastconv bench``: what it reports.

* ``test_bench_reports_workspace_peak``: a quick run on one layer writes every
  fastconv row's peak workspace bytes (the "extra MB" column), none for the
  NumPy reference; direct needs none.
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
    assert fwd["fastconv[direct]"] == 0, fwd
