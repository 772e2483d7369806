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

void LabelIndex::Add(absl::string_view name, const std::shared_ptr<void>& value,
                     const Labels& labels) {
  // Keys view `name`: if it is indexed already, its postings now view this
  // copy and hold `value`, which owns it (the old value may go).
  absl::InlinedVector<const std::string*, 2> mine;
  if (auto it = of_name_.find(name); it != of_name_.end()) {
    mine = std::move(it->second);
    of_name_.erase(it);
  }
  for (const std::string* posting : mine) {
    Postings& names = postings_.find(*posting)->second;
    names.erase(name);
    names.emplace(name, value);
  }
  for (const auto& [k, v] : labels) {
    for (const std::string& key : {KeyOnly(k), KeyValue(k, v)}) {
      auto posting = postings_.try_emplace(key).first;
      auto [it, added] = posting->second.emplace(name, value);
      if (added) {
        mine.push_back(&posting->first);
      } else {
        it->second = value;
      }
    }
  }
  if (!mine.empty()) of_name_.emplace(name, std::move(mine));
}

void LabelIndex::Retain(absl::string_view name,
                        std::vector<const Labels*> keep) {
  auto it = of_name_.find(name);
  if (it == of_name_.end()) return;
  auto& mine = it->second;
  auto implied = [&](const std::string* posting) {
    for (const Labels* labels : keep) {
      if (labels == nullptr) continue;
      for (const auto& [k, v] : *labels) {
        if (*posting == KeyOnly(k) || *posting == KeyValue(k, v)) return true;
      }
    }
    return false;
  };
  auto dropped = std::partition(mine.begin(), mine.end(), implied);
  for (auto p = dropped; p != mine.end(); ++p) Drop(*p, name);
  mine.erase(dropped, mine.end());
  if (mine.empty()) of_name_.erase(it);
}

void LabelIndex::Remove(absl::string_view name) {
  auto it = of_name_.find(name);
  if (it == of_name_.end()) return;
  for (const std::string* posting : it->second) Drop(posting, name);
  of_name_.erase(it);
}

// `posting` points at a key of postings_, so it is looked up before the
// list it names may be erased.
void LabelIndex::Drop(const std::string* posting, absl::string_view name) {
  auto it = postings_.find(*posting);
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
