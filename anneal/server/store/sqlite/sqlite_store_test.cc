// Store conformance: every StoreTest runs against the in-memory and the
// SQLite store, which must behave alike. SqliteStoreTest covers what only a
// file shows: persistence, schema versions, corruption, lock timeouts, group
// commit, acknowledged writes surviving SIGKILL, and (printed, not asserted)
// group-commit throughput with 1 vs 8 concurrent submitters.
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/store.h"

#include <poll.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "anneal/server/store/sqlite/sqlite_store.h"
#include "anneal/server/store/store_test_suite.h"

namespace anneal {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

INSTANTIATE_TEST_SUITE_P(Stores, StoreTest, testing::Values("memory", "sqlite"),
                         [](const auto& p) { return p.param; });

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

// SQLite only.
class SqliteStoreTest : public testing::Test {
 protected:
  void SetUp() override { path_ = FreshPath(); }
  void TearDown() override { RemoveDb(path_); }

  std::unique_ptr<SqliteStore> Open(const SqliteStoreOptions& options = {}) {
    absl::StatusOr<std::unique_ptr<SqliteStore>> store =
        SqliteStore::Open(path_, options);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }

  std::string path_;
};

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

TEST_F(SqliteStoreTest, CreatesAVersionedSchemaInWalMode) {
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(Sql(path_, "PRAGMA user_version"),
            absl::StrCat(kSqliteSchemaVersion));
  EXPECT_EQ(Sql(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Sql(path_,
                "SELECT group_concat(name) FROM (SELECT name FROM "
                "sqlite_schema WHERE type = 'table' ORDER BY name)"),
            "advances,reports,schedules");
  // Opening again migrates nothing and keeps the data.
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(Write(*store, PutBatch(MakeSchedule("a"))).ok());
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_THAT(*all, SizeIs(1));
}

// Opens `path` in a child process that runs as `nobody` when the test runs
// as root (root ignores file permissions); its error message, or "" if the
// store opened.
std::string OpenAsNobody(const std::string& path) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    if (getuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0)) _exit(3);
    std::string message;
    {
      auto store = OpenSqliteStore(path);  // closed cleanly: no -wal left
      if (!store.ok()) message = store.status().ToString();
    }
    (void)!write(fds[1], message.data(), message.size());
    _exit(0);
  }
  close(fds[1]);
  std::string out;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) out.append(buf, n);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return out;
}

TEST_F(SqliteStoreTest, AReadOnlyFileOrDirectoryFailsAtOpen) {
  const std::string dir = absl::StrCat(path_, ".dir");
  const std::string db = dir + "/anneal.db";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  {
    auto store = OpenSqliteStore(db);
    ASSERT_TRUE(store.ok()) << store.status();
  }
  if (getuid() == 0) {
    ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
    ASSERT_EQ(chown(db.c_str(), 65534, 65534), 0);
  }
  EXPECT_EQ(OpenAsNobody(db), "");  // writable: opens

  ASSERT_EQ(chmod(db.c_str(), 0444), 0);
  EXPECT_THAT(OpenAsNobody(db), HasSubstr("FAILED_PRECONDITION: " + db +
                                          ": the file is read-only"));

  ASSERT_EQ(chmod(db.c_str(), 0644), 0);
  ASSERT_EQ(chmod(dir.c_str(), 0555), 0);  // no -wal can be created
  const std::string error = OpenAsNobody(db);
  EXPECT_THAT(error, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(error, HasSubstr(db));
  EXPECT_THAT(error, HasSubstr("readonly"));

  ASSERT_EQ(chmod(dir.c_str(), 0755), 0);
  RemoveDb(db);
  ASSERT_EQ(rmdir(dir.c_str()), 0);
}

TEST_F(SqliteStoreTest, RejectsANewerSchemaVersion) {
  ASSERT_NE(Open(), nullptr);
  Sql(path_, "PRAGMA user_version = 99");
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
  EXPECT_THAT(store.status().message(), HasSubstr("schema version 99"));
  EXPECT_THAT(store.status().message(),
              HasSubstr(absl::StrCat("version ", kSqliteSchemaVersion, ")")));
  EXPECT_EQ(Sql(path_, "PRAGMA user_version"), "99");  // left as it was
}

TEST_F(SqliteStoreTest, RejectsAFileThatIsNotADatabase) {
  FILE* f = std::fopen(path_.c_str(), "w");
  ASSERT_NE(f, nullptr);
  std::fputs(
      "this is not a SQLite database, just some text of a length\n"
      "that makes the header check fail rather than look empty.\n",
      f);
  std::fclose(f);
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path_);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kDataLoss)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST_F(SqliteStoreTest, ACorruptRecordIsReportedByName) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    WriteBatch batch;
    batch.Put(MakeSchedule("fine"));
    batch.Put(MakeSchedule("broken"));
    ASSERT_TRUE(Write(*store, std::move(batch)).ok());
  }
  // 0x0A 0xFF: field 1 (name) with a length varint that never ends.
  Sql(path_, "UPDATE schedules SET record = X'0AFF' WHERE name = '" +
                 Name("broken") + "'");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  absl::StatusOr<std::vector<StoredSchedule>> all = store->LoadAll();
  ASSERT_FALSE(all.ok());
  EXPECT_EQ(all.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(all.status().message(), HasSubstr(Name("broken")));
}

