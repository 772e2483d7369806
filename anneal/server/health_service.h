// grpc.health.v1.Health on the callback API: Check, and Watch streams that
// end when the server shuts down. Replaces gRPC's default health service,
// which in 1.51 keeps Server::Shutdown waiting for its whole deadline while a
// client is connected. Services known: "" (the server) and the ones named at
// construction.
#ifndef ANNEAL_SERVER_HEALTH_SERVICE_H_
#define ANNEAL_SERVER_HEALTH_SERVICE_H_

#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace anneal {

class HealthService final : public grpc::health::v1::Health::CallbackService {
 public:
  explicit HealthService(std::vector<std::string> services);
  ~HealthService() override;

  // Every service SERVING (true) or NOT_SERVING (false); watchers are told.
  void SetServing(bool serving);
  // NOT_SERVING for good, and every Watch stream finishes. Call before
  // Server::Shutdown.
  void Shutdown();

  grpc::ServerUnaryReactor* Check(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request,
      grpc::health::v1::HealthCheckResponse* response) override;
  grpc::ServerWriteReactor<grpc::health::v1::HealthCheckResponse>* Watch(
      grpc::CallbackServerContext* context,
      const grpc::health::v1::HealthCheckRequest* request) override;

 private:
  class Watcher;
  using Status = grpc::health::v1::HealthCheckResponse::ServingStatus;
  Status StatusOf(const std::string& service) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Forget(Watcher* watcher);
  // Sends every watcher its current status (and ends the streams if finish).
  void Notify(bool finish);

  const std::set<std::string> services_;
  mutable absl::Mutex mu_;
  bool serving_ ABSL_GUARDED_BY(mu_) = false;
  bool shut_down_ ABSL_GUARDED_BY(mu_) = false;
  std::set<Watcher*> watchers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_HEALTH_SERVICE_H_
