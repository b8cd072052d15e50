#!/usr/bin/env bash
# Lint: ruff (check + format) on the Python files, clang-format on the C++
# files that changed since $FASTCONV_LINT_BASE (default: the previous commit),
# uncommitted changes included. The C++ predates .clang-format, so it is
# checked file by file as files are touched, not reformatted in one sweep.
#
#   tools/lint.sh              # what .ci/run runs
#   FASTCONV_LINT_BASE=main tools/lint.sh
#
# Needs ruff and clang-format (pip install ruff clang-format).
set -euo pipefail
cd "$(dirname "$0")/.."

base="${FASTCONV_LINT_BASE:-HEAD~1}"
git rev-parse -q --verify "$base^{commit}" >/dev/null || base="$(git rev-list --max-parents=0 HEAD)"

mapfile -t py < <(git ls-files '*.py' '*.pyi')
ruff check -- "${py[@]}"
ruff format --check -- "${py[@]}"

mapfile -t cxx < <({ git diff --name-only --diff-filter=d "$base" -- '*.cpp' '*.h';
                     git ls-files --others --exclude-standard -- '*.cpp' '*.h'; } | sort -u)
if ((${#cxx[@]})); then
  clang-format --dry-run --Werror -- "${cxx[@]}"
fi
echo "lint: ${#py[@]} Python files, ${#cxx[@]} changed C++ files clean"
