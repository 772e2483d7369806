// The seam's fake, for tests of anything that reads a schedule through
// ScheduleTransport: FakeScheduleServer scripts one schedule ("schedules/job")
// with its timeline, max_step_served, revisions, outages and failures, the
// WatchSchedules streams that see its changes, and records every call;
// FakeTransport hands it to a StepClient. Also a log sink, a bit-for-bit
// comparison of served steps and a wait for a background thread's state.
// Header-only, test code only.
#ifndef ANNEAL_CLIENT_TESTING_FAKE_SCHEDULE_SERVER_H_
#define ANNEAL_CLIENT_TESTING_FAKE_SCHEDULE_SERVER_H_

#include <algorithm>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/client/schedule_transport.h"
#include "anneal/client/step_client.h"
#include "anneal/engine/schedule.h"
#include "anneal/model/schedule_resource.h"
#include "anneal/model/step_range.h"
#include "anneal/model/timeline.h"
#include "anneal/model/timeline_edit.h"
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
    Publish(v1::WatchEvent::UPDATED);
  }

  // As UpdateSchedule with the default effective step: a new spec from
  // max_step_served + 1 on the same clock, replacing unserved segments
  // from there (the registry's own edit). Returns that step.
  int64_t Update(const v1::ScheduleSpec& spec) {
    absl::MutexLock lock(&mu_);
    const int64_t from = schedule_.max_step_served() + 1;
    auto compiled = Schedule::Compile(spec);
    EXPECT_TRUE(compiled.ok()) << compiled.status();
    if (!compiled.ok()) return -1;
    ChangeStamp stamp;
    stamp.revision = schedule_.revision() + 1;
    ApplySegment(
        UpdateSegment(schedule_, *timeline_, from, spec, **compiled, stamp),
        &schedule_);
    schedule_.set_revision(stamp.revision);
    Rebuild();
    Publish(v1::WatchEvent::UPDATED);
    return from;
  }

  // As RewindSchedule without a spec: the next lineage from `to_step`
  // (the registry's own record), the timeline kept. Requests presenting an
  // older lineage are refused from then on, as the server refuses them.
  void Rewind(int64_t to_step) {
    absl::MutexLock lock(&mu_);
    schedule_ = RewoundSchedule(schedule_, to_step, "test", "rewind",
                                google::protobuf::Timestamp());
  }

  // Watch streams. A stream sends CURRENT (unless the caller has the
  // revision), SYNCED, then an UPDATED for each change above. With
  // `unimplemented`, new streams fail as on a server without the method.
  void SetWatchUnimplemented(bool unimplemented) {
    absl::MutexLock lock(&mu_);
    watch_unimplemented_ = unimplemented;
  }
  // Ends every open stream with `status` (a server restart, an overflow).
  void EndWatches(const absl::Status& status) {
    absl::MutexLock lock(&mu_);
    for (WatchStream& w : streams_) w.end = status;
  }
  // Each WatchSchedules call's since_revisions for the schedule (-1: none).
  std::vector<int64_t> watch_calls() const {
    absl::MutexLock lock(&mu_);
    return watch_calls_;
  }
  // Waits (up to 10 s) until `n` streams are open and past their SYNCED.
  bool AwaitWatchers(int n) const {
    absl::MutexLock lock(&mu_);
    auto open = [&] {
      mu_.AssertHeld();
      int synced = 0;
      for (const WatchStream& w : streams_) synced += w.synced && !w.end;
      return synced >= n;
    };
    return mu_.AwaitWithTimeout(absl::Condition(&open), absl::Seconds(10));
  }

  absl::Status WatchSchedules(
      const v1::WatchSchedulesRequest& request,
      const std::function<bool(const v1::WatchEvent&)>& on_event,
      const void* owner) {
    std::list<WatchStream>::iterator w;
    {
      absl::MutexLock lock(&mu_);
      const auto since = request.since_revisions().find(schedule_.name());
      watch_calls_.push_back(
          since == request.since_revisions().end() ? -1 : since->second);
      if (watch_unimplemented_) {
        return absl::UnimplementedError("unknown method WatchSchedules");
      }
      if (cancelled_owners_.contains(owner)) {
        return absl::CancelledError("the client is closing");
      }
      // FailNext and SetError script the unary calls; only an outage
      // stops a stream.
      if (down_) return absl::UnavailableError("failed to connect");
      w = streams_.emplace(streams_.end());
      w->owner = owner;
      if (since == request.since_revisions().end() ||
          since->second != schedule_.revision()) {
        w->queue.push_back(Event(v1::WatchEvent::CURRENT));
      }
      v1::WatchEvent synced;
      synced.set_kind(v1::WatchEvent::SYNCED);
      w->queue.push_back(synced);
    }
    absl::Status end;
    while (true) {
      v1::WatchEvent event;
      {
        absl::MutexLock lock(&mu_);
        auto ready = [&] {
          mu_.AssertHeld();
          return !w->queue.empty() || w->end.has_value();
        };
        mu_.Await(absl::Condition(&ready));
        if (w->end.has_value()) {
          end = *w->end;
          streams_.erase(w);
          return end;
        }
        event = std::move(w->queue.front());
        w->queue.pop_front();
      }
      const bool more = on_event(event);
      absl::MutexLock lock(&mu_);
      // Synced once the client has handled its SYNCED (AwaitWatchers).
      if (event.kind() == v1::WatchEvent::SYNCED) w->synced = true;
      if (!more) {
        streams_.erase(w);
        return absl::OkStatus();
      }
    }
  }
  // Ends `owner`'s streams with CANCELLED, and refuses it new ones (its
  // transport's CancelAll).
  void CancelWatches(const void* owner) {
    absl::MutexLock lock(&mu_);
    cancelled_owners_.insert(owner);
    for (WatchStream& w : streams_) {
      if (w.owner == owner) w.end = absl::CancelledError("cancelled");
    }
  }

  // Down: every call fails with UNAVAILABLE and open streams end with it.
  void SetDown(bool down) {
    absl::MutexLock lock(&mu_);
    down_ = down;
    if (down) {
      for (WatchStream& w : streams_) {
        w.end = absl::UnavailableError("connection reset");
      }
    }
  }
  // As DeleteSchedule: NOT_FOUND from now on, and DELETED on the streams.
  void Delete() {
    absl::MutexLock lock(&mu_);
    error_ = absl::NotFoundError("schedules/job: no such schedule");
    Publish(v1::WatchEvent::DELETED);
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
    if (absl::Status s = CheckLineage(
            request.has_lineage() ? std::optional<int64_t>(request.lineage())
                                  : std::nullopt,
            schedule_);
        !s.ok()) {
      return s;
    }
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
    response.set_lineage(schedule_.lineage());
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
  struct WatchStream {
    const void* owner = nullptr;
    std::deque<v1::WatchEvent> queue;
    bool synced = false;
    std::optional<absl::Status> end;
  };
  v1::WatchEvent Event(v1::WatchEvent::Kind kind) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    v1::WatchEvent e;
    e.set_kind(kind);
    e.set_name(schedule_.name());
    e.set_revision(schedule_.revision());
    *e.mutable_schedule() = schedule_;
    return e;
  }
  void Publish(v1::WatchEvent::Kind kind) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (WatchStream& w : streams_) w.queue.push_back(Event(kind));
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
  bool watch_unimplemented_ ABSL_GUARDED_BY(mu_) = false;
  std::list<WatchStream> streams_ ABSL_GUARDED_BY(mu_);
  std::vector<int64_t> watch_calls_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_set<const void*> cancelled_owners_ ABSL_GUARDED_BY(mu_);
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
  absl::Status WatchSchedules(
      const v1::WatchSchedulesRequest& request,
      const std::function<bool(const v1::WatchEvent&)>& on_event) override {
    return server_->WatchSchedules(request, on_event, this);
  }
  void CancelAll() override { server_->CancelWatches(this); }

 private:
  std::shared_ptr<FakeScheduleServer> server_;
};

// Waits (up to 10 s) for `done`, polling: for state a background thread
// reaches, never to time anything.
template <typename Fn>
bool Eventually(Fn done) {
  for (int i = 0; i < 10000; ++i) {
    if (done()) return true;
    absl::SleepFor(absl::Milliseconds(1));
  }
  return done();
}

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
