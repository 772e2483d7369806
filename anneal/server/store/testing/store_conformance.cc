// The Store contract (store.h), test by test: every backend instantiates
// StoreTest with its StoreBackend (see store_test_suite.h).
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/store/testing/store_test_suite.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

TEST_P(StoreTest, EmptyStoreLoadsNothing) {
  EXPECT_THAT(Load(), IsEmpty());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_THAT(Load(), IsEmpty());
}

TEST_P(StoreTest, PutIsLoadedWholeAndInNameOrder) {
  WriteBatch batch;
  batch.Put(MakeSchedule("c", 3, 30));
  batch.Put(MakeSchedule("a", 1, 10));
  ASSERT_TRUE(Write(*store_, std::move(batch)).ok());
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("b", 2, 20))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(3));
  int i = 0;
  for (const char* id : {"a", "b", "c"}) {
    ++i;
    EXPECT_TRUE(MessageDifferencer::Equals(all[i - 1].schedule,
                                           MakeSchedule(id, i, 10 * i)))
        << all[i - 1].schedule.DebugString();
    EXPECT_THAT(all[i - 1].recent_advances, IsEmpty());
  }
}

TEST_P(StoreTest, PutReplacesTheRecordAndKeepsItsAdvances) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r1", 1))).ok());
  v1::Schedule updated = MakeSchedule("a", 1, 7);
  updated.set_display_name("renamed");
  updated.set_revision(2);
  ASSERT_TRUE(Write(*store_, PutBatch(updated)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_TRUE(MessageDifferencer::Equals(all[0].schedule, updated))
      << all[0].schedule.DebugString();
  EXPECT_THAT(RequestIds(all[0]), ElementsAre("r1"));
}

TEST_P(StoreTest, DeleteRemovesTheScheduleAndItsAdvances) {
  WriteBatch setup;
  setup.Put(MakeSchedule("a"));
  setup.Put(MakeSchedule("b"));
  setup.Advance(Name("a"), MakeAdvance("r1", 1));
  setup.Advance(Name("a"), MakeAdvance("r2", 2));
  setup.Advance(Name("b"), MakeAdvance("r1", 1));
  ASSERT_TRUE(Write(*store_, std::move(setup)).ok());

  WriteBatch del;
  del.Delete(Name("a"));
  del.Delete(Name("never-existed"));  // not an error
  ASSERT_TRUE(Write(*store_, std::move(del)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.name(), Name("b"));
  EXPECT_THAT(RequestIds(all[0]), ElementsAre("r1"));

  // A schedule re-created under the name starts with no history.
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  all = Load();
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].schedule.position(), 0);
  EXPECT_THAT(all[0].recent_advances, IsEmpty());
}

TEST_P(StoreTest, AdvanceMovesThePositionAndIsRememberedOldestFirst) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a", 0, 5))).ok());
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(
        Write(*store_, AdvanceBatch("a", MakeAdvance(absl::StrCat("r", i), i)))
            .ok());
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.position(), 3);
  EXPECT_EQ(all[0].schedule.max_step_served(), 5);
  ASSERT_THAT(all[0].recent_advances, SizeIs(3));
  for (int i = 1; i <= 3; ++i) {
    const AdvanceRecord& a = all[0].recent_advances[i - 1];
    EXPECT_EQ(a.request_id, absl::StrCat("r", i));
    EXPECT_EQ(a.position, i);
    EXPECT_EQ(a.response, MakeAdvance(a.request_id, i).response);
  }
}

// Whichever came last, a Put's record or an Advance, sets the position: a
// Put may even move it back (a rewind).
TEST_P(StoreTest, ThePositionIsTheLastPutsOrAdvancesInAnyOrder) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r1", 1))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("", 2))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_EQ(Load()[0].schedule.position(), 2);

  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a", 1))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  ASSERT_EQ(Load()[0].schedule.position(), 1);

  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r3", 2))).ok());
  WriteBatch both;  // in one batch, the later op wins too
  both.Advance(Name("a"), MakeAdvance("", 3));
  both.Put(MakeSchedule("a", 9));
  ASSERT_TRUE(Write(*store_, std::move(both)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  EXPECT_EQ(all[0].schedule.position(), 9);
  EXPECT_THAT(RequestIds(all[0]), ElementsAre("r1", "r3"));

  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("", 10))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_EQ(Load()[0].schedule.position(), 10);
}

