// store_bench: what group commit buys when every writer waits for its
// acknowledgement, as the server's RPC handlers do.
//
//   BM_SqliteAdvance/threads:N  N submitters, each on its own schedule,
//                               each submitting one Advance record (120
//                               bytes of response, the hot path's size) and
//                               waiting until it is durable, in one SQLite
//                               store (WAL, synchronous=FULL: one fsync per
//                               commit).
//
// items_per_second is acknowledged writes per second over all threads;
// batches_per_commit is how many of them shared one commit. Compare each row
// with the threads:1 row of the same run (the store without concurrency):
// with group commit, throughput grows with submitters while commits per
// second stay near the disk's fsync rate.
//
//   build/bin/store_bench --benchmark_min_time=0.5
//
// The database is a fresh file under $TMPDIR (default /tmp), removed after
// each benchmark.
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "anneal/server/store/sqlite/sqlite_store.h"
#include "benchmark/benchmark.h"

namespace anneal {
namespace {

std::unique_ptr<SqliteStore> g_store;
std::string g_path;

std::string Name(int thread) { return absl::StrCat("schedules/t", thread); }

void OpenStore(int threads) {
  const char* tmp = getenv("TMPDIR");
  std::string dir =
      absl::StrCat(tmp && *tmp ? tmp : "/tmp", "/anneal_store_bench_XXXXXX");
  if (mkdtemp(dir.data()) == nullptr) std::abort();
  g_path = dir + "/bench.db";
  auto opened = SqliteStore::Open(g_path);
  if (!opened.ok()) {
    std::fprintf(stderr, "%s\n", opened.status().ToString().c_str());
    std::abort();
  }
  g_store = *std::move(opened);
  for (int t = 0; t < threads; ++t) {
    v1::Schedule schedule;
    schedule.set_name(Name(t));
    schedule.mutable_spec()->set_max_lr(0.1);
    schedule.mutable_spec()->mutable_constant();
    WriteBatch batch;
    batch.Put(schedule);
    if (!SubmitAndWait(*g_store, std::move(batch)).ok()) std::abort();
  }
}

void CloseStore() {
  g_store.reset();
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove((g_path + suffix).c_str());
  }
  rmdir(g_path.substr(0, g_path.rfind('/')).c_str());
}

void BM_SqliteAdvance(benchmark::State& state) {
  if (state.thread_index() == 0) OpenStore(state.threads());
  StoreStats before;
  if (state.thread_index() == 0) before = g_store->stats();
  const std::string name = Name(state.thread_index());
  int64_t position = 0;
  for (auto _ : state) {
    ++position;
    WriteBatch batch;
    batch.Advance(name, AdvanceRecord{absl::StrCat("r", position), position,
                                      std::string(120, 'x')});
    if (!SubmitAndWait(*g_store, std::move(batch)).ok()) {
      state.SkipWithError("write failed");
      break;
    }
  }
  state.SetItemsProcessed(state.iterations());
  if (state.thread_index() == 0) {
    const StoreStats after = g_store->stats();
    state.counters["batches_per_commit"] =
        static_cast<double>(after.batches - before.batches) /
        static_cast<double>(
            std::max<int64_t>(1, after.commits - before.commits));
    CloseStore();
  }
}
BENCHMARK(BM_SqliteAdvance)
    ->Threads(1)
    ->Threads(8)
    ->Threads(32)
    ->UseRealTime()
    ->MeasureProcessCPUTime();

}  // namespace
}  // namespace anneal

BENCHMARK_MAIN();
