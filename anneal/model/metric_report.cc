// ReportMetrics' request rules (see metric_report.h).
#include "anneal/model/metric_report.h"

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"
#include "anneal/engine/metric_name.h"
#include "anneal/engine/step.h"

namespace anneal {

absl::Status ValidateStepBound(absl::string_view field, int64_t step) {
  if (step >= 0 && step <= kMaxStep) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      field, step < 0 ? ": must be >= 0, got " : ": must be <= 2^62, got ",
      step));
}

absl::Status ValidateReportStep(int64_t step) {
  return ValidateStepBound("step", step);
}

absl::Status ValidateReportCount(size_t count) {
  if (count == 0) {
    return absl::InvalidArgumentError(
        "metrics: must name at least one metric, got none");
  }
  if (count > kMaxMetricsPerReport) {
    return absl::InvalidArgumentError(absl::StrCat(
        "metrics: at most ", kMaxMetricsPerReport, " per report, got ", count));
  }
  return absl::OkStatus();
}

absl::Status ValidateReportName(absl::string_view metric) {
  return ValidateMetricName(absl::StrCat("metrics[", QuoteValue(metric), "]"),
                            metric);
}

}  // namespace anneal
