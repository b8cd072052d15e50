"""The GEMM engine (``_core.sgemm``; conv and linear run on it) against float64 NumPy.

Sizes come from two tables: fixed shapes (SIMD widths, primes) and, for each
ISA, the edges of that ISA's own blocking (``build_info()["gemm"]``): 1,
MR-1, MR, MR+1, NR-1, NR, NR+1 rows/columns, KC-1, KC, KC+1 deep, and shapes
past MC and NC. Every transpose combination and several (alpha, beta) pairs
run on every ISA the CPU supports. Tolerance: the rule of test_conv2d.py
(``assert_within_rounding``) with L = K + 2 (alpha scaling and the beta*C
term).

Also here: results do not depend on the thread count (the threaded path),
and the baseline code holds no AVX instruction (objdump), so that a wheel
never dies with "Illegal instruction" on an older CPU.
"""

from __future__ import annotations

import itertools
import platform
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from cases import rng_for
from test_conv2d import assert_within_rounding

import fastconv
from fastconv import _core


def _f32(key, *shape):
    return rng_for("gemm", key, shape).standard_normal(shape).astype(np.float32)


GEMM_SIZES = [  # (M, N, K): SIMD widths, primes, tile edges (64 rows, 512 cols, 256 deep)
    (1, 1, 1),
    (1, 17, 1),
    (15, 16, 17),
    (16, 15, 33),
    (17, 33, 16),
    (33, 1, 15),
    (7, 13, 31),
    (37, 41, 43),
    (65, 31, 257),
    (63, 513, 7),
    (2, 1031, 3),
    (97, 7, 521),
]
TRANS = list(itertools.product([False, True], repeat=2))


def _gemm_operands(M, N, K, ta, tb):
    a = _f32("a", *((K, M) if ta else (M, K)))
    b = _f32("b", *((N, K) if tb else (K, N)))
    c = _f32("c", M, N)
    return a, b, c


def _gemm_ref(a, b, c, alpha, beta, ta, tb):
    A = a.astype(np.float64).T if ta else a.astype(np.float64)
    B = b.astype(np.float64).T if tb else b.astype(np.float64)
    r = alpha * (A @ B) + (beta * c.astype(np.float64) if beta != 0 else 0)
    ra = abs(alpha) * (np.abs(A) @ np.abs(B)) + (
        abs(beta) * np.abs(c.astype(np.float64)) if beta != 0 else 0
    )
    return r, ra


@pytest.mark.parametrize(
    "ta, tb", TRANS, ids=[f"{'T' if a else 'N'}{'T' if b else 'N'}" for a, b in TRANS]
)
@pytest.mark.parametrize("M, N, K", GEMM_SIZES, ids=[f"{m}x{n}x{k}" for m, n, k in GEMM_SIZES])
def test_sgemm_matches_float64(M, N, K, ta, tb, isa, output_fill):
    output_fill(np.nan)
    a, b, c = _gemm_operands(M, N, K, ta, tb)
    for alpha, beta in [(1.0, 0.0), (0.5, 0.0), (-1.5, 1.0), (2.0, -0.25), (1.0, 1.0)]:
        out = _core.sgemm(
            a, b, c if beta != 0 else None, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb
        )
        r, ra = _gemm_ref(a, b, c, alpha, beta, ta, tb)
        assert_within_rounding(
            out, r, np.broadcast_to(ra, r.shape), K + 2, f"sgemm alpha={alpha} beta={beta}"
        )


@pytest.mark.parametrize(
    "ta, tb", TRANS, ids=[f"{'T' if a else 'N'}{'T' if b else 'N'}" for a, b in TRANS]
)
def test_sgemm_beta_zero_never_reads_c(ta, tb, isa):
    """With beta = 0, C full of NaN/inf does not leak into the result (BLAS rule)."""
    M, N, K = 17, 33, 15
    a, b, _ = _gemm_operands(M, N, K, ta, tb)
    for fill in (np.nan, np.inf):
        c = np.full((M, N), fill, np.float32)
        c_before = c.copy()
        out = _core.sgemm(a, b, c, alpha=1.0, beta=0.0, trans_a=ta, trans_b=tb)
        assert np.isfinite(out).all()
        np.testing.assert_array_equal(out, _core.sgemm(a, b, trans_a=ta, trans_b=tb))
        np.testing.assert_array_equal(c, c_before)  # c is an input, never written


def test_sgemm_alpha_zero_and_k_zero():
    a, b, c = _f32("a", 5, 0), _f32("b", 0, 7), _f32("c", 5, 7)
    np.testing.assert_array_equal(_core.sgemm(a, b), np.zeros((5, 7), np.float32))
    np.testing.assert_array_equal(_core.sgemm(a, b, c, beta=1.0), c)
    np.testing.assert_array_equal(_core.sgemm(a, b, c, alpha=3.0, beta=2.0), 2 * c)
    a, b = _f32("a", 5, 3), _f32("b", 3, 7)
    np.testing.assert_array_equal(_core.sgemm(a, b, c, alpha=0.0, beta=1.0), c)


