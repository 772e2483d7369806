// One unary RPC and the tracker of those in flight (see unary_call.h).
#include "anneal/server/unary_call.h"

#include <vector>

#include "absl/time/clock.h"
#include "anneal/server/grpc_status.h"
#include "grpcpp/impl/codegen/proto_utils.h"

namespace anneal {

UnaryCall::UnaryCall(CallTracker* tracker, grpc::CallbackServerContext* context,
                     grpc::ByteBuffer* response, RpcTelemetry* telemetry)
    : tracker_(tracker),
      context_(context),
      response_(response),
      telemetry_(telemetry),
      start_(absl::Now()) {
  telemetry_->Started();
}

void UnaryCall::Answer(const grpc::Status& status) {
  telemetry_->Handled(status.error_code(), absl::Now() - start_);
  grpc::ServerUnaryReactor::Finish(status);
}

bool UnaryCall::Finish(const absl::Status& status) {
  if (!Claim()) return false;
  Answer(ToGrpcStatus(status));
  return true;
}

bool UnaryCall::Reply(const google::protobuf::MessageLite& reply) {
  if (!Claim()) return false;
  grpc::ByteBuffer bytes;
  bool own = false;
  grpc::Status s =
      grpc::SerializationTraits<google::protobuf::MessageLite>::Serialize(
          reply, &bytes, &own);
  if (s.ok()) response_->Swap(&bytes);
  Answer(s);
  return true;
}

void UnaryCall::OnDone() {
  lease_ = BudgetLease();  // the response is sent (or dropped): give it back
  tracker_->Release(this);
  Unref();
}

UnaryCall* CallTracker::Start(grpc::CallbackServerContext* context,
                              grpc::ByteBuffer* response,
                              RpcTelemetry* telemetry) {
  auto* call = new UnaryCall(this, context, response, telemetry);
  bool refuse;
  {
    absl::MutexLock lock(&mu_);
    ++in_flight_;
    call->next_ = head_;
    if (head_ != nullptr) head_->prev_ = call;
    head_ = call;
    refuse = draining_;
  }
  if (refuse) {
    call->Finish(absl::UnavailableError("server: shutting down; retry"));
  }
  return call;
}

void CallTracker::Release(UnaryCall* call) {
  absl::MutexLock lock(&mu_);
  --in_flight_;
  if (call->prev_ != nullptr) call->prev_->next_ = call->next_;
  if (call->next_ != nullptr) call->next_->prev_ = call->prev_;
  if (head_ == call) head_ = call->next_;
  call->prev_ = call->next_ = nullptr;
}

void CallTracker::StartDraining() {
  absl::MutexLock lock(&mu_);
  draining_ = true;
}

bool CallTracker::draining() const {
  absl::MutexLock lock(&mu_);
  return draining_;
}

int64_t CallTracker::in_flight() const {
  absl::MutexLock lock(&mu_);
  return in_flight_;
}

bool CallTracker::WaitIdle(absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  auto idle = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return in_flight_ == 0;
  };
  return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
}

int CallTracker::FinishAll(const absl::Status& status) {
  std::vector<CallRef> live;
  {
    absl::MutexLock lock(&mu_);
    for (UnaryCall* c = head_; c != nullptr; c = c->next_) {
      live.emplace_back(c);
    }
  }
  int finished = 0;
  for (CallRef& call : live) finished += call->Finish(status) ? 1 : 0;
  return finished;
}

}  // namespace anneal
