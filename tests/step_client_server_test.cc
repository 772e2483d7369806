// anneal::StepClient against the real anneal-server: prefetch, an update
// mid-run picked up by the watch, the server stopped and restarted mid-run,
// and every step served equal, bit for bit, to what the server says
// afterwards.
#include <openssl/sha.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "anneal/client/metric_reporter.h"
#include "anneal/client/step_client.h"
#include "anneal/client/testing/fake_schedule_server.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/model/step_range.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using testing::HasSubstr;

constexpr const char* kSgdr = kFakeSgdrSpec;

std::string Sha256Hex(const std::string& token) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(token.data()), token.size(),
         digest);
  std::string hex;
  char byte[3];
  for (unsigned char b : digest) {
    std::snprintf(byte, sizeof(byte), "%02x", b);
    hex += byte;
  }
  return hex;
}

// Creates schedules/job (the SGDR spec) on `server`, with `token` if any.
void CreateJob(ServerProcess& server, const std::string& token = "") {
  v1::CreateScheduleRequest req;
  req.set_schedule_id("job");
  *req.mutable_schedule()->mutable_spec() = SpecFromText(kSgdr);
  v1::Schedule out;
  auto ctx = Ctx();
  if (!token.empty()) ctx->AddMetadata("authorization", "Bearer " + token);
  grpc::Status s = server.stub()->CreateSchedule(ctx.get(), req, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
}

// The real server: prefetch, an update mid-run, then SIGTERM mid-run
// (window, then offline), a restart on the same port (back online), and
// every step served equal, bit for bit, to what the server says now.
TEST(StepClientServerTest, RealServerUpdateOutageAndRestart) {
  const int port = FreePort();
  ServerProcess server(TempDb("db"),
                       {"--listen=127.0.0.1:" + std::to_string(port)});
  server.Start();
  ASSERT_NO_FATAL_FAILURE(CreateJob(server));
  LogSink log;
  StepClient::Options o;
  o.server = server.address();
  o.schedule = "job";
  o.window = 50;
  o.offline_fallback = true;
  o.initial_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(200);
  o.rpc_timeout = absl::Seconds(2);
  o.log = log.Fn();
  auto connected = StepClient::Connect(o);
  ASSERT_TRUE(connected.ok()) << connected.status();
  StepClient& client = **connected;

  std::vector<StepResult> served;
  auto step = [&](int64_t t) {
    auto r = client.Step(t);
    ASSERT_TRUE(r.ok()) << t << ": " << r.status();
    served.push_back(*r);
  };
  int64_t t = 0;
  for (; t < 30; ++t) step(t);
  // The update may race the refetch started at step 25: the registry makes
  // a read of the old snapshot retry (Registry::Serve), so no served step
  // is rewritten either way (checked below and by the client's own log).
  ASSERT_TRUE(Eventually([&] { return client.stats().watching; }));
  {
    v1::UpdateScheduleRequest req;
    req.mutable_schedule()->set_name("schedules/job");
    *req.mutable_schedule()->mutable_spec() =
        SpecFromText("max_lr: 0.05\nmin_lr: 0.001\ncosine: {period: 300}");
    req.mutable_update_mask()->add_paths("spec");
    v1::Schedule out;
    grpc::Status s = server.stub()->UpdateSchedule(Ctx().get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
    const int64_t from = out.timeline(out.timeline_size() - 1).from_step();
    EXPECT_GT(from, 29);
    EXPECT_LE(from, 29 + o.window);  // the bound: at most a window late
  }
  // The watch brings the new revision without another step.
  Eventually([&] { return client.revision() == 2; });
  EXPECT_EQ(client.revision(), 2);
  EXPECT_EQ(client.stats().watch_refreshes, 1);
  for (; t < 150; ++t) step(t);
  EXPECT_EQ(client.revision(), 2);

  // Offline mode has the new timeline (fetched right after the window).
  Eventually([&] { return client.stats().offline_revision == 2; });
  ASSERT_EQ(client.stats().offline_revision, 2);
  ASSERT_EQ(server.Stop(), 0);
  for (; t < 400; ++t) step(t);
  EXPECT_TRUE(client.offline());
  EXPECT_GT(client.stats().offline_steps, 0);
  server.Start();
  const absl::Time until = absl::Now() + absl::Seconds(20);
  while (client.offline() && absl::Now() < until) {
    step(t++);
    absl::SleepFor(absl::Milliseconds(2));
  }
  EXPECT_FALSE(client.offline()) << log.All();
  for (int i = 0; i < 100; ++i) step(t++);
  EXPECT_THAT(log.All(), HasSubstr("were evaluated offline"));
  // The watch came back with the server.
  Eventually([&] { return client.stats().watching; });
  EXPECT_TRUE(client.stats().watching);
  EXPECT_GE(client.stats().watch_calls, 2);
  EXPECT_EQ(log.Count(LogLevel::kError), 0) << log.All();

  // What the server says now, for every step the job was given.
  v1::EvaluateRangeRequest req;
  req.set_name("schedules/job");
  req.set_start_step(0);
  req.set_count(t);
  req.set_inspect_only(true);
  v1::EvaluateRangeResponse resp;
  grpc::Status s = server.stub()->EvaluateRange(Ctx().get(), req, &resp);
  ASSERT_TRUE(s.ok()) << s.error_message();
  auto truth = UnpackStepRange(resp.range());
  ASSERT_TRUE(truth.ok());
  ASSERT_EQ(served.size(), truth->size());
  for (size_t i = 0; i < served.size(); ++i)
    ExpectSameStep(served[i], (*truth)[i]);
  connected->reset();  // closes the client before the server
  EXPECT_EQ(server.Stop(), 0);
}

// A server with tokens: StepClient sends its Options::security token; one
// without a token is refused UNAUTHENTICATED.
TEST(StepClientServerTest, SendsItsBearerToken) {
  const std::string tokens = TestDir() + "/step_client_tokens";
  {
    std::ofstream out(tokens);
    out << "job-7 trainer " << Sha256Hex("trainer-secret") << "\n"
        << "ops operator " << Sha256Hex("ops-secret") << "\n";
  }
  ServerProcess server(TempDb("tokens_db"), {"--tokens_file=" + tokens});
  server.Start();
  ASSERT_NO_FATAL_FAILURE(CreateJob(server, "ops-secret"));
  StepClient::Options o;
  o.server = server.address();
  o.schedule = "job";
  o.window = 16;
  o.connect_timeout = absl::Seconds(2);
  o.security.token = "trainer-secret";
  auto connected = StepClient::Connect(o);
  ASSERT_TRUE(connected.ok()) << connected.status();
  auto r = (*connected)->Step(0);
  ASSERT_TRUE(r.ok()) << r.status();
  connected->reset();

  o.security.token = "";
  auto refused = StepClient::Connect(o);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnauthenticated)
      << refused.status();
  EXPECT_EQ(server.Stop(), 0);
}

// MetricReporter against the real server: reports sent in the
// background, merged per step, kept through a restart of the server, and
// listed afterwards exactly as reported.
TEST(MetricReporterServerTest, ReportsSurviveARestartOfTheServer) {
  const int port = FreePort();  // the restart comes back on it
  ServerProcess server(TempDb("reporter_db"),
                       {"--listen=127.0.0.1:" + std::to_string(port)});
  server.Start();
  ASSERT_NO_FATAL_FAILURE(CreateJob(server));
  MetricReporter::Options o;
  o.schedule = "job";
  o.initial_backoff = absl::Milliseconds(10);
  o.max_backoff = absl::Milliseconds(200);
  o.log = [](LogLevel, absl::string_view) {};
  auto reporter = MetricReporter::Connect(server.address(), o);
  ASSERT_TRUE(reporter.ok()) << reporter.status();
  for (int step = 0; step < 50; ++step) {
    ASSERT_TRUE((*reporter)->Report(step, {{"loss", 1.0 / (step + 1)}}).ok());
  }
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(10)));
  EXPECT_EQ(server.Stop(), 0);
  // Reported while the server is down: they wait, then arrive.
  for (int step = 50; step < 60; ++step) {
    ASSERT_TRUE((*reporter)->Report(step, {{"loss", 1.0 / (step + 1)}}).ok());
  }
  ASSERT_TRUE((*reporter)->Report(10, {{"val_loss", 0.5}}).ok());
  server.Start();
  ASSERT_TRUE((*reporter)->Flush(absl::Seconds(30)));
  const MetricReporter::Stats stats = (*reporter)->stats();
  EXPECT_EQ(stats.sent, 61);
  EXPECT_EQ(stats.dropped + stats.rejected, 0);

  v1::ListMetricReportsRequest req;
  req.set_name("schedules/job");
  req.set_page_size(1000);
  v1::ListMetricReportsResponse out;
  auto ctx = Ctx();
  ASSERT_TRUE(server.stub()->ListMetricReports(ctx.get(), req, &out).ok());
  ASSERT_EQ(out.reports_size(), 60);
  for (int step = 0; step < 60; ++step) {
    EXPECT_EQ(out.reports(step).step(), step);
    EXPECT_EQ(out.reports(step).metrics().at("loss"), 1.0 / (step + 1));
  }
  EXPECT_EQ(out.reports(10).metrics().at("val_loss"), 0.5);
  reporter->reset();
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace anneal
