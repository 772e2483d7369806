// anneal.v1.ScheduleService on gRPC's raw callback API: the RPC edge.
//
// Each handler decodes its request itself (decode.h: a request that does not
// decode is INVALID_ARGUMENT naming the field, where gRPC would answer an
// empty UNIMPLEMENTED), checks the edge limits (request_limits.h), hands it
// to the Registry and maps the absl::Status to a grpc::Status
// (grpc_status.h) when it answers. Cheap calls (Get, Evaluate, short
// ranges, Advance, Restart, Delete, reports) run on gRPC's thread; heavy
// ones (Create and Update compile a spec, List, Simulate, long ranges,
// ListMetricReports, Diagnose) on the WorkPool, so they never hold up the
// cheap ones.
// No handler blocks: writes finish from the Store's completion, and reads
// that must wait (a pending change, the served mark) finish from another
// thread.
#ifndef ANNEAL_SERVER_SCHEDULE_SERVICE_H_
#define ANNEAL_SERVER_SCHEDULE_SERVICE_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/server/authz.h"
#include "anneal/server/common/work_pool.h"
#include "anneal/server/rate_limiter.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/request_limits.h"
#include "anneal/server/telemetry/telemetry.h"
#include "anneal/server/unary_call.h"
#include "anneal/server/watch_call.h"
#include "anneal/v1/service.grpc.pb.h"

namespace anneal {

struct ServiceOptions {
  RequestLimits limits;
  // Range steps (EvaluateRange, Simulate) being computed or sent at once,
  // over all calls: each step holds ~100 bytes until the client has read
  // it, so this bounds what slow or stalled readers can pin. Ranges longer
  // than 65536 steps may use three quarters of it; the last quarter is kept
  // for the short ranges training jobs prefetch.
  int64_t max_inflight_range_steps = 4'000'000;
  // The most serialized bytes of one ListSchedules page.
  int64_t max_list_page_bytes = int64_t{16} << 20;
  // Whether each accepted Advance writes a log line. A job may advance at
  // every step, and the schedule's stored position is the record, so by
  // default only rejected advances are logged.
  bool log_advances = false;
  // Told of every call's start and answer; must outlive the service.
  Telemetry* telemetry = NoTelemetry();
  // Who may call what (authz.h); null or disabled: every caller may do
  // everything (the open server). Must outlive the service.
  const Authorizer* authorizer = nullptr;
  // Per-client limits on Create, Fork, Update, Restart, Rewind and Delete
  // (rate_limiter.h); null: none. Must outlive the service.
  RateLimiter* mutation_limiter = nullptr;
};

// Every method of the service, each taking and returning bytes.
using RawScheduleService = v1::ScheduleService::WithRawCallbackMethod_RewindSchedule<
    v1::ScheduleService::WithRawCallbackMethod_ForkSchedule<v1::ScheduleService::WithCallbackMethod_WatchSchedules<
        v1::ScheduleService::WithRawCallbackMethod_CreateSchedule<
            v1::ScheduleService::WithRawCallbackMethod_GetSchedule<
                v1::ScheduleService::WithRawCallbackMethod_ListSchedules<
                    v1::ScheduleService::WithRawCallbackMethod_UpdateSchedule<
                        v1::ScheduleService::WithRawCallbackMethod_DeleteSchedule<
                            v1::ScheduleService::WithRawCallbackMethod_Evaluate<
                                v1::ScheduleService::WithRawCallbackMethod_EvaluateRange<
                                    v1::ScheduleService::WithRawCallbackMethod_Simulate<
                                        v1::ScheduleService::WithRawCallbackMethod_Advance<
                                            v1::ScheduleService::WithRawCallbackMethod_RestartSchedule<
                                                v1::ScheduleService::WithRawCallbackMethod_ReportMetrics<
                                                    v1::ScheduleService::WithRawCallbackMethod_ListMetricReports<
                                                        v1::ScheduleService::WithRawCallbackMethod_Diagnose<
                                                            v1::ScheduleService::
                                                                Service>>>>>>>>>>>>>>>>;

class ScheduleServiceImpl final : public RawScheduleService {
 public:
  // `registry` and `pool` must outlive the service.
  ScheduleServiceImpl(Registry* registry, WorkPool* pool,
                      ServiceOptions options);

  CallTracker& calls() { return calls_; }
  // After the tokens are reloaded: ends the watch streams whose token was
  // removed or changed.
  void RecheckWatches() { watch_roster_.RecheckAll(); }

