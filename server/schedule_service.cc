// anneal.v1.ScheduleService on gRPC's callback API (see schedule_service.h).
#include "server/schedule_service.h"

#include <string>

#include "server/grpc_status.h"
#include "server/log.h"

namespace anneal {

class TrackedReactor final : public grpc::ServerUnaryReactor {
 public:
  explicit TrackedReactor(CallTracker* tracker) : tracker_(tracker) {}
  void OnDone() override {
    tracker_->Release();
    delete this;
  }

 private:
  CallTracker* const tracker_;
};

grpc::ServerUnaryReactor* CallTracker::Start() {
  absl::MutexLock lock(&mu_);
  ++in_flight_;
  return new TrackedReactor(this);
}

void CallTracker::Release() {
  absl::MutexLock lock(&mu_);
  --in_flight_;
}

void CallTracker::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool CallTracker::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

bool CallTracker::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_ == 0;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

bool ScheduleServiceImpl::Refused(grpc::ServerUnaryReactor* reactor) {
  if (!calls_.draining()) return false;
  reactor->Finish(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                               "the server is shutting down"));
  return true;
}

namespace {

// Who made a change: the request's actor, else the peer address.
template <typename Request>
Request WithActor(grpc::CallbackServerContext* context, const Request& in) {
  Request out = in;
  if (out.actor().empty()) out.set_actor(context->peer());
  return out;
}

// Finishes a read with its result.
template <typename T>
void FinishRead(grpc::ServerUnaryReactor* reactor, absl::StatusOr<T> result,
                T* response) {
  if (result.ok()) *response = *std::move(result);
  reactor->Finish(ToGrpcStatus(result.status()));
}

// A completion for an asynchronous write: logs the mutation, fills the
// response and finishes the RPC.
template <typename T>
Registry::Done<T> FinishWrite(grpc::ServerUnaryReactor* reactor, T* response,
                              std::string what) {
  return [reactor, response,
          what = std::move(what)](absl::StatusOr<T> result) mutable {
    if (result.ok()) {
      *response = *std::move(result);
      Log(what);
    } else {
      Log(what, " rejected: ", result.status().ToString());
    }
    reactor->Finish(ToGrpcStatus(result.status()));
  };
}

}  // namespace

grpc::ServerUnaryReactor* ScheduleServiceImpl::CreateSchedule(
    grpc::CallbackServerContext* context,
    const v1::CreateScheduleRequest* request, v1::Schedule* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  v1::CreateScheduleRequest r = WithActor(context, *request);
  registry_->Create(
      r, FinishWrite(reactor, response,
                     absl::StrCat("create schedules/", r.schedule_id(), " by ",
                                  r.actor())));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::GetSchedule(
    grpc::CallbackServerContext* context, const v1::GetScheduleRequest* request,
    v1::Schedule* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  FinishRead(reactor, registry_->Get(*request), response);
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ListSchedules(
    grpc::CallbackServerContext* context,
    const v1::ListSchedulesRequest* request,
    v1::ListSchedulesResponse* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  FinishRead(reactor, registry_->List(*request), response);
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::UpdateSchedule(
    grpc::CallbackServerContext* context,
    const v1::UpdateScheduleRequest* request, v1::Schedule* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  v1::UpdateScheduleRequest r = WithActor(context, *request);
  registry_->Update(
      r, FinishWrite(reactor, response,
                     absl::StrCat("update ", r.schedule().name(), " by ",
                                  r.actor(), " reason \"", r.reason(), "\"")));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::DeleteSchedule(
    grpc::CallbackServerContext* context,
    const v1::DeleteScheduleRequest* request,
    google::protobuf::Empty* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  registry_->Delete(*request,
                    FinishWrite(reactor, response,
                                absl::StrCat("delete ", request->name(), " by ",
                                             context->peer())));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Evaluate(
    grpc::CallbackServerContext* context, const v1::EvaluateRequest* request,
    v1::EvaluateResponse* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  FinishRead(reactor, registry_->Evaluate(*request), response);
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::EvaluateRange(
    grpc::CallbackServerContext* context,
    const v1::EvaluateRangeRequest* request,
    v1::EvaluateRangeResponse* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  absl::Status s = registry_->EvaluateRange(*request, response);
  if (!s.ok()) response->Clear();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Simulate(
    grpc::CallbackServerContext* context, const v1::SimulateRequest* request,
    v1::EvaluateRangeResponse* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  absl::Status s = registry_->Simulate(*request, response);
  if (!s.ok()) response->Clear();
  reactor->Finish(ToGrpcStatus(s));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Advance(
    grpc::CallbackServerContext* context, const v1::AdvanceRequest* request,
    v1::AdvanceResponse* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  registry_->Advance(
      *request,
      FinishWrite(reactor, response,
                  absl::StrCat("advance ", request->name(), " request_id \"",
                               request->request_id(), "\"")));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::RestartSchedule(
    grpc::CallbackServerContext* context,
    const v1::RestartScheduleRequest* request, v1::Schedule* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  v1::RestartScheduleRequest r = WithActor(context, *request);
  registry_->Restart(
      r, FinishWrite(reactor, response,
                     absl::StrCat("restart ", r.name(), " by ", r.actor(),
                                  " reason \"", r.reason(), "\"")));
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ReportMetrics(
    grpc::CallbackServerContext* context,
    const v1::ReportMetricsRequest* request, v1::MetricReport* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  // Not logged: a job may report every step, and the report itself is the
  // record (ListMetricReports).
  registry_->ReportMetrics(
      *request, [reactor, response](absl::StatusOr<v1::MetricReport> result) {
        if (result.ok()) *response = *std::move(result);
        reactor->Finish(ToGrpcStatus(result.status()));
      });
  return reactor;
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ListMetricReports(
    grpc::CallbackServerContext* context,
    const v1::ListMetricReportsRequest* request,
    v1::ListMetricReportsResponse* response) {
  grpc::ServerUnaryReactor* reactor = calls_.Start();
  if (Refused(reactor)) return reactor;
  FinishRead(reactor, registry_->ListMetricReports(*request), response);
  return reactor;
}

}  // namespace anneal
