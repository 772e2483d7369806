// ScheduleTransport over a gRPC channel (see
// anneal/client/schedule_transport.h).
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "anneal/client/schedule_transport.h"
#include "anneal/v1/service.grpc.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/grpcpp.h"

namespace anneal {
namespace {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  // The canonical codes are numbered alike in gRPC and Abseil.
  absl::Status out(static_cast<absl::StatusCode>(s.error_code()),
                   s.error_message());
  // A RetryInfo detail (an overloaded server) travels on as a payload.
  google::rpc::Status details;
  if (!s.error_details().empty() &&
      details.ParseFromString(s.error_details())) {
    for (const google::protobuf::Any& any : details.details()) {
      if (any.type_url() == kRetryInfoTypeUrl) {
        out.SetPayload(kRetryInfoTypeUrl, absl::Cord(any.value()));
      }
    }
  }
  return out;
}

class GrpcTransport final : public ScheduleTransport {
 public:
  GrpcTransport(std::shared_ptr<grpc::Channel> channel, std::string token)
      : stub_(v1::ScheduleService::NewStub(std::move(channel))),
        authorization_(token.empty() ? "" : "Bearer " + token) {}

  absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRange(
      const v1::EvaluateRangeRequest& request,
      const CallOptions& options) override {
    v1::EvaluateRangeResponse response;
    absl::Status s = Call(options, [&](grpc::ClientContext* ctx) {
      return stub_->EvaluateRange(ctx, request, &response);
    });
    if (!s.ok()) return s;
    return response;
  }

  absl::StatusOr<v1::Schedule> GetSchedule(
      const v1::GetScheduleRequest& request,
      const CallOptions& options) override {
    v1::Schedule response;
    absl::Status s = Call(options, [&](grpc::ClientContext* ctx) {
      return stub_->GetSchedule(ctx, request, &response);
    });
    if (!s.ok()) return s;
    return response;
  }

  absl::StatusOr<v1::MetricReport> ReportMetrics(
      const v1::ReportMetricsRequest& request,
      const CallOptions& options) override {
    v1::MetricReport response;
    absl::Status s = Call(options, [&](grpc::ClientContext* ctx) {
      return stub_->ReportMetrics(ctx, request, &response);
    });
    if (!s.ok()) return s;
    return response;
  }

  absl::Status WatchSchedules(
      const v1::WatchSchedulesRequest& request,
      const std::function<bool(const v1::WatchEvent&)>& on_event) override {
    CallOptions options;
    options.timeout = absl::InfiniteDuration();
    options.wait_for_ready = true;
    return Call(options, [&](grpc::ClientContext* ctx) {
      std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader =
          stub_->WatchSchedules(ctx, request);
      v1::WatchEvent event;
      bool stopped = false;
      while (reader->Read(&event)) {
        if (!on_event(event)) {
          stopped = true;
          ctx->TryCancel();
          break;
        }
      }
      // Finish after a cancel drains the stream; its CANCELLED is ours.
      grpc::Status s = reader->Finish();
      return stopped ? grpc::Status::OK : s;
    });
  }

  void CancelAll() override {
    absl::MutexLock lock(&mu_);
    cancelled_ = true;
    for (grpc::ClientContext* ctx : in_flight_) ctx->TryCancel();
  }

 private:
  template <typename Rpc>
  absl::Status Call(const CallOptions& options, Rpc rpc) {
    grpc::ClientContext ctx;
    if (options.timeout != absl::InfiniteDuration()) {
      ctx.set_deadline(absl::ToChronoTime(absl::Now() + options.timeout));
    }
    ctx.set_wait_for_ready(options.wait_for_ready);
    if (!authorization_.empty())
      ctx.AddMetadata("authorization", authorization_);
    {
      absl::MutexLock lock(&mu_);
      if (cancelled_) return absl::CancelledError("the client is closing");
      in_flight_.insert(&ctx);
    }
    grpc::Status s = rpc(&ctx);
    absl::MutexLock lock(&mu_);
    in_flight_.erase(&ctx);
    return FromGrpc(s);
  }