def test_sgemm_empty_dims():
    assert _core.sgemm(_f32("a", 0, 3), _f32("b", 3, 4)).shape == (0, 4)
    assert _core.sgemm(_f32("a", 2, 3), _f32("b", 3, 0)).shape == (2, 0)


def test_sgemm_errors():
    with pytest.raises(ValueError, match=r"op\(a\) is 3x4 but op\(b\) is 5x2"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 5, 2))
    with pytest.raises(ValueError, match=r"op\(a\) is 4x3 but op\(b\) is 4x5"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 5, 4), trans_a=True, trans_b=True)
    with pytest.raises(ValueError, match=r"beta != 0 needs c"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 4, 2), beta=1.0)
    with pytest.raises(ValueError, match=r"c must have shape \(3, 2\)"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 4, 2), _f32("c", 2, 3), beta=1.0)
    with pytest.raises(TypeError, match=r"a must have dtype float32, got float64"):
        _core.sgemm(np.zeros((3, 4)), _f32("b", 4, 2))
    with pytest.raises(ValueError, match=r"b must be 2-D"):
        _core.sgemm(_f32("a", 3, 4), _f32("b", 4))


@pytest.mark.parametrize("trans", [False, True])
def test_sgemm_out_may_alias_an_input(trans):
    """out=a or out=b (or a view overlapping them) gives numpy.matmul's exact
    result: the input is read from a copy, as numpy does."""
    base_a, base_b = _f32("alias_a", 64, 64), _f32("alias_b", 64, 64)
    want = _core.sgemm(base_a, base_b, trans_a=trans, trans_b=trans)
    for which in ("a", "b"):
        a, b = base_a.copy(), base_b.copy()
        out = a if which == "a" else b
        got = _core.sgemm(a, b, trans_a=trans, trans_b=trans, out=out)
        assert got is out
        np.testing.assert_array_equal(got, want, err_msg=f"out={which}")
    # out overlapping b partially (a view one row further on), with beta and c.
    buf = np.vstack([base_b, np.zeros((1, 64), np.float32)])
    b, out = buf[:64], buf[1:]
    c = _f32("alias_c", 64, 64)
    want = _core.sgemm(base_a, base_b.copy(), c, beta=0.5)
    np.testing.assert_array_equal(_core.sgemm(base_a, b, c, beta=0.5, out=out), want)
    # c overlapping out partially: read before out is written.
    buf = np.vstack([c, np.zeros((1, 64), np.float32)])
    c_view, out = buf[:64], buf[1:]
    want = _core.sgemm(base_a, base_b, c.copy(), beta=0.5)
    np.testing.assert_array_equal(_core.sgemm(base_a, base_b, c_view, beta=0.5, out=out), want)


@pytest.mark.parametrize("seconds", [float("nan"), float("inf"), -1.0, 0.0, 61.0])
def test_fma_peak_refuses_bad_durations(seconds):
    with pytest.raises(ValueError, match=r"fma_peak_gflops: seconds must be in \(0, 60\]"):
        _core.fma_peak_gflops(1, seconds)
    with pytest.raises(ValueError, match=r"fma_peak_gflops: threads must be in \[1, 4096\]"):
        _core.fma_peak_gflops(0, 0.01)


def _blocking(isa):
    before = _core.build_info()["isa_active"]
    _core._set_isa(isa)
    try:
        return dict(_core.build_info()["gemm"])
    finally:
        _core._set_isa(before)


def _edge_sizes(isa):
    """(M, N, K) at the edges of one ISA's register tile and cache blocks."""
    g = _blocking(isa)
    mr, nr, kc = g["mr"], g["nr"], g["kc"]
    rows = sorted({1, mr - 1, mr, mr + 1, 2 * mr + 3})
    cols = sorted({1, nr - 1, nr, nr + 1, 2 * nr + 5})
    deep = [1, kc - 1, kc, kc + 1]
    sizes = [(m, n, 7) for m in rows for n in cols]
    sizes += [(mr + 1, nr + 1, k) for k in deep]
    sizes.append((g["mc"] + mr + 1, 2 * nr + 3, kc + 9))  # two MC blocks, two K blocks
    sizes.append((mr + 3, g["nc"] + nr + 7, 13))  # two NC panels
    return [s for s in sizes if min(s) >= 1]


@pytest.mark.parametrize(
    "ta, tb", TRANS, ids=[f"{'T' if a else 'N'}{'T' if b else 'N'}" for a, b in TRANS]
)
def test_sgemm_blocking_edges(ta, tb, isa, output_fill):
    output_fill(np.nan)
    for M, N, K in _edge_sizes(isa):
        a, b, c = _gemm_operands(M, N, K, ta, tb)
        for alpha, beta in [(1.0, 0.0), (-0.5, 1.0), (2.0, 0.75)]:
            out = _core.sgemm(
                a, b, c if beta != 0 else None, alpha=alpha, beta=beta, trans_a=ta, trans_b=tb
            )
            r, ra = _gemm_ref(a, b, c, alpha, beta, ta, tb)
            assert_within_rounding(
                out, r, ra, K + 2, f"{isa} {M}x{N}x{K} alpha={alpha} beta={beta}"
            )


