// How annealctl's server commands reach anneal-server: the address (--server,
// else $ANNEAL_SERVER, else 127.0.0.1:50051), one channel and stub, a
// deadline on every call, and what a failed call means for the user (a
// one-line message and an exit code).
#ifndef ANNEAL_CLI_SERVER_CONNECTION_H_
#define ANNEAL_CLI_SERVER_CONNECTION_H_

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "anneal/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

namespace anneal {

inline constexpr char kDefaultServer[] = "127.0.0.1:50051";
inline constexpr char kServerEnvVar[] = "ANNEAL_SERVER";

// Deadlines: every call has one.
inline constexpr absl::Duration kCallTimeout = absl::Seconds(10);
inline constexpr absl::Duration kRangeCallTimeout = absl::Seconds(60);

// Largest response accepted (EvaluateRange of a million steps is ~40 MB).
inline constexpr int kMaxReceiveBytes = 256 << 20;

// How annealctl authenticates and secures its channel: the global flags
// --token, --token_file, --tls_ca, --tls_cert, --tls_key (anywhere on the
// command line), else $ANNEAL_TOKEN, $ANNEAL_TOKEN_FILE, $ANNEAL_TLS_CA,
// $ANNEAL_TLS_CERT, $ANNEAL_TLS_KEY.
struct ConnectionSecurity {
  std::string token;
  std::string token_file;
  std::string tls_ca;
  std::string tls_cert;
  std::string tls_key;
};
// Removes the security flags from `args` into `*out` (flags win over the
// environment, applied later). INVALID_ARGUMENT for a flag with no value.
absl::Status TakeSecurityFlags(std::vector<std::string>& args,
                               ConnectionSecurity* out);
// The options every ServerConnection uses from now on.
void SetConnectionSecurity(ConnectionSecurity security);

// `flag` (the --server value) when not empty, else $ANNEAL_SERVER when set
// and not empty, else kDefaultServer.
std::string ResolveServerAddress(const std::string& flag);

class ServerConnection {
 public:
  // Creates the channel (TLS if a CA is set, see ConnectionSecurity);
  // nothing connects until the first call. A security option that cannot be
  // used (an unreadable file) fails every call with its reason.
  explicit ServerConnection(std::string address);

  const std::string& address() const { return address_; }
  v1::ScheduleService::Stub* stub() { return stub_.get(); }
  const std::shared_ptr<grpc::Channel>& channel() const { return channel_; }

  // A context for one call, its deadline `timeout` from now.
  std::unique_ptr<grpc::ClientContext> Context(absl::Duration timeout) const;

  // A failed call as an absl::Status with the same code and the server's
  // message (which names the field and the rule). A call that never reached
  // the server (connection refused, unresolvable name, deadline while still
  // connecting) becomes UNAVAILABLE naming the address and how to change it;
  // a deadline on a connected channel says how long it waited.
  absl::Status Failure(const grpc::Status& status,
                       absl::Duration timeout) const;

 private:
  std::string address_;
  std::string authorization_;  // "Bearer TOKEN", or empty
  absl::Status setup_;         // why the security options are unusable
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ScheduleService::Stub> stub_;
};

// Follows a List RPC page after page: `call(context, request, &page)` is a
// stub method such as ListSchedules, `take(page)` gets every page. A server
// that hands back the token it was given would loop for ever: INTERNAL.
template <typename Response, typename Request, typename Call, typename Take>
absl::Status ForEachPage(ServerConnection& server, Request request, Call call,
                         Take take) {
  do {
    Response page;
    grpc::Status status =
        call(server.Context(kCallTimeout).get(), request, &page);
    if (!status.ok()) return server.Failure(status, kCallTimeout);
    if (!page.next_page_token().empty() &&
        page.next_page_token() == request.page_token()) {
      return absl::InternalError(
          "the server returned the same page token twice");
    }
    request.set_page_token(page.next_page_token());
    take(page);
  } while (!request.page_token().empty());
  return absl::OkStatus();
}

// The exit code for a command's outcome: 0 ok, 2 INVALID_ARGUMENT (usage),
// 3 NOT_FOUND (only servers say it: local errors use other codes),
// 4 UNAVAILABLE (unreachable or unavailable server), 1 anything else.
int ExitCodeFor(const absl::Status& status);

// Writes "annealctl COMMAND: message" to `err` unless `status` is OK and
// returns ExitCodeFor(status).
int Report(absl::string_view command, const absl::Status& status,
           std::ostream& err);

}  // namespace anneal

#endif  // ANNEAL_CLI_SERVER_CONNECTION_H_
