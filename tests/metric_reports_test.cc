// ReportMetrics and ListMetricReports on the real anneal-server: merging,
// validation errors naming field and rule, pagination bound to its query,
// metric selection, the --metrics_history window, non-finite values, reports
// surviving a restart and a SIGKILL once acknowledged, and Delete.
#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;
using ::testing::UnorderedElementsAre;

constexpr char kName[] = "schedules/run";

class MetricReportsTest : public LiveServerTest {
 protected:
  MetricReportsTest() : LiveServerTest({"--metrics_history=6"}) {}

  void CreateSchedule(const std::string& id = "run") {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    auto* spec = req.mutable_schedule()->mutable_spec();
    spec->set_max_lr(0.1);
    spec->mutable_cosine()->set_period(100);
    v1::Schedule out;
    grpc::Status s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status Report(int64_t step, std::map<std::string, double> metrics,
                      v1::MetricReport* out = nullptr,
                      const std::string& name = kName) {
    v1::ReportMetricsRequest req;
    req.set_name(name);
    req.set_step(step);
    for (const auto& [k, v] : metrics) (*req.mutable_metrics())[k] = v;
    v1::MetricReport ignored;
    return server_->stub()->ReportMetrics(Ctx().get(), req,
                                          out ? out : &ignored);
  }

  v1::ListMetricReportsResponse List(v1::ListMetricReportsRequest req) {
    if (req.name().empty()) req.set_name(kName);
    v1::ListMetricReportsResponse resp;
    grpc::Status s =
        server_->stub()->ListMetricReports(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp;
  }

  std::vector<int64_t> AllSteps() {
    std::vector<int64_t> steps;
    const v1::ListMetricReportsResponse all = List({});
    for (const auto& r : all.reports()) steps.push_back(r.step());
    return steps;
  }
};

TEST_F(MetricReportsTest, ReportsMergeAtAStepAndAreListedInStepOrder) {
  CreateSchedule();
  v1::MetricReport recorded;
  ASSERT_TRUE(Report(20, {{"loss", 1.5}, {"acc", 0.25}}, &recorded).ok());
  EXPECT_EQ(recorded.step(), 20);
  EXPECT_EQ(recorded.revision(), 1);
  EXPECT_GT(recorded.report_time().seconds(), 1'700'000'000);
  EXPECT_THAT(recorded.metrics(),
              UnorderedElementsAre(Pair("loss", 1.5), Pair("acc", 0.25)));
  ASSERT_TRUE(Report(10, {{"loss", 2.0}}).ok());
  // The same step again (a retry, or the validation pass): merged.
  ASSERT_TRUE(Report(20, {{"loss", 1.25}, {"val/loss", 1.75}}).ok());
  auto resp = List({});
  ASSERT_EQ(resp.reports_size(), 2);
  EXPECT_EQ(resp.reports(0).step(), 10);
  EXPECT_EQ(resp.reports(1).step(), 20);
  EXPECT_THAT(resp.reports(1).metrics(),
              UnorderedElementsAre(Pair("loss", 1.25), Pair("acc", 0.25),
                                   Pair("val/loss", 1.75)));
  EXPECT_TRUE(resp.next_page_token().empty());
}

TEST_F(MetricReportsTest, ARevisionChangeIsRecordedWithLaterReports) {
  CreateSchedule();
  ASSERT_TRUE(Report(1, {{"loss", 1}}).ok());
  v1::RestartScheduleRequest restart;
  restart.set_name(kName);
  restart.set_at_step(50);
  v1::Schedule schedule;
  ASSERT_TRUE(
      server_->stub()->RestartSchedule(Ctx().get(), restart, &schedule).ok());
  v1::MetricReport recorded;
  ASSERT_TRUE(Report(2, {{"loss", 1}}, &recorded).ok());
  EXPECT_EQ(recorded.revision(), 2);
  auto resp = List({});
  ASSERT_EQ(resp.reports_size(), 2);
  EXPECT_EQ(resp.reports(0).revision(), 1);
  EXPECT_EQ(resp.reports(1).revision(), 2);
}

TEST_F(MetricReportsTest, BadReportsNameTheFieldAndTheRule) {
  CreateSchedule();
  struct Case {
    int64_t step;
    std::map<std::string, double> metrics;
    std::string name;
    grpc::StatusCode code;
    std::string message;
  } cases[] = {
      {1,
       {{"loss", 1}},
       "schedules/nope",
       grpc::StatusCode::NOT_FOUND,
       "schedules/nope: not found"},
      {1,
       {{"loss", 1}},
       "runs/x",
       grpc::StatusCode::INVALID_ARGUMENT,
       "name: must be"},
      {-1,
       {{"loss", 1}},
       kName,
       grpc::StatusCode::INVALID_ARGUMENT,
       "step: must be >= 0, got -1"},
      {int64_t{1} << 62 | 1,
       {{"loss", 1}},
       kName,
       grpc::StatusCode::INVALID_ARGUMENT,
       "step: must be <= 2^62, got "},
      {1,
       {},
       kName,
       grpc::StatusCode::INVALID_ARGUMENT,
       "metrics: must name at least one metric, got none"},
      {1,
       {{"9lives", 1}},
       kName,
       grpc::StatusCode::INVALID_ARGUMENT,
       "metrics[\"9lives\"]: must match ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, got "
       "\"9lives\""},
      {1,
       {{"has space", 1}},
       kName,
       grpc::StatusCode::INVALID_ARGUMENT,
       "metrics[\"has space\"]: must match"},
      {1,
       {{std::string(65, 'a'), 1}},
       kName,
       grpc::StatusCode::INVALID_ARGUMENT,
       "must match"},
  };
  for (const Case& c : cases) {
    grpc::Status s = Report(c.step, c.metrics, nullptr, c.name);
    EXPECT_EQ(s.error_code(), c.code) << c.message;
    EXPECT_THAT(s.error_message(), HasSubstr(c.message));
  }
  std::map<std::string, double> many;
  for (int i = 0; i < 65; ++i) many["m" + std::to_string(i)] = i;
  grpc::Status s = Report(1, many);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "metrics: at most 64 per report, got 65");
  // Two reports of 40 at one step exceed the step's 64: the second is refused
  // and the server keeps accepting writes.
  std::map<std::string, double> first, second;
  for (int i = 0; i < 40; ++i) first["a" + std::to_string(i)] = i;
  for (int i = 0; i < 40; ++i) second["b" + std::to_string(i)] = i;
  ASSERT_TRUE(Report(3, first).ok());
  s = Report(3, second);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("must leave step 3 with at most 64 metrics (merged "
                        "with those reported before), got 80"));
  EXPECT_TRUE(Report(4, second).ok());
  EXPECT_THAT(AllSteps(), ElementsAre(3, 4));
}

TEST_F(MetricReportsTest, NonFiniteValuesRoundTrip) {
  CreateSchedule();
  const double inf = std::numeric_limits<double>::infinity();
  ASSERT_TRUE(Report(7, {{"loss", std::nan("")}, {"grad_norm", inf}}).ok());
  auto resp = List({});
  ASSERT_EQ(resp.reports_size(), 1);
  EXPECT_TRUE(std::isnan(resp.reports(0).metrics().at("loss")));
  EXPECT_EQ(resp.reports(0).metrics().at("grad_norm"), inf);
}

TEST_F(MetricReportsTest, ListPaginatesSelectsAndBoundsTokensToTheQuery) {
  CreateSchedule();
  for (int64_t step = 0; step < 6; ++step) {
    std::map<std::string, double> m = {{"loss", 10.0 - step}};
    if (step % 2 == 0) m["val_loss"] = 20.0 - step;
    ASSERT_TRUE(Report(step, m).ok());
  }
  v1::ListMetricReportsRequest req;
  req.set_page_size(4);
  auto page = List(req);
  ASSERT_EQ(page.reports_size(), 4);
  ASSERT_FALSE(page.next_page_token().empty());
  req.set_page_token(page.next_page_token());
  page = List(req);
  ASSERT_EQ(page.reports_size(), 2);
  EXPECT_EQ(page.reports(0).step(), 4);
  EXPECT_TRUE(page.next_page_token().empty());

  // Only val_loss: odd steps have none and are skipped; the others keep
  // just the selected metric.
  v1::ListMetricReportsRequest sel;
  sel.add_metric_names("val_loss");
  sel.set_page_size(2);
  page = List(sel);
  ASSERT_EQ(page.reports_size(), 2);
  EXPECT_EQ(page.reports(0).step(), 0);
  EXPECT_EQ(page.reports(1).step(), 2);
  EXPECT_THAT(page.reports(1).metrics(),
              UnorderedElementsAre(Pair("val_loss", 18.0)));
  sel.set_page_token(page.next_page_token());
  page = List(sel);
  ASSERT_EQ(page.reports_size(), 1);
  EXPECT_EQ(page.reports(0).step(), 4);
  EXPECT_TRUE(page.next_page_token().empty());

  // Step bounds: [2, 5).
  v1::ListMetricReportsRequest bounded;
  bounded.set_start_step(2);
  bounded.set_end_step(5);
  page = List(bounded);
  ASSERT_EQ(page.reports_size(), 3);
  EXPECT_EQ(page.reports(0).step(), 2);
  EXPECT_EQ(page.reports(2).step(), 4);

  // A token used with another query, and bad requests.
  v1::ListMetricReportsRequest other;
  other.set_name(kName);
  other.set_page_token(sel.page_token());
  v1::ListMetricReportsResponse out;
  grpc::Status s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("page_token"));
  other.clear_page_token();
  other.set_start_step(5);
  other.set_end_step(3);
  s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_EQ(s.error_message(), "end_step: must be >= start_step (5), got 3");
  other.clear_start_step();
  other.set_end_step(-1);
  s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_EQ(s.error_message(),
            "end_step: must be >= start_step (0 when not given), got -1");
  other.clear_end_step();
  other.set_start_step(-4);
  s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_EQ(s.error_message(), "start_step: must be >= 0, got -4");
  other.clear_start_step();
  other.set_page_size(-1);
  s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_EQ(s.error_message(), "page_size: must be >= 0, got -1");
  other.set_page_size(0);
  other.add_metric_names("bad name");
  s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_THAT(s.error_message(), HasSubstr("metric_names[0]: must match"));
  other.set_name("schedules/missing");
  s = server_->stub()->ListMetricReports(Ctx().get(), other, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(MetricReportsTest, TheHistoryFlagKeepsTheNewestSteps) {
  CreateSchedule();
  for (int64_t step = 0; step < 10; ++step) {
    ASSERT_TRUE(Report(step * 100, {{"loss", 1}}).ok());
  }
  EXPECT_THAT(AllSteps(), ElementsAre(400, 500, 600, 700, 800, 900));
}

TEST_F(MetricReportsTest, AcknowledgedReportsSurviveRestartAndSigkill) {
  CreateSchedule();
  ASSERT_TRUE(Report(1, {{"loss", 3}}).ok());
  EXPECT_EQ(server_->Stop(), 0);
  StartServer();
  ASSERT_TRUE(Report(2, {{"loss", 2}}).ok());
  server_->Kill();  // no shutdown flush: only what was durable
  StartServer();
  EXPECT_THAT(AllSteps(), ElementsAre(1, 2));
}

TEST_F(MetricReportsTest, DeleteRemovesReportsAndReportsAfterItAreRefused) {
  CreateSchedule();
  ASSERT_TRUE(Report(1, {{"loss", 3}}).ok());
  v1::DeleteScheduleRequest del;
  del.set_name(kName);
  google::protobuf::Empty empty;
  ASSERT_TRUE(server_->stub()->DeleteSchedule(Ctx().get(), del, &empty).ok());
  EXPECT_EQ(Report(2, {{"loss", 2}}).error_code(), grpc::StatusCode::NOT_FOUND);
  CreateSchedule();
  EXPECT_TRUE(List({}).reports().empty());
}

TEST(MetricReportsFlagTest, AHistoryBelowOneIsRefusedAtStartup) {
  const std::string db = TempDb("db");
  const std::string log = db + ".log";
  pid_t pid = fork();
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    const std::string bin = std::string(ANNEAL_BIN_DIR) + "/anneal-server";
    const std::string db_flag = "--db=" + db;
    execl(bin.c_str(), bin.c_str(), "--listen=127.0.0.1:0", db_flag.c_str(),
          "--metrics_history=0", static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 1);  // as any bad flag (docs/operations.md)
  std::ifstream in(log);
  std::string text((std::istreambuf_iterator<char>(in)),
                   std::istreambuf_iterator<char>());
  EXPECT_THAT(text, HasSubstr("--metrics_history: must be >= 1, got 0"));
}

}  // namespace
}  // namespace anneal
