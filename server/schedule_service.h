// anneal.v1.ScheduleService on gRPC's callback API.
//
// Each handler validates nothing itself: it hands the request to the Registry
// and maps the absl::Status to a grpc::Status (grpc_status.h). Reads finish
// inside the reaction; writes finish from the Store's completion, so no
// reaction ever blocks on the disk.
#ifndef ANNEAL_SERVER_SCHEDULE_SERVICE_H_
#define ANNEAL_SERVER_SCHEDULE_SERVICE_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/v1/service.grpc.pb.h"
#include "server/registry.h"

namespace anneal {

// Counts calls from their start until gRPC is done with them (OnDone), so a
// shutdown can wait for in-flight calls itself. gRPC 1.51's
// Server::Shutdown(deadline) waits for the whole deadline whenever a client
// is still connected, even with no call in flight.
class CallTracker {
 public:
  // A reactor for a new call; it releases the count when the call is done.
  grpc::ServerUnaryReactor* Start();
  // From now on new calls are refused with UNAVAILABLE.
  void StartDraining();
  bool draining() const;
  // Waits until no call is in flight or `timeout` passes; true if idle.
  bool WaitIdle(absl::Duration timeout);

 private:
  friend class TrackedReactor;
  void Release();

  mutable absl::Mutex mu_;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

class ScheduleServiceImpl final : public v1::ScheduleService::CallbackService {
 public:
  explicit ScheduleServiceImpl(Registry* registry) : registry_(registry) {}

  CallTracker& calls() { return calls_; }

  grpc::ServerUnaryReactor* CreateSchedule(
      grpc::CallbackServerContext* context,
      const v1::CreateScheduleRequest* request,
      v1::Schedule* response) override;
  grpc::ServerUnaryReactor* GetSchedule(grpc::CallbackServerContext* context,
                                        const v1::GetScheduleRequest* request,
                                        v1::Schedule* response) override;
  grpc::ServerUnaryReactor* ListSchedules(
      grpc::CallbackServerContext* context,
      const v1::ListSchedulesRequest* request,
      v1::ListSchedulesResponse* response) override;
  grpc::ServerUnaryReactor* UpdateSchedule(
      grpc::CallbackServerContext* context,
      const v1::UpdateScheduleRequest* request,
      v1::Schedule* response) override;
  grpc::ServerUnaryReactor* DeleteSchedule(
      grpc::CallbackServerContext* context,
      const v1::DeleteScheduleRequest* request,
      google::protobuf::Empty* response) override;
  grpc::ServerUnaryReactor* Evaluate(grpc::CallbackServerContext* context,
                                     const v1::EvaluateRequest* request,
                                     v1::EvaluateResponse* response) override;
  grpc::ServerUnaryReactor* EvaluateRange(
      grpc::CallbackServerContext* context,
      const v1::EvaluateRangeRequest* request,
      v1::EvaluateRangeResponse* response) override;
  grpc::ServerUnaryReactor* Simulate(
      grpc::CallbackServerContext* context, const v1::SimulateRequest* request,
      v1::EvaluateRangeResponse* response) override;
  grpc::ServerUnaryReactor* Advance(grpc::CallbackServerContext* context,
                                    const v1::AdvanceRequest* request,
                                    v1::AdvanceResponse* response) override;
  grpc::ServerUnaryReactor* RestartSchedule(
      grpc::CallbackServerContext* context,
      const v1::RestartScheduleRequest* request,
      v1::Schedule* response) override;
  grpc::ServerUnaryReactor* ReportMetrics(
      grpc::CallbackServerContext* context,
      const v1::ReportMetricsRequest* request,
      v1::MetricReport* response) override;
  grpc::ServerUnaryReactor* ListMetricReports(
      grpc::CallbackServerContext* context,
      const v1::ListMetricReportsRequest* request,
      v1::ListMetricReportsResponse* response) override;

 private:
  // Finishes `reactor` with UNAVAILABLE if the server is draining.
  bool Refused(grpc::ServerUnaryReactor* reactor);

  Registry* const registry_;
  CallTracker calls_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_SCHEDULE_SERVICE_H_
