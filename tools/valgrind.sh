#!/usr/bin/env bash
# Runs every fastconv op (every conv algorithm, every ISA valgrind can run, a
# few shapes each, 1 and 2 threads, and the error paths), and the Cython
# baseline's ops, once or twice under valgrind's memcheck, then fails if
# memcheck reported an invalid read or write, a use of uninitialised memory or
# any other error whose stack holds fastconv's code (the _core and
# _cython_conv extensions, fastconv:: or fastconv_py::).
#
#   tools/valgrind.sh              build build/valgrind and check it
#   tools/valgrind.sh --installed  check the fastconv that `python` imports
#
# $PYTHON (default: python on PATH) is the interpreter; it needs numpy, and
# cmake, ninja and pybind11 for the build.
#
# Exit status: 0 no error in fastconv's code, 1 errors in fastconv's code,
# 2 the run itself failed (no valgrind, build failure, the driver crashed).
#
# Why a dedicated build (build/valgrind):
# * RelWithDebInfo (-O2 -g), so that reports name functions and lines (the
#   wheel's extension is stripped).
# * valgrind 3.19 cannot execute AVX-512 instructions ("unhandled instruction",
#   then SIGILL), and its virtual CPU reports no AVX-512, so the avx512 kernels
#   are never selected under valgrind; this script checks the scalar and avx2
#   kernels (FASTCONV_ISA=avx2 at import, then _set_isa("scalar")), every
#   algorithm and the generic code around them. (Dispatch fills only the
#   kernel tables of ISAs the CPU reports, so no AVX-512 instruction runs at
#   import: tests/test_process.py::test_import_on_a_cpu_without_avx512.)
#
# Python runs with PYTHONMALLOC=malloc so that memcheck sees every allocation;
# tools/valgrind.supp silences known reports from ld.so and CPython start-up.
set -uo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
build="$top/build/valgrind"
stage="$build/stage"
supp="$top/tools/valgrind.supp"
use_installed=0
[[ "${1:-}" == "--installed" ]] && use_installed=1

if ! command -v valgrind >/dev/null; then
  echo "valgrind.sh: valgrind not found" >&2
  exit 2
fi
py="${PYTHON:-$(command -v python || command -v python3)}"
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT

