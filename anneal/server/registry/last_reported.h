// The last value of each training metric one schedule reported, kept in
// memory for the exporter (reports themselves live in the store only).
//
// Per name, the value of the highest step that reported it: a late report
// of an older step does not replace a newer value, and a metric reported
// every epoch keeps its value between epochs. At most `max_names` names are
// kept per schedule (first come, and within one report by name); the rest
// are counted, not kept, so a job inventing a name per step cannot grow the
// server.
#ifndef ANNEAL_SERVER_REGISTRY_LAST_REPORTED_H_
#define ANNEAL_SERVER_REGISTRY_LAST_REPORTED_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/synchronization/mutex.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

// What an exporter shows of one schedule's reports.
struct ReportedValues {
  int64_t step = -1;  // the highest step reported; -1: none
  std::vector<std::pair<std::string, double>> values;  // by name
};

class LastReported {
 public:
  // Folds `report` in; returns how many of its names were not kept because
  // the schedule already has `max_names` others.
  int Merge(const v1::MetricReport& report, int64_t max_names);
  ReportedValues Get() const;

 private:
  struct Value {
    double value;
    int64_t step;
  };
  mutable absl::Mutex mu_;
  int64_t step_ ABSL_GUARDED_BY(mu_) = -1;
  absl::btree_map<std::string, Value> values_ ABSL_GUARDED_BY(mu_);
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_LAST_REPORTED_H_
