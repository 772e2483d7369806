// Shared by the Store tests: records to write, a synchronous Write, database
// paths unique to the running test, raw SQL on the file, and the StoreTest
// fixture that runs a test against the in-memory and the SQLite store (each
// test file instantiates it).
#ifndef ANNEAL_SERVER_STORE_STORE_TEST_SUITE_H_
#define ANNEAL_SERVER_STORE_STORE_TEST_SUITE_H_

#include <sqlite3.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/synchronization/notification.h"
#include "gtest/gtest.h"
#include "anneal/server/store/sqlite/sqlite_store.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/store.h"
#include "tests/test_dir.h"

namespace anneal {
inline std::string Name(const std::string& id) { return "schedules/" + id; }

inline v1::Schedule MakeSchedule(const std::string& id, int64_t position = 0,
                                 int64_t max_step_served = 0) {
  v1::Schedule s;
  s.set_name(Name(id));
  s.mutable_spec()->set_max_lr(0.1);
  s.mutable_spec()->mutable_constant();
  s.set_display_name("schedule " + id);
  (*s.mutable_labels())["team"] = "vision";
  s.set_state(v1::Schedule::ACTIVE);
  s.set_etag("etag-1");
  s.set_position(position);
  s.set_max_step_served(max_step_served);
  s.set_revision(1);
  v1::Segment* segment = s.add_timeline();
  segment->set_kind(v1::Segment::CREATE);
  segment->set_actor("store_test");
  return s;
}

inline AdvanceRecord MakeAdvance(const std::string& request_id,
                                 int64_t position) {
  return AdvanceRecord{request_id, position,
                       absl::StrCat("response ", request_id, " @", position)};
}

inline WriteBatch PutBatch(const v1::Schedule& schedule) {
  WriteBatch batch;
  batch.Put(schedule);
  return batch;
}

inline WriteBatch AdvanceBatch(const std::string& id, AdvanceRecord record) {
  WriteBatch batch;
  batch.Advance(Name(id), std::move(record));
  return batch;
}

// Submits `batch` and waits for its acknowledgement.
inline absl::Status Write(Store& store, WriteBatch batch) {
  absl::Notification done;
  absl::Status result;
  store.Submit(std::move(batch), [&](absl::Status s) {
    result = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

inline std::vector<std::string> RequestIds(const StoredSchedule& s) {
  std::vector<std::string> ids;
  for (const AdvanceRecord& a : s.recent_advances) ids.push_back(a.request_id);
  return ids;
}

// A database path in the running test's directory (removed when it ends).
inline std::string FreshPath() { return TestDir() + "store.db"; }

inline void RemoveDb(const std::string& path) {
  for (const char* suffix : {"", "-wal", "-shm"}) {
    std::remove((path + suffix).c_str());
  }
}

// Runs SQL on the file behind the store's back, as an operator (or a
// disk) might; returns the first column of the first row, if any.
inline std::string Sql(const std::string& path, const std::string& sql) {
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

// The conformance suite. The parameter names the implementation.
class StoreTest : public testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    path_ = FreshPath();
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  void TearDown() override {
    store_.reset();
    RemoveDb(path_);
  }

  bool persistent() const { return GetParam() == "sqlite"; }

  void Open() {
    if (!persistent()) {
      store_ = NewMemoryStore();
      return;
    }
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // What a restarted server would see. The in-memory store cannot outlive
  // its object, so it is kept.
  void Reopen() {
    if (!persistent()) return;
    store_.reset();
    Open();
  }

  std::vector<StoredSchedule> Load() {
    absl::StatusOr<std::vector<StoredSchedule>> all = store_->LoadAll();
    EXPECT_TRUE(all.ok()) << all.status();
    return all.ok() ? *std::move(all) : std::vector<StoredSchedule>();
  }

  std::string path_;
  std::unique_ptr<Store> store_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_STORE_TEST_SUITE_H_
