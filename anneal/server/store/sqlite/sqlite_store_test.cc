// The SQLite store: the conformance suite, and what only a file shows:
// schema versions and the version-1 migration, read-only and foreign files,
// corruption, lock timeouts, group commit, and acknowledged writes surviving
// SIGKILL. (What group commit buys is measured by bench/store_bench.cc.)
#include "anneal/server/store/sqlite/sqlite_store.h"

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
#include "anneal/server/store/testing/store_test_suite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;

StoreBackend SqliteBackend() {
  return {"Sqlite",
          [](const std::string& path) { return OpenSqliteStore(path); },
          /*persistent=*/true};
}

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreTest, testing::Values(SqliteBackend()),
                         BackendName);
INSTANTIATE_TEST_SUITE_P(Sqlite, StoreReportsTest,
                         testing::Values(SqliteBackend()), BackendName);

void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove((path + suffix).c_str());
  }
}

// Runs SQL on the file behind the store's back, as an operator (or a
// disk) might; returns the first column of the first row, if any.
std::string Sql(const std::string& path, const std::string& sql) {
  sqlite3* db = nullptr;
  EXPECT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  sqlite3_stmt* stmt = nullptr;
  std::string first;
  int rc = sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr);
  EXPECT_EQ(rc, SQLITE_OK) << sqlite3_errmsg(db) << " in " << sql;
  if (rc == SQLITE_OK) {
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (first.empty() && text) first = reinterpret_cast<const char*>(text);
    }
    EXPECT_EQ(rc, SQLITE_DONE) << sqlite3_errmsg(db) << " in " << sql;
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  return first;
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

TEST_F(SqliteStoreTest, CreatesAVersionedSchemaInWalMode) {
  ASSERT_NE(Open(), nullptr);
  EXPECT_EQ(Sql(path_, "PRAGMA user_version"),
            absl::StrCat(kSqliteSchemaVersion));
  EXPECT_EQ(Sql(path_, "PRAGMA journal_mode"), "wal");
  EXPECT_EQ(Sql(path_,
                "SELECT group_concat(name) FROM (SELECT name FROM "
                "sqlite_schema WHERE type = 'table' ORDER BY name)"),
            "advance_ring,counters,reports,schedules");
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

// The schema as version 1 shipped it, with a row: opening migrates to the
// current version and keeps the schedule and its advances. The SQL is a
// frozen copy on purpose (not sqlite_store.cc's constant): a shipped
// migration must never change, and this copy is what old files contain.
TEST(SqliteMigrationTest, AVersion1FileMigratesAndKeepsItsData) {
  const std::string path = FreshPath();
  const v1::Schedule schedule = MakeSchedule("old", 12, 40);
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, R"sql(
CREATE TABLE schedules(
  name TEXT PRIMARY KEY,
  record BLOB NOT NULL,
  position INTEGER NOT NULL,
  max_step_served INTEGER NOT NULL,
  advance_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE advances(
  name TEXT NOT NULL,
  seq INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  response BLOB NOT NULL,
  PRIMARY KEY(name, seq),
  UNIQUE(name, request_id)
) WITHOUT ROWID;
PRAGMA user_version = 1;
)sql",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(
                  db, "INSERT INTO schedules VALUES(?1, ?2, 12, 40, 3)", -1,
                  &stmt, nullptr),
              SQLITE_OK);
    const std::string record = schedule.SerializeAsString();
    sqlite3_bind_text(stmt, 1, schedule.name().c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 2, record.data(), static_cast<int>(record.size()),
                      SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    ASSERT_EQ(sqlite3_exec(db,
                           "INSERT INTO advances VALUES"
                           "('schedules/old', 1, 'r1', 10, x'00'),"
                           "('schedules/old', 2, 'r2', 11, x'00'),"
                           "('schedules/old', 3, 'r3', 12, x'00')",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    sqlite3_close(db);
  }
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok()) << store.status();
    auto all = (*store)->LoadAll();
    ASSERT_TRUE(all.ok()) << all.status();
    ASSERT_EQ(all->size(), 1u);
    EXPECT_EQ((*all)[0].schedule.position(), 12);
    EXPECT_EQ((*all)[0].schedule.max_step_served(), 40);
    EXPECT_THAT(RequestIds((*all)[0]), ElementsAre("r1", "r2", "r3"));
    // Advances go on from there (version 3 keeps them in a ring of slots).
    ASSERT_TRUE(
        Write(**store, AdvanceBatch("old", MakeAdvance("r4", 13))).ok());
    ASSERT_TRUE(Write(**store, AdvanceBatch("old", MakeAdvance("", 14))).ok());
    // And the reports table works on the migrated file.
    ASSERT_TRUE(
        Write(**store, ReportBatch("old", MakeReport(3, {{"loss", 1}}))).ok());
    auto reports = (*store)->ReadReports(schedule.name(), 0, kAll, 10);
    ASSERT_TRUE(reports.ok()) << reports.status();
    EXPECT_THAT(Steps(*reports), ElementsAre(3));
  }
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok()) << store.status();
    auto all = (*store)->LoadAll();
    ASSERT_TRUE(all.ok()) << all.status();
    EXPECT_EQ((*all)[0].schedule.position(), 14);
    EXPECT_THAT(RequestIds((*all)[0]), ElementsAre("r1", "r2", "r3", "r4"));
  }
  EXPECT_EQ(Sql(path, "PRAGMA user_version"),
            absl::StrCat(kSqliteSchemaVersion));
  RemoveDb(path);
}

}  // namespace
}  // namespace anneal
