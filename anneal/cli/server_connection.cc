// How annealctl reaches anneal-server (see server_connection.h).
#include "anneal/cli/server_connection.h"

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "anneal/cli/commands.h"

namespace anneal {

std::string ResolveServerAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv(kServerEnvVar);
  if (env != nullptr && env[0] != '\0') return env;
  return kDefaultServer;
}

ServerConnection::ServerConnection(std::string address)
    : address_(std::move(address)) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  channel_ = grpc::CreateCustomChannel(
      address_, grpc::InsecureChannelCredentials(), args);
  stub_ = v1::ScheduleService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> ServerConnection::Context(
    absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  return context;
}

absl::Status ServerConnection::Failure(const grpc::Status& status,
                                       absl::Duration timeout) const {
  if (status.ok()) return absl::OkStatus();
  // A server-sent error arrives on a READY channel; a transport failure
  // leaves the channel connecting or in TRANSIENT_FAILURE.
  const bool connected = channel_->GetState(false) == GRPC_CHANNEL_READY;
  const grpc::StatusCode code = status.error_code();
  if (!connected && (code == grpc::StatusCode::UNAVAILABLE ||
                     code == grpc::StatusCode::DEADLINE_EXCEEDED)) {
    return absl::UnavailableError(absl::StrCat(
        "cannot reach the anneal server at ", address_, " (",
        status.error_message(), "); is it running? Set --server or ",
        kServerEnvVar, " to its address"));
  }
  if (code == grpc::StatusCode::DEADLINE_EXCEEDED) {
    return absl::DeadlineExceededError(
        absl::StrCat("no answer from ", address_, " within ",
                     absl::FormatDuration(timeout), " (deadline exceeded)"));
  }
  return absl::Status(static_cast<absl::StatusCode>(code),
                      status.error_message());
}

int ExitCodeFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return kExitOk;
    case absl::StatusCode::kInvalidArgument:
      return kExitUsage;
    case absl::StatusCode::kNotFound:
      return kExitNotFound;
    case absl::StatusCode::kUnavailable:
      return kExitUnreachable;
    default:
      return kExitFailed;
  }
}

int Report(absl::string_view command, const absl::Status& status,
           std::ostream& err) {
  if (!status.ok()) {
    // One line, whatever the message holds.
    std::string message(status.message());
    for (char& c : message) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    err << "annealctl " << command << ": " << message << "\n";
  }
  return ExitCodeFor(status);
}

}  // namespace anneal
