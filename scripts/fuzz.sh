#!/usr/bin/env bash
# Runs each libFuzzer target (fuzz/) for SECONDS (default 60), after building
# them with clang into build-fuzz/ (-DANNEAL_FUZZ=ON: ASan + UBSan +
# libFuzzer; only the fuzz targets are built).
#
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (targets: spec_text spec_proto registry)
#   FUZZ_BUILD_DIR  the build directory (default build-fuzz)
#   FUZZ_JOBS       build parallelism (default nproc)
#
# Each target starts from its seed corpus fuzz/corpus/<target>/ and its
# regressions fuzz/regressions/<target>/; new inputs go to a scratch corpus
# under the build directory (the repository's corpus is not modified). A
# crash stops the run with exit 1, the input saved as
# $FUZZ_BUILD_DIR/fuzz-artifacts/<target>/crash-*: fix the bug, copy the file
# into fuzz/regressions/<target>/, and <target>_fuzz_replay_test (ctest)
# replays it from then on. The last line per target gives its figures.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${1:-60}
shift || true
TARGETS=("$@")
[[ ${#TARGETS[@]} -gt 0 ]] || TARGETS=(spec_text spec_proto registry)
BUILD=${FUZZ_BUILD_DIR:-build-fuzz}
JOBS=${FUZZ_JOBS:-$(nproc)}

for tool in clang clang++; do
  command -v "$tool" >/dev/null || { echo "fuzz: $tool not found (scripts/install-deps.sh)" >&2; exit 2; }
done

CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DANNEAL_FUZZ=ON -DANNEAL_BUILD_TESTS=OFF -DANNEAL_BUILD_BENCH=OFF >/dev/null
cmake --build "$BUILD" -j"$JOBS" --target "${TARGETS[@]/%/_fuzzer}"

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
status=0
for t in "${TARGETS[@]}"; do
  work="$BUILD/fuzz-corpus/$t"
  artifacts="$BUILD/fuzz-artifacts/$t"
  mkdir -p "$work" "$artifacts" "fuzz/regressions/$t"
  log="$BUILD/fuzz-$t.log"
  echo "== fuzz $t for ${SECONDS_EACH}s (log: $log)"
  if "$BUILD/bin/${t}_fuzzer" -max_total_time="$SECONDS_EACH" -max_len=4096 \
      -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
      -artifact_prefix="$artifacts/" "$work" "fuzz/corpus/$t" "fuzz/regressions/$t" \
      >"$log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n1 || true)
    corp=$(ls "$work" | wc -l)
    echo "fuzz $t: ${execs:-?} execs in ${SECONDS_EACH}s, ${cov:-cov: ?}, corpus $corp, crashes 0"
  else
    status=1
    echo "fuzz $t: FAILED, see $log and $artifacts/" >&2
    grep -m5 -E 'ERROR|invariant|runtime error|SUMMARY' "$log" >&2 || true
  fi
done
exit $status