TEST_P(StoreTest, DedupWindowKeepsTheNewestAdvances) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("b"))).ok());
  const int total = kAdvanceDedupWindow + 10;
  for (int i = 1; i <= total; ++i) {
    store_->Submit(AdvanceBatch("a", MakeAdvance(absl::StrCat("r", i), i)),
                   nullptr);
  }
  // Pruning is per schedule: b's single advance survives a's.
  ASSERT_TRUE(Write(*store_, AdvanceBatch("b", MakeAdvance("only", 1))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(2));
  EXPECT_EQ(all[0].schedule.position(), total);
  const std::vector<AdvanceRecord>& kept = all[0].recent_advances;
  ASSERT_THAT(kept, SizeIs(kAdvanceDedupWindow));
  for (int k = 0; k < kAdvanceDedupWindow; ++k) {
    ASSERT_EQ(kept[k].position, 11 + k);
    ASSERT_EQ(kept[k].request_id, absl::StrCat("r", 11 + k));
  }
  EXPECT_THAT(RequestIds(all[1]), ElementsAre("only"));
}

TEST_P(StoreTest, AdvanceWithoutRequestIdIsNotRemembered) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("", 1))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r2", 2))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("", 3))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.position(), 3);
  EXPECT_THAT(RequestIds(all[0]), ElementsAre("r2"));
}

TEST_P(StoreTest, ReusedRequestIdReplacesTheOlderRecord) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r1", 1))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r2", 2))).ok());
  ASSERT_TRUE(Write(*store_, AdvanceBatch("a", MakeAdvance("r1", 3))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_THAT(RequestIds(all[0]), ElementsAre("r2", "r1"));
  EXPECT_EQ(all[0].recent_advances[1].position, 3);
}

TEST_P(StoreTest, BatchAppliesAllOrNothingAndFailsAlone) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  // Submitted together so that the SQLite store commits them in one group.
  absl::Status results[3];
  absl::Notification last;
  store_->Submit(PutBatch(MakeSchedule("x")),
                 [&](absl::Status s) { results[0] = s; });
  WriteBatch failing;
  failing.Put(MakeSchedule("y"));
  failing.Advance(Name("a"), MakeAdvance("r1", 1));
  failing.Advance(Name("missing"), MakeAdvance("r1", 1));
  store_->Submit(std::move(failing), [&](absl::Status s) { results[1] = s; });
  WriteBatch mixed;
  mixed.Put(MakeSchedule("z"));
  mixed.Advance(Name("z"), MakeAdvance("r1", 4));
  mixed.Served(Name("z"), 9);
  store_->Submit(std::move(mixed), [&](absl::Status s) {
    results[2] = s;
    last.Notify();
  });
  last.WaitForNotification();

  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kNotFound) << results[1];
  EXPECT_THAT(results[1].message(), HasSubstr(Name("missing")));
  EXPECT_TRUE(results[2].ok()) << results[2];
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(3));
  EXPECT_EQ(all[0].schedule.name(), Name("a"));
  EXPECT_EQ(all[0].schedule.position(), 0);  // the failed batch's advance
  EXPECT_THAT(all[0].recent_advances, IsEmpty());
  EXPECT_EQ(all[1].schedule.name(), Name("x"));
  EXPECT_EQ(all[2].schedule.name(), Name("z"));
  EXPECT_EQ(all[2].schedule.position(), 4);
  EXPECT_EQ(all[2].schedule.max_step_served(), 9);
}

TEST_P(StoreTest, ServedOnlyRaises) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a", 0, 10))).ok());
  WriteBatch lower;
  lower.Served(Name("a"), 5);
  lower.Served(Name("gone"), 99);  // a lazy hint racing a Delete: ignored
  ASSERT_TRUE(Write(*store_, std::move(lower)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.max_step_served(), 10);

  WriteBatch higher;
  higher.Served(Name("a"), 20);
  ASSERT_TRUE(Write(*store_, std::move(higher)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.max_step_served(), 20);
}

TEST_P(StoreTest, PutNeverLowersTheServedMarkResetServedDoes) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a", 0, 10))).ok());
  WriteBatch raise;
  raise.Served(Name("a"), 1000);
  ASSERT_TRUE(Write(*store_, std::move(raise)).ok());
  // A later Put carries the record's older in-memory mark.
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a", 3, 12))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.max_step_served(), 1000);
  EXPECT_EQ(all[0].schedule.position(), 3);

  WriteBatch exact;  // a clean stop writes the exact mark
  exact.ResetServed(Name("a"), 12);
  exact.ResetServed(Name("gone"), 1);  // ignored, as Served
  ASSERT_TRUE(Write(*store_, std::move(exact)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.max_step_served(), 12);
}

TEST_P(StoreTest, CallbacksRunInSubmissionOrderOnTheStoreThread) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  constexpr int kBatches = 500;
  absl::Mutex mu;
  std::vector<int> order;
  std::atomic<bool> on_caller_thread{false};
  const std::thread::id caller = std::this_thread::get_id();
  for (int i = 0; i < kBatches; ++i) {
    WriteBatch batch;
    // Every other batch is empty, like the registry's "wait for earlier
    // writes" marker; they are ordered too.
    if (i % 2 == 0) batch.Advance(Name("a"), MakeAdvance("", i));
    store_->Submit(std::move(batch), [&, i](absl::Status s) {
      EXPECT_TRUE(s.ok()) << s;
      if (std::this_thread::get_id() == caller) on_caller_thread = true;
      absl::MutexLock lock(&mu);
      order.push_back(i);
    });
  }
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_FALSE(on_caller_thread);
  absl::MutexLock lock(&mu);
  ASSERT_THAT(order, SizeIs(kBatches));
  for (int i = 0; i < kBatches; ++i) ASSERT_EQ(order[i], i);
}

