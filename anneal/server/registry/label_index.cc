// The label index of ListSchedules filters (see label_index.h).
#include "anneal/server/registry/label_index.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace anneal {

// Keys cannot hold a NUL byte (label keys are validated), so these never
// collide: "K\x01" for the key alone, "K\0V" for a key and value.
std::string LabelIndex::KeyOnly(absl::string_view key) {
  return absl::StrCat(key, absl::string_view("\x01", 1));
}

std::string LabelIndex::KeyValue(absl::string_view key,
                                 absl::string_view value) {
  return absl::StrCat(key, absl::string_view("\0", 1), value);
}

void LabelIndex::Add(const std::string& name,
                     const std::shared_ptr<void>& value, const Labels& labels) {
  std::vector<std::string>& mine = of_name_[name];
  for (const auto& [k, v] : labels) {
    for (std::string posting : {KeyOnly(k), KeyValue(k, v)}) {
      auto [it, added] = postings_[posting].emplace(name, value);
      if (added) {
        mine.push_back(std::move(posting));
      } else {
        it->second = value;
      }
    }
  }
  if (mine.empty()) of_name_.erase(name);
}

void LabelIndex::Retain(const std::string& name,
                        std::vector<const Labels*> keep) {
  auto it = of_name_.find(name);
  if (it == of_name_.end()) return;
  std::vector<std::string>& mine = it->second;
  auto implied = [&](const std::string& posting) {
    for (const Labels* labels : keep) {
      if (labels == nullptr) continue;
      for (const auto& [k, v] : *labels) {
        if (posting == KeyOnly(k) || posting == KeyValue(k, v)) return true;
      }
    }
    return false;
  };
  auto dropped = std::partition(mine.begin(), mine.end(), implied);
  for (auto p = dropped; p != mine.end(); ++p) Drop(*p, name);
  mine.erase(dropped, mine.end());
  if (mine.empty()) of_name_.erase(it);
}

void LabelIndex::Remove(const std::string& name) {
  auto it = of_name_.find(name);
  if (it == of_name_.end()) return;
  for (const std::string& posting : it->second) Drop(posting, name);
  of_name_.erase(it);
}

void LabelIndex::Drop(const std::string& posting, const std::string& name) {
  auto it = postings_.find(posting);
  if (it == postings_.end()) return;
  it->second.erase(name);
  if (it->second.empty()) postings_.erase(it);
}

const LabelIndex::Postings* LabelIndex::Find(absl::string_view key,
                                             const std::string* value) const {
  auto it =
      postings_.find(value == nullptr ? KeyOnly(key) : KeyValue(key, *value));
  return it == postings_.end() ? nullptr : &it->second;
}

int64_t LabelIndex::size() const {
  int64_t n = 0;
  for (const auto& [posting, names] : postings_) {
    n += static_cast<int64_t>(names.size());
  }
  return n;
}

}  // namespace anneal
