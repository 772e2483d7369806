// A histogram with fixed buckets whose Observe is a few relaxed atomic
// adds: prometheus-cpp 1.0's Histogram::Observe takes a mutex, which every
// call of a method would share.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_ATOMIC_HISTOGRAM_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_ATOMIC_HISTOGRAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "prometheus/client_metric.h"

namespace anneal {

class AtomicHistogram {
 public:
  // `bounds` are the buckets' upper bounds, increasing; +Inf is implied.
  explicit AtomicHistogram(std::vector<double> bounds);

  void Observe(double value);

  // A snapshot in Prometheus' form (cumulative buckets, +Inf last). Taken
  // while others observe, its count may lag its buckets by those in flight.
  prometheus::ClientMetric::Histogram Collect() const;

 private:
  const std::vector<double> bounds_;
  // counts_[i] counts values in (bounds_[i-1], bounds_[i]]; the last one
  // those above every bound.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Bucket bounds: seconds from 50 µs to 10 s (an Evaluate takes ~20 µs of
// CPU, a durable write a few ms), and step counts from 1 to 2^24.
std::vector<double> LatencyBounds();
std::vector<double> StepCountBounds();

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_ATOMIC_HISTOGRAM_H_
