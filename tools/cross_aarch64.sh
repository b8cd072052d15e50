#!/usr/bin/env bash
# Cross-builds fastconv._core for aarch64 (Linux) with Debian's cross compiler
# and runs it under qemu-aarch64: the scalar kernels only (no NEON yet), on a
# real aarch64 CPython with numpy's aarch64 wheel.
#
#   tools/cross_aarch64.sh smoke              one JSON line from tests/wheel_smoke.py
#   tools/cross_aarch64.sh pytest [args...]   the test suite (default: all of tests/)
#
# Needs (Debian 12): apt-get install g++-aarch64-linux-gnu qemu-user, and the
# arm64 package lists (dpkg --add-architecture arm64 && apt-get update) so
# that `apt-get download` finds Debian's arm64 CPython; nothing is installed:
# the .debs are unpacked into build/aarch64/sysroot. numpy and the test
# dependencies come from the package index as aarch64 wheels. Build tools
# (cmake, ninja, pybind11) from the active Python environment, as for
# tools/sanitize.sh. Results land in build/aarch64/.
set -euo pipefail
top="$(cd "$(dirname "$0")/.." && pwd)"
work="$top/build/aarch64"
sysroot="$work/sysroot"
site="$work/site"
stage="$work/stage"
pyver=3.11 # Debian 12's CPython, the interpreter the extension is built for

need() { command -v "$1" >/dev/null || { echo "cross_aarch64: $1 not found ($2)" >&2; exit 2; }; }
need aarch64-linux-gnu-g++ "apt-get install g++-aarch64-linux-gnu"
need qemu-aarch64 "apt-get install qemu-user"
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "cross_aarch64: no arm64 package lists (dpkg --add-architecture arm64 && apt-get update)" >&2
  exit 2
fi

# An aarch64 CPython: Debian's packages unpacked, not installed.
if [ ! -x "$sysroot/usr/bin/python$pyver" ]; then
  mkdir -p "$work/debs" "$sysroot/lib"
  (cd "$work/debs" && apt-get download -q \
    "python$pyver-minimal:arm64" "libpython$pyver-minimal:arm64" \
    "libpython$pyver-stdlib:arm64" "libpython$pyver-dev:arm64" "libpython$pyver:arm64" \
    zlib1g:arm64 libexpat1:arm64 libffi8:arm64 libssl3:arm64 libbz2-1.0:arm64 \
    liblzma5:arm64 libsqlite3-0:arm64 libncursesw6:arm64 libtinfo6:arm64 \
    libreadline8:arm64 libuuid1:arm64 libcrypt1:arm64 >/dev/null)
  for deb in "$work"/debs/*.deb; do dpkg -x "$deb" "$sysroot"; done
  # The C and C++ runtimes (and libgomp) of the cross toolchain.
  cp -a /usr/aarch64-linux-gnu/lib/*.so* "$sysroot/lib/"
fi
if [ ! -d "$site/numpy" ]; then
  python -m pip install -q --target "$site" --platform manylinux2014_aarch64 \
    --python-version "$pyver" --implementation cp --only-binary=:all: \
    numpy pytest hypothesis threadpoolctl pytest-benchmark
fi

cat >"$work/toolchain.cmake" <<EOF
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
EOF
# Python_INCLUDE_DIR: the target's headers (its pyconfig.h picks the aarch64
# one from the include root); the host interpreter only runs pybind11's CMake.
cmake -S "$top" -B "$work/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$work/toolchain.cmake" -DSKBUILD_PROJECT_VERSION=0.0.0 \
  -DPython_EXECUTABLE="$(command -v python)" \
  -DPython_INCLUDE_DIR="$sysroot/usr/include/python$pyver" \
  -DCMAKE_CXX_FLAGS="-isystem $sysroot/usr/include" \
  -Dpybind11_DIR="$(python -m pybind11 --cmakedir)" >/dev/null
cmake --build "$work/build" >/dev/null

# The package: Python sources and the extension, named for the target's ABI
# (the build names it after the host interpreter).
rm -rf "$stage" && mkdir -p "$stage/fastconv"
cp "$top"/fastconv/*.py "$top"/fastconv/*.pyi "$stage/fastconv/"
cp "$work"/build/_core*.so "$stage/fastconv/_core.cpython-${pyver/./}-aarch64-linux-gnu.so"

export QEMU_LD_PREFIX="$sysroot"
libs="$sysroot/lib:$sysroot/lib/aarch64-linux-gnu:$sysroot/usr/lib/aarch64-linux-gnu"
run() {
  qemu-aarch64 -E LD_LIBRARY_PATH="$libs" -E PYTHONHOME="$sysroot/usr" \
    -E PYTHONPATH="$stage:$site" "$sysroot/usr/bin/python$pyver" "$@"
}
mode="${1:-smoke}"
[ $# -gt 0 ] && shift
case "$mode" in
  smoke) run "$top/tests/wheel_smoke.py" ;;
  pytest)
    # From a scratch directory, so that `import fastconv` finds the staged package.
    cd "$(mktemp -d)"
    run -m pytest -p no:cacheprovider "${@:-$top/tests}"
    ;;
  *) echo "usage: $0 [smoke | pytest [args...]]" >&2; exit 2 ;;
esac
