// timeline_edit_bench: what one timeline change costs as history grows.
//
//   BM_Restart/<segments>  one RestartSchedule on a schedule whose timeline
//                          already holds <segments> segments, through the
//                          registry on the in-memory store (so the figure is
//                          the edit, not the disk). The spec has momentum
//                          with max 0.9999, whose bias-correction table is
//                          the costly part of compiling it.
//   BM_Update/<segments>   the same for an UpdateSchedule with a new spec.
//
// Compare a row with the 10-segment one of the same run: an edit reuses the
// compiled parts before it, so the ratio should stay near 1 (it copies the
// record's protos, which grow with history, but compiles one spec).
//
//   build/bin/timeline_edit_bench --benchmark_min_time=0.2
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "anneal/server/common/work_pool.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/store.h"
#include "benchmark/benchmark.h"

namespace anneal {
namespace {

v1::ScheduleSpec Spec(double max_lr) {
  v1::ScheduleSpec spec;
  spec.set_max_lr(max_lr);
  spec.mutable_cosine()->set_period(1'000'000);
  spec.mutable_momentum()->set_base(0.99);
  spec.mutable_momentum()->set_max(0.9999);
  return spec;
}

// A registry with one schedule of `segments` segments (restarts).
struct Fixture {
  explicit Fixture(int64_t segments)
      : store(NewMemoryStore()), pool(WorkPool::Options{1, 1 << 20}) {
    RegistryOptions options;
    options.executor = &pool;
    options.max_timeline_segments = 1'000'000;
    options.max_schedule_bytes = int64_t{1} << 30;
    registry = std::make_unique<Registry>(store.get(), options);
    v1::CreateScheduleRequest create;
    create.set_schedule_id("s");
    *create.mutable_schedule()->mutable_spec() = Spec(0.1);
    (void)Wait<v1::Schedule>(*registry, &Registry::Create, create);
    for (int64_t i = 1; i < segments; ++i) Restart(i);
  }
  void Restart(int64_t at) {
    v1::RestartScheduleRequest restart;
    restart.set_name("schedules/s");
    restart.set_at_step(at);
    (void)Wait<v1::Schedule>(*registry, &Registry::Restart, restart);
  }

  std::unique_ptr<Store> store;
  WorkPool pool;
  std::unique_ptr<Registry> registry;
  int64_t next = 1'000'000;
};

void BM_Restart(benchmark::State& state) {
  Fixture f(state.range(0));
  for (auto _ : state) {
    // Each restart replaces the previous one (later steps), so the history
    // stays at the same length.
    f.Restart(--f.next);
  }
}
BENCHMARK(BM_Restart)
    ->Arg(10)
    ->Arg(100)
    ->Arg(1000)
    ->Unit(benchmark::kMicrosecond);

void BM_Update(benchmark::State& state) {
  Fixture f(state.range(0));
  int i = 0;
  for (auto _ : state) {
    v1::UpdateScheduleRequest update;
    update.mutable_schedule()->set_name("schedules/s");
    *update.mutable_schedule()->mutable_spec() =
        Spec(0.05 + 1e-6 * (++i % 1000));
    update.set_effective_step(--f.next);
    (void)Wait<v1::Schedule>(*f.registry, &Registry::Update, update);
  }
}
BENCHMARK(BM_Update)->Arg(10)->Arg(100)->Arg(1000)->Unit(
    benchmark::kMicrosecond);

}  // namespace
}  // namespace anneal

BENCHMARK_MAIN();
