// The WatchSchedules stream (see watch_call.h).
#include "anneal/server/watch_call.h"

#include <utility>

#include "absl/time/clock.h"
#include "anneal/server/grpc_status.h"

namespace anneal {

WatchCall::WatchCall(Registry* registry, RpcTelemetry* telemetry)
    : registry_(registry), telemetry_(telemetry), start_(absl::Now()) {
  telemetry_->Started();
}

WatchCall* WatchCall::Start(Registry* registry,
                            const v1::WatchSchedulesRequest& request,
                            const absl::Status& checked,
                            RpcTelemetry* telemetry) {
  auto* call = new WatchCall(registry, telemetry);
  if (!checked.ok()) {
    absl::MutexLock lock(&call->mu_);
    call->End(ToGrpcStatus(checked));
    return call;
  }
  // The wake callback reaches the call only while it lives: OnDone clears
  // *self_ under alive_mu_.
  auto wake = [alive = call->alive_mu_, self = call->self_] {
    absl::MutexLock alive_lock(alive.get());
    if (*self == nullptr) return;
    absl::MutexLock lock(&(*self)->mu_);
    (*self)->Pump();
  };
  auto watcher = registry->Watch(request, wake);
  absl::MutexLock lock(&call->mu_);
  if (!watcher.ok()) {
    call->End(ToGrpcStatus(watcher.status()));
    return call;
  }
  call->watcher_ = *std::move(watcher);
  call->Pump();
  return call;
}

void WatchCall::Pump() {
  if (in_flight_ || finished_ || cancelled_ || !watcher_) return;
  if (std::optional<v1::WatchEvent> next = watcher_->Pop()) {
    writing_ = *std::move(next);
    in_flight_ = true;
    StartWrite(&writing_);
    return;
  }
  if (std::optional<absl::Status> ended = watcher_->ended()) {
    End(ToGrpcStatus(*ended));
  }
}

void WatchCall::End(const grpc::Status& status) {
  if (finished_) return;
  finished_ = true;
  telemetry_->Handled(status.error_code(), absl::Now() - start_);
  Finish(status);
}

void WatchCall::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  in_flight_ = false;
  if (!ok || cancelled_) {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "watch: the client left"));
    return;
  }
  Pump();
}

void WatchCall::OnCancel() {
  absl::MutexLock lock(&mu_);
  cancelled_ = true;
  // Finished once no write is in flight (OnWriteDone then).
  if (!in_flight_) {
    End(grpc::Status(grpc::StatusCode::CANCELLED, "watch: cancelled"));
  }
}

void WatchCall::OnDone() {
  std::shared_ptr<WatchHub::Watcher> watcher;
  {
    absl::MutexLock alive_lock(alive_mu_.get());
    *self_ = nullptr;
    absl::MutexLock lock(&mu_);
    watcher = std::move(watcher_);
  }
  if (watcher) registry_->StopWatching(watcher);
  delete this;
}

}  // namespace anneal