@pytest.mark.parametrize("M, N, K", [(300, 700, 520), (16, 4100, 300), (700, 40, 600)])
def test_sgemm_threads_do_not_change_bits(M, N, K, isa):
    """Large enough to run threaded: 1, 2 and 3 threads give the same bits."""
    a, b, c = _gemm_operands(M, N, K, False, True)
    before = fastconv.get_num_threads()
    outs = []
    try:
        for n in (1, 2, 3):
            fastconv.set_num_threads(n)
            outs.append(_core.sgemm(a, b, c, alpha=1.5, beta=0.5, trans_b=True))
    finally:
        fastconv.set_num_threads(before)
    for out in outs[1:]:
        assert np.array_equal(out.view(np.uint32), outs[0].view(np.uint32))
    r, ra = _gemm_ref(a, b, c, 1.5, 0.5, False, True)
    assert_within_rounding(outs[0], r, ra, K + 2, f"{isa} {M}x{N}x{K}")


# ---------------------------------------------------------------------------
# No AVX instruction outside the AVX translation units
# ---------------------------------------------------------------------------

OBJDUMP = shutil.which("objdump")
# AT&T syntax: VEX/EVEX instructions are the v-prefixed mnemonics (but not
# verr/verw) and anything touching ymm/zmm or mask registers.
_AVX = re.compile(r"\t(v(?!err|erw)[a-z0-9]+)\b|%[yz]mm[0-9]+|%k[0-7]\b")


def _avx_lines(objdump_text):
    """(function, instruction) pairs using AVX, function names demangled."""
    out, func = [], None
    for line in objdump_text.splitlines():
        m = re.match(r"^[0-9a-f]+ <(.*)>:$", line)
        if m:
            func = m.group(1)
        elif func and "\t" in line and _AVX.search(line):
            out.append((func, line.strip()))
    return out


def _disassemble(path):
    r = subprocess.run(
        [OBJDUMP, "-d", "-C", "--no-show-raw-insn", str(path)],
        capture_output=True,
        text=True,
        check=True,
    )
    return r.stdout


@pytest.mark.skipif(OBJDUMP is None, reason="objdump is not installed")
@pytest.mark.skipif(
    platform.machine() not in ("x86_64", "AMD64"), reason="AVX exists on x86-64 only"
)
def test_extension_has_avx_only_in_isa_kernels():
    """In the built extension, AVX instructions appear only in functions of
    the fastconv::avx2 and fastconv::avx512 namespaces (the per-ISA
    translation units): no inline function or template compiled with AVX flags
    was merged into code that runs before dispatch."""
    so = Path(_core.__file__)
    bad = [
        (f, ins)
        for f, ins in _avx_lines(_disassemble(so))
        if not re.search(r"fastconv::avx(2|512)::", f)
    ]
    assert not bad, "AVX outside the ISA kernels:\n" + "\n".join(f"{f}: {i}" for f, i in bad[:20])


def _build_dirs():
    root = Path(__file__).resolve().parent.parent
    return [p for p in (root / "build").glob("*") if (p / "CMakeFiles").is_dir()]


def _baseline_objects():
    objs = []
    for d in _build_dirs():
        for target in ("fastconv_cpp.dir", "fastconv_kernels_scalar.dir", "_core.dir"):
            objs += sorted((d / "CMakeFiles" / target).rglob("*.o"))
    return objs


@pytest.mark.skipif(OBJDUMP is None, reason="objdump is not installed")
def test_baseline_objects_have_no_avx():
    """The object files built for the x86-64 baseline (drivers, bindings,
    scalar kernels) hold no AVX or AVX-512 instruction at all."""
    objs = _baseline_objects()
    if not objs:
        pytest.skip("no CMake build directory with object files next to the tests")
    for obj in objs:
        bad = _avx_lines(_disassemble(obj))
        assert not bad, f"{obj}: " + "; ".join(f"{f}: {i}" for f, i in bad[:5])


@pytest.mark.skipif(shutil.which("nm") is None, reason="nm is not installed")
def test_isa_objects_define_no_weak_symbols():
    """An ISA object defining a weak (COMDAT) symbol, e.g. an out-of-line copy
    of an inline std:: function, could be picked by the linker for baseline
    callers too; the ISA files must define only their own strong symbols."""
    objs = []
    for d in _build_dirs():
        for target in ("fastconv_kernels_avx2.dir", "fastconv_kernels_avx512.dir"):
            objs += sorted((d / "CMakeFiles" / target).rglob("*.o"))
    if not objs:
        pytest.skip("no CMake build directory with object files next to the tests")
    for obj in objs:
        r = subprocess.run(
            ["nm", "-C", "--defined-only", str(obj)], capture_output=True, text=True, check=True
        )
        weak = [ln for ln in r.stdout.splitlines() if re.match(r"^[0-9a-f]+ [WVu] ", ln)]
        assert not weak, f"{obj}: weak symbols {weak[:10]}"
