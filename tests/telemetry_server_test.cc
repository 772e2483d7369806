// The telemetry port of a real anneal-server: /metrics after real traffic
// (gRPC counters by method and code, the per-schedule LR equal to what
// Evaluate served, training reports, a deleted schedule's series gone),
// HTTP errors, and the flags (a taken port fails the start, naming the
// flag; empty disables).
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/http_get.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using testing::HasSubstr;
using testing::Not;

// The value of the sample `series` (name and labels, as printed), or NaN.
double Sample(const std::string& text, const std::string& series) {
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    if (absl::StartsWith(line, series + " ")) {
      double v = 0;
      if (absl::SimpleAtod(line.substr(series.size() + 1), &v)) return v;
    }
  }
  return std::nan("");
}

class TelemetryServerTest : public LiveServerTest {
 protected:
  std::string Metrics() {
    HttpReply r = HttpGet(server_->metrics_port(), "/metrics");
    EXPECT_EQ(r.status, 200);
    EXPECT_THAT(r.headers, HasSubstr("text/plain; version=0.0.4"));
    return r.body;
  }
  void Create(const std::string& id, const std::string& spec) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    v1::Schedule out;
    ASSERT_TRUE(server_->stub()->CreateSchedule(Ctx().get(), req, &out).ok());
  }
  double Evaluate(const std::string& id, int64_t step) {
    v1::EvaluateRequest req;
    req.set_name("schedules/" + id);
    req.set_step(step);
    v1::EvaluateResponse out;
    grpc::Status s = server_->stub()->Evaluate(Ctx().get(), req, &out);
    return s.ok() ? out.result().lr() : -1;
  }
};

constexpr char kEvaluateOk[] =
    "grpc_server_handled_total{grpc_service=\"anneal.v1.ScheduleService\","
    "grpc_method=\"Evaluate\",grpc_type=\"unary\",grpc_code=\"OK\"}";
constexpr char kEvaluateNotFound[] =
    "grpc_server_handled_total{grpc_service=\"anneal.v1.ScheduleService\","
    "grpc_method=\"Evaluate\",grpc_type=\"unary\",grpc_code=\"NotFound\"}";

TEST_F(TelemetryServerTest, MetricsFollowRealTraffic) {
  Create("job",
         "{max_lr: 0.1, min_lr: 0.001, warm_restarts: {period: 10, "
         "period_mult: 2}}");
  double last = 0;
  for (int step = 0; step <= 37; ++step) last = Evaluate("job", step);
  EXPECT_EQ(Evaluate("nobody", 1), -1);

  v1::ReportMetricsRequest report;
  report.set_name("schedules/job");
  report.set_step(37);
  (*report.mutable_metrics())["loss"] = 0.75;
  v1::MetricReport stored;
  ASSERT_TRUE(
      server_->stub()->ReportMetrics(Ctx().get(), report, &stored).ok());

  const std::string text = Metrics();
  EXPECT_EQ(Sample(text, kEvaluateOk), 38);
  EXPECT_EQ(Sample(text, kEvaluateNotFound), 1);
  EXPECT_EQ(Sample(text, "anneal_schedules"), 1);
  EXPECT_EQ(Sample(text, "anneal_schedule_max_step_served{schedule=\"job\"}"),
            37);
  // Steps 30.. are cycle 2 (lengths 10, 20, 40).
  EXPECT_EQ(Sample(text, "anneal_schedule_cycle{schedule=\"job\"}"), 2);
  EXPECT_EQ(Sample(text, "anneal_schedule_cycle_start_step{schedule=\"job\"}"),
            30);
  // Printed with every digit: the exact LR served.
  EXPECT_EQ(Sample(text, "anneal_schedule_lr{schedule=\"job\"}"), last);
  EXPECT_EQ(Sample(text,
                   "anneal_schedule_reported{metric=\"loss\","
                   "schedule=\"job\"}"),
            0.75);
  EXPECT_EQ(Sample(text, "anneal_training_reports_total"), 1);
  EXPECT_EQ(Sample(text, "anneal_schedule_changes_total{kind=\"create\"}"), 1);
  EXPECT_EQ(Sample(text, "anneal_steps_served_total{method=\"Evaluate\"}"), 38);
  EXPECT_GE(Sample(text, "anneal_store_commits_total"), 2);
  EXPECT_EQ(Sample(text, "anneal_store_failed"), 0);
  EXPECT_GT(Sample(text, "process_resident_memory_bytes"), 1 << 20);
  EXPECT_GT(Sample(text, "process_open_fds"), 3);
  EXPECT_THAT(text, HasSubstr("anneal_build_info{store=\"sqlite\",version="));

  v1::DeleteScheduleRequest del;
  del.set_name("schedules/job");
  google::protobuf::Empty empty;
  ASSERT_TRUE(server_->stub()->DeleteSchedule(Ctx().get(), del, &empty).ok());
  EXPECT_THAT(Metrics(), Not(HasSubstr("schedule=\"job\"")));
}

