// The Store conformance suite, which every backend passes: records to write,
// a synchronous Write, and the StoreTest and StoreReportsTest fixtures,
// parameterized by the backend. The tests themselves are in
// store_conformance.cc and report_conformance.cc (linked as the
// anneal_store_conformance object library); a backend's test instantiates
// them with its StoreBackend:
//
//   INSTANTIATE_TEST_SUITE_P(Memory, StoreTest,
//                            testing::Values(MemoryBackend()),
//                            BackendName);
#ifndef ANNEAL_SERVER_STORE_TESTING_STORE_TEST_SUITE_H_
#define ANNEAL_SERVER_STORE_TESTING_STORE_TEST_SUITE_H_

#include <cstdio>
#include <functional>
#include <limits>
#include <memory>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "anneal/server/store/store.h"
#include "gtest/gtest.h"
#include "tests/test_dir.h"

namespace anneal {

// A backend under test.
struct StoreBackend {
  std::string name;  // the test-name suffix: "Memory", "Sqlite"
  // Opens the store kept at `path` (a fresh file in the test's directory).
  std::function<absl::StatusOr<std::unique_ptr<Store>>(const std::string&)>
      open;
  // Whether a store opened again at the same path sees what was written.
  bool persistent = false;
};

// Test output names the backend (not its bytes).
inline void PrintTo(const StoreBackend& backend, std::ostream* os) {
  *os << backend.name;
}

inline std::string BackendName(
    const testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

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
  return SubmitAndWait(store, std::move(batch));
}

inline std::vector<std::string> RequestIds(const StoredSchedule& s) {
  std::vector<std::string> ids;
  for (const AdvanceRecord& a : s.recent_advances) ids.push_back(a.request_id);
  return ids;
}

// A database path in the running test's directory (removed when it ends).
inline std::string FreshPath() { return TestDir() + "store.db"; }

constexpr int64_t kAll = std::numeric_limits<int64_t>::max();

inline v1::MetricReport MakeReport(
    int64_t step, std::vector<std::pair<std::string, double>> metrics,
    int64_t revision = 1) {
  v1::MetricReport r;
  r.set_step(step);
  for (const auto& [k, v] : metrics) (*r.mutable_metrics())[k] = v;
  r.set_revision(revision);
  r.mutable_report_time()->set_seconds(1'700'000'000 + step);
  return r;
}

inline WriteBatch ReportBatch(const std::string& id, v1::MetricReport report,
                              int64_t keep = 100) {
  WriteBatch batch;
  batch.Report(Name(id), std::move(report), keep);
  return batch;
}

inline std::vector<int64_t> Steps(
    const std::vector<v1::MetricReport>& reports) {
  std::vector<int64_t> steps;
  for (const auto& r : reports) steps.push_back(r.step());
  return steps;
}

// The conformance suite: one test, every backend.
class StoreTest : public testing::TestWithParam<StoreBackend> {
 protected:
  void SetUp() override {
    path_ = FreshPath();
    ASSERT_NO_FATAL_FAILURE(Open());
  }

  void TearDown() override { store_.reset(); }

  bool persistent() const { return GetParam().persistent; }

  void Open() {
    absl::StatusOr<std::unique_ptr<Store>> store = GetParam().open(path_);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = *std::move(store);
  }

  // What a restarted server would see. A store that does not persist
  // cannot outlive its object, so it is kept.
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

class StoreReportsTest : public StoreTest {
 protected:
  std::vector<v1::MetricReport> Read(const std::string& id, int64_t from = 0,
                                     int64_t to = kAll, int limit = 1000) {
    auto reports = store_->ReadReports(Name(id), from, to, limit);
    EXPECT_TRUE(reports.ok()) << reports.status();
    return reports.ok() ? *std::move(reports) : std::vector<v1::MetricReport>();
  }
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_TESTING_STORE_TEST_SUITE_H_
