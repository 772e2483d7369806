// Store conformance for metric reports (WriteBatch::Report, ReadReports),
// run against the in-memory and the SQLite store; and the SQLite migration
// that added them (schema version 1 -> 2) keeping a version-1 file's data.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "anneal/server/store/store_test_suite.h"

namespace anneal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr int64_t kAll = std::numeric_limits<int64_t>::max();

v1::MetricReport MakeReport(int64_t step,
                            std::vector<std::pair<std::string, double>> metrics,
                            int64_t revision = 1) {
  v1::MetricReport r;
  r.set_step(step);
  for (const auto& [k, v] : metrics) (*r.mutable_metrics())[k] = v;
  r.set_revision(revision);
  r.mutable_report_time()->set_seconds(1'700'000'000 + step);
  return r;
}

WriteBatch ReportBatch(const std::string& id, v1::MetricReport report,
                       int64_t keep = 100) {
  WriteBatch batch;
  batch.Report(Name(id), std::move(report), keep);
  return batch;
}

std::vector<int64_t> Steps(const std::vector<v1::MetricReport>& reports) {
  std::vector<int64_t> steps;
  for (const auto& r : reports) steps.push_back(r.step());
  return steps;
}

class StoreReportsTest : public StoreTest {
 protected:
  std::vector<v1::MetricReport> Read(const std::string& id, int64_t from = 0,
                                     int64_t to = kAll, int limit = 1000) {
    auto reports = store_->ReadReports(Name(id), from, to, limit);
    EXPECT_TRUE(reports.ok()) << reports.status();
    return reports.ok() ? *std::move(reports) : std::vector<v1::MetricReport>();
  }
};

INSTANTIATE_TEST_SUITE_P(Stores, StoreReportsTest,
                         testing::Values("memory", "sqlite"),
                         [](const auto& p) { return p.param; });

TEST_P(StoreReportsTest, ReportsAreReadInStepOrderWithinBounds) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  for (int64_t step : {30, 10, 20, 40}) {
    ASSERT_TRUE(
        Write(*store_, ReportBatch("a", MakeReport(step, {{"loss", step}})))
            .ok());
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_THAT(Steps(Read("a")), ElementsAre(10, 20, 30, 40));
  EXPECT_THAT(Steps(Read("a", 20, 40)), ElementsAre(20, 30));
  EXPECT_THAT(Steps(Read("a", 11, kAll, 2)), ElementsAre(20, 30));
  EXPECT_THAT(Read("a", 41), IsEmpty());
  EXPECT_THAT(Read("never-created"), IsEmpty());
  const std::vector<v1::MetricReport> all = Read("a");
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[2].revision(), 1);
  EXPECT_EQ(all[2].report_time().seconds(), 1'700'000'030);
  EXPECT_THAT(all[2].metrics(), UnorderedElementsAre(Pair("loss", 30.0)));
}

TEST_P(StoreReportsTest, ReportsAtOneStepMergeAndTheLaterValueWins) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, ReportBatch("a", MakeReport(7, {{"loss", 2.5},
                                                             {"acc", 0.5}})))
                  .ok());
  ASSERT_TRUE(
      Write(*store_,
            ReportBatch("a", MakeReport(7, {{"loss", 2.0}, {"val_loss", 3.0}},
                                        /*revision=*/4)))
          .ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  const std::vector<v1::MetricReport> all = Read("a");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_THAT(all[0].metrics(),
              UnorderedElementsAre(Pair("loss", 2.0), Pair("acc", 0.5),
                                   Pair("val_loss", 3.0)));
  EXPECT_EQ(all[0].revision(), 4);  // the later report's
}

TEST_P(StoreReportsTest, NonFiniteValuesAreKeptAsReported) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  const double inf = std::numeric_limits<double>::infinity();
  ASSERT_TRUE(
      Write(*store_, ReportBatch("a", MakeReport(1, {{"loss", std::nan("")},
                                                     {"grad", inf},
                                                     {"low", -inf},
                                                     {"tiny", 5e-324}})))
          .ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  const std::vector<v1::MetricReport> all = Read("a");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_TRUE(std::isnan(all[0].metrics().at("loss")));
  EXPECT_EQ(all[0].metrics().at("grad"), inf);
  EXPECT_EQ(all[0].metrics().at("low"), -inf);
  EXPECT_EQ(all[0].metrics().at("tiny"), 5e-324);
}

TEST_P(StoreReportsTest, HistoryKeepsTheNewestSteps) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  for (int64_t step = 1; step <= 8; ++step) {
    ASSERT_TRUE(Write(*store_, ReportBatch("a", MakeReport(step, {{"l", 1}}),
                                           /*keep=*/5))
                    .ok());
  }
  EXPECT_THAT(Steps(Read("a")), ElementsAre(4, 5, 6, 7, 8));
  // Re-reporting a kept step adds no row, so nothing is pruned.
  ASSERT_TRUE(
      Write(*store_, ReportBatch("a", MakeReport(4, {{"m", 2}}), 5)).ok());
  EXPECT_THAT(Steps(Read("a")), ElementsAre(4, 5, 6, 7, 8));
  // A step below every kept one is older than all of them: dropped at once.
  ASSERT_TRUE(
      Write(*store_, ReportBatch("a", MakeReport(2, {{"l", 1}}), 5)).ok());
  EXPECT_THAT(Steps(Read("a")), ElementsAre(4, 5, 6, 7, 8));
  // A smaller window (the flag lowered) prunes down to it on the next report.
  ASSERT_TRUE(
      Write(*store_, ReportBatch("a", MakeReport(9, {{"l", 1}}), 2)).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_THAT(Steps(Read("a")), ElementsAre(8, 9));
  // The count survives a reopen: one more report prunes exactly one step.
  ASSERT_TRUE(
      Write(*store_, ReportBatch("a", MakeReport(10, {{"l", 1}}), 2)).ok());
  EXPECT_THAT(Steps(Read("a")), ElementsAre(9, 10));
}

