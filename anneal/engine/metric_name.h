// The rule for the names of reported training metrics, shared by the
// reports themselves and by the spec fields that name one (plateau.metric).
#ifndef ANNEAL_ENGINE_METRIC_NAME_H_
#define ANNEAL_ENGINE_METRIC_NAME_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anneal {

// OK if `metric` matches ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$; otherwise
// INVALID_ARGUMENT "<field>: must match ..., got \"<metric>\"".
absl::Status ValidateMetricName(absl::string_view field,
                                absl::string_view metric);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_METRIC_NAME_H_
