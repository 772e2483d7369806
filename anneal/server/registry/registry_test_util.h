// In-process registry tests: a Registry over a Store with its own WorkPool,
// and synchronous forms of its asynchronous calls.
#ifndef ANNEAL_SERVER_REGISTRY_REGISTRY_TEST_UTIL_H_
#define ANNEAL_SERVER_REGISTRY_REGISTRY_TEST_UTIL_H_

#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "anneal/server/common/work_pool.h"
#include "anneal/server/registry/registry.h"

namespace anneal {

// Runs a registry call that answers through a Done and waits for it.
template <typename T, typename Request, typename Method>
absl::StatusOr<T> Wait(Registry& registry, Method method,
                       const Request& request) {
  absl::Notification done;
  absl::StatusOr<T> result;
  (registry.*method)(request, [&](absl::StatusOr<T> r) {
    result = std::move(r);
    done.Notify();
  });
  done.WaitForNotification();
  return result;
}

inline absl::StatusOr<v1::EvaluateResponse> EvaluateNow(
    Registry& registry, const v1::EvaluateRequest& request) {
  return Wait<v1::EvaluateResponse>(registry, &Registry::Evaluate, request);
}

inline absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRangeNow(
    Registry& registry, const v1::EvaluateRangeRequest& request) {
  v1::EvaluateRangeResponse response;
  absl::Notification done;
  absl::Status status;
  registry.EvaluateRange(request, &response, [&](absl::Status s) {
    status = std::move(s);
    done.Notify();
  });
  done.WaitForNotification();
  if (!status.ok()) return status;
  return response;
}

// A registry over `store` (which must outlive it), with a pool for its
// continuations; options.executor is set here.
class TestRegistry {
 public:
  explicit TestRegistry(Store* store, RegistryOptions options = {})
      : pool_(WorkPool::Options{2, 1 << 20}) {
    options.executor = &pool_;
    registry_ = std::make_unique<Registry>(store, std::move(options));
  }
  Registry& operator*() { return *registry_; }
  Registry* operator->() { return registry_.get(); }

 private:
  WorkPool pool_;  // outlives the registry, whose completions use it
  std::unique_ptr<Registry> registry_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_REGISTRY_TEST_UTIL_H_
