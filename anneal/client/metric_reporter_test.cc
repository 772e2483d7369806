// MetricReporter over a scripted transport: reports checked at the call,
// merged while queued, sent in order, kept through an outage, dropped for
// space or at close (counted), and refusals counted and logged once.
#include "anneal/client/metric_reporter.h"

#include <deque>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::HasSubstr;

// Records every ReportMetrics; answers from a script (OK when it is empty)
// and can hold calls until released.
class ScriptedTransport final : public ScheduleTransport {
 public:
  struct Shared {
    absl::Mutex mu;
    std::vector<v1::ReportMetricsRequest> calls ABSL_GUARDED_BY(mu);
    std::vector<bool> waited ABSL_GUARDED_BY(mu);
    std::deque<absl::Status> script ABSL_GUARDED_BY(mu);
    bool hold ABSL_GUARDED_BY(mu) = false;
    bool cancelled ABSL_GUARDED_BY(mu) = false;
    bool Released() const ABSL_SHARED_LOCKS_REQUIRED(mu) {
      return !hold || cancelled;
    }
  };

  explicit ScriptedTransport(Shared* shared) : shared_(shared) {}

  absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRange(
      const v1::EvaluateRangeRequest&, const CallOptions&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::Schedule> GetSchedule(const v1::GetScheduleRequest&,
                                           const CallOptions&) override {
    return absl::UnimplementedError("not used");
  }
  absl::StatusOr<v1::MetricReport> ReportMetrics(
      const v1::ReportMetricsRequest& request,
      const CallOptions& options) override {
    absl::MutexLock lock(&shared_->mu);
    shared_->calls.push_back(request);
    shared_->waited.push_back(options.wait_for_ready);
    shared_->mu.Await(absl::Condition(shared_, &Shared::Released));
    if (shared_->cancelled) return absl::CancelledError("cancelled");
    if (!shared_->script.empty()) {
      absl::Status s = shared_->script.front();
      shared_->script.pop_front();
      if (!s.ok()) return s;
    }
    v1::MetricReport report;
    report.set_step(request.step());
    *report.mutable_metrics() = request.metrics();
    return report;
  }
  void CancelAll() override {
    absl::MutexLock lock(&shared_->mu);
    shared_->cancelled = true;
  }

 private:
  Shared* shared_;
};

struct Logged {
  absl::Mutex mu;
  std::vector<std::string> lines ABSL_GUARDED_BY(mu);
  int Count(absl::string_view needle) {
    absl::MutexLock lock(&mu);
    int n = 0;
    for (const std::string& l : lines) n += absl::StrContains(l, needle);
    return n;
  }
};

std::unique_ptr<MetricReporter> Make(ScriptedTransport::Shared* shared,
                                     Logged* logged,
                                     MetricReporter::Options o = {}) {
  o.schedule = "job";
  o.initial_backoff = absl::Milliseconds(1);
  o.max_backoff = absl::Milliseconds(5);
  o.close_timeout = absl::Seconds(2);
  o.log = [logged](LogLevel, absl::string_view line) {
    absl::MutexLock lock(&logged->mu);
    logged->lines.emplace_back(line);
  };
  auto r = MetricReporter::Create(std::make_unique<ScriptedTransport>(shared),
                                  std::move(o));
  EXPECT_TRUE(r.ok()) << r.status();
  return *std::move(r);
}

TEST(MetricReporterTest, BadReportsFailAtTheCall) {
  ScriptedTransport::Shared shared;
  Logged logged;
  auto r = Make(&shared, &logged);
  EXPECT_THAT(r->Report(-1, {{"loss", 1}}).message(),
              HasSubstr("step: must be >= 0, got -1"));
  EXPECT_THAT(r->Report(1, {}).message(),
              HasSubstr("metrics: must name at least one metric"));
  EXPECT_THAT(r->Report(1, {{"9x", 1}}).message(),
              HasSubstr("metrics[\"9x\"]: must match"));
  std::map<std::string, double> many;
  for (int i = 0; i < 65; ++i) many["m" + std::to_string(i)] = i;
  EXPECT_THAT(r->Report(1, many).message(),
              HasSubstr("metrics: at most 64 per report, got 65"));
  EXPECT_TRUE(r->Flush(absl::Seconds(1)));
  absl::MutexLock lock(&shared.mu);
  EXPECT_TRUE(shared.calls.empty());
  EXPECT_EQ(MetricReporter::Create(std::make_unique<ScriptedTransport>(&shared),
                                   MetricReporter::Options{})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);  // no schedule
}

TEST(MetricReporterTest, QueuedReportsOfAStepMergeAndGoInOrder) {
  ScriptedTransport::Shared shared;
  Logged logged;
  {
    absl::MutexLock lock(&shared.mu);
    shared.hold = true;  // the first send waits: everything else queues
  }
  auto r = Make(&shared, &logged);
  ASSERT_TRUE(r->Report(0, {{"loss", 1.0}}).ok());
  // Wait for step 0 to be in flight, then queue behind it.
  while (r->stats().pending != 1 || [&] {
    absl::MutexLock lock(&shared.mu);
    return shared.calls.empty();
  }()) {
  }
  ASSERT_TRUE(r->Report(1, {{"loss", 0.9}}).ok());
  ASSERT_TRUE(r->Report(2, {{"loss", 0.8}}).ok());
  ASSERT_TRUE(r->Report(1, {{"loss", 0.85}, {"acc", 0.5}}).ok());
  ASSERT_TRUE(r->Report(0, {{"val_loss", 1.1}}).ok());  // 0 is in flight
  EXPECT_EQ(r->stats().pending, 4);
  {
    absl::MutexLock lock(&shared.mu);
    shared.hold = false;
  }
  ASSERT_TRUE(r->Flush(absl::Seconds(5)));
  absl::MutexLock lock(&shared.mu);
  ASSERT_EQ(shared.calls.size(), 4u);
  EXPECT_EQ(shared.calls[0].step(), 0);
  EXPECT_EQ(shared.calls[1].step(), 1);
  EXPECT_EQ(shared.calls[1].metrics().at("loss"), 0.85);
  EXPECT_EQ(shared.calls[1].metrics().at("acc"), 0.5);
  EXPECT_EQ(shared.calls[2].step(), 2);
  EXPECT_EQ(shared.calls[3].step(), 0);
  EXPECT_EQ(shared.calls[3].metrics().at("val_loss"), 1.1);
  EXPECT_EQ(shared.calls[1].name(), "schedules/job");
}

TEST(MetricReporterTest, AnOutageLosesNothingAndWarnsOnce) {
  ScriptedTransport::Shared shared;
  Logged logged;
  {
    absl::MutexLock lock(&shared.mu);
    for (int i = 0; i < 5; ++i) {
      shared.script.push_back(absl::UnavailableError("connection refused"));
    }
  }
  auto r = Make(&shared, &logged);
  for (int step = 0; step < 20; ++step) {
    ASSERT_TRUE(r->Report(step, {{"loss", 1.0 / (step + 1)}}).ok());
  }
  ASSERT_TRUE(r->Flush(absl::Seconds(5)));
  const MetricReporter::Stats s = r->stats();
  EXPECT_EQ(s.sent, 20);
  EXPECT_EQ(s.retries, 5);
  EXPECT_EQ(s.dropped + s.rejected + s.pending, 0);
  EXPECT_EQ(logged.Count("cannot report"), 1);
  EXPECT_EQ(logged.Count("reports flow again"), 1);
  absl::MutexLock lock(&shared.mu);
  // Every step arrived, in order; the retries waited for the connection.
  std::vector<int64_t> delivered;
  for (size_t i = 5; i < shared.calls.size(); ++i) {
    delivered.push_back(shared.calls[i].step());
  }
  EXPECT_EQ(delivered.size(), 20u);
  for (int step = 0; step < 20; ++step) EXPECT_EQ(delivered[step], step);
  EXPECT_FALSE(shared.waited[0]);
  EXPECT_TRUE(shared.waited[1]);
}

TEST(MetricReporterTest, RefusalsAreCountedAndLoggedOncePerMessage) {
  ScriptedTransport::Shared shared;
  Logged logged;
  {
    absl::MutexLock lock(&shared.mu);
    shared.script = {absl::NotFoundError("schedules/job: not found"),
                     absl::NotFoundError("schedules/job: not found"),
                     absl::OkStatus()};
  }
  auto r = Make(&shared, &logged);
  for (int step = 0; step < 3; ++step)
    ASSERT_TRUE(r->Report(step, {{"x", 1}}).ok());
  ASSERT_TRUE(r->Flush(absl::Seconds(5)));
  EXPECT_EQ(r->stats().rejected, 2);
  EXPECT_EQ(r->stats().sent, 1);
  EXPECT_EQ(logged.Count("refused a report"), 1);
}

TEST(MetricReporterTest, AFullQueueDropsTheOldestAndCloseCountsTheRest) {
  ScriptedTransport::Shared shared;
  Logged logged;
  {
    absl::MutexLock lock(&shared.mu);
    shared.hold = true;
  }
  MetricReporter::Options o;
  o.max_pending = 3;
  auto r = Make(&shared, &logged, o);
  ASSERT_TRUE(r->Report(0, {{"x", 0}}).ok());
  while ([&] {
    absl::MutexLock lock(&shared.mu);
    return shared.calls.empty();
  }()) {
  }
  for (int step = 1; step <= 5; ++step) {
    ASSERT_TRUE(r->Report(step, {{"x", 1}}).ok());
  }
  EXPECT_EQ(r->stats().dropped, 2);  // steps 1 and 2
  EXPECT_EQ(logged.Count("dropping the oldest"), 1);
  EXPECT_FALSE(r->Flush(absl::Milliseconds(50)));  // the send is held
  // Closing waits close_timeout, then cancels: nothing is left unaccounted.
  r.reset();
  absl::MutexLock lock(&shared.mu);
  EXPECT_EQ(shared.calls.size(), 1u);
}

}  // namespace
}  // namespace anneal
