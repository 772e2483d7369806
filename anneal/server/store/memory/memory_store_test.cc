// The in-memory store: the conformance suite, and the injected commit fault
// the registry's failure tests rely on.
#include "anneal/server/store/memory/memory_store.h"

#include <atomic>
#include <memory>

#include "anneal/server/store/testing/store_test_suite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::ElementsAre;
using ::testing::SizeIs;

StoreBackend MemoryBackend() {
  return {"Memory",
          [](const std::string&) -> absl::StatusOr<std::unique_ptr<Store>> {
            return NewMemoryStore();
          },
          /*persistent=*/false};
}

INSTANTIATE_TEST_SUITE_P(Memory, StoreTest, testing::Values(MemoryBackend()),
                         BackendName);
INSTANTIATE_TEST_SUITE_P(Memory, StoreReportsTest,
                         testing::Values(MemoryBackend()), BackendName);

TEST(MemoryStoreTest, AFailedCommitFailsEveryLaterBatchUntilResume) {
  std::atomic<bool> broken{false};
  MemoryStoreOptions options;
  options.commit_fault = [&]() {
    return broken ? absl::ResourceExhaustedError("disk full (injected)")
                  : absl::OkStatus();
  };
  std::unique_ptr<Store> store = NewMemoryStore(options);
  ASSERT_TRUE(Write(*store, PutBatch(MakeSchedule("a"))).ok());
  broken = true;
  EXPECT_EQ(Write(*store, AdvanceBatch("a", MakeAdvance("r1", 1))).code(),
            absl::StatusCode::kResourceExhausted);
  broken = false;
  // Failed: not attempted, although the disk works again.
  absl::Status later = Write(*store, AdvanceBatch("a", MakeAdvance("r2", 1)));
  EXPECT_EQ(later.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(later.message(), "disk full (injected)");
  EXPECT_TRUE(store->stats().failed);
  EXPECT_EQ(store->stats().failed_commits, 1);
  broken = true;
  EXPECT_FALSE(store->Resume().ok());  // the probe fails too
  broken = false;
  ASSERT_TRUE(store->Resume().ok());
  EXPECT_FALSE(store->stats().failed);
  ASSERT_TRUE(Write(*store, AdvanceBatch("a", MakeAdvance("r3", 1))).ok());
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok());
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].schedule.position(), 1);
  EXPECT_THAT(RequestIds((*all)[0]), ElementsAre("r3"));
}

}  // namespace
}  // namespace anneal
