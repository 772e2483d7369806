// One unary RPC on gRPC's raw callback API, and the tracker of those in
// flight.
//
// A call is answered exactly once: the first of the handler's reply, an
// error, or the shutdown's UNAVAILABLE wins, and only the winner touches
// the response bytes (gRPC owns them until OnDone). The call object lives
// until gRPC is done with it and every completion holding a CallRef has let
// go, so a late completion never touches freed memory.
#ifndef ANNEAL_SERVER_UNARY_CALL_H_
#define ANNEAL_SERVER_UNARY_CALL_H_

#include <atomic>
#include <cstdint>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/server/telemetry/telemetry.h"
#include "google/protobuf/message_lite.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"

namespace anneal {

class CallTracker;

// A share of a server-wide budget, returned when the call is done.
class BudgetLease {
 public:
  BudgetLease() = default;
  BudgetLease(std::atomic<int64_t>* pool, int64_t amount)
      : pool_(pool), amount_(amount) {}
  BudgetLease(BudgetLease&& o) noexcept
      : pool_(std::exchange(o.pool_, nullptr)), amount_(o.amount_) {}
  BudgetLease& operator=(BudgetLease&& o) noexcept {
    Release();
    pool_ = std::exchange(o.pool_, nullptr);
    amount_ = o.amount_;
    return *this;
  }
  ~BudgetLease() { Release(); }

 private:
  void Release() {
    if (pool_ != nullptr) pool_->fetch_add(amount_);
    pool_ = nullptr;
  }
  std::atomic<int64_t>* pool_ = nullptr;
  int64_t amount_ = 0;
};

class UnaryCall final : public grpc::ServerUnaryReactor {
 public:
  // `telemetry` (never null) is told of the call's start now and of its
  // answer when it is finished.
  UnaryCall(CallTracker* tracker, grpc::CallbackServerContext* context,
            grpc::ByteBuffer* response, RpcTelemetry* telemetry);

  // Finishes the call with `status` (mapped by ToGrpcStatus) unless it is
  // finished already; false then.
  bool Finish(const absl::Status& status);
  // Serializes `reply` into the response and finishes OK, unless finished.
  bool Reply(const google::protobuf::MessageLite& reply);
  bool finished() const { return finished_.load(); }

  grpc::CallbackServerContext* context() const { return context_; }
  // The authenticated caller (a token's name), "" on an open server. Set
  // once, before the call's body runs.
  const std::string& identity() const { return identity_; }
  void set_identity(std::string identity) { identity_ = std::move(identity); }
  // Keeps `lease` until gRPC is done with the call (the response sent).
  void Hold(BudgetLease lease) { lease_ = std::move(lease); }

  void Ref() { refs_.fetch_add(1, std::memory_order_relaxed); }
  void Unref() {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void OnDone() override;
  // OnDone (a counter, a list unlink, an Unref) and the default OnCancel
  // never block, so gRPC may run them on the thread that finished the call
  // instead of handing them to its executor: a thread switch per call saved
  // (docs/performance.md). gRPC marks this hook internal; its own
  // DefaultReactor uses it the same way.
  bool InternalInlineable() override { return true; }

 private:
  friend class CallTracker;
  ~UnaryCall() override = default;
  // Claims the right to answer; true once.
  bool Claim() { return !finished_.exchange(true); }
  // Finishes with `status`, once claimed.
  void Answer(const grpc::Status& status);

  CallTracker* const tracker_;
  grpc::CallbackServerContext* const context_;
  grpc::ByteBuffer* const response_;
  RpcTelemetry* const telemetry_;
  const absl::Time start_;
  std::atomic<bool> finished_{false};
  std::atomic<int> refs_{1};  // gRPC's, until OnDone
  BudgetLease lease_;
  std::string identity_;
  // The tracker's list of live calls.
  UnaryCall* prev_ = nullptr;
  UnaryCall* next_ = nullptr;
};

// A counted reference to a call, for completions that may outlive gRPC's.
class CallRef {
 public:
  CallRef() = default;
  explicit CallRef(UnaryCall* call) : call_(call) {
    if (call_) call_->Ref();
  }
  CallRef(const CallRef& o) : CallRef(o.call_) {}
  CallRef(CallRef&& o) noexcept : call_(std::exchange(o.call_, nullptr)) {}
  CallRef& operator=(CallRef o) noexcept {
    std::swap(call_, o.call_);
    return *this;
  }
  ~CallRef() {
    if (call_) call_->Unref();
  }
  UnaryCall* operator->() const { return call_; }
  UnaryCall& operator*() const { return *call_; }
  UnaryCall* get() const { return call_; }

 private:
  UnaryCall* call_ = nullptr;
};

// Counts calls from their start until gRPC is done with them (OnDone), so a
// shutdown can wait for them itself and then answer the rest UNAVAILABLE.
// gRPC 1.51's Server::Shutdown(deadline) waits for the whole deadline
// whenever a client is still connected, and cancels what is left (the
// client sees CANCELLED, which it would not retry).
class CallTracker {
 public:
  // A call for a new request. While draining it is answered UNAVAILABLE at
  // once (check finished()).
  UnaryCall* Start(grpc::CallbackServerContext* context,
                   grpc::ByteBuffer* response, RpcTelemetry* telemetry);
  // From now on new calls are refused with UNAVAILABLE.
  void StartDraining();
  bool draining() const;
  // Waits until no call is in flight or `timeout` passes; true if idle.
  bool WaitIdle(absl::Duration timeout);
  // Answers every call still in flight with `status`; returns how many.
  int FinishAll(const absl::Status& status);
  int64_t in_flight() const;

 private:
  friend class UnaryCall;
  void Release(UnaryCall* call);

  mutable absl::Mutex mu_;
  UnaryCall* head_ ABSL_GUARDED_BY(mu_) = nullptr;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_UNARY_CALL_H_
