#!/usr/bin/env bash
# Sanitizer runs, from one command:
#   1. the whole suite (every ctest test, then every pytest test against
#      the instrumented anneal-server and annealctl) under AddressSanitizer
#      + UndefinedBehaviorSanitizer, built in build-asan/;
#   2. the concurrency tests under ThreadSanitizer, built in build-tsan/.
# Each stage prints its wall time; the last line is the total. CI does not
# run this (it takes longer than CI's budget on 2 cores: docs/reliability.md
# has the figures); run it before a release or after touching locks.
#   scripts/test-sanitizers.sh            # both
#   scripts/test-sanitizers.sh asan       # or only one
#   scripts/test-sanitizers.sh tsan
#
# TSAN needs an instrumented Abseil: Debian's libabsl*.so are built without
# -fsanitize=thread, so TSAN cannot see absl::Mutex and reports false races.
# scripts/build-absl-tsan.sh builds one from Debian's own abseil source (same
# version and patches as libabsl-dev) once and caches it outside the repo
# (ANNEAL_CACHE_DIR, default ~/.cache/anneal); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."
stages=${1:-asan tsan}

scripts/install-deps.sh

export ASAN_OPTIONS="detect_leaks=1 halt_on_error=1 abort_on_error=0"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
# Leaks inside the uninstrumented system libraries' own caches (gRPC's
# and protobuf's process-lifetime singletons) are theirs, not ours.
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan.supp print_suppressions=0"

began=$SECONDS
stage_began=$SECONDS
stage() {  # stage NAME: prints the time since the previous stage
  echo "== sanitizers: $1 took $((SECONDS - stage_began)) s"
  stage_began=$SECONDS
}

configure() {  # configure BUILD_DIR SANITIZER [-DCMAKE_ARG...]
  local dir=$1 sanitizer=$2
  shift 2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DANNEAL_SANITIZE="$sanitizer" -DANNEAL_BUILD_BENCH=OFF "$@" >/dev/null
}

status=0
if [[ $stages == *asan* ]]; then
  configure build-asan address
  cmake --build build-asan -j"$(nproc)"
  stage "asan build"
  # The thread-safety check compiles with clang on its own; it is the same
  # in every build, so the normal suite covers it.
  (cd build-asan && ctest --output-on-failure -j"$(nproc)" \
    -E '^thread_safety_check$') || status=1
  stage "asan ctest"
  ANNEAL_BUILD_DIR="$PWD/build-asan" /usr/bin/python3 -m pytest -q \
    tests/python || status=1
  stage "asan pytest"
fi

if [[ $stages == *tsan* ]]; then
  absl_tsan=$(scripts/build-absl-tsan.sh | tail -n1)
  stage "instrumented abseil (cached after the first run)"
  configure build-tsan thread -Dabsl_DIR="$absl_tsan/lib/cmake/absl"
  # Not the live server: Debian's gRPC is not instrumented, so TSAN sees
  # its internal hand-offs (a stream's write tag and its OnDone) as races.
  tsan_tests=(registry_concurrency_test registry_faults_test
    registry_list_test memory_store_test sqlite_store_test watch_hub_test
    prometheus_telemetry_test status_page_test rate_limiter_test authz_test
    step_client_test metric_reporter_test)
  cmake --build build-tsan -j"$(nproc)" --target "${tsan_tests[@]}"
  stage "tsan build"
  for t in "${tsan_tests[@]}"; do
    echo "== tsan: $t"
    "build-tsan/bin/$t" --gtest_brief=1 || status=1
  done
  stage "tsan tests"
fi

echo "sanitizers: $([[ $status == 0 ]] && echo "all clean" || echo FAILED)" \
  "in $((SECONDS - began)) s"
exit $status