TEST_P(StoreTest, FlushWaitsForEveryEarlierBatch) {
  EXPECT_TRUE(store_->Flush().ok());  // idle
  std::atomic<int> acknowledged{0};
  for (int i = 0; i < 100; ++i) {
    store_->Submit(PutBatch(MakeSchedule(absl::StrCat("s", i))),
                   [&](absl::Status s) {
                     EXPECT_TRUE(s.ok()) << s;
                     ++acknowledged;
                   });
  }
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(acknowledged.load(), 100);
  EXPECT_THAT(Load(), SizeIs(100));
}

TEST_P(StoreTest, CallbackMaySubmit) {
  absl::Notification second_done;
  store_->Submit(PutBatch(MakeSchedule("a")), [&](absl::Status s) {
    EXPECT_TRUE(s.ok()) << s;
    store_->Submit(AdvanceBatch("a", MakeAdvance("r1", 1)),
                   [&](absl::Status s2) {
                     EXPECT_TRUE(s2.ok()) << s2;
                     second_done.Notify();
                   });
  });
  second_done.WaitForNotification();
  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(1));
  EXPECT_EQ(all[0].schedule.position(), 1);
}

TEST_P(StoreTest, ConcurrentSubmittersAreAllAcknowledgedAndKept) {
  constexpr int kThreads = 8;
  constexpr int kBatchesPerThread = 200;
  std::atomic<int> ok{0}, failed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      const std::string id = absl::StrCat("t", t);
      store_->Submit(PutBatch(MakeSchedule(id)),
                     [&](absl::Status s) { ++(s.ok() ? ok : failed); });
      for (int i = 1; i < kBatchesPerThread; ++i) {
        WriteBatch batch;
        batch.Advance(Name(id), MakeAdvance(absl::StrCat(id, "-", i), i));
        batch.Served(Name(id), i);
        store_->Submit(std::move(batch),
                       [&](absl::Status s) { ++(s.ok() ? ok : failed); });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_TRUE(store_->Flush().ok());
  EXPECT_EQ(ok.load(), kThreads * kBatchesPerThread);
  EXPECT_EQ(failed.load(), 0);
  ASSERT_NO_FATAL_FAILURE(Reopen());

  std::vector<StoredSchedule> all = Load();
  ASSERT_THAT(all, SizeIs(kThreads));
  for (int t = 0; t < kThreads; ++t) {
    const StoredSchedule& s = all[t];
    EXPECT_EQ(s.schedule.name(), Name(absl::StrCat("t", t)));
    EXPECT_EQ(s.schedule.position(), kBatchesPerThread - 1);
    EXPECT_EQ(s.schedule.max_step_served(), kBatchesPerThread - 1);
    // One thread's batches keep their order.
    ASSERT_THAT(s.recent_advances, SizeIs(kBatchesPerThread - 1));
    for (int i = 1; i < kBatchesPerThread; ++i) {
      ASSERT_EQ(s.recent_advances[i - 1].position, i);
    }
  }
}

TEST_P(StoreTest, DestructionDrainsTheQueue) {
  std::atomic<int> ok{0};
  for (int i = 0; i < 300; ++i) {
    store_->Submit(PutBatch(MakeSchedule(absl::StrCat("s", i))),
                   [&](absl::Status s) {
                     EXPECT_TRUE(s.ok()) << s;
                     ++ok;
                   });
  }
  store_.reset();
  EXPECT_EQ(ok.load(), 300);
  if (persistent()) {
    ASSERT_NO_FATAL_FAILURE(Open());
    EXPECT_THAT(Load(), SizeIs(300));
  }
}

}  // namespace
}  // namespace anneal
