// What the server tells operators about itself: the seam between the code
// that does the work (the RPC edge, the registry, the store) and whatever
// exports it (telemetry/prometheus/).
//
// "Telemetry" is the server's own numbers. The numbers training jobs send
// with ReportMetrics are *training reports* (v1::MetricReport), and appear
// in telemetry only as their last values per schedule.
//
// Every method has a default that does nothing, so `Telemetry` itself is
// the no-op implementation (NoTelemetry()), and an exporter overrides what
// it exports. Methods are called on serving threads, some on every call:
// an implementation must not block, allocate per call or take a lock shared
// by all calls; anything keyed by a name is resolved once (Rpc) or kept off
// the Evaluate path (reports, changes).
#ifndef ANNEAL_SERVER_TELEMETRY_TELEMETRY_H_
#define ANNEAL_SERVER_TELEMETRY_TELEMETRY_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

// One RPC method's counters, resolved when the service starts.
class RpcTelemetry {
 public:
  virtual ~RpcTelemetry() = default;
  // A call arrived.
  virtual void Started() {}
  // A call was answered with `code` (a grpc::StatusCode value) after
  // `elapsed` since it arrived.
  virtual void Handled(int code, absl::Duration elapsed) {}
};

// What changed a schedule's timeline or existence.
// kPlateau: a plateau policy's cut (its RESTART action counts as kRestart).
enum class ScheduleChange {
  kCreate,
  kUpdate,
  kRestart,
  kDelete,
  kPlateau,
  kRewind
};

// Why a read waited before it was answered.
enum class ReadWait {
  kFence,       // a change from a step it reads was not durable yet
  kServedMark,  // the durable served mark had to be raised first
};

class Telemetry {
 public:
  virtual ~Telemetry() = default;

  // The edge. The counters of `method` ("Evaluate") of `service`
  // ("anneal.v1.ScheduleService"), of gRPC type `type` ("unary",
  // "server_stream"); never null, valid as long as this.
  virtual RpcTelemetry* Rpc(absl::string_view service, absl::string_view method,
                            absl::string_view type);

  // The registry.
  // Steps answered by Evaluate (1), EvaluateRange (`steps`), Advance (1).
  virtual void Evaluated() {}
  virtual void RangeServed(int64_t steps) {}
  virtual void Advanced(bool deduplicated) {}
  virtual void ReadWaited(ReadWait why) {}
  // A durable change of `schedule` (full name).
  virtual void Changed(absl::string_view schedule, ScheduleChange kind) {}
  // A training report made durable for `schedule` (full name), of which
  // `names_not_kept` metric names are past the schedule's cap of last
  // values; or one rejected with `code` (an absl::StatusCode value).
  virtual void Reported(absl::string_view schedule, int names_not_kept) {}
  virtual void ReportRejected(int code) {}

  // The store (TelemetryStore). A batch of `ops` ops was made durable, or
  // failed, `waited` after it was submitted (queueing and commit).
  virtual void StoreWritten(int64_t ops, absl::Duration waited, bool ok) {}
};

// The implementation that does nothing; a static object.
Telemetry* NoTelemetry();

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_TELEMETRY_H_