TEST_P(StoreReportsTest, AStepHoldsAtMost64Metrics) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  std::vector<std::pair<std::string, double>> first, second;
  for (int i = 0; i < 40; ++i) first.emplace_back(absl::StrCat("m", i), i);
  for (int i = 30; i < 70; ++i) second.emplace_back(absl::StrCat("m", i), -i);
  ASSERT_TRUE(Write(*store_, ReportBatch("a", MakeReport(3, first))).ok());
  absl::Status s = Write(*store_, ReportBatch("a", MakeReport(3, second)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(
      s.message(),
      HasSubstr("metrics: must leave step 3 with at most 64 metrics (merged "
                "with those reported before), got 70"));
  // The failed batch changed nothing; the store goes on.
  std::vector<v1::MetricReport> all = Read("a");
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].metrics_size(), 40);
  EXPECT_EQ(all[0].metrics().at("m35"), 35);
  ASSERT_TRUE(Write(*store_, ReportBatch("a", MakeReport(4, second))).ok());
}

TEST_P(StoreReportsTest, AReportForAMissingScheduleFailsItsBatchAlone) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  WriteBatch batch;
  batch.Report(Name("a"), MakeReport(1, {{"loss", 1}}), 100);
  batch.Report(Name("gone"), MakeReport(1, {{"loss", 1}}), 100);
  absl::Status s = Write(*store_, std::move(batch));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(s.message(), HasSubstr("schedules/gone"));
  EXPECT_THAT(Read("a"), IsEmpty());  // all or nothing
}

TEST_P(StoreReportsTest, DeleteRemovesReportsAndARecreatedScheduleStartsEmpty) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("b"))).ok());
  for (int64_t step = 0; step < 3; ++step) {
    ASSERT_TRUE(
        Write(*store_, ReportBatch("a", MakeReport(step, {{"l", 1}}), 3)).ok());
    ASSERT_TRUE(
        Write(*store_, ReportBatch("b", MakeReport(step, {{"l", 2}}), 3)).ok());
  }
  WriteBatch del;
  del.Delete(Name("a"));
  ASSERT_TRUE(Write(*store_, std::move(del)).ok());
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_NO_FATAL_FAILURE(Reopen());
  EXPECT_THAT(Read("a"), IsEmpty());
  EXPECT_THAT(Steps(Read("b")), ElementsAre(0, 1, 2));
  // The re-created schedule's count started over: three new reports fit.
  for (int64_t step = 10; step < 13; ++step) {
    ASSERT_TRUE(
        Write(*store_, ReportBatch("a", MakeReport(step, {{"l", 1}}), 3)).ok());
  }
  EXPECT_THAT(Steps(Read("a")), ElementsAre(10, 11, 12));
}

TEST_P(StoreReportsTest, PutKeepsTheReports) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, ReportBatch("a", MakeReport(1, {{"l", 1}}))).ok());
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a", 5, 9))).ok());
  EXPECT_THAT(Steps(Read("a")), ElementsAre(1));
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
                  db, "INSERT INTO schedules VALUES(?1, ?2, 12, 40, 1)", -1,
                  &stmt, nullptr),
              SQLITE_OK);
    const std::string record = schedule.SerializeAsString();
    sqlite3_bind_text(stmt, 1, schedule.name().c_str(), -1, SQLITE_STATIC);
    sqlite3_bind_blob(stmt, 2, record.data(), static_cast<int>(record.size()),
                      SQLITE_STATIC);
    ASSERT_EQ(sqlite3_step(stmt), SQLITE_DONE);
    sqlite3_finalize(stmt);
    ASSERT_EQ(sqlite3_exec(db,
                           "INSERT INTO advances VALUES('schedules/old', 1, "
                           "'r1', 12, x'00')",
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
    EXPECT_EQ((*all)[0].recent_advances.size(), 1u);
    // And the new table works on the migrated file.
    ASSERT_TRUE(
        Write(**store, ReportBatch("old", MakeReport(3, {{"loss", 1}}))).ok());
    auto reports = (*store)->ReadReports(schedule.name(), 0, kAll, 10);
    ASSERT_TRUE(reports.ok()) << reports.status();
    EXPECT_THAT(Steps(*reports), ElementsAre(3));
  }
  EXPECT_EQ(Sql(path, "PRAGMA user_version"),
            absl::StrCat(kSqliteSchemaVersion));
  RemoveDb(path);
}

}  // namespace
}  // namespace anneal
