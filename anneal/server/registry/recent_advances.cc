// The dedup window of Advance (see recent_advances.h).
#include "anneal/server/registry/recent_advances.h"

namespace anneal {

const std::string* RecentAdvances::Find(absl::string_view request_id) const {
  if (!recent_) return nullptr;
  auto it = recent_->by_id.find(request_id);
  return it == recent_->by_id.end() ? nullptr : &it->second.second;
}

void RecentAdvances::Remember(std::string request_id, std::string answer) {
  if (!recent_) recent_ = std::make_unique<Recent>();
  const int64_t seq = recent_->next++;
  recent_->order.emplace_back(seq, request_id);
  recent_->by_id[std::move(request_id)] = {seq, std::move(answer)};
  while (static_cast<int64_t>(recent_->order.size()) > window_) {
    auto& [oldest, id] = recent_->order.front();
    auto it = recent_->by_id.find(id);
    // A request id used again since: its newer answer stays.
    if (it != recent_->by_id.end() && it->second.first == oldest) {
      recent_->by_id.erase(it);
    }
    recent_->order.pop_front();
  }
}

int64_t RecentAdvances::size() const {
  return recent_ ? static_cast<int64_t>(recent_->by_id.size()) : 0;
}

}  // namespace anneal
