#!/usr/bin/env bash
# Sanitizer runs: the concurrency tests under ThreadSanitizer, the engine and
# store tests under AddressSanitizer + UBSan. Builds into build-tsan/ and
# build-asan/ (only the targets it runs). Run by hand (about 25 minutes
# on a cold cache); scripts/test.sh does not run it.
#
# TSAN needs an instrumented Abseil: Debian's libabsl*.so are built without
# -fsanitize=thread, so TSAN cannot see absl::Mutex and reports false races.
# scripts/build-absl-tsan.sh builds one from Debian's own abseil source (same
# version and patches as libabsl-dev) once and caches it outside the repo
# (ANNEAL_CACHE_DIR, default ~/.cache/anneal); later runs reuse it.
set -euo pipefail
cd "$(dirname "$0")/.."

run() {  # run BUILD_DIR SANITIZER [-DCMAKE_ARG...] TARGET...
  local dir=$1 sanitizer=$2
  shift 2
  local cmake_args=()
  while [[ $# -gt 0 && $1 == -D* ]]; do cmake_args+=("$1"); shift; done
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DANNEAL_SANITIZE="$sanitizer" -DANNEAL_BUILD_BENCH=OFF \
    "${cmake_args[@]}" >/dev/null
  cmake --build "$dir" -j"$(nproc)" --target "$@"
  for t in "$@"; do
    [[ $t == *_test ]] || continue  # built for a test to drive, not run
    echo "== $sanitizer: $t"
    "$dir/bin/$t" --gtest_brief=1
  done
}

export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1"
export ASAN_OPTIONS="detect_leaks=1 halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1 halt_on_error=1"

absl_tsan=$(scripts/build-absl-tsan.sh | tail -n1)
run build-tsan thread -Dabsl_DIR="$absl_tsan/lib/cmake/absl" \
  registry_concurrency_test registry_faults_test registry_list_test \
  memory_store_test sqlite_store_test watch_hub_test \
  prometheus_telemetry_test status_page_test
# Not the live server: Debian's gRPC is not instrumented, so TSAN sees its
# internal hand-offs (a stream's write tag and its OnDone) as races.
# anneal-server too: metric_reports_test drives the instrumented server, whose
# exit status (non-zero on a report) the test checks.
run build-asan address families_test warm_restarts_test validation_test \
  spec_text_test schedule_resource_test step_range_test render_test \
  memory_store_test sqlite_store_test compile_limits_test \
  lr_bounds_property_test timeline_test \
  registry_concurrency_test registry_faults_test registry_list_test \
  label_index_test recent_advances_test watch_hub_test spec_summary_test \
  exposition_test prometheus_telemetry_test status_page_test anneal-server \
  metric_reports_test hostile_client_test crash_served_test
echo "sanitizers: all clean"
