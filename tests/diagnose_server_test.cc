// Diagnose on the real anneal-server, and annealctl's diagnose and
// lr-range-test commands against it: NOT_FOUND, bad metric names
// (INVALID_ARGUMENT naming the field, the rule and the value), an empty
// report set (inconclusive findings, not an error), non-finite reports
// (evidence as text, never a NaN number in JSON), the --metrics_history cap,
// and an LR range test from creation to a new schedule with its suggestion.
#include <sys/wait.h>

#include <array>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>

#include "gmock/gmock.h"
#include "google/protobuf/util/json_util.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kName[] = "schedules/run";

struct CliRun {
  int exit_code;
  std::string out;
  std::string err;
};

CliRun RunCli(const std::string& args) {
  const std::string err_path = TestDir() + "annealctl_err";
  const std::string command = "env -u ANNEAL_SERVER " +
                              std::string(ANNEAL_BIN_DIR) + "/annealctl " +
                              args + " 2>" + err_path;
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    out.append(buf.data(), n);
  }
  const int status = pclose(pipe);
  std::stringstream err;
  err << std::ifstream(err_path).rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out, err.str()};
}

class DiagnoseServerTest : public LiveServerTest {
 protected:
  DiagnoseServerTest() : LiveServerTest({"--metrics_history=50"}) {}

