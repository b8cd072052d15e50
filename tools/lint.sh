#!/usr/bin/env bash
# Lint every tracked source file (about a second): ruff (check + format) on
# the Python, clang-format (.clang-format) on the C++. Run by .ci/run; to fix
# what it reports: `ruff check --fix`, `ruff format`, `clang-format -i FILE`.
#
# Needs ruff and clang-format (pip install ruff clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."

mapfile -t py < <(git ls-files '*.py' '*.pyi')
ruff check -- "${py[@]}"
ruff format --check -- "${py[@]}"

mapfile -t cxx < <(git ls-files '*.cpp' '*.h')
clang-format --dry-run --Werror -- "${cxx[@]}"
echo "lint: ${#py[@]} Python and ${#cxx[@]} C++ files clean"
