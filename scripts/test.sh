#!/usr/bin/env bash
# The test command: installs what is missing, builds everything and runs the
# whole suite (GoogleTest through ctest, then the Python tests through pytest,
# then each fuzz target for ANNEAL_FUZZ_SECONDS, default 30, when clang is
# there: scripts/fuzz.sh).
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

# The fuzz targets, briefly (ANNEAL_FUZZ_SECONDS each, default 30; 0 skips),
# when clang can link libFuzzer (clang from install-deps.sh has it). Their
# corpus and regressions were already replayed by ctest (*_fuzz_replay_test).
FUZZ_SECONDS=${ANNEAL_FUZZ_SECONDS:-30}
probe=$(mktemp -d)
echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }' \
  >"$probe/probe.cc"
if [[ $FUZZ_SECONDS -gt 0 ]] && command -v clang++ >/dev/null &&
    clang++ -fsanitize=fuzzer "$probe/probe.cc" -o "$probe/probe" 2>/dev/null; then
  FUZZ_BUILD_DIR="$BUILD_DIR-fuzz" scripts/fuzz.sh "$FUZZ_SECONDS" || status=1
else
  echo "test: fuzzers skipped (ANNEAL_FUZZ_SECONDS=$FUZZ_SECONDS, or no clang with libFuzzer)"
fi
rm -rf "$probe"
exit $status
