// StepClient: a prefetched window of steps, a background refresher thread
// that owns every RPC, and offline evaluation of the timeline (see
// anneal/client/step_client.h for the contract, docs/cpp-client.md for the
// why).
//
// One mutex guards all state; one condition variable is signalled on every
// change. Step never makes an RPC itself: it serves from the window, or
// records the step it needs and waits for the refresher (or goes offline).
// Keeping all unary calls on one thread means there is never more than one
// in flight and windows never race each other. The watcher thread only
// reads its stream and asks the refresher for a window.
#include "anneal/client/step_client.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "anneal/model/resource_name.h"
#include "anneal/model/step_range.h"
#include "anneal/model/timeline.h"

namespace anneal {
namespace {

void LogToStderr(LogLevel level, absl::string_view message) {
  const char* tag = level == LogLevel::kInfo      ? "info"
                    : level == LogLevel::kWarning ? "warning"
                                                  : "error";
  std::fprintf(stderr, "anneal client %s: %.*s\n", tag,
               static_cast<int>(message.size()), message.data());
}

absl::Status CheckOptions(const StepClient::Options& o) {
  auto bad = [](absl::string_view field, absl::string_view rule) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", rule));
  };
  if (ScheduleIdOf(o.schedule).empty()) {
    return bad("schedule", "is required");
  }
  if (o.window < 1)
    return bad("window", absl::StrCat("must be >= 1, got ", o.window));
  if (o.refresh_when_left < 0 || o.refresh_when_left >= o.window) {
    return bad("refresh_when_left", absl::StrCat("must be in [0, window), got ",
                                                 o.refresh_when_left));
  }
  if (o.start_step < 0 || o.start_step > kMaxStep) {
    return bad("start_step",
               absl::StrCat("must be in [0, 2^62], got ", o.start_step));
  }
  if (o.batch_size.has_value() && *o.batch_size < 1) {
    return bad("batch_size", absl::StrCat("must be >= 1, got ", *o.batch_size));
  }
  if (o.lineage.has_value() && *o.lineage < 0) {
    return bad("lineage", absl::StrCat("must be >= 0, got ", *o.lineage));
  }
  for (auto [field, d] : {std::pair{"rpc_timeout", o.rpc_timeout},
                          std::pair{"connect_timeout", o.connect_timeout},
                          std::pair{"initial_backoff", o.initial_backoff},
                          std::pair{"max_backoff", o.max_backoff}}) {
    if (d <= absl::ZeroDuration()) return bad(field, "must be > 0");
  }
  if (o.block_timeout < absl::ZeroDuration()) {
    return bad("block_timeout", "must be >= 0");
  }
  if (!(o.backoff_multiplier >= 1))
    return bad("backoff_multiplier", "must be >= 1");
  if (!(o.jitter >= 0 && o.jitter < 1))
    return bad("jitter", "must be in [0, 1)");
  return absl::OkStatus();
}

// The timeline the options give for offline use before any fetch, or null.
absl::StatusOr<std::shared_ptr<const Timeline>> UserTimeline(
    const StepClient::Options& o) {
  v1::Schedule schedule;
  std::string field;
  if (o.offline_schedule.has_value() &&
      o.offline_schedule->timeline_size() > 0) {
    schedule = *o.offline_schedule;
    field = "offline_schedule.timeline";
  } else if (o.offline_schedule.has_value() && o.offline_schedule->has_spec()) {
    *schedule.add_timeline()->mutable_spec() = o.offline_schedule->spec();
    field = "offline_schedule.spec";
  } else if (o.offline_spec.has_value()) {
    *schedule.add_timeline()->mutable_spec() = *o.offline_spec;
    field = "offline_spec";
  } else {
    return std::shared_ptr<const Timeline>();
  }
  if (schedule.timeline_size() == 1) {
    schedule.mutable_timeline(0)->set_kind(v1::Segment::CREATE);
  }
  auto timeline = Timeline::Build(schedule.timeline());
  if (!timeline.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", timeline.status().message()));
  }
  return timeline;
}

}  // namespace

