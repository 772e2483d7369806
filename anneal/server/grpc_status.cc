// absl::Status -> grpc::Status with google.rpc details (see grpc_status.h).
#include "anneal/server/grpc_status.h"

#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"

namespace anneal {
namespace {

// The field path of a "<field>: <rule>" message, or "" if it has none.
std::string FieldOf(absl::string_view message) {
  size_t colon = message.find(": ");
  if (colon == absl::string_view::npos || colon == 0) return "";
  absl::string_view field = message.substr(0, colon);
  for (char c : field) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c))) return "";
  }
  return std::string(field);
}

constexpr char kRetryInfoUrl[] = "type.googleapis.com/google.rpc.RetryInfo";

}  // namespace

absl::Status RetryAfter(absl::Status status, absl::Duration delay) {
  google::rpc::RetryInfo info;
  const int64_t nanos = absl::ToInt64Nanoseconds(delay);
  info.mutable_retry_delay()->set_seconds(nanos / 1'000'000'000);
  info.mutable_retry_delay()->set_nanos(
      static_cast<int32_t>(nanos % 1'000'000'000));
  status.SetPayload(kRetryInfoUrl, absl::Cord(info.SerializeAsString()));
  return status;
}

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const std::string message(status.message());
  const std::string field = FieldOf(message);
  const std::string rule =
      field.empty() ? message : message.substr(field.size() + 2);

  google::rpc::Status details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(message);
  google::rpc::ErrorInfo info;
  info.set_reason(
      absl::AsciiStrToUpper(absl::StatusCodeToString(status.code())));
  info.set_domain("anneal.dev");
  if (!field.empty()) (*info.mutable_metadata())["field"] = field;
  details.add_details()->PackFrom(info);
  if (status.code() == absl::StatusCode::kInvalidArgument) {
    google::rpc::BadRequest bad;
    auto* violation = bad.add_field_violations();
    violation->set_field(field);
    violation->set_description(rule);
    details.add_details()->PackFrom(bad);
  } else if (status.code() == absl::StatusCode::kFailedPrecondition ||
             status.code() == absl::StatusCode::kAborted) {
    google::rpc::PreconditionFailure failure;
    auto* violation = failure.add_violations();
    violation->set_type(info.reason());
    violation->set_subject(field);
    violation->set_description(rule);
    details.add_details()->PackFrom(failure);
  }
  if (auto retry = status.GetPayload(kRetryInfoUrl)) {
    google::protobuf::Any* any = details.add_details();
    any->set_type_url(kRetryInfoUrl);
    any->set_value(std::string(*retry));
  }
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), message,
                      details.SerializeAsString());
}

}  // namespace anneal
