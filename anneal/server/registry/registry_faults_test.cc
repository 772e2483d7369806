// The registry when things fail under it, in-process: an allocation failure
// after a change raised its fence (the fence comes down, the change leaves
// nothing behind, and reads past it go on), and a store that fails and
// recovers (writes stop, the heads go back to what is durable, writes
// resume).
#include <atomic>
#include <future>
#include <new>

#include "absl/synchronization/notification.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::HasSubstr;

// Throws std::bad_alloc from the Submit it is armed for, as a full heap
// would inside the store's queue.
class AllocationFailingStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  void ArmNextSubmit() { armed_ = true; }
  void Submit(WriteBatch batch, Done done) override {
    if (armed_.exchange(false)) throw std::bad_alloc();
    StoreWrapper::Submit(std::move(batch), std::move(done));
  }

 private:
  std::atomic<bool> armed_{false};
};

constexpr char kSpec[] = "{max_lr: 0.1, cosine: {period: 100}}";

v1::CreateScheduleRequest CreateRequest(const std::string& id) {
  v1::CreateScheduleRequest req;
  req.set_schedule_id(id);
  *req.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
  return req;
}

v1::UpdateScheduleRequest SpecUpdate(const std::string& name, int64_t from,
                                     double max_lr) {
  v1::UpdateScheduleRequest req;
  req.mutable_schedule()->set_name(name);
  req.mutable_schedule()->mutable_spec()->set_max_lr(max_lr);
  req.mutable_schedule()->mutable_spec()->mutable_constant();
  req.set_effective_step(from);
  return req;
}

v1::EvaluateRequest At(const std::string& name, int64_t step) {
  v1::EvaluateRequest req;
  req.set_name(name);
  req.set_step(step);
  return req;
}

TEST(RegistryFaultsTest, AnAllocationFailureAfterTheFenceLeavesNothingRaised) {
  std::unique_ptr<Store> memory = NewMemoryStore();
  AllocationFailingStore store(memory.get());
  TestRegistry registry(&store);
  ASSERT_TRUE(registry->Load().ok());
  ASSERT_TRUE(
      (Wait<v1::Schedule>(*registry, &Registry::Create, CreateRequest("f")))
          .ok());
  const double before =
      EvaluateNow(*registry, At("schedules/f", 5))->result().lr();

  // The Update raises its fence at step 10, then its Submit throws.
  store.ArmNextSubmit();
  absl::StatusOr<v1::Schedule> answer;
  bool answered = false;
  EXPECT_THROW(registry->Update(SpecUpdate("schedules/f", 10, 0.5),
                                [&](absl::StatusOr<v1::Schedule> r) {
                                  answer = std::move(r);
                                  answered = true;
                                }),
               std::bad_alloc);
  // Answered while unwinding, not left waiting.
  ASSERT_TRUE(answered);
  EXPECT_EQ(answer.status().code(), absl::StatusCode::kResourceExhausted);

  // A read past the fence's step is answered (it once waited forever).
  auto read = std::async(std::launch::async, [&] {
    return EvaluateNow(*registry, At("schedules/f", 20));
  });
  ASSERT_EQ(read.wait_for(std::chrono::seconds(10)), std::future_status::ready);
  auto after = read.get();
  ASSERT_TRUE(after.ok()) << after.status();
  // The change left nothing behind: the old spec, the old revision.
  EXPECT_NE(after->result().lr(), 0.5);
  EXPECT_EQ(EvaluateNow(*registry, At("schedules/f", 5))->result().lr(),
            before);
  v1::GetScheduleRequest get;
  get.set_name("schedules/f");
  EXPECT_EQ(registry->Get(get)->revision(), 1);
  // And the next change works, built on the real head.
  auto updated = Wait<v1::Schedule>(*registry, &Registry::Update,
                                    SpecUpdate("schedules/f", 30, 0.5));
  ASSERT_TRUE(updated.ok()) << updated.status();
  EXPECT_EQ(updated->revision(), 2);
  EXPECT_EQ(updated->timeline_size(), 2);
}

TEST(RegistryFaultsTest, AFailedCreateIsNotLeftListed) {
  std::unique_ptr<Store> memory = NewMemoryStore();
  AllocationFailingStore store(memory.get());
  TestRegistry registry(&store);
  ASSERT_TRUE(registry->Load().ok());
  store.ArmNextSubmit();
  bool answered = false;
  EXPECT_THROW(registry->Create(CreateRequest("c"),
                                [&](absl::StatusOr<v1::Schedule> r) {
                                  EXPECT_FALSE(r.ok());
                                  answered = true;
                                }),
               std::bad_alloc);
  EXPECT_TRUE(answered);
  EXPECT_EQ(registry->size(), 0);
  EXPECT_TRUE(
      (Wait<v1::Schedule>(*registry, &Registry::Create, CreateRequest("c")))
          .ok());
}

// Holds every Submit until released, as a store behind a lock would.
class HoldingStore : public StoreWrapper {
 public:
  using StoreWrapper::StoreWrapper;
  void Submit(WriteBatch batch, Done done) override {
    held_.emplace_back(std::move(batch), std::move(done));
  }
  void Release() {
    for (auto& [batch, done] : held_) {
      StoreWrapper::Submit(std::move(batch), std::move(done));
    }
    held_.clear();
  }

 private:
  std::vector<std::pair<WriteBatch, Done>> held_;
};

