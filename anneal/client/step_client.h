// StepClient: the learning rate for every optimizer step of a training job,
// from an anneal server, without an RPC on the step path.
//
//   anneal::StepClient::Options options;
//   options.server = "127.0.0.1:50051";
//   options.schedule = "resnet-1";
//   auto client = anneal::StepClient::Connect(options);
//   if (!client.ok()) ...;
//   for (int64_t t = 0; t < steps; ++t) {
//     absl::StatusOr<anneal::StepResult> r = (*client)->Step(t);
//     if (!r.ok()) ...;               // only after block_timeout of outage
//     if (r->restart) ResetMomentum();
//     Train(r->lr);
//     if (r->snapshot) SaveCheckpoint();
//   }
//
// How it works (docs/cpp-client.md has the details):
//  * Prefetch. The client holds a window of `window` steps, fetched with
//    EvaluateRange (inspect_only = false: prefetching is serving, so the
//    server raises max_step_served to the window's end, later updates take
//    effect after it, and the cached window stays valid). A background thread
//    refetches [t, t + window) once fewer than `refresh_when_left` steps of
//    the window are left, so a normal Step makes no RPC.
//  * Revisions. A change made while the job is at step t (the step it last
//    asked for) takes effect at step t + window at the latest: the server
//    puts it after everything served, and the window starts at t.
//  * Watch. A second thread holds a WatchSchedules stream on the schedule;
//    a change (update, restart, delete) makes the refresher fetch at once,
//    so revision() and the window follow it one fetch after it is durable
//    instead of at the next refresh. Without the stream (a server without
//    the method, an outage) refreshes happen as the window runs down.
//  * Outages. Steps keep coming from the window while a background thread
//    retries with exponential backoff; one warning per outage is logged. When
//    the window runs out, Step blocks for up to `block_timeout` and then
//    fails with UNAVAILABLE, or, with `offline_fallback`, evaluates the
//    schedule's timeline locally with the engine: bit-identical to the
//    server for the same timeline.
//  * Every RPC has a deadline (`rpc_timeout`).
//
// Thread-safe; one client per (job process, schedule) is enough.
#ifndef ANNEAL_CLIENT_STEP_CLIENT_H_
#define ANNEAL_CLIENT_STEP_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "anneal/client/schedule_transport.h"
#include "anneal/engine/step.h"
#include "anneal/v1/service.pb.h"

namespace anneal {

enum class LogLevel { kInfo, kWarning, kError };

class StepClient {
 public:
  struct Options {
    // host:port of the server (Connect only; Create takes a transport).
    std::string server = "127.0.0.1:50051";
    // A bearer token and TLS files (Connect only; schedule_transport.h,
    // docs/security.md). TransportSecurityFromEnvironment() reads them from
    // ANNEAL_TOKEN and ANNEAL_TLS_* as the other clients do.
    TransportSecurity security;
    // "ID" or "schedules/ID".
    std::string schedule;
    // The first step the job will ask for (fetched by Connect).
    int64_t start_step = 0;
    // Steps per prefetch, in [1, the server's --max_range_count]. Also the
    // bound, in steps, on how late a schedule change reaches the job, and how
    // many steps the job survives an outage without blocking.
    int64_t window = 256;
    // Refetch in the background once fewer than this many steps of the window
    // are left after the current one. 0 means window / 2.
    int64_t refresh_when_left = 0;
    // Sent with every range, for batch_scaling schedules.
    std::optional<int64_t> batch_size;
    // The lineage the job runs on (Schedule.lineage). Unset: the lineage of
    // the first window. Every fetch presents it, so once a RewindSchedule
    // ends it the job is not served the new lineage's LRs: Step fails with
    // FAILED_PRECONDITION naming the rewind when it needs a step the window
    // does not hold. Save lineage() with a checkpoint; a job resuming from
    // one below the rewind's step (Schedule.rewinds) runs on the current
    // lineage, so leave it unset then.
    std::optional<int64_t> lineage;
    // Watch the schedule (WatchSchedules) and refetch as soon as it changes.
    // Off, or on a server without the method, a change is picked up at the
    // next refresh. The LRs served are the same either way.
    bool watch = true;

