"""Build and run-time configuration: show_config(), kernel names, FASTCONV_ISA,
set_num_threads."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from child import CHILD_CWD, child_env

import fastconv
from fastconv import _core

KNOWN_ISAS = ("scalar", "avx2", "avx512")


def _runnable_isas():
    before = _core.build_info()["isa_active"]
    out = []
    for name in _core.build_info()["isas_compiled"]:
        try:
            _core._set_isa(name)
            out.append(name)
        except RuntimeError:
            pass
    _core._set_isa(before)
    return out


def _python(code, isa_env):
    env = dict(os.environ)
    env.pop("FASTCONV_ISA", None)
    if isa_env is not None:
        env["FASTCONV_ISA"] = isa_env
    env["PYTHONPATH"] = child_env()["PYTHONPATH"]
    return subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=CHILD_CWD,
        check=False,
    )


def test_show_config_keys():
    cfg = fastconv.show_config()
    for key in (
        "version",
        "isas_compiled",
        "isa_detected",
        "isa_active",
        "openmp",
        "openmp_runtime",
        "openmp_version",
        "num_threads",
        "kernels",
        "kernel_variants",
    ):
        assert key in cfg, key
    assert cfg["version"] == fastconv.__version__
    assert "scalar" in cfg["isas_compiled"]
    assert set(cfg["isas_compiled"]) <= set(KNOWN_ISAS)
    assert cfg["isa_detected"] in cfg["isas_compiled"]
    assert cfg["isa_active"] in cfg["isas_compiled"]
    assert cfg["num_threads"] == fastconv.get_num_threads() >= 1
    assert isinstance(cfg["openmp"], bool)
    assert isinstance(cfg["kernels"], dict) and cfg["kernels"]


def test_every_kernel_has_a_variant_for_the_active_isa(isa):
    """kernel_variants() is the registry (kernel_names(), same order) with the
    ISA suffix; only the GEMM microkernel's name carries its register tile."""
    cfg = fastconv.show_config()
    assert cfg["isa_active"] == isa
    names, variants = _core.kernel_names(), _core.kernel_variants()
    assert names and len(set(names)) == len(names)
    assert cfg["kernel_variants"] == variants
    assert len(variants) == len(names)
    tile = f"_{cfg['gemm']['mr']}x{cfg['gemm']['nr']}"
    for name, variant in zip(names, variants):
        middle = tile if name == "sgemm_ukernel" else ""
        assert variant == f"{name}{middle}__{isa}"
    assert cfg["gemm"]["ukernel"] == variants[names.index("sgemm_ukernel")]


# The ops of show_config()["kernels"] (fastconv/bench_cases.py reads them by these keys).
_CONV_PASSES = ("forward", "backward_input", "backward_weight")
_OP_KEYS = [
    *(f"conv2d_{p} (algo='{a}')" for p in _CONV_PASSES for a in ("direct", "im2col", "implicit")),
    "conv2d_backward_bias",
    "conv2d (algo='auto')",
    "max_pool2d_forward",
    "max_pool2d_backward",
    "avg_pool2d_forward",
    "avg_pool2d_backward",
    "linear",
]


def test_op_kernels_name_registered_variants(isa):
    cfg = fastconv.show_config()
    ops = _core.op_kernels()
    assert cfg["kernels"] == ops
    assert list(ops) == _OP_KEYS
    variants = set(_core.kernel_variants())
    gemm = cfg["gemm"]["ukernel"]
    assert ops["linear"] == gemm
    for p in _CONV_PASSES:
        assert ops[f"conv2d_{p} (algo='direct')"] == f"conv2d_{p}_direct__{isa}"
        assert ops[f"conv2d_{p} (algo='im2col')"] == f"im2col + {gemm}"
        assert ops[f"conv2d_{p} (algo='implicit')"] == f"implicit + {gemm}"
    assert "conv2d_choose_algo" in ops["conv2d (algo='auto')"]
    # Every kernel named in the op table is a registered variant of this ISA.
    for op, kernel in ops.items():
        if op == "conv2d (algo='auto')":
            continue
        words = [w for w in kernel.replace("+", " ").split() if "__" in w]
        assert words, (op, kernel)
        for word in words:
            assert word in variants, (op, word)
            assert word.endswith(f"__{isa}")


def test_kernel_names_follow_the_naming_rule():
    """<op>_<pass>_<algo> (or a GEMM kernel), no ISA suffix."""
    for name in _core.kernel_names():
        assert "__" not in name
        assert name.split("_")[0] in ("conv2d", "max", "avg", "sgemm", "relu"), name


def test_set_isa_round_trip_and_unknown_name():
    before = _core.build_info()["isa_active"]
    for name in _runnable_isas():
        _core._set_isa(name)
        assert _core.build_info()["isa_active"] == name
        assert fastconv.show_config()["isa_active"] == name
    _core._set_isa(before)
    with pytest.raises(ValueError, match=r"unknown ISA 'sse9'"):
        _core._set_isa("sse9")
    assert _core.build_info()["isa_active"] == before


