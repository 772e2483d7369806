// The seam between StepClient and the network: the RPCs the client makes,
// each unary one with a deadline, and the WatchSchedules stream.
// NewGrpcTransport talks to a real server; tests plug in a fake to script
// outages deterministically (like leveldb's Env or ninja's DiskInterface).
#ifndef ANNEAL_CLIENT_SCHEDULE_TRANSPORT_H_
#define ANNEAL_CLIENT_SCHEDULE_TRANSPORT_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "anneal/v1/service.pb.h"

namespace grpc {
class Channel;
}  // namespace grpc

namespace anneal {

// How to make one call.
struct CallOptions {
  // The deadline: DEADLINE_EXCEEDED after it.
  absl::Duration timeout = absl::Seconds(5);
  // false: fail at once with UNAVAILABLE while the server is unreachable.
  // true: wait for a connection until the deadline. StepClient retries this
  // way during an outage, because a gRPC client only watches a reconnecting
  // socket while a call waits on it; failing fast, it would notice a
  // restarted server only at gRPC's 5-second backup poll.
  bool wait_for_ready = false;
};

// The payload an error carries when the server asked to be retried after a
// while (a google.rpc.RetryInfo, serialized): an overloaded server's
// RESOURCE_EXHAUSTED, which is worth retrying.
inline constexpr char kRetryInfoTypeUrl[] =
    "type.googleapis.com/google.rpc.RetryInfo";

// Whether a call's error means "the server cannot be reached right now":
// UNAVAILABLE, DEADLINE_EXCEEDED, CANCELLED (what a server shutting down
// answers the calls in flight; a client cancels its own only when closing,
// and then retries nothing), or RESOURCE_EXHAUSTED with a retry delay (an
// overloaded server). Every other code is the server's answer, and retrying
// would not change it. The clients retry only idempotent calls: reads
// (raising max_step_served twice is raising it once) and reports (the same
// values merged again).
inline bool IsTransientError(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s) ||
         absl::IsCancelled(s) ||
         (absl::IsResourceExhausted(s) &&
          s.GetPayload(kRetryInfoTypeUrl).has_value());
}

class ScheduleTransport {
 public:
  virtual ~ScheduleTransport() = default;

  // ScheduleService.EvaluateRange. Status codes are the server's
  // (UNAVAILABLE when unreachable), with a kRetryInfoTypeUrl payload when
  // the server sent one.
  virtual absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRange(
      const v1::EvaluateRangeRequest& request, const CallOptions& options) = 0;

  // ScheduleService.GetSchedule, likewise.
  virtual absl::StatusOr<v1::Schedule> GetSchedule(
      const v1::GetScheduleRequest& request, const CallOptions& options) = 0;

  // ScheduleService.ReportMetrics, likewise. The default is UNIMPLEMENTED,
  // so a transport that only reads schedules need not have it.
  virtual absl::StatusOr<v1::MetricReport> ReportMetrics(
      const v1::ReportMetricsRequest& request, const CallOptions& options) {
    (void)request;
    (void)options;
    return absl::UnimplementedError(
        "ReportMetrics: this transport does not send reports");
  }

  // ScheduleService.WatchSchedules: calls `on_event` with each event, in
  // order, on the calling thread, until the stream ends. Returns the status
  // the server ended it with, OK once `on_event` returns false, CANCELLED
  // after CancelAll. A watch has no deadline and waits for a connection
  // (wait_for_ready). The default is UNIMPLEMENTED, as from a server without
  // the method, so a transport without streams still works (StepClient then
  // only refreshes as the window runs down).
  virtual absl::Status WatchSchedules(
      const v1::WatchSchedulesRequest& request,
      const std::function<bool(const v1::WatchEvent&)>& on_event) {
    (void)request;
    (void)on_event;
    return absl::UnimplementedError(
        "WatchSchedules: this transport has no streams");
  }

  // Cancels the calls in flight so that a closing client need not wait for
  // their deadlines. Calls made afterwards may fail with CANCELLED.
  virtual void CancelAll() {}
};

// How a channel authenticates (docs/security.md). All optional.
struct TransportSecurity {
  // Sent with every call as `authorization: Bearer TOKEN`.
  std::string token;
  // PEM file of the CA that signed the server's certificate: the channel
  // then uses TLS (else plaintext).
  std::string tls_ca;
  // PEM files of a client certificate and its key (mutual TLS); both or
  // neither, and only with tls_ca.
  std::string tls_cert;
  std::string tls_key;
};

// $ANNEAL_TOKEN (else the first line of $ANNEAL_TOKEN_FILE),
// $ANNEAL_TLS_CA, $ANNEAL_TLS_CERT and $ANNEAL_TLS_KEY, as annealctl and
// the Python client read them. The library reads none of them by itself.
TransportSecurity TransportSecurityFromEnvironment();

// A channel as NewAnnealChannel makes it, with `security`'s TLS files (the
// token goes to NewGrpcTransport). FAILED_PRECONDITION for a file that
// cannot be read, INVALID_ARGUMENT for an incomplete combination.
absl::StatusOr<std::shared_ptr<grpc::Channel>> NewAnnealChannel(
    const std::string& target, const TransportSecurity& security,
    absl::Duration max_reconnect_backoff = absl::Seconds(1));

// Creates an insecure channel to `target` (host:port) with a receive limit
// large enough for any StepRange the server sends, a reconnect backoff from
// 100 ms up to `max_reconnect_backoff` and re-resolution of the target at
// most every 200 ms, so that a restarted server (even on a new address) is
// noticed within about a second. gRPC's defaults, up to 120 s between
// reconnects and 30 s between resolutions, would keep a job offline for
// that long.
std::shared_ptr<grpc::Channel> NewAnnealChannel(
    const std::string& target,
    absl::Duration max_reconnect_backoff = absl::Seconds(1));

// A transport over `channel`.
std::unique_ptr<ScheduleTransport> NewGrpcTransport(
    std::shared_ptr<grpc::Channel> channel);
// The same, sending `token` (if not empty) as a bearer token with every call.
std::unique_ptr<ScheduleTransport> NewGrpcTransport(
    std::shared_ptr<grpc::Channel> channel, std::string token);

}  // namespace anneal

#endif  // ANNEAL_CLIENT_SCHEDULE_TRANSPORT_H_
