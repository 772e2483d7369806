#!/usr/bin/env bash
# The test command: installs what is missing, builds everything and runs the
# whole suite (GoogleTest through ctest, then the Python tests through pytest).
# Usage: scripts/test.sh [extra cmake args]   (BUILD_DIR overrides ./build)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh

BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$BUILD_DIR" -j"$(nproc)"

status=0
(cd "$BUILD_DIR" && ctest --output-on-failure -j"$(nproc)") || status=1

# Debian's python3 has torch/grpc; a pyenv python3 earlier on PATH does not.
PYTHON=/usr/bin/python3
if compgen -G "tests/python/test_*.py" >/dev/null; then
  ANNEAL_BUILD_DIR="$PWD/$BUILD_DIR" "$PYTHON" -m pytest -q tests/python || status=1
fi
exit $status