TEST_F(SqliteStoreTest, ConcurrentSubmittersShareCommits) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 8;
  constexpr int kBatchesPerThread = 50;
  for (int t = 0; t < kThreads; ++t) {
    ASSERT_TRUE(
        Write(*store, PutBatch(MakeSchedule(absl::StrCat("t", t)))).ok());
  }
  const StoreStats before = store->stats();
  std::vector<std::thread> threads;
  std::atomic<int> failed{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // Each thread waits for its ack before the next write, as an RPC
      // handler does; only concurrency can fill a group.
      for (int i = 1; i <= kBatchesPerThread; ++i) {
        const std::string id = absl::StrCat("t", t);
        if (!Write(*store, AdvanceBatch(id, MakeAdvance(absl::StrCat(i), i)))
                 .ok()) {
          ++failed;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  const StoreStats after = store->stats();
  const int64_t commits = after.commits - before.commits;
  const int64_t batches = after.batches - before.batches;
  std::printf(
      "[ grouping ] %d threads x %d batches: %lld commits, largest "
      "group %lld\n",
      kThreads, kBatchesPerThread, static_cast<long long>(commits),
      static_cast<long long>(after.largest_group));
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(batches, kThreads * kBatchesPerThread);
  EXPECT_EQ(after.ops - before.ops, kThreads * kBatchesPerThread);
  EXPECT_LT(commits, batches);
  EXPECT_GT(after.largest_group, 1);
}

TEST_F(SqliteStoreTest, MaxGroupOpsCapsAGroup) {
  SqliteStoreOptions options;
  options.max_group_ops = 10;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  for (int i = 0; i < 200; ++i) {
    store->Submit(PutBatch(MakeSchedule(absl::StrCat("s", i))), nullptr);
  }
  WriteBatch big;  // larger than the cap: committed alone, not refused
  for (int i = 0; i < 25; ++i) big.Put(MakeSchedule(absl::StrCat("big", i)));
  ASSERT_TRUE(Write(*store, std::move(big)).ok());
  const StoreStats stats = store->stats();
  EXPECT_EQ(stats.batches, 201);
  EXPECT_LE(stats.largest_group, 10);
  EXPECT_GE(stats.commits, 21);
}

TEST_F(SqliteStoreTest, ALockTimeoutFailsTheStoreUntilResume) {
  SqliteStoreOptions options;
  options.busy_timeout_ms = 50;
  auto store = Open(options);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Write(*store, PutBatch(MakeSchedule("a"))).ok());

  // Another connection (an operator's shell, say) holds the write lock.
  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr),
            SQLITE_OK);
  std::vector<absl::Status> results(3);
  absl::Notification all_done;
  for (int i = 0; i < 3; ++i) {
    store->Submit(AdvanceBatch("a", MakeAdvance(absl::StrCat("r", i), i + 1)),
                  [&, i](absl::Status s) {
                    results[i] = s;
                    if (i == 2) all_done.Notify();
                  });
  }
  all_done.WaitForNotification();
  for (const absl::Status& s : results) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
  }
  EXPECT_GE(store->stats().failed_commits, 1);
  EXPECT_TRUE(store->stats().failed);
  // While the lock is held, Resume's probe fails and the store stays failed.
  EXPECT_EQ(store->Resume().code(), absl::StatusCode::kUnavailable);
  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr),
            SQLITE_OK);
  sqlite3_close(other);
  // Failed: batches fail without being tried, though the lock is free now.
  EXPECT_EQ(Write(*store, AdvanceBatch("a", MakeAdvance("r8", 1))).code(),
            absl::StatusCode::kUnavailable);

  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_THAT(*all, SizeIs(1));
  EXPECT_EQ((*all)[0].schedule.position(), 0);  // nothing partial
  EXPECT_THAT((*all)[0].recent_advances, IsEmpty());
  ASSERT_TRUE(store->Resume().ok());
  EXPECT_FALSE(store->stats().failed);
  ASSERT_TRUE(Write(*store, AdvanceBatch("a", MakeAdvance("r9", 1))).ok());
  all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ((*all)[0].schedule.position(), 1);
}