  std::unique_ptr<v1::ScheduleService::Stub> stub_;
  const std::string authorization_;
  absl::Mutex mu_;
  bool cancelled_ ABSL_GUARDED_BY(mu_) = false;
  absl::flat_hash_set<grpc::ClientContext*> in_flight_ ABSL_GUARDED_BY(mu_);
};

std::string Env(const char* name) {
  const char* value = std::getenv(name);
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

grpc::ChannelArguments AnnealChannelArguments(
    absl::Duration max_reconnect_backoff) {
  grpc::ChannelArguments args;
  // A window of a million steps is ~40 MB; gRPC's default limit is 4 MB.
  args.SetMaxReceiveMessageSize(256 << 20);
  const int max_ms = static_cast<int>(
      std::max<int64_t>(100, absl::ToInt64Milliseconds(max_reconnect_backoff)));
  // Not GRPC_ARG_MIN_RECONNECT_BACKOFF_MS: gRPC uses it as the timeout of
  // each connection attempt, and a short one makes attempts fail forever.
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, max_ms);
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 200);
  return args;
}

}  // namespace

std::shared_ptr<grpc::Channel> NewAnnealChannel(
    const std::string& target, absl::Duration max_reconnect_backoff) {
  return grpc::CreateCustomChannel(
      target, grpc::InsecureChannelCredentials(),
      AnnealChannelArguments(max_reconnect_backoff));
}

TransportSecurity TransportSecurityFromEnvironment() {
  TransportSecurity s;
  s.token = Env("ANNEAL_TOKEN");
  if (s.token.empty() && !Env("ANNEAL_TOKEN_FILE").empty()) {
    auto text = ReadFile("ANNEAL_TOKEN_FILE", Env("ANNEAL_TOKEN_FILE"));
    if (text.ok()) s.token = *text;
  }
  s.token = std::string(absl::StripAsciiWhitespace(s.token));
  s.tls_ca = Env("ANNEAL_TLS_CA");
  s.tls_cert = Env("ANNEAL_TLS_CERT");
  s.tls_key = Env("ANNEAL_TLS_KEY");
  return s;
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> NewAnnealChannel(
    const std::string& target, const TransportSecurity& security,
    absl::Duration max_reconnect_backoff) {
  if (security.tls_cert.empty() != security.tls_key.empty()) {
    return absl::InvalidArgumentError(
        "tls_cert, tls_key: give both or neither");
  }
  if (security.tls_ca.empty()) {
    if (!security.tls_cert.empty()) {
      return absl::InvalidArgumentError(
          "tls_cert: needs tls_ca (the server's CA)");
    }
    return NewAnnealChannel(target, max_reconnect_backoff);
  }
  grpc::SslCredentialsOptions ssl;
  auto roots = ReadFile("tls_ca", security.tls_ca);
  if (!roots.ok()) return roots.status();
  ssl.pem_root_certs = *std::move(roots);
  if (!security.tls_cert.empty()) {
    auto chain = ReadFile("tls_cert", security.tls_cert);
    if (!chain.ok()) return chain.status();
    auto key = ReadFile("tls_key", security.tls_key);
    if (!key.ok()) return key.status();
    ssl.pem_cert_chain = *std::move(chain);
    ssl.pem_private_key = *std::move(key);
  }
  return grpc::CreateCustomChannel(
      target, grpc::SslCredentials(ssl),
      AnnealChannelArguments(max_reconnect_backoff));
}

std::unique_ptr<ScheduleTransport> NewGrpcTransport(
    std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<GrpcTransport>(std::move(channel), "");
}

std::unique_ptr<ScheduleTransport> NewGrpcTransport(
    std::shared_ptr<grpc::Channel> channel, std::string token) {
  return std::make_unique<GrpcTransport>(std::move(channel), std::move(token));
}

}  // namespace anneal
