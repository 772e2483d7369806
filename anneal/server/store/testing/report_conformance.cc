// The Store contract for metric reports (WriteBatch::Report, ReadReports):
// every backend instantiates StoreReportsTest (see store_test_suite.h).
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/server/store/testing/store_test_suite.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

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

TEST_P(StoreReportsTest, LoadAllCarriesTheHighestReportedStep) {
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("a"))).ok());
  ASSERT_TRUE(Write(*store_, PutBatch(MakeSchedule("quiet"))).ok());
  for (int64_t step : {30, 10, 40, 20}) {
    ASSERT_TRUE(
        Write(*store_, ReportBatch("a", MakeReport(step, {{"loss", step}})))
            .ok());
  }
  ASSERT_NO_FATAL_FAILURE(Reopen());
  const std::vector<StoredSchedule> all = Load();
  ASSERT_EQ(all.size(), 2u);
  ASSERT_TRUE(all[0].last_report.has_value());
  EXPECT_EQ(all[0].last_report->step(), 40);
  EXPECT_THAT(all[0].last_report->metrics(),
              UnorderedElementsAre(Pair("loss", 40.0)));
  EXPECT_FALSE(all[1].last_report.has_value());
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
  // Too many for a step not reported before: no empty step is left behind.
  std::vector<std::pair<std::string, double>> too_many;
  for (int i = 0; i < 65; ++i) too_many.emplace_back(absl::StrCat("m", i), i);
  s = Write(*store_, ReportBatch("a", MakeReport(5, too_many)));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(Steps(Read("a")), ElementsAre(3));
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

}  // namespace
}  // namespace anneal