// The child of AcknowledgedWritesSurviveSigkill: writes batch i = {Put
// crash-i, Advance counter to i + 1} as fast as it can, with up to 64 in
// flight, and reports each acknowledged i on `fd`. It never returns; the
// parent kills it.
[[noreturn]] void RunCrashChild(const std::string& path, int fd) {
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path);
  if (!store.ok()) _exit(2);
  absl::Mutex mu;
  int in_flight = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(10);  // a backstop
  for (int64_t i = 0; absl::Now() < deadline; ++i) {
    {
      absl::MutexLock lock(&mu);
      mu.Await(absl::Condition(
          +[](int* n) { return *n < 64; }, &in_flight));
      ++in_flight;
    }
    WriteBatch batch;
    batch.Put(MakeSchedule(absl::StrCat("crash-", i)));
    batch.Advance(Name("counter"), MakeAdvance(absl::StrCat("r", i), i + 1));
    (*store)->Submit(std::move(batch), [&, i](absl::Status s) {
      if (!s.ok()) _exit(3);
      if (write(fd, &i, sizeof(i)) != sizeof(i)) _exit(4);
      absl::MutexLock lock(&mu);
      --in_flight;
    });
  }
  _exit(0);
}

TEST_F(SqliteStoreTest, AcknowledgedWritesSurviveSigkill) {
  {
    auto store = Open();
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(Write(*store, PutBatch(MakeSchedule("counter"))).ok());
  }  // no store thread is left running across fork()

  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    close(fds[0]);
    RunCrashChild(path_, fds[1]);
  }
  close(fds[1]);

  std::vector<int64_t> acknowledged;
  std::string pending;
  // Reads what the child reported within `timeout`; false at end of file.
  auto read_acks = [&](absl::Duration timeout) {
    pollfd p{fds[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(absl::ToInt64Milliseconds(timeout))) <=
        0) {
      return true;
    }
    char buffer[4096];
    ssize_t n = read(fds[0], buffer, sizeof(buffer));
    if (n <= 0) return false;
    pending.append(buffer, n);
    size_t whole = pending.size() / sizeof(int64_t) * sizeof(int64_t);
    for (size_t at = 0; at < whole; at += sizeof(int64_t)) {
      int64_t i;
      std::memcpy(&i, pending.data() + at, sizeof(i));
      acknowledged.push_back(i);
    }
    pending.erase(0, whole);
    return true;
  };
  // Kill it 100 ms into its writing (after the first ack, so that opening
  // the store is not what gets measured).
  const absl::Time give_up = absl::Now() + absl::Seconds(3);
  while (acknowledged.empty() && absl::Now() < give_up &&
         read_acks(absl::Milliseconds(10))) {
  }
  const absl::Time kill_at = absl::Now() + absl::Milliseconds(100);
  while (absl::Now() < kill_at && read_acks(kill_at - absl::Now())) {
  }
  kill(pid, SIGKILL);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  while (read_acks(absl::Seconds(1))) {
  }
  close(fds[0]);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the child exited early with status " << status;
  ASSERT_FALSE(acknowledged.empty());
  for (size_t k = 0; k < acknowledged.size(); ++k) {
    ASSERT_EQ(acknowledged[k], static_cast<int64_t>(k));  // in order
  }

  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto all = store->LoadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  int64_t position = -1;
  std::set<std::string> present;
  for (const StoredSchedule& s : *all) {
    if (s.schedule.name() == Name("counter")) {
      position = s.schedule.position();
    } else {
      present.insert(s.schedule.name());
    }
  }
  std::printf("[ sigkill  ] %zu batches acknowledged, %lld durable\n",
              acknowledged.size(), static_cast<long long>(position));
  // Every acknowledged batch is there, and batches are atomic and ordered:
  // the durable ones are exactly 0 .. position - 1.
  EXPECT_GE(position, static_cast<int64_t>(acknowledged.size()));
  EXPECT_EQ(present.size(), static_cast<size_t>(position));
  for (int64_t i = 0; i < position; ++i) {
    ASSERT_TRUE(present.count(Name(absl::StrCat("crash-", i)))) << i;
  }
}

