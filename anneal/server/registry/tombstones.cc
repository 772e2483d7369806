// Tombstones: see tombstones.h.
#include "anneal/server/registry/tombstones.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"

namespace anneal {
namespace {

constexpr absl::string_view kScheduleRoot = "schedules/";
constexpr absl::string_view kTombstoneRoot = "tombstones/";

}  // namespace

std::string Tombstones::StoredName(const std::string& schedule_name) {
  absl::string_view id = schedule_name;
  absl::ConsumePrefix(&id, kScheduleRoot);
  return absl::StrCat(kTombstoneRoot, id);
}

std::optional<std::string> Tombstones::ScheduleOf(const std::string& stored) {
  absl::string_view id = stored;
  if (!absl::ConsumePrefix(&id, kTombstoneRoot)) return std::nullopt;
  return absl::StrCat(kScheduleRoot, id);
}

v1::Schedule Tombstones::Record(const std::string& schedule_name,
                                int64_t revision,
                                const google::protobuf::Timestamp& when) {
  v1::Schedule record;
  record.set_name(StoredName(schedule_name));
  record.set_revision(revision);
  *record.mutable_update_time() = when;
  record.set_max_step_served(-1);
  return record;
}

std::vector<std::string> Tombstones::Add(const std::string& schedule_name,
                                         int64_t revision) {
  const uint64_t sequence = next_sequence_++;
  revisions_[schedule_name] = {revision, sequence};
  order_.emplace_back(schedule_name, sequence);
  std::vector<std::string> forgotten;
  while (static_cast<int64_t>(revisions_.size()) > capacity_) {
    auto [oldest, added] = std::move(order_.front());
    order_.pop_front();
    // Only the name's latest entry counts: one removed (re-created) or
    // added again since is not this one.
    auto it = revisions_.find(oldest);
    if (it == revisions_.end() || it->second.sequence != added) continue;
    revisions_.erase(it);
    forgotten.push_back(std::move(oldest));
  }
  // Stale entries leave the front as the deque turns over; a run of
  // re-creates could still pile them up, so compact past twice the map.
  if (order_.size() > 2 * revisions_.size() + 16) {
    std::deque<std::pair<std::string, uint64_t>> kept;
    for (auto& entry : order_) {
      auto it = revisions_.find(entry.first);
      if (it != revisions_.end() && it->second.sequence == entry.second) {
        kept.push_back(std::move(entry));
      }
    }
    order_ = std::move(kept);
  }
  return forgotten;
}

std::optional<int64_t> Tombstones::Revision(
    const std::string& schedule_name) const {
  auto it = revisions_.find(schedule_name);
  if (it == revisions_.end()) return std::nullopt;
  return it->second.revision;
}

void Tombstones::Remove(const std::string& schedule_name) {
  revisions_.erase(schedule_name);
}

}  // namespace anneal
