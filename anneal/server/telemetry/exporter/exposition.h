// The Prometheus text exposition format (version 0.0.4) of metric families,
// with every double printed in its shortest exact form: prometheus-cpp
// 1.0's TextSerializer prints 16 significant digits, which is not always
// the LR that was served.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_EXPOSITION_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_EXPOSITION_H_

#include <string>
#include <vector>

#include "prometheus/metric_family.h"

namespace anneal {

std::string ExpositionText(const std::vector<prometheus::MetricFamily>& fams);

// `value` as the format writes it: the shortest decimal that reads back as
// the same double, or +Inf, -Inf, NaN.
std::string ExpositionNumber(double value);

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_EXPOSITION_H_
