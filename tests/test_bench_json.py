"""fastconv.bench_json, ``fastconv bench --json``: the documented keys, every sample, and
reading the file back into the same records."""

from __future__ import annotations

import json

import pytest

from fastconv import bench, bench_json
from fastconv.bench_report import Result


def test_json_round_trips_with_the_documented_keys(tmp_path, capsys):
    path = tmp_path / "run.json"
    argv = [
        "--shape",
        "2,4,8,8,4,3,3",
        "--shape",
        "avg:2,4,8,8,2",
        "--strategies",
        "reference,im2col,auto",
    ]
    assert bench.main([*argv, "--repeats", "3", "--max-time", "1", "--json", str(path)]) == 0
    assert f"wrote 15 results to {path}" in capsys.readouterr().out
    doc = bench_json.read(str(path))
    assert tuple(doc) == bench_json.KEYS and doc["schema"] == bench_json.SCHEMA
    for key in bench_json.KEYS:  # each top-level key is named in the module's documentation
        assert f"``{key}``" in bench_json.__doc__, key
    machine = doc["machine"]
    for key in ("cpu", "isa_active", "threads", "blas", "fastconv_version", "numpy", "python"):
        assert machine[key], key
    assert machine["fp32_peak_gflops"] > 0  # measured when --json is given
    assert [s["name"] for s in doc["strategies"]] == ["reference", "im2col", "auto"]
    assert doc["settings"]["repeats"] == 3 and doc["settings"]["conv_ops"] == [
        "fwd",
        "bwd_input",
        "bwd_weight",
    ]
    results = bench_json.results(doc)
    assert len(results) == 5 * 3 and all(isinstance(r, Result) for r in results)
    for r in results:
        if r.ok:
            assert len(r.samples_ms) == 3 and r.median_ms == pytest.approx(sorted(r.samples_ms)[1])
            assert r.rate == pytest.approx(r.work / (r.median_ms / 1e3) / 1e9)
    im2col_pool = [r for r in results if r.layer == "custom.avg2" and r.strategy == "im2col"]
    assert [r.status for r in im2col_pool] == ["unsupported", "unsupported"]
    assert sorted(doc["summary"]) == ["custom"]
    # Writing the records read back gives the same file content.
    again = tmp_path / "again.json"
    bench_json.write(str(again), {**doc, "results": [r.to_dict() for r in results]})
    assert json.loads(again.read_text()) == json.loads(path.read_text())


def test_read_rejects_other_documents(tmp_path):
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"environment": {}, "rows": []}))
    with pytest.raises(ValueError, match="not a fastconv-bench/2 document"):
        bench_json.read(str(path))
    doc = {k: None for k in bench_json.KEYS} | {"schema": bench_json.SCHEMA, "results": [{}]}
    del doc["machine"]
    path.write_text(json.dumps(doc))
    with pytest.raises(ValueError, match=r"missing machine, results\[0\]\.suite"):
        bench_json.read(str(path))
