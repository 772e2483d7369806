// absl::Status -> grpc::Status, at the RPC edge only.
//
// The code maps one to one (absl's codes are google.rpc.Code). The message
// stays "<field>: <rule>". Details travel as google.rpc.Status in the
// grpc-status-details-bin trailer: always an ErrorInfo (reason = the code's
// name, domain "anneal.dev"), plus a BadRequest field violation for
// INVALID_ARGUMENT and a PreconditionFailure for FAILED_PRECONDITION/ABORTED,
// and a RetryInfo when the status carries one (RetryAfter).
#ifndef ANNEAL_SERVER_GRPC_STATUS_H_
#define ANNEAL_SERVER_GRPC_STATUS_H_

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "grpcpp/support/status.h"

namespace anneal {

grpc::Status ToGrpcStatus(const absl::Status& status);

// `status` with a google.rpc.RetryInfo asking the client to retry after
// `delay` (an overloaded server's answer: clients retry it with backoff).
absl::Status RetryAfter(absl::Status status, absl::Duration delay);

}  // namespace anneal

#endif  // ANNEAL_SERVER_GRPC_STATUS_H_