if [[ $use_installed == 0 ]]; then
  echo "valgrind.sh: building $build (RelWithDebInfo)"
  if ! cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
      -DSKBUILD_PROJECT_VERSION=0.0.0 \
      -DPython_EXECUTABLE="$py" -Dpybind11_DIR="$("$py" -m pybind11 --cmakedir)" \
      >"$workdir/cmake.log" 2>&1 || ! cmake --build "$build" >>"$workdir/cmake.log" 2>&1; then
    cat "$workdir/cmake.log" >&2
    echo "valgrind.sh: build failed" >&2
    exit 2
  fi
  rm -rf "$stage" && mkdir -p "$stage/fastconv"
  cp "$top"/fastconv/*.py "$stage/fastconv/"
  cp "$build"/_core*.so "$stage/fastconv/"
  # The Cython baseline (fastconv.strategies.cython), when the build made it.
  if compgen -G "$build/_cython_conv*.so" >/dev/null; then
    cp "$build"/_cython_conv*.so "$stage/fastconv/"
  else
    echo "valgrind.sh: no _cython_conv in $build (Cython >= 3.0 missing?): not checked"
  fi
  export PYTHONPATH="$stage"
fi

# The driver: every op, algorithm, ISA (that valgrind runs), hand-picked shapes
# with 1 and 2 threads, and the case tables of tests/cases.py with 1 thread.
cat >"$workdir/driver.py" <<'EOF'
import os
import sys

import numpy as np

import fastconv
from fastconv import _core
from fastconv import reference as ref

# The named case tables of the test suite (tile edges, padding-only taps, ...).
# cases.py also defines hypothesis strategies, which the driver does not use:
# a stub stands in for hypothesis, whose import runs much Python code that
# CPython 3.11's int internals make memcheck report (noise, not fastconv).
import types  # noqa: E402

_stub = types.ModuleType("hypothesis")
_stub.strategies = types.ModuleType("hypothesis.strategies")
_stub.strategies.__getattr__ = lambda name: (lambda *a, **k: None)
sys.modules.setdefault("hypothesis", _stub)
sys.modules.setdefault("hypothesis.strategies", _stub.strategies)
sys.path.insert(0, os.environ["FASTCONV_TESTS_DIR"])
try:
    from cases import AVG_POOL_CASES, CONV_CASES, MAX_POOL_CASES, PADDING_ONLY_TAP_CASES
except ImportError as e:  # the tables are optional
    print(f"driver: no case tables ({e}); hand-picked shapes only")
    AVG_POOL_CASES = CONV_CASES = MAX_POOL_CASES = PADDING_ONLY_TAP_CASES = []

rng = np.random.default_rng(0)
f32 = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
isas = []
for isa in ("avx512", "avx2", "scalar"):
    try:
        _core._set_isa(isa)
        isas.append(isa)
    except RuntimeError as e:
        print(f"driver: skipping ISA {isa}: {e}")
print(f"driver: fastconv from {fastconv.__file__}, ISAs {isas}")
CONV = [  # (x shape, w shape, kwargs): tile edges, padding-only taps, groups, dilation, N = 0
    ((2, 3, 7, 9), (4, 3, 3, 3), {"padding": 1}),
    ((1, 4, 5, 17), (4, 1, 3, 3), {"padding": 1, "stride": 2, "groups": 4}),
    ((1, 2, 1, 1), (2, 2, 5, 5), {"padding": 2}),
    ((2, 4, 9, 11), (6, 2, 3, 2), {"padding": "same", "dilation": 2, "groups": 2}),
    ((1, 17, 3, 33), (16, 17, 1, 1), {}),
    ((0, 3, 5, 5), (2, 3, 3, 3), {}),
]
POOL = [((2, 3, 7, 9), 3, 2, 1), ((1, 2, 5, 17), 2, 1, 1), ((0, 2, 4, 4), 2, 2, 0)]
calls = 0
for isa in isas:
    _core._set_isa(isa)
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        for xs, ws, kw in CONV:
            x, w, b = f32(*xs), f32(*ws), f32(ws[0])
            y64 = ref.conv2d(x.astype(np.float64), w.astype(np.float64), b.astype(np.float64), **kw)
            dy = f32(*y64.shape)
            for algo in ("direct", "im2col", "auto"):
                y = fastconv.conv2d(x, w, b, **kw, algo=algo)
                assert np.allclose(y, y64, rtol=1e-4, atol=1e-4), (isa, xs, algo)
                fastconv.conv2d_backward(dy, x, w, **kw, algo=algo)
                fastconv.conv2d_backward(dy, x, w, **kw, algo=algo, output_mask=(False, True, False))
                calls += 3
        for xs, k, s, p in POOL:
            x = f32(*xs)
            y, idx = fastconv.max_pool2d(x, k, s, p, ceil_mode=True, return_indices=True)
            assert np.array_equal(y, ref.max_pool2d(x, k, s, p, ceil_mode=True), equal_nan=True)
            fastconv.max_pool2d(x, k, s, p, dilation=2 if xs[2] > 4 else 1)
            fastconv.max_pool2d_backward(f32(*y.shape), idx, x.shape)
            ya = fastconv.avg_pool2d(x, k, s, p, ceil_mode=True, count_include_pad=False)
            fastconv.avg_pool2d_backward(f32(*ya.shape), x.shape, k, s, p, True, False)
            fastconv.avg_pool2d(x, k, s, p, divisor_override=3)
            calls += 6
        for batch, n_in, n_out in [((5,), 7, 4), ((33,), 40, 17), ((2, 3), 300, 33), ((0,), 3, 2)]:
            x, w, b = f32(*batch, n_in), f32(n_out, n_in), f32(n_out)
            y = fastconv.linear(x, w, b)
            assert np.allclose(y, x @ w.T + b, rtol=1e-4, atol=1e-4)
            calls += 1
        _core.sgemm(f32(17, 9), f32(1, 17), f32(9, 1), alpha=0.5, beta=2.0, trans_a=True, trans_b=True)
        if threads == 1:  # the case tables, once per ISA
            for c in CONV_CASES + PADDING_ONLY_TAP_CASES:
                x, w, b = f32(*c.x_shape), f32(*c.w_shape), f32(c.K)
                for algo in ("direct", "im2col"):
                    y = fastconv.conv2d(x, w, b, **c.kwargs, algo=algo)
                    fastconv.conv2d_backward(f32(*y.shape), x, w, **c.kwargs, algo=algo)
                    calls += 2
            for c in MAX_POOL_CASES:
                x = f32(*c.x_shape)
                y, idx = fastconv.max_pool2d(x, **c.max_kwargs, return_indices=True)
                if ((idx >= 0) & (idx < c.H * c.W)).all():
                    fastconv.max_pool2d_backward(f32(*y.shape), idx, x.shape)
                calls += 2
            for c in AVG_POOL_CASES:
                x = f32(*c.x_shape)
                y = fastconv.avg_pool2d(x, **c.avg_kwargs)
                fastconv.avg_pool2d_backward(f32(*y.shape), x.shape, **c.avg_kwargs)
                calls += 2
        # Error paths: validation must not touch memory it does not own.
        x = f32(1, 2, 6, 6)
        _, idx = fastconv.max_pool2d(x, 2, return_indices=True)
        idx[0, 1, 2, 2] = 36
        for bad in (
            lambda: fastconv.max_pool2d_backward(f32(1, 2, 3, 3), idx, x.shape),
            lambda: fastconv.conv2d(x, f32(2, 3, 3, 3)),
            lambda: fastconv.conv2d(x, f32(2, 2, 3, 3), padding=2**30),
            lambda: fastconv.avg_pool2d_backward(f32(1, 2, 4, 4), x.shape, 2),
            lambda: fastconv.linear(f32(3, 0), f32(4, 0)),
        ):
            try:
                bad()
            except ValueError:
                pass
        # Non-contiguous inputs (copied by the bindings) and fresh outputs with guards.
        _core._set_output_guard(16)
        fastconv.conv2d(np.asfortranarray(f32(2, 3, 7, 9)), f32(4, 3, 3, 3)[:, :, ::-1], padding=1)
        _core._set_output_guard(0)
# The Cython baseline (fastconv.strategies.cython), when it is built.
from fastconv import strategies  # noqa: E402

if strategies.cython_error is None:
    cy = strategies.cython
    for threads in (1, 2):
        fastconv.set_num_threads(threads)
        for xs, ws, kw in CONV:
            x, w, b = f32(*xs), f32(*ws), f32(ws[0])
            y = cy.conv2d(x, w, b, **kw)
            assert np.allclose(y, fastconv.conv2d(x, w, b, **kw), rtol=1e-4, atol=1e-4), xs
            cy.conv2d_backward(f32(*y.shape), x, w, **kw)
            cy.conv2d_backward(f32(*y.shape), x, w, **kw, output_mask=(False, True, False))
            calls += 3
        for xs, k, s, p in POOL:
            x = f32(*xs)
            y, idx = cy.max_pool2d(x, k, s, p, ceil_mode=True, return_indices=True)
            assert np.array_equal(y, ref.max_pool2d(x, k, s, p, ceil_mode=True), equal_nan=True)
            cy.max_pool2d_backward(f32(*y.shape), idx, x.shape)
            calls += 2
else:
    print(f"driver: Cython strategy not checked: {strategies.cython_error}")
print(f"driver: {calls} checked calls done")
EOF

# 1. Can this CPU model (valgrind's: no AVX-512) import the fastconv we test?
cd "$workdir"
if ! valgrind --tool=none --error-exitcode=0 "$py" -c "import fastconv" >"$workdir/import.log" 2>&1; then
  echo "valgrind.sh: importing fastconv under valgrind FAILED (a CPU without AVX-512):" >&2
  grep -E "unhandled instruction|Illegal|at 0x|by 0x" "$workdir/import.log" | head -8 >&2
  exit 2
fi

# 2. memcheck over the driver.
echo "valgrind.sh: memcheck run (FASTCONV_ISA=avx2, then scalar; 1 and 2 threads)"
start=$(date +%s)
FASTCONV_TESTS_DIR="$top/tests" FASTCONV_ISA=avx2 PYTHONMALLOC=malloc valgrind --tool=memcheck --error-exitcode=97 \
  --num-callers=40 --suppressions="$supp" --log-file="$workdir/memcheck.log" \
  "$py" "$workdir/driver.py"
rc=$?
echo "valgrind.sh: memcheck run took $(($(date +%s) - start)) s, exit status $rc"
if [[ $rc != 0 && $rc != 97 ]]; then
  tail -40 "$workdir/memcheck.log" >&2
  echo "valgrind.sh: the driver failed or crashed under valgrind" >&2
  exit 2
fi

# 3. Which reports involve fastconv's code?
"$py" - "$workdir/memcheck.log" <<'EOF'
import re
import sys

text = open(sys.argv[1]).read().splitlines()
pid = re.compile(r"^==\d+== ?")
blocks, cur = [], None
for line in text:
    body = pid.sub("", line)
    if cur is None:
        if re.match(r"(Invalid|Use of uninitialised|Conditional jump|Syscall param|Mismatched|"
                    r"Source and destination|Argument '|.*uninitialised)", body):
            cur = [body]
    elif body.strip() == "":
        blocks.append(cur)
        cur = None
    else:
        cur.append(body)
ours = [b for b in blocks if any(re.search(r"_core\.|_cython_conv|fastconv::|fastconv_py::|/cpp/|/src/[a-z0-9_]+\.cpp", l) for l in b)]
summary = next((pid.sub("", l) for l in text if "ERROR SUMMARY" in l), "no ERROR SUMMARY")
kinds = {}
for b in ours:
    kinds[b[0]] = kinds.get(b[0], 0) + 1
print(f"valgrind.sh: memcheck {summary}")
print(f"valgrind.sh: {len(blocks)} distinct error contexts after suppressions, "
      f"{len(ours)} involving fastconv's code (the others are CPython's or the loader's)")
for k, n in sorted(kinds.items()):
    print(f"  {n} x {k}")
for b in ours[:10]:
    print("\n".join(["----"] + b[:25]))
sys.exit(1 if ours else 0)
EOF
