#!/usr/bin/env bash
# Builds fastconv._core and the Cython baseline fastconv._cython_conv with
# ASan + UBSan (no recovery) in its own build directory and runs the test
# suite against them. Any sanitizer report aborts the run, so success means
# 0 reports.
#
#   tools/sanitize.sh [pytest args...]      (default: the whole suite, "ci" profile)
#   tools/sanitize.sh tests/test_pool2d.py -q   (test paths, relative to the
#                                               caller's directory, run instead)
#
# Needs cmake, ninja and pybind11 in the active Python environment.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
build="$top/build/sanitize"
stage="$build/stage"

cmake -S "$top" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DFASTCONV_SANITIZE=ON -DSKBUILD_PROJECT_VERSION=0.0.0 \
  -DPython_EXECUTABLE="$(command -v python)" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" >/dev/null
cmake --build "$build" >/dev/null

# A package tree of the Python sources and the sanitized extension.
rm -rf "$stage" && mkdir -p "$stage/fastconv"
cp "$top"/fastconv/*.py "$stage/fastconv/"
cp "$build"/_core*.so "$stage/fastconv/"
# The Cython baseline (fastconv.strategies.cython), sanitized too, when the
# build made it (CMake skips it without Cython; its tests then skip).
if compgen -G "$build/_cython_conv*.so" >/dev/null; then
  cp "$build"/_cython_conv*.so "$stage/fastconv/"
else
  echo "sanitize.sh: no _cython_conv in $build (Cython >= 3.0 missing?): its tests skip" >&2
fi

# The ASan runtime must be loaded before the interpreter's allocations;
# leak detection is off because CPython itself keeps memory until exit.
asan="$(${CXX:-g++} -print-file-name=libasan.so)"
ubsan="$(${CXX:-g++} -print-file-name=libubsan.so)"
export LD_PRELOAD="$asan:$ubsan"
export ASAN_OPTIONS="detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export PYTHONPATH="$stage"
export FASTCONV_SANITIZED=1

# Arguments that name existing test files or directories (a node id's file
# part counts) are made absolute and replace the default, tests/.
caller="$PWD"
args=()
paths=()
for a in "$@"; do
  [[ "$a" == /* ]] && abs="$a" || abs="$caller/$a"
  if [[ "$a" != -* && -e "${abs%%::*}" ]]; then
    paths+=("$abs")
  else
    args+=("$a")
  fi
done
[[ ${#paths[@]} == 0 ]] && paths=("$top/tests")

# `python -m pytest` would put the source tree first on sys.path; run from a
# temporary directory so that `import fastconv` finds the staged package.
cd "$(mktemp -d)"
exec python -m pytest "${paths[@]}" -p no:cacheprovider --hypothesis-profile=ci ${args[@]+"${args[@]}"}
