// MetricReporter: a training job's metrics sent to its schedule in the
// background, so that a step never waits for the server.
//
//   anneal::MetricReporter::Options options;
//   options.schedule = "resnet-1";
//   auto reporter = anneal::MetricReporter::Connect("127.0.0.1:50051",
//                                                   options);
//   if (!reporter.ok()) ...;
//   (*reporter)->Report(t, {{"loss", loss}});  // checks, queues, returns
//
// How it works (docs/cpp-client.md, Reporting metrics):
//  * Report checks the names and the count as the server does
//    (INVALID_ARGUMENT at the call that made the mistake) and queues. A
//    step still queued merges with a new report of it (a metric reported
//    again takes the new value, as on the server).
//  * One thread sends the queue, oldest step first, one ReportMetrics at a
//    time, so the server sees a step's reports in the order they were made.
//  * While the server is unreachable (UNAVAILABLE, DEADLINE_EXCEEDED, or
//    RESOURCE_EXHAUSTED with a retry delay) a report is retried with
//    backoff and one warning per outage is logged. The queue holds at most
//    max_pending steps; past that the oldest is dropped (counted, warned
//    once). A report the server refuses for good is dropped, counted in
//    `rejected` and logged once per distinct message.
//  * The destructor flushes for up to close_timeout, then stops; what is
//    still queued then is counted as dropped.
//
// Thread-safe: Report may be called from any thread.
#ifndef ANNEAL_CLIENT_METRIC_REPORTER_H_
#define ANNEAL_CLIENT_METRIC_REPORTER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "anneal/client/schedule_transport.h"
#include "anneal/client/step_client.h"

namespace anneal {

class MetricReporter {
 public:
  struct Options {
    // "ID" or "schedules/ID".
    std::string schedule;
    // A bearer token and TLS files (Connect only).
    TransportSecurity security;
    // The deadline of each ReportMetrics call.
    absl::Duration rpc_timeout = absl::Seconds(5);
    // Most steps queued; past it the oldest is dropped.
    int64_t max_pending = 10000;
    // Retry backoff while the server is unreachable.
    absl::Duration initial_backoff = absl::Milliseconds(50);
    absl::Duration max_backoff = absl::Seconds(2);
    // How long the destructor waits for the queue to be sent.
    absl::Duration close_timeout = absl::Seconds(5);
    // Where warnings go; default: one line each on stderr. Called without
    // the reporter's lock.
    std::function<void(LogLevel, absl::string_view)> log;
  };

  struct Stats {
    int64_t sent = 0;      // reports the server acknowledged
    int64_t dropped = 0;   // steps dropped for space or unsent at close
    int64_t rejected = 0;  // reports the server refused for good
    int64_t retries = 0;   // sends retried after an outage or overload
    int64_t pending = 0;   // steps queued or in flight now
  };

  // A reporter on a channel to `server` (host:port) made as StepClient's.
  // INVALID_ARGUMENT for bad options or TLS files.
  static absl::StatusOr<std::unique_ptr<MetricReporter>> Connect(
      const std::string& server, Options options);
  // A reporter over `transport` (tests use a fake).
  static absl::StatusOr<std::unique_ptr<MetricReporter>> Create(
      std::unique_ptr<ScheduleTransport> transport, Options options);

  MetricReporter(const MetricReporter&) = delete;
  MetricReporter& operator=(const MetricReporter&) = delete;
  // Flushes for up to close_timeout, then stops the thread.
  ~MetricReporter();

  // Queues `metrics` for `step` and returns. INVALID_ARGUMENT, naming the
  // field, the rule and the value, for a negative step, no metric, a name
  // not matching ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, or more than 64 metrics.
  absl::Status Report(int64_t step,
                      const std::map<std::string, double>& metrics);

  // Waits until everything queued before the call is sent, refused or
  // dropped; false if `timeout` passed first.
  bool Flush(absl::Duration timeout);

  Stats stats() const;

 private:
  class Impl;
  explicit MetricReporter(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace anneal

#endif  // ANNEAL_CLIENT_METRIC_REPORTER_H_
