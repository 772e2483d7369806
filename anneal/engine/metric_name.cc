// The metric name rule (see metric_name.h).
#include "anneal/engine/metric_name.h"

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

bool IsMetricNameChar(char c, bool first) {
  if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_') {
    return true;
  }
  return !first && ((c >= '0' && c <= '9') || c == '.' || c == '/' || c == '-');
}

}  // namespace

absl::Status ValidateMetricName(absl::string_view field,
                                absl::string_view metric) {
  bool ok = !metric.empty() && metric.size() <= 64;
  for (size_t i = 0; ok && i < metric.size(); ++i) {
    ok = IsMetricNameChar(metric[i], i == 0);
  }
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field, ": must match ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, got ",
                   QuoteValue(metric)));
}

}  // namespace anneal
