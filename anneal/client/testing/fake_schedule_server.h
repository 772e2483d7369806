// The seam's fake, for tests of anything that reads a schedule through
// ScheduleTransport: FakeScheduleServer scripts one schedule ("schedules/job")
// with its timeline, max_step_served, revisions, outages and failures, and
// records every call; FakeTransport hands it to a StepClient. Also a log sink
// and a bit-for-bit comparison of served steps. Header-only, test code only.
#ifndef ANNEAL_CLIENT_TESTING_FAKE_SCHEDULE_SERVER_H_
#define ANNEAL_CLIENT_TESTING_FAKE_SCHEDULE_SERVER_H_

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/client/schedule_transport.h"
#include "anneal/client/step_client.h"
#include "anneal/model/step_range.h"
#include "anneal/model/timeline.h"
#include "gtest/gtest.h"

namespace anneal {

// An SGDR spec with every-cycle warmup and momentum cycling: every field a
// step can carry is exercised.
inline constexpr char kFakeSgdrSpec[] = R"(
max_lr: 0.1
min_lr: 1.0e-4
warmup: {steps: 2, start_lr: 0.0, every_cycle: true}
warm_restarts: {period: 10, period_mult: 2, peak_decay: 0.8}
momentum: {base: 0.85, max: 0.95}
)";

// Every field a range carries, bit for bit.
inline void ExpectSameStep(const StepResult& got, const StepResult& want) {
  EXPECT_EQ(got.step, want.step);
  EXPECT_EQ(got.lr, want.lr) << "step " << want.step;
  EXPECT_EQ(got.cycle, want.cycle) << "step " << want.step;
  EXPECT_EQ(got.step_in_cycle, want.step_in_cycle) << "step " << want.step;
  EXPECT_EQ(got.cycle_length, want.cycle_length) << "step " << want.step;
  EXPECT_EQ(got.phase, want.phase) << "step " << want.step;
  EXPECT_EQ(got.restart, want.restart) << "step " << want.step;
  EXPECT_EQ(got.snapshot, want.snapshot) << "step " << want.step;
  EXPECT_EQ(got.has_momentum, want.has_momentum) << "step " << want.step;
  if (want.has_momentum) {
    EXPECT_EQ(got.momentum, want.momentum) << "step " << want.step;
    EXPECT_EQ(got.beta1_bias_correction, want.beta1_bias_correction)
        << "step " << want.step;
  }
}

// A scripted server: one schedule's timeline, max_step_served, revisions,

// A scripted server: one schedule's timeline, max_step_served, revisions,
// outages and failures on demand, and a record of every call.
class FakeScheduleServer {
 public:
  struct Call {
    int64_t start = 0;
    int64_t count = 0;
    bool inspect_only = false;
    bool wait_for_ready = false;
    absl::Duration timeout;
    absl::Time time;
  };

  explicit FakeScheduleServer(const v1::ScheduleSpec& spec) {
    v1::Segment* s = schedule_.add_timeline();
    s->set_kind(v1::Segment::CREATE);
    *s->mutable_spec() = spec;
    schedule_.set_name("schedules/job");
    schedule_.set_revision(1);
    schedule_.set_max_step_served(-1);
    Rebuild();
  }

  // Replaces the timeline wholesale (segments as the registry would make).
  void SetTimeline(std::vector<v1::Segment> segments) {
    absl::MutexLock lock(&mu_);
    schedule_.clear_timeline();
    for (auto& s : segments) *schedule_.add_timeline() = std::move(s);
    schedule_.set_revision(schedule_.revision() + 1);
    Rebuild();
  }

  // As UpdateSchedule with the default effective step: a new spec from
  // max_step_served + 1 on the same clock. Returns that step.
  int64_t Update(const v1::ScheduleSpec& spec) {
    absl::MutexLock lock(&mu_);
    const int64_t from = schedule_.max_step_served() + 1;
    v1::Segment s;
    s.set_from_step(from);
    *s.mutable_spec() = spec;
    s.set_kind(v1::Segment::UPDATE);
    s.set_time_origin(
        schedule_.timeline(static_cast<int>(timeline_->SegmentAt(from)))
            .time_origin());
    *schedule_.add_timeline() = s;
    schedule_.set_revision(schedule_.revision() + 1);
    Rebuild();
    return from;
  }

  void SetDown(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
  }
  void FailNext(int n, absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_next_ = n;
    fail_status_ = std::move(status);
  }
  void SetError(absl::Status status) {
    absl::MutexLock lock(&mu_);
    error_ = std::move(status);
  }
  // While held, EvaluateRange calls wait (they are recorded first).
  void Hold(bool hold) {
    absl::MutexLock lock(&mu_);
    held_ = hold;
  }