// A create waiting for the store is no schedule yet: not in size() or
// the total the exporter reports, and not over any cap.
TEST(RegistryFaultsTest, ACreateNotYetDurableIsNotCounted) {
  std::unique_ptr<Store> memory = NewMemoryStore();
  HoldingStore store(memory.get());
  TestRegistry registry(&store);
  ASSERT_TRUE(registry->Load().ok());
  std::promise<absl::StatusOr<v1::Schedule>> created;
  registry->Create(CreateRequest("c"), [&](absl::StatusOr<v1::Schedule> r) {
    created.set_value(std::move(r));
  });
  EXPECT_EQ(registry->size(), 0);
  int visited = 0;
  EXPECT_EQ(
      registry->Observe(10, [&](const ScheduleObservation&) { ++visited; }), 0);
  EXPECT_EQ(visited, 0);
  store.Release();
  ASSERT_TRUE(created.get_future().get().ok());
  EXPECT_EQ(registry->size(), 1);
  EXPECT_EQ(registry->Observe(10, [](const ScheduleObservation&) {}), 1);
}

TEST(RegistryFaultsTest, AFailingStoreStopsWritesAndTheyResumeOnItsRecovery) {
  std::atomic<bool> broken{false};
  MemoryStoreOptions options;
  options.commit_fault = [&] {
    return broken ? absl::ResourceExhaustedError("disk full (injected)")
                  : absl::OkStatus();
  };
  std::unique_ptr<Store> store = NewMemoryStore(options);
  absl::Mutex mu;
  std::vector<bool> states;  // what on_store_state was told
  RegistryOptions registry_options;
  registry_options.store_retry_interval = absl::Milliseconds(20);
  registry_options.on_store_state = [&](bool writable, const absl::Status&) {
    absl::MutexLock lock(&mu);
    states.push_back(writable);
  };
  TestRegistry registry(store.get(), registry_options);
  ASSERT_TRUE(registry->Load().ok());
  ASSERT_TRUE(
      (Wait<v1::Schedule>(*registry, &Registry::Create, CreateRequest("s")))
          .ok());
  v1::AdvanceRequest advance;
  advance.set_name("schedules/s");
  ASSERT_TRUE(
      (Wait<v1::AdvanceResponse>(*registry, &Registry::Advance, advance)).ok());

  broken = true;
  // An accepted write whose batch fails: its head change must not stay.
  v1::UpdateScheduleRequest rename;
  rename.mutable_schedule()->set_name("schedules/s");
  rename.mutable_schedule()->set_display_name("lost");
  auto failed = Wait<v1::Schedule>(*registry, &Registry::Update, rename);
  EXPECT_EQ(failed.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(failed.status().message(), HasSubstr("disk full (injected)"));
  auto refused =
      Wait<v1::AdvanceResponse>(*registry, &Registry::Advance, advance);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(registry->writable());
  // Reads under the durable mark go on; past it they need a write.
  EXPECT_TRUE(EvaluateNow(*registry, At("schedules/s", 1)).ok());
  EXPECT_EQ(EvaluateNow(*registry, At("schedules/s", 100'000)).status().code(),
            absl::StatusCode::kUnavailable);

  broken = false;
  for (int i = 0; i < 500 && !registry->writable(); ++i) {
    absl::SleepFor(absl::Milliseconds(10));
  }
  ASSERT_TRUE(registry->writable());
  {
    absl::MutexLock lock(&mu);
    auto told = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      return states.size() == 2;
    };
    mu.AwaitWithTimeout(absl::Condition(&told), absl::Seconds(5));
    EXPECT_THAT(states, testing::ElementsAre(false, true));
  }
  v1::GetScheduleRequest get;
  get.set_name("schedules/s");
  auto now = registry->Get(get);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->position(), 1);
  EXPECT_EQ(now->display_name(), "");
  EXPECT_EQ(now->revision(), 1);
  auto renamed = Wait<v1::Schedule>(*registry, &Registry::Update, rename);
  ASSERT_TRUE(renamed.ok()) << renamed.status();
  EXPECT_EQ(renamed->revision(), 2);  // built on the durable head
  auto advanced =
      Wait<v1::AdvanceResponse>(*registry, &Registry::Advance, advance);
  ASSERT_TRUE(advanced.ok());
  EXPECT_EQ(advanced->position(), 2);
  EXPECT_TRUE(EvaluateNow(*registry, At("schedules/s", 100'000)).ok());
}

TEST(RegistryFaultsTest, DataLossIsNotRetried) {
  std::atomic<bool> broken{false};
  MemoryStoreOptions options;
  options.commit_fault = [&] {
    return broken ? absl::DataLossError("corrupt page (injected)")
                  : absl::OkStatus();
  };
  std::unique_ptr<Store> store = NewMemoryStore(options);
  RegistryOptions registry_options;
  registry_options.store_retry_interval = absl::Milliseconds(10);
  TestRegistry registry(store.get(), registry_options);
  ASSERT_TRUE(
      (Wait<v1::Schedule>(*registry, &Registry::Create, CreateRequest("d")))
          .ok());
  broken = true;
  v1::AdvanceRequest advance;
  advance.set_name("schedules/d");
  EXPECT_FALSE(
      (Wait<v1::AdvanceResponse>(*registry, &Registry::Advance, advance)).ok());
  broken = false;
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_FALSE(registry->writable());
  auto refused =
      Wait<v1::AdvanceResponse>(*registry, &Registry::Advance, advance);
  EXPECT_THAT(refused.status().message(),
              HasSubstr("it needs a restart after repair"));
}

}  // namespace
}  // namespace anneal