def test_detected_isa_is_the_best_runnable():
    runnable = _runnable_isas()
    best = max(runnable, key=KNOWN_ISAS.index)
    assert _core.build_info()["isa_detected"] == best


@pytest.mark.parametrize("isa_name", KNOWN_ISAS)
def test_fastconv_isa_env_forces_the_level(isa_name):
    code = (
        "import fastconv, numpy as np; c = fastconv.show_config(); "
        "print(c['isa_active'], c['kernel_variants'][0]); "
        "x = np.ones((1, 1, 4, 4), np.float32); "
        "print(float(fastconv.conv2d(x, np.ones((1, 1, 3, 3), np.float32)).sum()))"
    )
    r = _python(code, isa_name)
    if isa_name in _runnable_isas():
        assert r.returncode == 0, r.stderr
        active, variant, total = r.stdout.split()
        assert active == isa_name
        assert variant.endswith(f"__{isa_name}")
        assert float(total) == 36.0
    else:  # compiled out or unsupported: a clear error at import
        assert r.returncode != 0
        assert "FASTCONV_ISA" in r.stderr and isa_name in r.stderr


def test_fastconv_isa_empty_means_detect():
    r = _python("import fastconv; print(fastconv.show_config()['isa_active'])", "")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == _core.build_info()["isa_detected"]


@pytest.mark.parametrize("value", ["sse2", "AVX2", "avx-512", "garbage value"])
def test_invalid_fastconv_isa_fails_at_import(value):
    r = _python("import fastconv", value)
    assert r.returncode != 0
    assert f"FASTCONV_ISA='{value}'" in r.stderr
    assert "is not one of 'scalar', 'avx2', 'avx512'" in r.stderr
    assert "Segmentation" not in r.stderr and "Fatal Python error" not in r.stderr


@pytest.mark.parametrize("n", [1, 2, 3, 4, 16])
def test_set_num_threads_round_trip(n):
    fastconv.set_num_threads(n)
    assert fastconv.get_num_threads() == n
    assert fastconv.show_config()["num_threads"] == n
    fastconv.set_num_threads(np.int64(n))
    assert fastconv.get_num_threads() == n


@pytest.mark.parametrize(
    "value, exc, msg",
    [
        (0, ValueError, r"set_num_threads: n must be in \[1, 4096\], got 0"),
        (-1, ValueError, r"set_num_threads: n must be in \[1, 4096\], got -1"),
        (5000, ValueError, r"set_num_threads: n must be in \[1, 4096\], got 5000"),
        (2**70, ValueError, r"does not fit in int64"),
        (1.5, TypeError, r"n must be an int, got float"),
        (2.0, TypeError, r"n must be an int, got float"),
        (True, TypeError, r"n must be an int, got bool"),
        (None, TypeError, r"n must be an int, got NoneType"),
        ("2", TypeError, r"n must be an int, got str"),
    ],
)
def test_set_num_threads_rejects(value, exc, msg):
    before = fastconv.get_num_threads()
    with pytest.raises(exc, match=msg):
        fastconv.set_num_threads(value)
    assert fastconv.get_num_threads() == before


def test_omp_num_threads_sets_the_default():
    r = subprocess.run(
        [sys.executable, "-c", "import fastconv; print(fastconv.get_num_threads())"],
        env=child_env(OMP_NUM_THREADS="3"),
        cwd=CHILD_CWD,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "3"


def test_no_floating_point_mode_leaks(isa):
    """Kernels neither flush subnormals to zero nor leave a changed FP mode behind."""
    tiny = np.float32(np.finfo(np.float32).smallest_subnormal)
    x = np.full((1, 2, 4, 4), tiny * 3, np.float32)
    w = np.ones((2, 2, 1, 1), np.float32)
    for algo in fastconv._core.conv_algos()[1:]:
        y = fastconv.conv2d(x, w, algo=algo)  # 2 * 3 subnormal units: exact
        np.testing.assert_array_equal(y, np.full((1, 2, 4, 4), tiny * 6, np.float32))
        fastconv.conv2d_backward(y, x, w, algo=algo)
    np.testing.assert_array_equal(fastconv.max_pool2d(x, 2), x[:, :, ::2, ::2])
    np.testing.assert_array_equal(fastconv.avg_pool2d(x, 1), x)
    np.testing.assert_array_equal(_core.sgemm(x[0, 0], np.eye(4, dtype=np.float32)), x[0, 0])
    # The caller's arithmetic after the calls: subnormals still exist, rounding is to nearest.
    assert np.float32(tiny * 5) / np.float32(5) == tiny
    assert np.float32(1) + np.float32(2**-24) == np.float32(1)  # ties to even, not upward
    assert np.float32(1) + np.float32(3 * 2**-25) == np.float32(1 + 2**-23)