  void Create(const std::string& id, double max_lr) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    auto* spec = req.mutable_schedule()->mutable_spec();
    spec->set_max_lr(max_lr);
    spec->mutable_warm_restarts()->set_period(20);
    v1::Schedule out;
    grpc::Status s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  void Report(const std::string& name, int64_t step,
              const std::map<std::string, double>& metrics) {
    v1::ReportMetricsRequest req;
    req.set_name(name);
    req.set_step(step);
    for (const auto& [k, v] : metrics) (*req.mutable_metrics())[k] = v;
    v1::MetricReport out;
    grpc::Status s = server_->stub()->ReportMetrics(Ctx().get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  grpc::Status Diagnose(const v1::DiagnoseRequest& req,
                        v1::DiagnoseResponse* out) {
    return server_->stub()->Diagnose(Ctx(60).get(), req, out);
  }

  CliRun Cli(const std::string& args) {
    return RunCli("--server " + server_->address() + " " + args);
  }
};

const v1::Finding* FindCode(const v1::DiagnoseResponse& r,
                            const std::string& code) {
  for (const v1::Finding& f : r.findings()) {
    if (f.code() == code) return &f;
  }
  return nullptr;
}

TEST_F(DiagnoseServerTest, UnknownScheduleIsNotFound) {
  v1::DiagnoseRequest req;
  req.set_name("schedules/nope");
  v1::DiagnoseResponse out;
  grpc::Status s = Diagnose(req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "schedules/nope: not found");
  req.set_name("nope");
  s = Diagnose(req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("name: "));
}

TEST_F(DiagnoseServerTest, BadMetricNamesNameTheFieldRuleAndValue) {
  Create("run", 0.1);
  v1::DiagnoseRequest req;
  req.set_name(kName);
  req.set_validation_metric("9x");
  v1::DiagnoseResponse out;
  grpc::Status s = Diagnose(req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "validation_metric: must match ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, "
            "got \"9x\"");
  req.clear_validation_metric();
  req.set_training_metric("loss with spaces");
  s = Diagnose(req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("training_metric: must match ^[A-Za-z_]"));
  EXPECT_THAT(s.error_message(), HasSubstr("got \"loss with spaces\""));

  CliRun r = Cli("diagnose run --training-metric 9x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("annealctl diagnose: training_metric: must"));
}

TEST_F(DiagnoseServerTest, NoReportsGiveInconclusiveFindings) {
  Create("run", 0.1);
  v1::DiagnoseRequest req;
  req.set_name(kName);
  v1::DiagnoseResponse out;
  grpc::Status s = Diagnose(req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.name(), kName);
  EXPECT_EQ(out.revision(), 1);
  EXPECT_EQ(out.reports_read(), 0);
  EXPECT_EQ(out.first_step(), -1);
  EXPECT_EQ(out.validation_metric(), "");
  ASSERT_GE(out.findings_size(), 5);
  for (const v1::Finding& f : out.findings()) {
    EXPECT_EQ(f.severity(), v1::Finding::INFO) << f.code();
  }
  EXPECT_NE(FindCode(out, "PHASE_INCONCLUSIVE"), nullptr);
  EXPECT_NE(FindCode(out, "STABILITY_INCONCLUSIVE"), nullptr);
  EXPECT_NE(FindCode(out, "DIVERGENCE_INCONCLUSIVE"), nullptr);

  CliRun r = Cli("diagnose run");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("schedules/run (revision 1): 0 reports"));
  EXPECT_THAT(r.out, HasSubstr("INFO PHASE_INCONCLUSIVE: "));
}

TEST_F(DiagnoseServerTest, NonFiniteReportsAreEvidenceNotNumbers) {
  Create("run", 1.0);
  for (int64_t step = 0; step < 80; ++step) {
    ASSERT_NO_FATAL_FAILURE(
        Report(kName, step,
               {{"loss", step < 40 ? 1.0 : NAN}, {"max_curvature", 10.0}}));
  }
  v1::DiagnoseRequest req;
  req.set_name(kName);
  v1::DiagnoseResponse out;
  grpc::Status s = Diagnose(req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  // --metrics_history=50: steps 30..79 are kept and read.
  EXPECT_EQ(out.reports_read(), 50);
  EXPECT_EQ(out.first_step(), 30);
  EXPECT_EQ(out.last_step(), 79);
  EXPECT_EQ(out.training_metric(), "loss");
  ASSERT_GE(out.findings_size(), 1);
  EXPECT_EQ(out.findings(0).severity(), v1::Finding::ERROR);
  const v1::Finding* nan = FindCode(out, "DIVERGENCE_NONFINITE");
  ASSERT_NE(nan, nullptr);
  EXPECT_EQ(nan->spans(0).start_step(), 40);
  const v1::Finding* unstable = FindCode(out, "STABILITY_UNSTABLE");
  ASSERT_NE(unstable, nullptr);
  EXPECT_LT(unstable->suggested_max_lr(), 0.4);

  std::string json;
  ASSERT_TRUE(google::protobuf::util::MessageToJsonString(out, &json).ok());
  EXPECT_THAT(json, Not(HasSubstr("\"value\": \"NaN\"")));
  EXPECT_THAT(json, Not(HasSubstr("\"value\":\"NaN\"")));
  EXPECT_THAT(json, Not(HasSubstr("Infinity")));
  EXPECT_THAT(json, HasSubstr("\"text\":\"NaN\""));

  CliRun r = Cli("diagnose run -o json");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("DIVERGENCE_NONFINITE"));
  EXPECT_THAT(r.out, Not(HasSubstr("Infinity")));
}

TEST_F(DiagnoseServerTest, LrRangeTestFromCreateToANewSchedule) {
  CliRun r = Cli("lr-range-test create sweep --min-lr 0 --max-lr 1 --steps 50");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--min-lr: must be > 0"));
  // Errors name the flag as it was typed.
  r = Cli("lr-range-test create sweep --min-lr nan --max-lr 1 --steps 50");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--min-lr: must be a finite number, got nan"));
  r = Cli("lr-range-test create sweep --min_lr 1 --max_lr 1 --steps 50");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--max_lr: "));
  r = Cli("lr-range-test create sweep --min-lr 1e-4 --max-lr 10 --steps 50");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Not yet reported: no suggestion (exit 1, a failed precondition).
  r = Cli("lr-range-test suggest sweep");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("no suggestion yet"));

  const std::string name = "schedules/sweep";
  for (int64_t step = 0; step < 50; ++step) {
    v1::EvaluateRequest e;
    e.set_name(name);
    e.set_step(step);
    v1::EvaluateResponse lr;
    ASSERT_TRUE(server_->stub()->Evaluate(Ctx().get(), e, &lr).ok());
    const double x = std::log(lr.result().lr() / 0.01);
    double loss = 2.3 - 2.0 / (1.0 + std::exp(-1.5 * x));
    if (lr.result().lr() > 0.5) loss *= 50;
    ASSERT_NO_FATAL_FAILURE(Report(name, step, {{"loss", loss}}));
  }
  v1::DiagnoseRequest req;
  req.set_name(name);
  v1::DiagnoseResponse out;
  ASSERT_TRUE(Diagnose(req, &out).ok());
  EXPECT_TRUE(out.lr_range_test());
  ASSERT_EQ(out.findings_size(), 1);
  EXPECT_EQ(out.findings(0).code(), "LR_RANGE_TEST");
  const double suggested = out.findings(0).suggested_max_lr();
  EXPECT_GT(suggested, 0.003);
  EXPECT_LT(suggested, 0.03);

  r = Cli("lr-range-test suggest sweep");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("suggested max_lr "));
  r = Cli("lr-range-test suggest sweep --write tuned --steps 300");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("created schedules/tuned"));
  v1::GetScheduleRequest get;
  get.set_name("schedules/tuned");
  v1::Schedule tuned;
  ASSERT_TRUE(server_->stub()->GetSchedule(Ctx().get(), get, &tuned).ok());
  EXPECT_EQ(tuned.spec().max_lr(), suggested);
  EXPECT_EQ(tuned.spec().one_cycle().total_steps(), 300);

  // A schedule that is not a range test has no suggestion to give.
  Create("run", 0.1);
  r = Cli("lr-range-test suggest run");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not an LR range test"));
  r = Cli("lr-range-test frobnicate run");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("SUBCOMMAND: must be create or suggest"));
}

}  // namespace
}  // namespace anneal
