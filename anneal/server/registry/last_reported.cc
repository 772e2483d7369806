// LastReported: see last_reported.h.
#include "anneal/server/registry/last_reported.h"

#include <algorithm>

namespace anneal {

int LastReported::Merge(const v1::MetricReport& report, int64_t max_names) {
  absl::MutexLock lock(&mu_);
  step_ = std::max(step_, report.step());
  int not_kept = 0;
  for (const auto& [name, value] : report.metrics()) {
    auto it = values_.find(name);
    if (it != values_.end()) {
      if (report.step() >= it->second.step) it->second = {value, report.step()};
    } else if (static_cast<int64_t>(values_.size()) < max_names) {
      values_.emplace(name, Value{value, report.step()});
    } else {
      ++not_kept;
    }
  }
  return not_kept;
}

ReportedValues LastReported::Get() const {
  absl::MutexLock lock(&mu_);
  ReportedValues out;
  out.step = step_;
  out.values.reserve(values_.size());
  for (const auto& [name, v] : values_) out.values.emplace_back(name, v.value);
  return out;
}

}  // namespace anneal
