// LastReported: see last_reported.h.
#include "anneal/server/registry/last_reported.h"

#include <algorithm>
#include <vector>

namespace anneal {

int LastReported::Merge(const v1::MetricReport& report, int64_t max_names) {
  absl::MutexLock lock(&mu_);
  step_ = std::max(step_, report.step());
  int not_kept = 0;
  auto fold = [&](const std::string& name, double value) {
    mu_.AssertHeld();  // for the analysis: a lambda is checked on its own
    auto it = values_.find(name);
    if (it != values_.end()) {
      if (report.step() >= it->second.step) it->second = {value, report.step()};
    } else if (static_cast<int64_t>(values_.size()) < max_names) {
      values_.emplace(name, Value{value, report.step()});
    } else {
      ++not_kept;
    }
  };
  if (static_cast<int64_t>(values_.size() + report.metrics().size()) <=
      max_names) {
    // Every name fits: the order cannot matter.
    for (const auto& [name, value] : report.metrics()) fold(name, value);
    return not_kept;
  }
  // Else in name order: protobuf map order differs from run to run, and
  // which names pass the cap must not.
  std::vector<const google::protobuf::MapPair<std::string, double>*> names;
  names.reserve(report.metrics().size());
  for (const auto& entry : report.metrics()) names.push_back(&entry);
  std::sort(names.begin(), names.end(),
            [](const auto* a, const auto* b) { return a->first < b->first; });
  for (const auto* entry : names) fold(entry->first, entry->second);
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
