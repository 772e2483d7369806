// Limits on every string, bytes, map and repeated field a request carries,
// checked at the edge before anything else looks at the request.
//
// Each limit is a server flag (flags.cc) and is listed in
// docs/operations.md. An error names the field, the limit and the size,
// never the whole value: `reason: must be at most 4096 bytes, got 15728640`.
// Schedule ids and names, metric names and page sizes have rules of their
// own (resource_name.h, the registry).
#ifndef ANNEAL_SERVER_REQUEST_LIMITS_H_
#define ANNEAL_SERVER_REQUEST_LIMITS_H_

#include <cstdint>

#include "absl/status/status.h"
#include "anneal/v1/service.pb.h"

namespace anneal {

struct RequestLimits {
  int64_t max_display_name_bytes = 256;
  int64_t max_labels = 64;
  int64_t max_label_key_bytes = 63;
  int64_t max_label_value_bytes = 256;
  int64_t max_actor_bytes = 256;
  int64_t max_reason_bytes = 4096;
  int64_t max_request_id_bytes = 128;
  int64_t max_filter_bytes = 4096;
  int64_t max_page_token_bytes = 1024;
  int64_t max_etag_bytes = 128;
  // A spec, serialized (it bounds milestones and phases too).
  int64_t max_spec_bytes = 64 << 10;
  // ListMetricReports' metric_names.
  int64_t max_metric_names = 64;
  // WatchSchedules' names and since_revisions, each: --max_schedules (a
  // watch of every schedule resumes with each of them).
  int64_t max_watch_names = 10'000;
};

// OK if the request keeps every limit; else INVALID_ARGUMENT naming the
// first field that does not.
absl::Status CheckLimits(const v1::CreateScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::ForkScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::GetScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::ListSchedulesRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::UpdateScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::DeleteScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::EvaluateRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::EvaluateRangeRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::SimulateRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::AdvanceRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::RestartScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::RewindScheduleRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::ReportMetricsRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::ListMetricReportsRequest& r,
                         const RequestLimits& limits);
absl::Status CheckLimits(const v1::DiagnoseRequest& r,
                         const RequestLimits& limits);

}  // namespace anneal

#endif  // ANNEAL_SERVER_REQUEST_LIMITS_H_
