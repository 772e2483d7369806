// The registry's side of WatchSchedules: every watcher's queue of events,
// filled by the registry as changes become durable (and as served steps
// cross into a new cycle), drained by the RPC edge's stream.
//
// A watcher first yields its catch-up (CURRENT for each matching schedule
// the caller does not have at its revision, DELETED for those it named that
// are gone, then SYNCED), then live events. Live events of a schedule at a
// revision it already sent are skipped, so nothing is seen twice. A watcher
// that falls more than `max_queue` live events behind is ended with
// RESOURCE_EXHAUSTED (it resumes by reconnecting with its revisions), so a
// slow reader never holds the server or other watchers up. Thread-safe.
#ifndef ANNEAL_SERVER_REGISTRY_WATCH_HUB_H_
#define ANNEAL_SERVER_REGISTRY_WATCH_HUB_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/registry/list_filter.h"
#include "anneal/v1/service.pb.h"

namespace anneal {

class WatchHub {
 public:
  using Labels = google::protobuf::Map<std::string, std::string>;

  class Watcher {
   public:
    // The next event, or nullopt if none is ready (`wake` runs when one
    // is). Catch-up events are built by `current` when popped.
    std::optional<v1::WatchEvent> Pop();
    // Set once the watcher is ended (overflow, shutdown): the stream's
    // final status, after the events already popped.
    std::optional<absl::Status> ended() const;
    // Begins the catch-up over `existing`, the names that match now (listed
    // after Add, so that nothing created in between is missed); until then
    // Pop() yields nothing.
    void Start(std::vector<std::string> existing);

   private:
    friend class WatchHub;
    // Whether a live event of `name` with `labels` is this watcher's.
    bool Wants(const std::string& name, const Labels* labels) const
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
    // For a change to a schedule this filter watcher knows that no longer
    // matches it: the DELETED to send instead.
    std::optional<v1::WatchEvent> Left(const v1::WatchEvent& event,
                                       const Labels* labels)
        ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

    mutable absl::Mutex mu_;
    absl::flat_hash_set<std::string> names_;  // empty: by filter
    LabelFilter filter_;
    bool include_reports_ = false;
    // The catch-up: names to send CURRENT (or DELETED) for, then SYNCED.
    std::deque<std::string> catch_up_ ABSL_GUARDED_BY(mu_);
    // The same names, for Wants().
    absl::flat_hash_set<std::string> catching_up_ ABSL_GUARDED_BY(mu_);
    bool started_ ABSL_GUARDED_BY(mu_) = false;
    bool synced_ ABSL_GUARDED_BY(mu_) = false;
    std::function<std::optional<v1::WatchEvent>(const std::string&)> current_;
    absl::flat_hash_map<std::string, int64_t> since_ ABSL_GUARDED_BY(mu_);
    std::deque<v1::WatchEvent> live_ ABSL_GUARDED_BY(mu_);
    // The revision last sent per schedule (what it knows).
    absl::flat_hash_map<std::string, int64_t> sent_ ABSL_GUARDED_BY(mu_);
    // A filter watcher's schedules as of its queue's end: shown or queued,
    // and not deleted or left since.
    absl::flat_hash_set<std::string> members_ ABSL_GUARDED_BY(mu_);
    std::optional<absl::Status> ended_ ABSL_GUARDED_BY(mu_);
    size_t max_queue_ = 0;
    std::function<void()> wake_;
  };

  struct Options {
    int64_t max_watchers = 256;
    int64_t max_queue = 1024;
  };
  explicit WatchHub(Options options) : options_(options) {}

  // A watcher for `request`, receiving live events from now on; its
  // catch-up begins with Watcher::Start. `current(name)` builds a CURRENT
  // event (nullopt if the schedule is gone by then). `wake` runs, on any
  // thread and without locks held, whenever Pop() may return something new.
  // RESOURCE_EXHAUSTED past max_watchers; INVALID_ARGUMENT for a bad filter.
  absl::StatusOr<std::shared_ptr<Watcher>> Add(
      const v1::WatchSchedulesRequest& request,
      std::function<std::optional<v1::WatchEvent>(const std::string&)> current,
      std::function<void()> wake);
  // Whether `labels` match `request`'s names or filter (for listing the
  // catch-up); the filter must have parsed.
  static bool Matches(const v1::WatchSchedulesRequest& request,
                      const std::string& name, const LabelFilter& filter,
                      const Labels& labels);
  void Remove(const std::shared_ptr<Watcher>& watcher);

  // Hands `event` to every watcher that wants it; `labels` are the
  // schedule's (null for DELETED: it goes to watchers that know the name).
  void Publish(const v1::WatchEvent& event, const Labels* labels);
  // True while someone watches (a cheap check before building an event).
  bool watched() const { return count_.load(std::memory_order_relaxed) > 0; }
  // Ends every watcher with `status` (shutdown).
  void EndAll(const absl::Status& status);

 private:
  const Options options_;
  std::atomic<int64_t> count_{0};
  mutable absl::Mutex mu_;
  std::list<std::shared_ptr<Watcher>> watchers_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_WATCH_HUB_H_
