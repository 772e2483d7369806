// Limits on request fields (see request_limits.h).
#include "anneal/server/request_limits.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

// A stand-in for a field name: "reason", "schedule.labels", ...
absl::Status AtMost(absl::string_view field, size_t size, int64_t limit,
                    absl::string_view unit = "bytes") {
  if (static_cast<int64_t>(size) <= limit) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, ": must be at most ", limit, " ", unit, ", got ", size));
}

bool IsLabelKeyChar(char c, bool first) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return !first && ((c >= '0' && c <= '9') || c == '_' || c == '.' ||
                    c == '/' || c == '-');
}

// Labels: a bounded map whose keys a filter can name (list_filter.h).
absl::Status CheckLabels(
    absl::string_view field,
    const google::protobuf::Map<std::string, std::string>& labels,
    const RequestLimits& limits) {
  if (auto s = AtMost(field, labels.size(), limits.max_labels, "labels");
      !s.ok()) {
    return s;
  }
  for (const auto& [key, value] : labels) {
    const std::string entry = absl::StrCat(field, "[", QuoteValue(key), "]");
    if (auto s = AtMost(absl::StrCat(entry, " key"), key.size(),
                        limits.max_label_key_bytes);
        !s.ok()) {
      return s;
    }
    bool ok = !key.empty();
    for (size_t i = 0; ok && i < key.size(); ++i) {
      ok = IsLabelKeyChar(key[i], i == 0);
    }
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          entry, ": key must match ^[A-Za-z][A-Za-z0-9_./-]*$, got ",
          QuoteValue(key)));
    }
    if (auto s = AtMost(entry, value.size(), limits.max_label_value_bytes);
        !s.ok()) {
      return s;
    }
    for (unsigned char c : value) {
      if (c < 0x20 || c == 0x7f) {
        return absl::InvalidArgumentError(
            absl::StrCat(entry, ": must not contain control characters, got ",
                         QuoteValue(value)));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status CheckSpec(absl::string_view field, const v1::ScheduleSpec& spec,
                       const RequestLimits& limits) {
  return AtMost(field, spec.ByteSizeLong(), limits.max_spec_bytes);
}

absl::Status CheckName(absl::string_view field, const std::string& name) {
  // Names have a rule of their own (at most 73 bytes); this only keeps a
  // huge one out of error messages and logs before that rule is applied.
  return AtMost(field, name.size(), 1024);
}

absl::Status CheckChange(const std::string& actor, const std::string& reason,
                         const RequestLimits& limits) {
  if (auto s = AtMost("actor", actor.size(), limits.max_actor_bytes); !s.ok()) {
    return s;
  }
  return AtMost("reason", reason.size(), limits.max_reason_bytes);
}

// Runs the checks in order and returns the first error.
template <typename... Checks>
absl::Status First(Checks... checks) {
  absl::Status s;
  ((s.ok() ? (s = checks, 0) : 0), ...);
  return s;
}

// Create's and Fork's common fields: the new id, the schedule, the change.
template <typename NewScheduleRequest>
absl::Status CheckNewSchedule(const NewScheduleRequest& r,
                              const RequestLimits& limits) {
  return First(
      AtMost("schedule_id", r.schedule_id().size(), 1024),
      AtMost("schedule.display_name", r.schedule().display_name().size(),
             limits.max_display_name_bytes),
      CheckLabels("schedule.labels", r.schedule().labels(), limits),
      CheckSpec("schedule.spec", r.schedule().spec(), limits),
      CheckChange(r.actor(), r.reason(), limits));
}

}  // namespace

absl::Status CheckLimits(const v1::CreateScheduleRequest& r,
                         const RequestLimits& limits) {
  return CheckNewSchedule(r, limits);
}

absl::Status CheckLimits(const v1::ForkScheduleRequest& r,
                         const RequestLimits& limits) {
  return First(CheckName("source", r.source()), CheckNewSchedule(r, limits));
}

absl::Status CheckLimits(const v1::GetScheduleRequest& r,
                         const RequestLimits& limits) {
  return CheckName("name", r.name());
}

absl::Status CheckLimits(const v1::ListSchedulesRequest& r,
                         const RequestLimits& limits) {
  return First(
      AtMost("filter", r.filter().size(), limits.max_filter_bytes),
      AtMost("page_token", r.page_token().size(), limits.max_page_token_bytes));
}

absl::Status CheckLimits(const v1::UpdateScheduleRequest& r,
                         const RequestLimits& limits) {
  return First(
      CheckName("schedule.name", r.schedule().name()),
      AtMost("schedule.display_name", r.schedule().display_name().size(),
             limits.max_display_name_bytes),
      CheckLabels("schedule.labels", r.schedule().labels(), limits),
      CheckSpec("schedule.spec", r.schedule().spec(), limits),
      AtMost("schedule.etag", r.schedule().etag().size(),
             limits.max_etag_bytes),
      AtMost("update_mask.paths", r.update_mask().paths_size(), 8, "paths"),
      CheckChange(r.actor(), r.reason(), limits));
}

absl::Status CheckLimits(const v1::DeleteScheduleRequest& r,
                         const RequestLimits& limits) {
  return First(CheckName("name", r.name()),
               AtMost("etag", r.etag().size(), limits.max_etag_bytes),
               CheckChange(r.actor(), r.reason(), limits));
}

absl::Status CheckLimits(const v1::EvaluateRequest& r,
                         const RequestLimits& limits) {
  return CheckName("name", r.name());
}

absl::Status CheckLimits(const v1::EvaluateRangeRequest& r,
                         const RequestLimits& limits) {
  return CheckName("name", r.name());
}

absl::Status CheckLimits(const v1::SimulateRequest& r,
                         const RequestLimits& limits) {
  return CheckSpec("spec", r.spec(), limits);
}

absl::Status CheckLimits(const v1::AdvanceRequest& r,
                         const RequestLimits& limits) {
  return First(
      CheckName("name", r.name()),
      AtMost("request_id", r.request_id().size(), limits.max_request_id_bytes));
}

absl::Status CheckLimits(const v1::RestartScheduleRequest& r,
                         const RequestLimits& limits) {
  return First(CheckName("name", r.name()),
               AtMost("etag", r.etag().size(), limits.max_etag_bytes),
               CheckChange(r.actor(), r.reason(), limits));
}

absl::Status CheckLimits(const v1::RewindScheduleRequest& r,
                         const RequestLimits& limits) {
  return First(CheckName("name", r.name()), CheckSpec("spec", r.spec(), limits),
               AtMost("etag", r.etag().size(), limits.max_etag_bytes),
               CheckChange(r.actor(), r.reason(), limits));
}

absl::Status CheckLimits(const v1::ReportMetricsRequest& r,
                         const RequestLimits& limits) {
  // The metrics map has its own rules (registry_reports.cc): at most 64
  // names of at most 64 bytes.
  return CheckName("name", r.name());
}

absl::Status CheckLimits(const v1::ListMetricReportsRequest& r,
                         const RequestLimits& limits) {
  return First(
      CheckName("name", r.name()),
      AtMost("page_token", r.page_token().size(), limits.max_page_token_bytes),
      AtMost("metric_names", r.metric_names_size(), limits.max_metric_names,
             "names"));
}

absl::Status CheckLimits(const v1::DiagnoseRequest& r,
                         const RequestLimits& limits) {
  // The metric names have their rule (diagnosis.h), checked by the registry.
  return CheckName("name", r.name());
}

}  // namespace anneal
