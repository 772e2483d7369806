// One WatchSchedules stream on gRPC's callback API: it drains its
// registry watcher (watch_hub.h) one write at a time, and finishes with the
// watcher's status (a slow reader's RESOURCE_EXHAUSTED, shutdown's
// UNAVAILABLE) or CANCELLED when the client goes. A stream opened with a
// token ends (UNAUTHENTICATED) as soon as a reload of the tokens removes or
// changes that token: the roster lets the reload wake every such stream.
#ifndef ANNEAL_SERVER_WATCH_CALL_H_
#define ANNEAL_SERVER_WATCH_CALL_H_

#include <cstdint>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/authz.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/telemetry/telemetry.h"
#include "anneal/v1/service.pb.h"
#include "grpcpp/support/server_callback.h"

namespace anneal {

class WatchCall;

// The live streams opened with a token.
class WatchRoster {
 public:
  // Has every stream check its token now (after a reload).
  void RecheckAll();

 private:
  friend class WatchCall;
  void Add(WatchCall* call);
  void Remove(WatchCall* call);

  absl::Mutex mu_;
  absl::flat_hash_set<WatchCall*> calls_ ABSL_GUARDED_BY(mu_);
};

class WatchCall final : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  // Who watches, when the server has tokens (all three set), or nothing.
  struct Access {
    const Authorizer* authorizer = nullptr;
    Principal principal;
    WatchRoster* roster = nullptr;  // must outlive the call
  };

  // Starts streaming `request` from `registry`, which must outlive the
  // call, unless `checked` (the edge's limits) is an error; answers at once
  // with the error if the watch is refused.
  static WatchCall* Start(Registry* registry,
                          const v1::WatchSchedulesRequest& request,
                          const absl::Status& checked, RpcTelemetry* telemetry,
                          Access access);

  void OnWriteDone(bool ok) override;
  void OnCancel() override;
  void OnDone() override;

 private:
  friend class WatchRoster;
  WatchCall(Registry* registry, RpcTelemetry* telemetry, Access access);
  // Ends the stream if its token is no longer valid, else goes on.
  void Recheck();
  // Writes the next event, or finishes, unless a write is in flight.
  void Pump() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void End(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Registry* const registry_;
  RpcTelemetry* const telemetry_;
  const Access access_;
  const absl::Time start_;
  absl::Mutex mu_;
  std::shared_ptr<WatchHub::Watcher> watcher_ ABSL_GUARDED_BY(mu_);
  v1::WatchEvent writing_ ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  // The tokens' generation the caller was last checked against.
  uint64_t generation_ ABSL_GUARDED_BY(mu_) = 0;
  // Shared with the watcher's wake callback, which may outlive the call.
  std::shared_ptr<absl::Mutex> alive_mu_ = std::make_shared<absl::Mutex>();
  std::shared_ptr<WatchCall*> self_ = std::make_shared<WatchCall*>(this);
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_WATCH_CALL_H_