    // The deadline of every RPC.
    absl::Duration rpc_timeout = absl::Seconds(5);
    // How long Connect keeps retrying before it gives up (or goes offline).
    absl::Duration connect_timeout = absl::Seconds(10);
    // How long Step waits for the server once the window is exhausted
    // (without offline_fallback) before failing with UNAVAILABLE.
    absl::Duration block_timeout = absl::Seconds(60);
    // Retry backoff: initial, multiplied by backoff_multiplier after each
    // failure up to max_backoff, each delay randomized by +-jitter (a
    // fraction) so that many jobs do not retry in lockstep.
    absl::Duration initial_backoff = absl::Milliseconds(100);
    absl::Duration max_backoff = absl::Seconds(5);
    double backoff_multiplier = 2;
    double jitter = 0.2;

    // When the window is exhausted and the server is unreachable, evaluate
    // the timeline locally instead of blocking. The timeline is the one last
    // fetched with GetSchedule (refetched whenever the revision moves); before
    // any fetch, offline_schedule's timeline (or its spec from step 0), then
    // offline_spec (from step 0).
    bool offline_fallback = false;
    std::optional<v1::Schedule> offline_schedule;
    std::optional<v1::ScheduleSpec> offline_spec;

    // Where warnings and notices go; default: one line each on stderr. It is
    // called with the client's lock held, so it must not call the client.
    std::function<void(LogLevel, absl::string_view)> log;
  };

  // Counters, for tests and dashboards.
  struct Stats {
    int64_t steps = 0;             // Step calls answered
    int64_t offline_steps = 0;     // of which evaluated locally
    int64_t blocked_steps = 0;     // of which waited for a fetch
    int64_t range_calls = 0;       // EvaluateRange attempts
    int64_t windows = 0;           // of which succeeded (windows installed)
    int64_t schedule_calls = 0;    // GetSchedule attempts
    int64_t failed_calls = 0;      // attempts that failed
    int64_t revision_changes = 0;  // times a fetched window had a new revision
    int64_t watch_calls = 0;       // WatchSchedules streams opened
    int64_t watch_refreshes = 0;   // watch events that asked for a window
    // Whether a watch stream is open and past its catch-up now.
    bool watching = false;
    // The timeline offline mode would evaluate: the server revision fetched
    // with GetSchedule, 0 for the one given in the options, -1 for none.
    int64_t offline_revision = -1;
  };

  // Connects to options.server and fetches the first window (and, with
  // offline_fallback, the timeline), retrying for up to connect_timeout.
  // Errors: INVALID_ARGUMENT (options), NOT_FOUND (no such schedule),
  // UNAVAILABLE (unreachable, and nothing to evaluate offline).
  static absl::StatusOr<std::unique_ptr<StepClient>> Connect(Options options);

  // As Connect, over `transport` (tests, custom channels or credentials).
  static absl::StatusOr<std::unique_ptr<StepClient>> Create(
      Options options, std::unique_ptr<ScheduleTransport> transport);

  StepClient(const StepClient&) = delete;
  StepClient& operator=(const StepClient&) = delete;
  // Stops the background thread, cancelling a call in flight.
  ~StepClient();

  // The step result for `step` (optimizer steps already taken, in
  // [0, kMaxStep]), with no thermostat noise. From the window when it holds
  // the step; otherwise it waits for a fetch (see the header comment).
  // Errors: INVALID_ARGUMENT (step), UNAVAILABLE (the server stayed
  // unreachable for block_timeout with the window exhausted), or the
  // server's error (e.g. NOT_FOUND once the schedule is deleted).
  absl::StatusOr<StepResult> Step(int64_t step);

  // The schedule revision of the latest window fetched.
  int64_t revision() const;
  // The lineage the job runs on: Options::lineage, else that of the first
  // window; -1 before it.
  int64_t lineage() const;
  // Whether the last Step was evaluated locally (offline mode).
  bool offline() const;
  Stats stats() const;

 private:
  class Impl;
  explicit StepClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace anneal

#endif  // ANNEAL_CLIENT_STEP_CLIENT_H_
