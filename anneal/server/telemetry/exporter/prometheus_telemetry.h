// Telemetry exported in Prometheus' data model: the counters the serving
// threads bump (lock-free, resolved once per method), and what is read
// from the registry and the store at each scrape (schedules, the per-
// schedule series, store counters, the process). Collect() is /metrics.
//
// Per-schedule series carry a `schedule` label (the id, without
// "schedules/"). Names are chosen by users, so at most
// `max_schedules` schedules get them (the first in name order at each
// scrape), and the registry keeps the last values of at most
// --metrics_max_reported_names training-report metrics per schedule; what
// is left out is counted (anneal_telemetry_*) and logged once.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_PROMETHEUS_TELEMETRY_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_PROMETHEUS_TELEMETRY_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/store/store.h"
#include "anneal/server/telemetry/exporter/atomic_histogram.h"
#include "anneal/server/telemetry/telemetry.h"
#include "prometheus/metric_family.h"

namespace anneal {

struct PrometheusTelemetryOptions {
  std::string version;     // anneal_build_info{version}
  std::string store_kind;  // anneal_build_info{store}: "sqlite", "memory"
  int64_t max_schedules = 1000;
};

class PrometheusTelemetry final : public Telemetry {
 public:
  explicit PrometheusTelemetry(PrometheusTelemetryOptions options);
  ~PrometheusTelemetry() override;

  // What a scrape reads besides the counters; both must outlive this, or
  // be unset (null) before they go.
  void Observe(const Registry* registry, const Store* store);

  RpcTelemetry* Rpc(absl::string_view service, absl::string_view method,
                    absl::string_view type) override;
  void Evaluated() override;
  void RangeServed(int64_t steps) override;
  void Advanced(bool deduplicated) override;
  void ReadWaited(ReadWait why) override;
  void Changed(absl::string_view schedule, ScheduleChange kind) override;
  void Reported(absl::string_view schedule, int names_not_kept) override;
  void ReportRejected(int code) override;
  void StoreWritten(int64_t ops, absl::Duration waited, bool ok) override;

  // Every family, for the text exposition format.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the text exposition format (version 0.0.4).
  std::string Text() const;

 private:
  class Method;
  static constexpr int kCodes = 17;  // grpc::StatusCode and absl::StatusCode

  void CollectSchedules(std::vector<prometheus::MetricFamily>* out) const;

  const PrometheusTelemetryOptions options_;

  mutable absl::Mutex methods_mu_;
  std::deque<std::unique_ptr<Method>> methods_ ABSL_GUARDED_BY(methods_mu_);

  std::atomic<uint64_t> evaluated_{0}, range_steps_{0};
  AtomicHistogram range_sizes_{StepCountBounds()};
  std::atomic<uint64_t> advances_{0}, advance_retries_{0};
  std::array<std::atomic<uint64_t>, 2> read_waits_{};
  std::array<std::atomic<uint64_t>, 6> changes_{};  // by ScheduleChange
  std::atomic<uint64_t> reports_{0};
  std::array<std::atomic<uint64_t>, kCodes> report_rejections_{};
  AtomicHistogram store_write_seconds_{LatencyBounds()};
  std::atomic<uint64_t> store_write_ops_{0}, store_write_failures_{0};

  mutable absl::Mutex sources_mu_;
  const Registry* registry_ ABSL_GUARDED_BY(sources_mu_) = nullptr;
  const Store* store_ ABSL_GUARDED_BY(sources_mu_) = nullptr;

  std::atomic<uint64_t> reported_names_dropped_{0};
  mutable std::atomic<bool> warned_schedules_{false};
  std::atomic<bool> warned_reports_{false};
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_PROMETHEUS_TELEMETRY_H_
