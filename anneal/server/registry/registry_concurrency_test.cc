// Many readers and writers on the registry at once, in-process, over both
// stores: run under ThreadSanitizer by scripts/test-sanitizers.sh. Readers
// never fail or see a torn state; every acknowledged advance is counted once.
#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/sqlite/sqlite_store.h"
#include "gtest/gtest.h"
#include "tests/test_dir.h"

namespace anneal {
namespace {

class RegistryConcurrencyTest : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      path_ = TestDir() + "registry.db";
      auto store = OpenSqliteStore(path_);
      ASSERT_TRUE(store.ok()) << store.status();
      store_ = *std::move(store);
    } else {
      store_ = NewMemoryStore();
    }
    RegistryOptions options;
    options.served_headroom = 10;  // many durable mark raises
    registry_ = std::make_unique<TestRegistry>(store_.get(), options);
    ASSERT_TRUE((*registry_)->Load().ok());
  }
  void TearDown() override {
    registry_.reset();
    store_.reset();
  }

  std::string path_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TestRegistry> registry_;
};

TEST_P(RegistryConcurrencyTest, ReadersAndWritersTogether) {
  constexpr int kSchedules = 4;
  const std::string spec =
      "{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 2}, momentum: "
      "{base: 0.8, max: 0.9}}";
  for (int i = 0; i < kSchedules; ++i) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id("s" + std::to_string(i));
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    ASSERT_TRUE((Wait<v1::Schedule>(**registry_, &Registry::Create, req)).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int64_t> advances[kSchedules] = {};
  std::atomic<int64_t> read_errors{0}, reads{0};
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {  // readers
    threads.emplace_back([&, r] {
      for (int64_t step = r; !stop; step += 7) {
        v1::EvaluateRequest req;
        req.set_name("schedules/s" + std::to_string(step % kSchedules));
        req.set_step(step % 5000);
        if (!EvaluateNow(**registry_, req).ok()) ++read_errors;
        v1::GetScheduleRequest get;
        get.set_name(req.name());
        auto s = (*registry_)->Get(get);
        if (!s.ok() || s->timeline_size() == 0) ++read_errors;
        if (step % 50 == 0) {
          v1::EvaluateRangeRequest range;
          range.set_name(req.name());
          range.set_count(100);
          if (!EvaluateRangeNow(**registry_, range).ok()) ++read_errors;
          if (!(*registry_)->List(v1::ListSchedulesRequest(), 1 << 20).ok()) {
            ++read_errors;
          }
          // Through the label index, while the operator changes labels.
          v1::ListSchedulesRequest filtered;
          filtered.set_filter("labels.round:*");
          auto page = (*registry_)->List(filtered, 1 << 20);
          if (!page.ok() || page->schedules_size() > kSchedules) ++read_errors;
        }
        ++reads;
      }
    });
  }
  for (int w = 0; w < 4; ++w) {  // advancers
    threads.emplace_back([&, w] {
      for (int i = 0; i < 150; ++i) {
        const int s = (w + i) % kSchedules;
        v1::AdvanceRequest req;
        req.set_name("schedules/s" + std::to_string(s));
        req.set_request_id("w" + std::to_string(w) + "-" + std::to_string(i));
        if ((Wait<v1::AdvanceResponse>(**registry_, &Registry::Advance, req))
                .ok()) {
          ++advances[s];
        }
      }
    });
  }
  threads.emplace_back([&] {  // an operator changing things
    for (int i = 0; i < 30; ++i) {
      v1::UpdateScheduleRequest update;
      update.mutable_schedule()->set_name("schedules/s" +
                                          std::to_string(i % kSchedules));
      update.mutable_schedule()->set_display_name("v" + std::to_string(i));
      (*update.mutable_schedule()->mutable_labels())["round"] =
          std::to_string(i);
      EXPECT_TRUE(
          (Wait<v1::Schedule>(**registry_, &Registry::Update, update)).ok());
      v1::CreateScheduleRequest create;
      create.set_schedule_id("tmp-" + std::to_string(i));
      *create.mutable_schedule()->mutable_spec() = SpecFromText(spec);
      EXPECT_TRUE(
          (Wait<v1::Schedule>(**registry_, &Registry::Create, create)).ok());
      v1::DeleteScheduleRequest del;
      del.set_name("schedules/tmp-" + std::to_string(i));
      EXPECT_TRUE(
          (Wait<google::protobuf::Empty>(**registry_, &Registry::Delete, del))
              .ok());
    }
  });
  for (size_t i = 4; i < threads.size(); ++i) threads[i].join();
  stop = true;
  for (size_t i = 0; i < 4; ++i) threads[i].join();

  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_GT(reads.load(), 0);
  int64_t total = 0;
  for (int i = 0; i < kSchedules; ++i) {
    v1::GetScheduleRequest get;
    get.set_name("schedules/s" + std::to_string(i));
    auto s = (*registry_)->Get(get);
    ASSERT_TRUE(s.ok());
    EXPECT_EQ(s->position(), advances[i].load());
    total += s->position();
  }
  EXPECT_EQ(total, 4 * 150);
  EXPECT_EQ((*registry_)->size(), kSchedules);
}

INSTANTIATE_TEST_SUITE_P(Stores, RegistryConcurrencyTest,
                         testing::Values(false, true),
                         [](const testing::TestParamInfo<bool>& p) {
                           return p.param ? "Sqlite" : "Memory";
                         });

}  // namespace
}  // namespace anneal
