// How annealctl reaches anneal-server (see server_connection.h).
#include "anneal/cli/server_connection.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anneal/cli/commands.h"

namespace anneal {

std::string ResolveServerAddress(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv(kServerEnvVar);
  if (env != nullptr && env[0] != '\0') return env;
  return kDefaultServer;
}

namespace {

ConnectionSecurity& Security() {
  static ConnectionSecurity* security = new ConnectionSecurity;
  return *security;
}

std::string FromEnv(const std::string& flag, const char* env) {
  if (!flag.empty()) return flag;
  const char* value = std::getenv(env);
  return value == nullptr ? "" : value;
}

absl::StatusOr<std::string> ReadFile(const char* what,
                                     const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, ": cannot read ", path));
  }
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

absl::Status TakeSecurityFlags(std::vector<std::string>& args,
                               ConnectionSecurity* out) {
  const std::pair<const char*, std::string ConnectionSecurity::*> kFlags[] = {
      {"token", &ConnectionSecurity::token},
      {"token_file", &ConnectionSecurity::token_file},
      {"tls_ca", &ConnectionSecurity::tls_ca},
      {"tls_cert", &ConnectionSecurity::tls_cert},
      {"tls_key", &ConnectionSecurity::tls_key}};
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    bool taken = false;
    for (const auto& [name, field] : kFlags) {
      const std::string bare = absl::StrCat("--", name);
      if (args[i] == bare) {
        if (i + 1 >= args.size()) {
          return absl::InvalidArgumentError(
              absl::StrCat(bare, ": needs a value"));
        }
        out->*field = args[++i];
        taken = true;
      } else if (absl::StartsWith(args[i], bare + "=")) {
        out->*field = args[i].substr(bare.size() + 1);
        taken = true;
      }
      if (taken) break;
    }
    if (!taken) kept.push_back(args[i]);
  }
  args = std::move(kept);
  return absl::OkStatus();
}

void SetConnectionSecurity(ConnectionSecurity security) {
  Security() = std::move(security);
}

ServerConnection::ServerConnection(std::string address)
    : address_(std::move(address)) {
  const ConnectionSecurity& flags = Security();
  std::string token = FromEnv(flags.token, "ANNEAL_TOKEN");
  const std::string token_file = FromEnv(flags.token_file, "ANNEAL_TOKEN_FILE");
  if (token.empty() && !token_file.empty()) {
    auto text = ReadFile("--token_file", token_file);
    if (text.ok()) {
      token = *text;
    } else {
      setup_ = text.status();
    }
  }
  token = std::string(absl::StripAsciiWhitespace(token));
  if (!token.empty()) authorization_ = "Bearer " + token;

  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  const std::string ca = FromEnv(flags.tls_ca, "ANNEAL_TLS_CA");
  const std::string cert = FromEnv(flags.tls_cert, "ANNEAL_TLS_CERT");
  const std::string key = FromEnv(flags.tls_key, "ANNEAL_TLS_KEY");
  if (setup_.ok() && (cert.empty() != key.empty())) {
    setup_ = absl::InvalidArgumentError(
        "--tls_cert and --tls_key (ANNEAL_TLS_CERT, ANNEAL_TLS_KEY) go "
        "together");
  } else if (setup_.ok() && !cert.empty() && ca.empty()) {
    setup_ = absl::InvalidArgumentError(
        "--tls_cert needs --tls_ca (ANNEAL_TLS_CA), the server's CA");
  }
  if (setup_.ok() && !ca.empty()) {
    grpc::SslCredentialsOptions ssl;
    auto roots = ReadFile("--tls_ca", ca);
    if (!roots.ok()) setup_ = roots.status();
    if (setup_.ok()) ssl.pem_root_certs = *roots;
    if (setup_.ok() && !cert.empty()) {
      auto chain = ReadFile("--tls_cert", cert);
      auto private_key = ReadFile("--tls_key", key);
      if (!chain.ok()) setup_ = chain.status();
      if (setup_.ok() && !private_key.ok()) setup_ = private_key.status();
      if (setup_.ok()) {
        ssl.pem_cert_chain = *chain;
        ssl.pem_private_key = *private_key;
      }
    }
    if (setup_.ok()) credentials = grpc::SslCredentials(ssl);
  }
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceiveBytes);
  channel_ = grpc::CreateCustomChannel(address_, credentials, args);
  stub_ = v1::ScheduleService::NewStub(channel_);
}

std::unique_ptr<grpc::ClientContext> ServerConnection::Context(
    absl::Duration timeout) const {
  auto context = std::make_unique<grpc::ClientContext>();
  if (timeout != absl::InfiniteDuration()) {
    context->set_deadline(absl::ToChronoTime(absl::Now() + timeout));
  }
  if (!authorization_.empty()) {
    context->AddMetadata("authorization", authorization_);
  }
  return context;
}

absl::Status ServerConnection::Failure(const grpc::Status& status,
                                       absl::Duration timeout) const {
  if (status.ok()) return absl::OkStatus();
  if (!setup_.ok()) return setup_;
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
