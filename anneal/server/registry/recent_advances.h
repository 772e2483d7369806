// The answers to a schedule's last kAdvanceDedupWindow Advance calls that
// carried a request id, so that a retry is answered as the first time.
//
// Most schedules never advance, so nothing is allocated until the first
// answer is remembered: empty, it is one pointer. A request id used again
// keeps its newer answer, as the store does (store.h). Not thread-safe: the
// registry guards it with the entry's lock.
#ifndef ANNEAL_SERVER_REGISTRY_RECENT_ADVANCES_H_
#define ANNEAL_SERVER_REGISTRY_RECENT_ADVANCES_H_

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"

namespace anneal {

class RecentAdvances {
 public:
  // Remembers at most `window` answers.
  explicit RecentAdvances(int64_t window) : window_(window) {}

  // The serialized answer to `request_id`, or null if it is not remembered.
  const std::string* Find(absl::string_view request_id) const;
  // Remembers `answer` for `request_id`, forgetting the oldest beyond the
  // window.
  void Remember(std::string request_id, std::string answer);
  // Forgets everything.
  void Clear() { recent_.reset(); }
  // How many answers are remembered.
  int64_t size() const;

 private:
  struct Recent {
    // request id -> (its sequence number, answer).
    absl::flat_hash_map<std::string, std::pair<int64_t, std::string>> by_id;
    // (sequence number, request id), oldest first.
    std::deque<std::pair<int64_t, std::string>> order;
    int64_t next = 0;
  };

  const int64_t window_;
  std::unique_ptr<Recent> recent_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_RECENT_ADVANCES_H_