TEST_F(TelemetryServerTest, TheStatusPageKeepsTheListLimits) {
  // --max_filter_bytes (4096), as ListSchedules does.
  HttpReply r =
      HttpGet(server_->metrics_port(), "/?filter=" + std::string(5000, 'a'));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body,
              HasSubstr("filter: must be at most 4096 bytes, got 5000"));
  EXPECT_EQ(
      HttpGet(server_->metrics_port(), "/?filter=" + std::string(4096, 'a'))
          .status,
      400);  // within the limit: refused as a filter, not for its size
  r = HttpGet(server_->metrics_port(), "/?page=" + std::string(2000, 'x'));
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("page_token: must be at most 1024 bytes"));
  r = HttpGet(server_->metrics_port(), "/?page=forged");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("not a token this server issued"));
}

TEST_F(TelemetryServerTest, OtherPathsAndMethodsAreRefused) {
  EXPECT_EQ(HttpGet(server_->metrics_port(), "/nothing").status, 404);
  EXPECT_EQ(HttpGet(server_->metrics_port(), "/metrics", "POST").status, 405);
  // The path is decoded whole: a %00 does not end it early.
  HttpReply r = HttpGet(server_->metrics_port(), "/schedules/m1%00evil");
  EXPECT_EQ(r.status, 400);
  EXPECT_THAT(r.body, HasSubstr("path: must not contain %00"));
  r = HttpGet(server_->metrics_port(), "/schedules/%6Eope");
  EXPECT_EQ(r.status, 404);
  EXPECT_THAT(r.body, HasSubstr("schedules/nope"));
}

// Runs anneal-server with `flags` until it exits or 3 s pass (then stops
// it); its exit status.
int RunBriefly(const std::vector<std::string>& flags, const std::string& log) {
  pid_t pid = fork();
  if (pid == 0) {
    freopen(log.c_str(), "w", stderr);
    std::vector<std::string> args = {std::string(ANNEAL_BIN_DIR) +
                                     "/anneal-server"};
    args.insert(args.end(), flags.begin(), flags.end());
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  for (int i = 0; i < 300; ++i) {
    if (waitpid(pid, &status, WNOHANG) == pid) return WEXITSTATUS(status);
    usleep(10'000);
  }
  kill(pid, SIGTERM);
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST_F(TelemetryServerTest, ATakenPortFailsTheStartNamingTheFlag) {
  const std::string log = TempDb("taken") + ".log";
  const std::string taken =
      absl::StrCat("--metrics_listen=127.0.0.1:", server_->metrics_port());
  EXPECT_EQ(
      RunBriefly({"--listen=127.0.0.1:0", "--db=" + TempDb("taken"), taken},
                 log),
      1);
  EXPECT_THAT(ReadAll(log), HasSubstr("--metrics_listen: cannot listen on"));
}

TEST(TelemetryFlagTest, AnEmptyAddressServesNoTelemetry) {
  const std::string log = TempDb("off") + ".log";
  EXPECT_EQ(RunBriefly({"--listen=127.0.0.1:0", "--db=" + TempDb("off"),
                        "--metrics_listen="},
                       log),
            0);
  EXPECT_THAT(ReadAll(log), HasSubstr("stop: clean"));
  EXPECT_THAT(ReadAll(log), Not(HasSubstr("telemetry on")));
}

}  // namespace
}  // namespace anneal
