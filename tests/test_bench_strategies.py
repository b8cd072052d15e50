"""fastconv.bench_strategies, the registry of ``fastconv bench``, and measuring one row.

* ``test_registry_order_and_new_algorithms``: reference, cython, each
  algorithm of ``_core.conv_algos()``, auto, torch; a new algorithm appears
  without an edit.
* ``test_cython_unavailable_reasons``: no module, ``cython_error`` set, no
  ``cython``: skipped with the reason, in ``select`` and in the header.
* ``test_every_strategy_computes_the_reference``: each available strategy's
  call of every op (strided, grouped, padded conv; max-pool with dilation and
  ceil mode; avg-pool; linear) returns what the reference returns, so the
  bindings pass the arguments right.
* ``test_fake_cython_is_wired``: a stand-in for the Cython strategy (the
  reference behind its contract) runs conv and max-pool; avg-pool and linear
  cells are ``-``.
* ``test_measure_row_marks_mismatch_error_skip_and_best``.
"""

from __future__ import annotations

import json
import sys
import types

import pytest

from fastconv import _core, bench, bench_strategies, reference
from fastconv._shapes import ConvShape, LinearShape, PoolShape
from fastconv.bench import measure_row
from fastconv.bench_cases import CONV_ALGOS, KernelNames, Settings, layer_ops, make_case
from fastconv.bench_report import Table
from fastconv.bench_strategies import Strategy, registry, select


def _fake_cython(
    monkeypatch: pytest.MonkeyPatch, error: str | None = None, with_cython: bool = True
) -> None:
    """Install a ``fastconv.strategies`` whose ``cython`` is the reference behind the
    Cython strategy's contract (no avg-pool, no linear)."""

    def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
        return reference.conv2d(x, weight, bias, stride, padding, dilation, groups)

    def conv2d_backward(
        grad_output, x, weight, stride=1, padding=0, dilation=1, groups=1, *, output_mask=(1, 1, 1)
    ):
        return reference.conv2d_backward(
            grad_output, x, weight, stride, padding, dilation, groups, output_mask=output_mask
        )

    module = types.ModuleType("fastconv.strategies")
    module.cython_error = error
    if with_cython:
        module.cython = types.SimpleNamespace(
            conv2d=conv2d,
            conv2d_backward=conv2d_backward,
            max_pool2d=reference.max_pool2d,
            max_pool2d_backward=reference.max_pool2d_backward,
        )
    monkeypatch.setitem(sys.modules, "fastconv.strategies", module)


def test_registry_order_and_new_algorithms(monkeypatch):
    names = list(registry())
    algos = [a for a in _core.conv_algos() if a != "auto"]
    assert names == ["reference", "cython", *algos, "auto", "torch"]
    assert {"direct", "im2col"} <= set(algos) and tuple(algos) == CONV_ALGOS
    fake_core = types.SimpleNamespace(conv_algos=lambda: [*_core.conv_algos(), "winograd"])
    monkeypatch.setattr(bench_strategies, "_core", fake_core)
    names = list(registry())
    assert names[names.index("auto") - 1] == "winograd"
    new = registry()["winograd"]
    assert new.kinds == ("conv",) and "algo='winograd'" in new.description
    assert new.unavailable() is None