class StepClient::Impl {
 public:
  Impl(Options options, std::unique_ptr<ScheduleTransport> transport,
       std::shared_ptr<const Timeline> user_timeline)
      : options_(std::move(options)),
        refresh_when_left_(options_.refresh_when_left > 0
                               ? options_.refresh_when_left
                               : options_.window / 2),
        transport_(std::move(transport)),
        rng_(std::random_device{}()),
        timeline_(std::move(user_timeline)) {
    name_ = ScheduleNameOf(options_.schedule);
    if (!options_.log) options_.log = LogToStderr;
    absl::MutexLock lock(&mu_);
    lineage_ = options_.lineage.value_or(-1);
  }

  ~Impl() {
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      cv_.SignalAll();
    }
    transport_->CancelAll();
    if (refresher_.joinable()) refresher_.join();
    if (watcher_.joinable()) watcher_.join();
  }

  // Fetches the first window, retrying transient failures until
  // connect_timeout, then starts the refresher.
  absl::Status Start() {
    const absl::Time deadline = absl::Now() + options_.connect_timeout;
    absl::Status s;
    while (true) {
      s = FetchOnce(options_.start_step, deadline);
      if (s.ok() || !IsTransientError(s)) break;
      absl::MutexLock lock(&mu_);
      if (absl::Now() >= deadline) break;
      const absl::Time wake = std::min(next_attempt_, deadline);
      while (absl::Now() < wake) cv_.WaitWithDeadline(&mu_, wake);
    }
    if (!s.ok()) {
      absl::MutexLock lock(&mu_);
      if (!IsTransientError(s) || !options_.offline_fallback || !timeline_) {
        return absl::Status(
            s.code(), absl::StrCat(name_, ": cannot fetch steps from ",
                                   options_.start_step, ": ", s.message()));
      }
      Log(LogLevel::kWarning,
          absl::StrCat("starting offline: the server could not be reached "
                       "within connect_timeout (",
                       absl::FormatDuration(options_.connect_timeout), ")"));
    }
    refresher_ = std::thread([this] { Run(); });
    if (options_.watch) watcher_ = std::thread([this] { Watch(); });
    return absl::OkStatus();
  }

  absl::StatusOr<StepResult> Step(int64_t step) {
    if (step < 0 || step > kMaxStep) {
      return absl::InvalidArgumentError(
          absl::StrCat("step: must be in [0, 2^62], got ", step));
    }
    absl::MutexLock lock(&mu_);
    last_step_ = step;
    if (const StepResult* r = Cached(step)) return Serve(*r);

    // The window does not hold the step: exhausted, or the job jumped.
    needed_step_ = step;
    fatal_error_ = absl::OkStatus();
    cv_.SignalAll();
    const absl::Time deadline = absl::Now() + options_.block_timeout;
    bool waited = false;
    while (true) {
      if (const StepResult* r = Cached(step)) {
        if (waited) ++stats_.blocked_steps;
        return Serve(*r);
      }
      if (!fatal_error_.ok()) {
        if (needed_step_ == step) needed_step_ = -1;
        return fatal_error_;
      }
      // Only an outage sends a step offline, never a slow first fetch: the
      // server's answer is the truth whenever it can give one.
      if (failures_ > 0 && options_.offline_fallback && timeline_) {
        if (waited) ++stats_.blocked_steps;
        return ServeOffline(step);
      }
      if (stopping_) return absl::CancelledError("the client is closing");
      if (absl::Now() >= deadline) {
        if (needed_step_ == step) needed_step_ = -1;
        return absl::UnavailableError(absl::StrCat(
            name_, ": no learning rate for step ", step,
            ": the prefetched window ", WindowText(), " does not hold it and ",
            last_error_.ok()
                ? absl::StrCat("the server did not answer within ",
                               absl::FormatDuration(options_.block_timeout))
                : absl::StrCat("the server could not be reached for ",
                               absl::FormatDuration(options_.block_timeout),
                               " (last error: ", last_error_.ToString(), ")"),
            "; raise Options::block_timeout or set offline_fallback"));
      }
      // Another thread's window may have replaced ours: ask again.
      if (needed_step_ < 0) {
        needed_step_ = step;
        cv_.SignalAll();
      }
      waited = true;
      cv_.WaitWithDeadline(&mu_, deadline);
    }
  }

  int64_t revision() const {
    absl::MutexLock lock(&mu_);
    return revision_;
  }
  int64_t lineage() const {
    absl::MutexLock lock(&mu_);
    return lineage_;
  }
  bool offline() const {
    absl::MutexLock lock(&mu_);
    return last_offline_;
  }
  Stats stats() const {
    absl::MutexLock lock(&mu_);
    Stats out = stats_;
    out.offline_revision =
        !timeline_ ? -1 : std::max<int64_t>(timeline_revision_, 0);
    out.watching = watching_;
    return out;
  }

 private:
  // The refresher: waits for demand (a background refresh or a step a Step
  // is waiting for), honours the backoff after a failure, and fetches.
  void Run() {
    mu_.Lock();
    while (true) {
      while (!stopping_ && !refresh_wanted_ && needed_step_ < 0) cv_.Wait(&mu_);
      if (stopping_) break;
      if (absl::Now() < next_attempt_) {
        cv_.WaitWithDeadline(&mu_, next_attempt_);
        continue;  // re-check: we may be stopping, or the demand gone
      }
      // Fetch from the step the job is at, so that the window is all ahead
      // of it and max_step_served ends at most `window` steps ahead. Before
      // the first Step (a watch event), that is the step it will ask first.
      const int64_t start = needed_step_ >= 0 ? needed_step_
                            : last_step_ >= 0 ? last_step_
                                              : options_.start_step;
      mu_.Unlock();
      // Success and failure are both recorded in the state for Step.
      FetchOnce(start).IgnoreError();
      mu_.Lock();
    }
    mu_.Unlock();
  }

  // The watcher: one WatchSchedules stream on the schedule at a time. It
  // starts from the window's revision, so the catch-up sends the schedule
  // only if it changed since; a broken stream is resumed after a backoff
  // from the revision last seen, so nothing is missed. UNIMPLEMENTED (an
  // older server, a transport without streams) ends it for good.
  void Watch() {
    int64_t seen;
    int failures = 0;
    bool told = false;  // about the refusal or end of the current stream
    {
      absl::MutexLock lock(&mu_);
      seen = revision_;
    }
    while (true) {
      v1::WatchSchedulesRequest request;
      request.add_names(name_);
      if (seen >= 0) (*request.mutable_since_revisions())[name_] = seen;
      {
        absl::MutexLock lock(&mu_);
        if (stopping_) return;
        ++stats_.watch_calls;
      }
      const absl::Status s =
          transport_->WatchSchedules(request, [&](const v1::WatchEvent& event) {
            absl::MutexLock lock(&mu_);
            if (event.kind() == v1::WatchEvent::SYNCED) {
              watching_ = true;
              failures = 0;
              told = false;
            } else if (event.name() == name_) {
              // Resume from here; after a delete, from nothing, so that a
              // schedule made again under the name arrives as CURRENT.
              seen = event.kind() == v1::WatchEvent::DELETED ? -1
                                                             : event.revision();
              OnWatchEvent(event);
            }
            return !stopping_;
          });
      absl::MutexLock lock(&mu_);
      watching_ = false;
      if (stopping_) return;
      if (absl::IsUnimplemented(s)) {
        Log(LogLevel::kInfo,
            absl::StrCat("no watch (", s.message(),
                         "); changes arrive with the next refresh"));
        return;
      }
      // An outage is the refresher's to report. Anything else (the
      // server's --max_watchers reached, a stream that fell behind) once.
      if (!IsTransientError(s) && !told) {
        told = true;
        Log(LogLevel::kInfo,
            absl::StrCat("watch ended (", s.ToString(),
                         "); retrying with backoff, and changes arrive with "
                         "the next refresh meanwhile"));
      }
      const absl::Time wake = absl::Now() + Backoff(++failures);
      while (!stopping_ && absl::Now() < wake) cv_.WaitWithDeadline(&mu_, wake);
    }
  }

  // An event about this schedule: a revision the window does not have, or a
  // delete, is worth a window now (after a delete, the server's NOT_FOUND
  // is logged at once; Step still serves the window it holds).
  void OnWatchEvent(const v1::WatchEvent& event)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    switch (event.kind()) {
      case v1::WatchEvent::CURRENT:
      case v1::WatchEvent::CREATED:
      case v1::WatchEvent::UPDATED:
      case v1::WatchEvent::RESTARTED:
        if (event.revision() == revision_) return;
        break;
      case v1::WatchEvent::DELETED:
        break;
      default:
        return;  // CYCLE, REPORTED: nothing the window lacks
    }
    ++stats_.watch_refreshes;
    refresh_wanted_ = true;
    cv_.SignalAll();
  }

  // One EvaluateRange from `start`, installed on success; then, for offline
  // use, the timeline with GetSchedule if the revision moved.
  absl::Status FetchOnce(int64_t start,
                         absl::Time deadline = absl::InfiniteFuture()) {
    v1::EvaluateRangeRequest request;
    request.set_name(name_);
    request.set_start_step(start);
    request.set_count(std::min(options_.window, kMaxStep - start + 1));
    if (options_.batch_size.has_value()) {
      request.set_batch_size(*options_.batch_size);
    }
    request.set_inspect_only(false);  // prefetching is serving
    CallOptions call;
    {
      absl::MutexLock lock(&mu_);
      ++stats_.range_calls;
      call = CallFor(deadline);
      if (lineage_ >= 0) request.set_lineage(lineage_);
    }
    absl::StatusOr<v1::EvaluateRangeResponse> response =
        transport_->EvaluateRange(request, call);
    absl::StatusOr<std::vector<StepResult>> steps =
        response.ok() ? UnpackStepRange(response->range()) : response.status();
    if (steps.ok() &&
        (response->range().start_step() != start ||
         static_cast<int64_t>(steps->size()) != request.count())) {
      steps = absl::InternalError(
          absl::StrCat("the server sent ", steps->size(), " steps from ",
                       response->range().start_step(), " for ", request.count(),
                       " from ", start));
    }
    bool want_timeline = false;
    {
      absl::MutexLock lock(&mu_);
      if (!steps.ok()) {
        // Closing cancels the call in flight: not a failure worth a word.
        if (stopping_) return steps.status();
        RecordFailure("EvaluateRange", steps.status());
        return steps.status();
      }
      if (lineage_ < 0) lineage_ = response->lineage();
      InstallWindow(start, *std::move(steps), response->revision());
      want_timeline =
          options_.offline_fallback && timeline_revision_ != revision_;
    }
    if (want_timeline) FetchTimeline(deadline);
    return absl::OkStatus();
  }

  // Fail fast while all is well, so that an outage shows at once; wait for
  // a connection during one, so that its end shows at once too.
  CallOptions CallFor(absl::Time deadline) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    CallOptions call;
    call.timeout =
        std::min(options_.rpc_timeout,
                 std::max(deadline - absl::Now(), absl::Milliseconds(1)));
    call.wait_for_ready = failures_ > 0;
    return call;
  }

  // GetSchedule, and the compiled timeline for offline mode. A failure here
  // is not an outage of the step path: the next window tries again.
  void FetchTimeline(absl::Time deadline) {
    v1::GetScheduleRequest request;
    request.set_name(name_);
    CallOptions call;
    {
      absl::MutexLock lock(&mu_);
      ++stats_.schedule_calls;
      call = CallFor(deadline);
    }
    absl::StatusOr<v1::Schedule> schedule =
        transport_->GetSchedule(request, call);
    absl::StatusOr<std::shared_ptr<const Timeline>> timeline =
        schedule.ok() ? Timeline::Build(schedule->timeline())
                      : schedule.status();
    absl::MutexLock lock(&mu_);
    if (!schedule.ok()) {
      ++stats_.failed_calls;
      return;
    }
    timeline_revision_ = schedule->revision();
    if (!timeline.ok()) {
      // e.g. a newer server with a family this engine does not know.
      Log(LogLevel::kWarning,
          absl::StrCat("cannot evaluate timeline revision ",
                       schedule->revision(), " offline (",
                       timeline.status().message(),
                       "); offline mode keeps the previous one"));
      return;
    }
    timeline_ = *std::move(timeline);
  }

  void InstallWindow(int64_t start, std::vector<StepResult> steps,
                     int64_t revision) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (failures_ > 0 || !fatal_error_.ok()) {
      std::string offline;
      if (offline_first_ >= 0) {
        offline = absl::StrCat("; steps ", offline_first_, "..", offline_last_,
                               " were evaluated offline");
        // Changes made during the outage may cover steps served offline
        // (the server did not know they were served); say so.
        const bool diverged =
            (timeline_revision_ >= 0 && timeline_revision_ != revision) ||
            Differs(start, steps);
        if (diverged) {
          Log(LogLevel::kWarning,
              absl::StrCat("the schedule changed while the server was "
                           "unreachable (now revision ",
                           revision, "): steps ", offline_first_, "..",
                           offline_last_,
                           " were evaluated offline from an older timeline "
                           "and may differ from what the server would have "
                           "served"));
        }
      }
      if (failures_ > 0) {
        Log(LogLevel::kInfo,
            absl::StrCat("the server is reachable again after ", failures_,
                         " failed attempts (",
                         absl::FormatDuration(absl::Now() - outage_start_), ")",
                         offline));
      }
    }
    if (const int64_t bad = FirstRewritten(start, steps); bad >= 0) {
      // The API promises this cannot happen; if it does, say so loudly, as
      // the job has trained on LRs the server no longer stands by.
      Log(LogLevel::kError,
          absl::StrCat("the server's window from step ", start, " (revision ",
                       revision, ") differs at step ", bad,
                       " from what was already served (revision ", revision_,
                       "): a change rewrote served steps"));
    }
    if (revision_ >= 0 && revision != revision_) {
      ++stats_.revision_changes;
      Log(LogLevel::kInfo,
          absl::StrCat("schedule revision ", revision_, " -> ", revision,
                       " (window from step ", start, ")"));
    }
    failures_ = 0;
    fatal_error_ = absl::OkStatus();
    last_error_ = absl::OkStatus();
    next_attempt_ = absl::InfinitePast();
    offline_first_ = offline_last_ = -1;
    ++stats_.windows;
    window_ = std::move(steps);
    window_start_ = start;
    revision_ = revision;
    refresh_wanted_ = false;
    if (Cached(needed_step_) != nullptr) needed_step_ = -1;
    cv_.SignalAll();
  }

  // The first step at or before the last one asked that the old window
  // served and the new one contradicts, or -1.
  int64_t FirstRewritten(int64_t start,
                         const std::vector<StepResult>& steps) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t end = std::min(
        {last_step_ + 1, window_start_ + static_cast<int64_t>(window_.size()),
         start + static_cast<int64_t>(steps.size())});
    for (int64_t t = std::max(start, window_start_); t < end; ++t) {
      if (!Same(window_[static_cast<size_t>(t - window_start_)],
                steps[static_cast<size_t>(t - start)])) {
        return t;
      }
    }
    return -1;
  }

  static bool Same(const StepResult& a, const StepResult& b) {
    return a.lr == b.lr && a.restart == b.restart && a.snapshot == b.snapshot &&
           a.cycle == b.cycle && a.momentum == b.momentum;
  }

  // Whether the fresh window disagrees with the step last served offline.
  bool Differs(int64_t start, const std::vector<StepResult>& steps) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t i = last_offline_result_.step - start;
    if (i < 0 || i >= static_cast<int64_t>(steps.size())) return false;
    return !Same(steps[static_cast<size_t>(i)], last_offline_result_);
  }

  void RecordFailure(absl::string_view rpc, const absl::Status& s)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    ++stats_.failed_calls;
    last_error_ = s;
    if (IsTransientError(s)) {
      if (failures_++ == 0) {
        outage_start_ = absl::Now();
        // The one warning of this outage.
        Log(LogLevel::kWarning,
            absl::StrCat("cannot reach the server (", s.ToString(),
                         "); retrying with backoff",
                         window_.empty()
                             ? std::string()
                             : absl::StrCat("; steps come from the prefetched "
                                            "window ",
                                            WindowText(), " meanwhile")));
      }
      next_attempt_ = absl::Now() + Backoff(failures_);
    } else {
      // The server's answer (NOT_FOUND after a delete, RESOURCE_EXHAUSTED
      // for a window above --max_range_count, ...): not retried until a
      // Step needs a step the window does not hold.
      Log(LogLevel::kError, absl::StrCat(rpc, " failed: ", s.ToString()));
      fatal_error_ =
          absl::Status(s.code(), absl::StrCat(name_, ": ", s.message()));
      refresh_wanted_ = false;
      needed_step_ = -1;
    }
    cv_.SignalAll();
  }

  absl::Duration Backoff(int failures) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const double growth =
        std::pow(options_.backoff_multiplier, std::min(failures - 1, 64));
    absl::Duration d =
        std::min(options_.max_backoff, options_.initial_backoff * growth);
    if (options_.jitter > 0) {
      std::uniform_real_distribution<double> u(-options_.jitter,
                                               options_.jitter);
      d *= 1 + u(rng_);
    }
    return d;
  }

  const StepResult* Cached(int64_t step) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t i = step - window_start_;
    if (step < 0 || i < 0 || i >= static_cast<int64_t>(window_.size())) {
      return nullptr;
    }
    return &window_[static_cast<size_t>(i)];
  }

  StepResult Serve(const StepResult& r) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    const int64_t end = window_start_ + static_cast<int64_t>(window_.size());
    // At kMaxStep there is no further window to fetch.
    if (end - r.step - 1 < refresh_when_left_ && end <= kMaxStep &&
        !refresh_wanted_) {
      refresh_wanted_ = true;
      cv_.SignalAll();
    }
    ++stats_.steps;
    last_offline_ = false;
    return r;
  }

  absl::StatusOr<StepResult> ServeOffline(int64_t step)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    StepQuery query;
    query.step = step;
    query.batch_size = options_.batch_size;
    absl::StatusOr<StepResult> r = timeline_->Evaluate(query);
    if (!r.ok()) return r.status();
    if (offline_first_ < 0) {
      offline_first_ = step;
      Log(LogLevel::kWarning,
          absl::StrCat(
              window_.empty()
                  ? std::string("no window was ever fetched")
                  : absl::StrCat("the prefetched window ", WindowText(),
                                 " does not hold step ", step),
              " and the server is unreachable: evaluating ",
              timeline_revision_ >= 0
                  ? absl::StrCat("timeline revision ", timeline_revision_)
                  : std::string("the spec given in the options"),
              " offline (changes made meanwhile are not seen)"));
    }
    offline_last_ = std::max(offline_last_, step);
    last_offline_result_ = *r;
    ++stats_.steps;
    ++stats_.offline_steps;
    last_offline_ = true;
    return r;
  }

  std::string WindowText() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (window_.empty()) return "(none yet)";
    return absl::StrCat("[", window_start_, ", ",
                        window_start_ + static_cast<int64_t>(window_.size()),
                        ")");
  }

  void Log(LogLevel level, absl::string_view message) const {
    options_.log(level, absl::StrCat(name_, ": ", message));
  }

  Options options_;
  std::string name_;  // schedules/ID
  const int64_t refresh_when_left_;
  const std::unique_ptr<ScheduleTransport> transport_;
  std::thread refresher_;
  std::thread watcher_;

  mutable absl::Mutex mu_;
  absl::CondVar cv_;  // signalled on every change of the state below
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // The window: steps [window_start_, window_start_ + size) of revision_.
  std::vector<StepResult> window_ ABSL_GUARDED_BY(mu_);
  int64_t window_start_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t revision_ ABSL_GUARDED_BY(mu_) = -1;  // -1: nothing fetched yet
  // Presented with every fetch once known (Options::lineage, or the first
  // window's); -1 before.
  int64_t lineage_ ABSL_GUARDED_BY(mu_) = -1;
  // Demand.
  int64_t last_step_ ABSL_GUARDED_BY(mu_) = -1;  // the step last asked
  bool refresh_wanted_ ABSL_GUARDED_BY(mu_) = false;
  int64_t needed_step_ ABSL_GUARDED_BY(mu_) = -1;  // a Step waits for it
  // Failures.
  int failures_ ABSL_GUARDED_BY(mu_) = 0;  // consecutive transient ones
  absl::Time outage_start_ ABSL_GUARDED_BY(mu_);
  absl::Time next_attempt_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  absl::Status last_error_ ABSL_GUARDED_BY(mu_);
  absl::Status fatal_error_ ABSL_GUARDED_BY(mu_);  // the server's answer
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  // Offline mode.
  std::shared_ptr<const Timeline> timeline_ ABSL_GUARDED_BY(mu_);
  int64_t timeline_revision_ ABSL_GUARDED_BY(mu_) = -1;  // -1: the options'
  int64_t offline_first_ ABSL_GUARDED_BY(mu_) = -1;      // served offline in
  int64_t offline_last_ ABSL_GUARDED_BY(mu_) = -1;       // this outage
  StepResult last_offline_result_ ABSL_GUARDED_BY(mu_);
  bool last_offline_ ABSL_GUARDED_BY(mu_) = false;
  bool watching_ ABSL_GUARDED_BY(mu_) = false;  // a stream past its SYNCED
  Stats stats_ ABSL_GUARDED_BY(mu_);
};