  std::vector<Call> calls() const {
    absl::MutexLock lock(&mu_);
    return calls_;
  }
  int64_t range_calls() const {
    absl::MutexLock lock(&mu_);
    return static_cast<int64_t>(calls_.size());
  }
  int64_t max_step_served() const {
    absl::MutexLock lock(&mu_);
    return schedule_.max_step_served();
  }
  std::shared_ptr<const Timeline> timeline() const {
    absl::MutexLock lock(&mu_);
    return timeline_;
  }
  // Waits (up to 10 s) until `n` EvaluateRange calls have arrived.
  bool AwaitCalls(int64_t n) const {
    absl::MutexLock lock(&mu_);
    auto arrived = [&] {
      mu_.AssertHeld();
      return static_cast<int64_t>(calls_.size()) >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&arrived), absl::Seconds(10));
  }

  absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRange(
      const v1::EvaluateRangeRequest& request, const CallOptions& call) {
    absl::MutexLock lock(&mu_);
    calls_.push_back({request.start_step(), request.count(),
                      request.inspect_only(), call.wait_for_ready, call.timeout,
                      absl::Now()});
    mu_.Await(absl::Condition(
        +[](bool* held) { return !*held; }, &held_));
    if (absl::Status s = Failure(); !s.ok()) return s;
    v1::EvaluateRangeResponse response;
    StepQuery options;
    if (request.has_batch_size()) options.batch_size = request.batch_size();
    StepRangeBuilder builder(request.start_step(), request.count(),
                             response.mutable_range());
    absl::Status s =
        timeline_->EvaluateRange(request.start_step(), request.count(), options,
                                 [&](const StepResult& r) { builder.Add(r); });
    if (!s.ok()) return s;
    if (!request.inspect_only() && request.count() > 0) {
      schedule_.set_max_step_served(
          std::max(schedule_.max_step_served(),
                   request.start_step() + request.count() - 1));
    }
    response.set_revision(schedule_.revision());
    return response;
  }

  absl::StatusOr<v1::Schedule> GetSchedule(const v1::GetScheduleRequest&) {
    absl::MutexLock lock(&mu_);
    ++schedule_calls_;
    if (absl::Status s = Failure(); !s.ok()) return s;
    return schedule_;
  }

 private:
  absl::Status Failure() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (fail_next_ > 0) {
      --fail_next_;
      return fail_status_;
    }
    if (down_)
      return absl::UnavailableError("failed to connect to all addresses");
    return error_;
  }
  void Rebuild() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto built = Timeline::Build(schedule_.timeline());
    ASSERT_TRUE(built.ok()) << built.status();
    timeline_ = *built;
  }

  mutable absl::Mutex mu_;
  v1::Schedule schedule_ ABSL_GUARDED_BY(mu_);
  std::shared_ptr<const Timeline> timeline_ ABSL_GUARDED_BY(mu_);
  std::vector<Call> calls_ ABSL_GUARDED_BY(mu_);
  int64_t schedule_calls_ ABSL_GUARDED_BY(mu_) = 0;
  bool down_ ABSL_GUARDED_BY(mu_) = false;
  bool held_ ABSL_GUARDED_BY(mu_) = false;
  int fail_next_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Status fail_status_ ABSL_GUARDED_BY(mu_);
  absl::Status error_ ABSL_GUARDED_BY(mu_);
};

class FakeTransport : public ScheduleTransport {
 public:
  explicit FakeTransport(std::shared_ptr<FakeScheduleServer> server)
      : server_(std::move(server)) {}
  absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRange(
      const v1::EvaluateRangeRequest& request,
      const CallOptions& call) override {
    if (request.name() != "schedules/job") return absl::NotFoundError("no");
    return server_->EvaluateRange(request, call);
  }
  absl::StatusOr<v1::Schedule> GetSchedule(
      const v1::GetScheduleRequest& request, const CallOptions&) override {
    if (request.name() != "schedules/job") return absl::NotFoundError("no");
    return server_->GetSchedule(request);
  }

 private:
  std::shared_ptr<FakeScheduleServer> server_;
};

// Collects what the client logs.
struct LogSink {
  absl::Mutex mu;
  std::vector<std::pair<LogLevel, std::string>> lines;

  std::function<void(LogLevel, absl::string_view)> Fn() {
    return [this](LogLevel level, absl::string_view message) {
      absl::MutexLock lock(&mu);
      lines.emplace_back(level, std::string(message));
    };
  }
  int Count(LogLevel level) {
    absl::MutexLock lock(&mu);
    int n = 0;
    for (auto& [l, m] : lines) n += l == level;
    return n;
  }
  std::string All() {
    absl::MutexLock lock(&mu);
    std::string out;
    for (auto& [l, m] : lines) out += m + "\n";
    return out;
  }
};

}  // namespace anneal

#endif  // ANNEAL_CLIENT_TESTING_FAKE_SCHEDULE_SERVER_H_
