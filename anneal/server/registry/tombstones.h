// The last revision of each recently deleted schedule, so that a schedule
// created again under the name continues its revisions: a watcher that
// resumes with the old one's revision then gets the new one (revisions
// would otherwise start over at 1 and look already seen).
//
// Stored as a bare record under "tombstones/{id}" (a name no schedule can
// have), written in the delete's batch and removed in the re-create's, so
// it is as durable as the delete. At most `capacity` are kept, the oldest
// forgotten first. Not thread-safe: the registry guards it.
#ifndef ANNEAL_SERVER_REGISTRY_TOMBSTONES_H_
#define ANNEAL_SERVER_REGISTRY_TOMBSTONES_H_

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "anneal/v1/resources.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace anneal {

class Tombstones {
 public:
  explicit Tombstones(int64_t capacity) : capacity_(capacity) {}

  // The stored name of `schedule_name`'s tombstone, and back (nullopt for
  // a name that is not a tombstone's).
  static std::string StoredName(const std::string& schedule_name);
  static std::optional<std::string> ScheduleOf(const std::string& stored);
  // The record stored for a schedule deleted at `revision`.
  static v1::Schedule Record(const std::string& schedule_name, int64_t revision,
                             const google::protobuf::Timestamp& when);

  // Remembers `schedule_name` at `revision`, newest; returns the schedule
  // names forgotten to stay within capacity (their records to delete).
  std::vector<std::string> Add(const std::string& schedule_name,
                               int64_t revision);
  // The revision `schedule_name` was deleted at, if remembered.
  std::optional<int64_t> Revision(const std::string& schedule_name) const;
  void Remove(const std::string& schedule_name);
  int64_t size() const { return static_cast<int64_t>(revisions_.size()); }

 private:
  struct Remembered {
    int64_t revision;
    uint64_t sequence;  // of its entry in order_
  };
  int64_t capacity_;
  uint64_t next_sequence_ = 0;
  absl::flat_hash_map<std::string, Remembered> revisions_;
  // Oldest first; entries of names removed or added again since are stale.
  std::deque<std::pair<std::string, uint64_t>> order_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_TOMBSTONES_H_
