// grpc.health.v1.Health on the callback API (see health_service.h).
//
// gRPC may run a reaction inline inside StartWrite/Finish, so no lock is
// held across those calls: each decision is taken under the watcher's mutex
// and acted on after releasing it.
#include "anneal/server/health_service.h"

#include <atomic>
#include <memory>

namespace anneal {

using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;

class HealthService::Watcher final
    : public grpc::ServerWriteReactor<HealthCheckResponse> {
 public:
  Watcher(HealthService* owner, std::string service)
      : owner_(owner), service_(std::move(service)) {}

  // Sends `status` if it differs from the last one sent; finishes the stream
  // after it when `finish`.
  void Update(Status status, bool finish) {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      wanted_ = status;
      finish_ = finish_ || finish;
      action = NextLocked();
    }
    Act(action);
  }

  void OnWriteDone(bool ok) override {
    Action action;
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) finish_ = true;
      action = NextLocked();
    }
    Act(action);
  }

  void OnCancel() override { Update(wanted(), true); }

  void OnDone() override {
    owner_->Forget(this);
    Unref();
  }

  // Watchers are shared by gRPC (until OnDone) and by notifiers that took a
  // reference under the owner's mutex, so none calls into a freed reactor.
  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }

 private:
  enum class Action { kNone, kWrite, kFinish };

  Status wanted() {
    absl::MutexLock lock(&mu_);
    return wanted_;
  }

  Action NextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (writing_ || finished_) return Action::kNone;
    if (!sent_any_ || wanted_ != sent_) {
      if (!finish_ || !sent_any_) {
        writing_ = true;
        sent_any_ = true;
        sent_ = wanted_;
        response_.set_status(wanted_);
        return Action::kWrite;
      }
    }
    if (finish_) {
      finished_ = true;
      return Action::kFinish;
    }
    return Action::kNone;
  }

  void Act(Action action) {
    if (action == Action::kWrite) StartWrite(&response_);
    if (action == Action::kFinish) Finish(grpc::Status::OK);
  }

  HealthService* const owner_;
  const std::string service_;
  std::atomic<int> refs_{1};
  absl::Mutex mu_;
  HealthCheckResponse response_ ABSL_GUARDED_BY(mu_);
  Status wanted_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  Status sent_ ABSL_GUARDED_BY(mu_) = HealthCheckResponse::UNKNOWN;
  bool sent_any_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finish_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;

  friend class HealthService;
};

HealthService::HealthService(std::vector<std::string> services)
    : services_(services.begin(), services.end()) {}

HealthService::~HealthService() = default;  // gRPC ends every Watch first

HealthService::Status HealthService::StatusOf(
    const std::string& service) const {
  if (!service.empty() && services_.count(service) == 0) {
    return HealthCheckResponse::SERVICE_UNKNOWN;
  }
  return serving_ && !shut_down_ ? HealthCheckResponse::SERVING
                                 : HealthCheckResponse::NOT_SERVING;
}

void HealthService::Notify(bool finish) {
  std::vector<std::pair<Watcher*, Status>> updates;
  {
    absl::MutexLock lock(&mu_);
    for (Watcher* w : watchers_) {
      w->Ref();
      updates.emplace_back(w, StatusOf(w->service_));
    }
  }
  for (auto& [w, status] : updates) {
    w->Update(status, finish);
    w->Unref();
  }
}

void HealthService::SetServing(bool serving) {
  {
    absl::MutexLock lock(&mu_);
    if (shut_down_) return;
    serving_ = serving;
  }
  Notify(false);
}

void HealthService::Shutdown() {
  {
    absl::MutexLock lock(&mu_);
    shut_down_ = true;
  }
  Notify(true);
}

void HealthService::Forget(Watcher* watcher) {
  absl::MutexLock lock(&mu_);
  watchers_.erase(watcher);
}

grpc::ServerUnaryReactor* HealthService::Check(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request,
    HealthCheckResponse* response) {
  auto* reactor = context->DefaultReactor();
  Status status;
  {
    absl::MutexLock lock(&mu_);
    status = StatusOf(request->service());
  }
  if (status == HealthCheckResponse::SERVICE_UNKNOWN) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 "unknown service " + request->service()));
  } else {
    response->set_status(status);
    reactor->Finish(grpc::Status::OK);
  }
  return reactor;
}

grpc::ServerWriteReactor<HealthCheckResponse>* HealthService::Watch(
    grpc::CallbackServerContext* context, const HealthCheckRequest* request) {
  auto* watcher = new Watcher(this, request->service());
  Status status;
  bool finish;
  {
    absl::MutexLock lock(&mu_);
    watchers_.insert(watcher);
    status = StatusOf(request->service());
    finish = shut_down_;
  }
  watcher->Update(status, finish);
  return watcher;
}

}  // namespace anneal