def test_cython_unavailable_reasons(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastconv.strategies", None)  # import fails
    reason = registry()["cython"].unavailable()
    assert reason.startswith("fastconv.strategies does not import"), reason
    runnable, skipped = select(["reference", "cython", "auto"])
    assert [s.name for s in runnable] == ["reference", "auto"]
    assert skipped == {"cython": reason}
    status = bench.main(
        ["--shape", "2,4,8,8,4,3,3", "--strategies", "reference,cython", "--repeats", "1"]
    )
    printed = capsys.readouterr().out
    assert status == 0
    assert "  cython     SKIPPED: fastconv.strategies does not import" in printed
    header = next(line for line in printed.splitlines() if line.startswith("layer"))
    assert header.split() == ["layer", "op", "reference"]

    _fake_cython(monkeypatch, error="not built: no C compiler")
    assert registry()["cython"].unavailable() == "not built: no C compiler"
    _fake_cython(monkeypatch, with_cython=False)
    assert registry()["cython"].unavailable() == "fastconv.strategies has no cython"
    _fake_cython(monkeypatch)
    assert registry()["cython"].unavailable() is None


LAYERS = (
    ConvShape("t.conv", 2, 4, 9, 9, 6, 3, 3, stride=2, padding=1, dilation=1, groups=2),
    ConvShape("t.dil", 2, 3, 9, 8, 4, 3, 2, stride=1, padding=2, dilation=2),
    PoolShape("t.max", "max", 2, 3, 9, 9, 3, 2, padding=1, dilation=2, ceil_mode=True),
    PoolShape("t.avg", "avg", 2, 3, 9, 9, 3, 2, padding=1, ceil_mode=True),
    LinearShape("t.fc", 3, 7, 5),
)


@pytest.mark.parametrize("shape", LAYERS, ids=lambda s: s.name)
def test_every_strategy_computes_the_reference(monkeypatch, shape):
    _fake_cython(monkeypatch)
    names = [n for n, s in registry().items() if s.unavailable() is None and n != "reference"]
    assert "cython" in names and "auto" in names
    for op in layer_ops(shape):
        case = make_case(shape, op)
        expected = bench._as_arrays(registry()["reference"].bind(case)())
        assert expected
        for name in names:
            fn = registry()[name].bind(case)
            if fn is None:
                continue
            got = bench._as_arrays(fn())
            assert bench._mismatch(got, expected) is None, (name, op)


def test_fake_cython_is_wired(monkeypatch, tmp_path, capsys):
    _fake_cython(monkeypatch)
    out = tmp_path / "b.json"
    shapes = ["2,4,8,8,4,3,3", "max:2,4,8,8,2", "avg:2,4,8,8,2", "linear:4,8,3"]
    argv = [a for s in shapes for a in ("--shape", s)]
    argv += ["--strategies", "reference,cython,auto", "--repeats", "1", "--json", str(out)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    status = {
        (r["layer"], r["op"]): r["status"]
        for r in json.loads(out.read_text())["results"]
        if r["strategy"] == "cython"
    }
    for key in [("custom.conv1", op) for op in ("fwd", "bwd_input", "bwd_weight")]:
        assert status[key] == "ok", key
    assert status[("custom.max2", "fwd")] == status[("custom.max2", "bwd")] == "ok"
    assert status[("custom.avg3", "fwd")] == status[("custom.avg3", "bwd")] == "unsupported"
    assert status[("custom.linear4", "fwd")] == "unsupported"
    avg_row = next(line for line in printed.splitlines() if line.startswith("custom.avg3"))
    assert avg_row.split()[4] == "-"  # layer, op, reference ms and rate, then cython


def _strategy(name: str, fn, always: bool = False) -> Strategy:
    return Strategy(name, name, lambda c: fn(c), lambda c, k: name, always=always)


def test_measure_row_marks_mismatch_error_skip_and_best():
    shape = ConvShape("t.conv", 2, 3, 8, 8, 4, 3, 3)
    case = make_case(shape, "fwd")
    ref = registry()["reference"]
    wrong = _strategy("wrong", lambda c: lambda: reference.conv2d(c.x, c.w) + 1.0, always=True)

    def boom() -> None:
        raise MemoryError("no room")

    broken = _strategy("broken", lambda c: boom, always=True)
    direct = registry()["direct"]
    settings = Settings(repeats=2, settle=0.0, quick_max_flops=0.0)  # every conv is "big"
    rows = measure_row(case, [ref, wrong, broken, direct], settings, KernelNames())
    by = {r.strategy: r for r in rows}
    assert [r.strategy for r in rows] == ["reference", "wrong", "broken", "direct"]
    assert by["reference"].status == "ok" and len(by["reference"].samples_ms) == 2
    assert by["wrong"].status.startswith("MISMATCH (rel. error"), by["wrong"].status
    assert by["wrong"].median_ms is not None and not by["wrong"].best
    assert by["broken"].status == "error: MemoryError: no room"
    assert by["direct"].status == "skipped (quick mode, big layer)"
    assert not any(r.best for r in rows)  # one correct result alone is not marked
    cells = Table(list(by)).row(rows).split()
    assert cells[5].endswith("!") and cells[6:] == ["error", "skip"]  # after ms, rate
    # Named explicitly, a non-`always` strategy runs on big layers in quick mode.
    rows = measure_row(case, [ref, direct], settings, KernelNames(), explicit=["direct"])
    assert all(r.ok for r in rows)
    r_ref, r_dir = rows
    assert r_dir.speedup_vs_reference == pytest.approx(r_ref.median_ms / r_dir.median_ms)
    assert r_ref.speedup_vs_reference is None and r_ref.speedup_vs_torch is None
    assert [r.best for r in rows].count(True) == 1
    assert r_dir.kernel == KernelNames().fastconv(case, "direct")
