// The WatchSchedules stream (see watch_call.h).
#include "anneal/server/watch_call.h"

#include <utility>

#include "absl/time/clock.h"
#include "anneal/server/grpc_status.h"

namespace anneal {

void WatchRoster::RecheckAll() {
  absl::MutexLock lock(&mu_);
  // A call leaves the roster (OnDone) before it is deleted, under mu_.
  for (WatchCall* call : calls_) call->Recheck();
}

void WatchRoster::Add(WatchCall* call) {
  absl::MutexLock lock(&mu_);
  calls_.insert(call);
}

void WatchRoster::Remove(WatchCall* call) {
  absl::MutexLock lock(&mu_);
  calls_.erase(call);
}

WatchCall::WatchCall(Registry* registry, RpcTelemetry* telemetry, Access access)
    : registry_(registry),
      telemetry_(telemetry),
      access_(std::move(access)),
      start_(absl::Now()) {
  telemetry_->Started();
}

WatchCall* WatchCall::Start(Registry* registry,
                            const v1::WatchSchedulesRequest& request,
                            const absl::Status& checked,
                            RpcTelemetry* telemetry, Access access) {
  const bool tracked = access.authorizer != nullptr && access.roster != nullptr;
  if (!tracked) access = {};
  auto* call = new WatchCall(registry, telemetry, std::move(access));
  if (tracked) {
    {
      absl::MutexLock lock(&call->mu_);
      call->generation_ = call->access_.authorizer->generation();
    }
    // Before anything can finish the call (OnDone removes it).
    call->access_.roster->Add(call);
  }
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

void WatchCall::Recheck() {
  absl::MutexLock lock(&mu_);
  Pump();
}

void WatchCall::Pump() {
  if (in_flight_ || finished_ || cancelled_ || !watcher_) return;
  if (access_.authorizer != nullptr) {
    // Checked before each event once the tokens have been reloaded, so a
    // removed token receives nothing more.
    const uint64_t generation = access_.authorizer->generation();
    if (generation != generation_) {
      generation_ = generation;
      if (absl::Status s = access_.authorizer->StillValid(access_.principal);
          !s.ok()) {
        End(ToGrpcStatus(s));
        return;
      }
    }
  }
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
  // First, holding no lock of the call's: the roster's lock comes first.
  if (access_.roster != nullptr) access_.roster->Remove(this);
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
