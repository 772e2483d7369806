#!/usr/bin/env bash
# clang-tidy (.clang-tidy) over the given C++ files, or over the .cc files
# changed since REF (default HEAD~1), using BUILD_DIR's compile database.
#   scripts/tidy.sh anneal/model/timeline.cc     # one file
#   REF=main~5 scripts/tidy.sh                   # what the last 5 commits touched
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
if [[ $# -gt 0 ]]; then
  files=("$@")
else
  mapfile -t files < <(git diff --name-only --diff-filter=d "${REF:-HEAD~1}" -- \
    'anneal/*.cc' 'bench/*.cc' 'tests/*.cc')
fi
[[ ${#files[@]} -gt 0 ]] || { echo "tidy: nothing to check"; exit 0; }
printf '%s\n' "${files[@]}" |
  xargs -P "$(nproc)" -n 4 clang-tidy -p "$BUILD_DIR" --quiet 2>/dev/null
