// The rules a ReportMetrics request must follow, shared by the server
// (which enforces them) and the clients (which check them before queueing,
// so a mistake fails at the call that made it).
#ifndef ANNEAL_MODEL_METRIC_REPORT_H_
#define ANNEAL_MODEL_METRIC_REPORT_H_

#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anneal {

// The most metrics one report may carry.
inline constexpr int kMaxMetricsPerReport = 64;

// OK, or INVALID_ARGUMENT naming the field, the rule and the value: a step
// outside [0, 2^62], no metric, more than kMaxMetricsPerReport, or a name
// not matching ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$. `metrics` is any map from
// names to values (the request's protobuf map, a std::map). Whether the
// step's merged report stays within its limit only the server can tell.
absl::Status ValidateReportStep(int64_t step);
// `field` as a step in [0, 2^62] (the report's step, a listing's bounds).
absl::Status ValidateStepBound(absl::string_view field, int64_t step);
absl::Status ValidateReportCount(size_t count);
absl::Status ValidateReportName(absl::string_view metric);

template <typename MetricMap>
absl::Status ValidateReport(int64_t step, const MetricMap& metrics) {
  if (absl::Status s = ValidateReportStep(step); !s.ok()) return s;
  if (absl::Status s = ValidateReportCount(metrics.size()); !s.ok()) return s;
  for (const auto& [metric, value] : metrics) {
    (void)value;
    if (absl::Status s = ValidateReportName(metric); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace anneal

#endif  // ANNEAL_MODEL_METRIC_REPORT_H_