  using Bytes = grpc::ByteBuffer;
  using Context = grpc::CallbackServerContext;
  grpc::ServerUnaryReactor* CreateSchedule(Context* context,
                                           const Bytes* request,
                                           Bytes* response) override;
  grpc::ServerUnaryReactor* GetSchedule(Context* context, const Bytes* request,
                                        Bytes* response) override;
  grpc::ServerUnaryReactor* ListSchedules(Context* context,
                                          const Bytes* request,
                                          Bytes* response) override;
  grpc::ServerUnaryReactor* UpdateSchedule(Context* context,
                                           const Bytes* request,
                                           Bytes* response) override;
  grpc::ServerUnaryReactor* DeleteSchedule(Context* context,
                                           const Bytes* request,
                                           Bytes* response) override;
  grpc::ServerUnaryReactor* Evaluate(Context* context, const Bytes* request,
                                     Bytes* response) override;
  grpc::ServerUnaryReactor* EvaluateRange(Context* context,
                                          const Bytes* request,
                                          Bytes* response) override;
  grpc::ServerUnaryReactor* Simulate(Context* context, const Bytes* request,
                                     Bytes* response) override;
  grpc::ServerUnaryReactor* Advance(Context* context, const Bytes* request,
                                    Bytes* response) override;
  grpc::ServerUnaryReactor* RestartSchedule(Context* context,
                                            const Bytes* request,
                                            Bytes* response) override;
  grpc::ServerUnaryReactor* ReportMetrics(Context* context,
                                          const Bytes* request,
                                          Bytes* response) override;
  grpc::ServerUnaryReactor* ListMetricReports(Context* context,
                                              const Bytes* request,
                                              Bytes* response) override;
  grpc::ServerUnaryReactor* Diagnose(Context* context, const Bytes* request,
                                     Bytes* response) override;
  grpc::ServerUnaryReactor* ForkSchedule(Context* context, const Bytes* request,
                                         Bytes* response) override;
  grpc::ServerUnaryReactor* RewindSchedule(Context* context,
                                           const Bytes* request,
                                           Bytes* response) override;
  // A server stream (watch_call.h), so not through Handle.
  grpc::ServerWriteReactor<v1::WatchEvent>* WatchSchedules(
      Context* context, const v1::WatchSchedulesRequest* request) override;

 private:
  enum class Lane { kInline, kPool };
  // The service's methods, in the order of kNames in the constructor.
  enum class Method {
    kCreateSchedule,
    kGetSchedule,
    kListSchedules,
    kUpdateSchedule,
    kDeleteSchedule,
    kEvaluate,
    kEvaluateRange,
    kSimulate,
    kAdvance,
    kRestartSchedule,
    kReportMetrics,
    kListMetricReports,
    kWatchSchedules,
    kDiagnose,
    kForkSchedule,
    kRewindSchedule
  };
  static constexpr int kMethods = 16;
  template <Lane lane>
  struct Fixed {
    template <typename Request>
    Lane operator()(const Request&) const {
      return lane;
    }
  };

  // The common path of every handler: start the call as `method`'s (refused
  // while draining), decode and check the request, then run `body(call,
  // request)` in the lane `lane_of(request)` names. An exception
  // (std::bad_alloc) answers the call RESOURCE_EXHAUSTED instead of
  // reaching gRPC.
  template <typename Request, typename LaneOf, typename Body>
  grpc::ServerUnaryReactor* Handle(Method method, Context* context,
                                   const Bytes* bytes, Bytes* response,
                                   LaneOf lane_of, Body body);
  // Takes `count` steps of the range budget for the call; the error if the
  // budget is spent (RESOURCE_EXHAUSTED, retry later).
  absl::Status ReserveRange(UnaryCall* call, int64_t count);
  // The caller of `context` if it may call `method`: UNAUTHENTICATED or
  // PERMISSION_DENIED otherwise (authz.h).
  absl::StatusOr<Principal> Authorize(Method method, Context* context) const;
  // A label-scoped caller's view of `request`: NOT_FOUND for a schedule
  // outside its scope, PERMISSION_DENIED for labels leaving it; filters
  // narrowed to the scope.
  template <typename Request>
  absl::Status Scope(const Principal& principal, Request& request) const;
  absl::Status NamedInScope(const Principal& principal,
                            const std::string& name) const;
  // The edge limits of a WatchSchedules request.
  absl::Status CheckWatch(const v1::WatchSchedulesRequest& request) const;

  Registry* const registry_;
  WorkPool* const pool_;
  const ServiceOptions options_;
  std::atomic<int64_t> range_steps_left_;
  // Each method's telemetry, resolved once.
  std::array<RpcTelemetry*, kMethods> rpc_{};
  CallTracker calls_;
  WatchRoster watch_roster_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_SCHEDULE_SERVICE_H_
