// The standard process_* metrics (the names Prometheus' own client
// libraries use), read from /proc: this prometheus-cpp has no process
// collector.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_PROCESS_METRICS_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_PROCESS_METRICS_H_

#include <vector>

#include "prometheus/metric_family.h"

namespace anneal {

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_start_time_seconds,
// process_open_fds, process_max_fds and process_threads of this process;
// those /proc does not give are left out.
std::vector<prometheus::MetricFamily> ProcessFamilies();

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_PROCESS_METRICS_H_