// Not a test of speed (nothing is asserted): prints what group commit buys
// when each submitter waits for its acknowledgement, as RPC handlers do.
TEST_F(SqliteStoreTest, GroupCommitThroughput) {
  for (int submitters : {1, 8, 32}) {
    const std::string path = absl::StrCat(path_, "-", submitters);
    RemoveDb(path);
    auto opened = SqliteStore::Open(path);
    ASSERT_TRUE(opened.ok()) << opened.status();
    SqliteStore& store = **opened;
    for (int t = 0; t < submitters; ++t) {
      ASSERT_TRUE(
          Write(store, PutBatch(MakeSchedule(absl::StrCat("t", t)))).ok());
    }
    const StoreStats before = store.stats();
    const auto start = std::chrono::steady_clock::now();
    const auto stop = start + std::chrono::milliseconds(400);
    std::vector<std::thread> threads;
    for (int t = 0; t < submitters; ++t) {
      threads.emplace_back([&, t] {
        const std::string id = absl::StrCat("t", t);
        for (int i = 1; std::chrono::steady_clock::now() < stop; ++i) {
          // The hot path: one Advance with a typical response size.
          AdvanceRecord record = MakeAdvance(absl::StrCat(id, "-", i), i);
          record.response.resize(120, 'x');
          EXPECT_TRUE(Write(store, AdvanceBatch(id, std::move(record))).ok());
        }
      });
    }
    for (std::thread& t : threads) t.join();
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
            .count();
    const StoreStats after = store.stats();
    const double commits = after.commits - before.commits;
    const double batches = after.batches - before.batches;
    std::printf(
        "[ throughput ] %2d submitters: %7.0f commits/s %8.0f "
        "batches/s %5.1f batches/commit\n",
        submitters, commits / seconds, batches / seconds, batches / commits);
    opened->reset();
    RemoveDb(path);
  }
}

}  // namespace
}  // namespace anneal