absl::StatusOr<std::unique_ptr<StepClient>> StepClient::Connect(
    Options options) {
  if (options.server.empty()) {
    return absl::InvalidArgumentError("server: is required");
  }
  auto channel =
      NewAnnealChannel(options.server, options.security,
                       std::min(options.max_backoff, absl::Seconds(1)));
  if (!channel.ok()) return channel.status();
  std::string token = options.security.token;
  return Create(std::move(options),
                NewGrpcTransport(*std::move(channel), std::move(token)));
}

absl::StatusOr<std::unique_ptr<StepClient>> StepClient::Create(
    Options options, std::unique_ptr<ScheduleTransport> transport) {
  if (auto s = CheckOptions(options); !s.ok()) return s;
  if (transport == nullptr) {
    return absl::InvalidArgumentError("transport: is required");
  }
  absl::StatusOr<std::shared_ptr<const Timeline>> user = UserTimeline(options);
  if (!user.ok()) return user.status();
  auto impl = std::make_unique<Impl>(std::move(options), std::move(transport),
                                     *std::move(user));
  if (auto s = impl->Start(); !s.ok()) return s;
  return std::unique_ptr<StepClient>(new StepClient(std::move(impl)));
}

StepClient::StepClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StepClient::~StepClient() = default;

absl::StatusOr<StepResult> StepClient::Step(int64_t step) {
  return impl_->Step(step);
}
int64_t StepClient::revision() const { return impl_->revision(); }
int64_t StepClient::lineage() const { return impl_->lineage(); }
bool StepClient::offline() const { return impl_->offline(); }
StepClient::Stats StepClient::stats() const { return impl_->stats(); }

}  // namespace anneal
