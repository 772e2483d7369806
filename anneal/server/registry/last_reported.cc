// LastReported: see last_reported.h.
#include "anneal/server/registry/last_reported.h"

#include <algorithm>

namespace anneal {

int LastReported::Merge(const v1::MetricReport& report, int64_t max_names) {
  absl::MutexLock lock(&mu_);
  step_ = std::max(step_, report.step());
  // A report's names in name order: protobuf map order differs from run to
  // run, and which names pass the cap must not.
  std::vector<const google::protobuf::MapPair<std::string, double>*> names;
  names.reserve(report.metrics().size());
  for (const auto& entry : report.metrics()) names.push_back(&entry);
  std::sort(names.begin(), names.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  int not_kept = 0;
  for (const auto* entry : names) {
    const std::string& name = entry->first;
    const double value = entry->second;
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
