// Internal to the registry: one schedule's writer-side head, its published
// snapshot, its served marks and its fence. Shared by the registry's files.
#ifndef ANNEAL_SERVER_REGISTRY_REGISTRY_ENTRY_H_
#define ANNEAL_SERVER_REGISTRY_REGISTRY_ENTRY_H_

#include <atomic>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "anneal/server/registry/fence.h"
#include "anneal/server/registry/last_reported.h"
#include "anneal/server/registry/recent_advances.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/served_mark.h"
#include "google/protobuf/util/time_util.h"

namespace anneal {

// The time stamped on changes and reports.
inline google::protobuf::Timestamp NowTimestamp() {
  return google::protobuf::util::TimeUtil::NanosecondsToTimestamp(
      absl::ToUnixNanos(absl::Now()));
}

struct Registry::Entry {
  Entry(std::string n, int64_t durable_mark)
      : name(std::move(n)),
        max_served(durable_mark),
        mark(this->name, durable_mark) {}

  const std::string name;

  // Serializes writers of this schedule. Held while a writer derives the new
  // head and submits its batch, never while waiting for the disk.
  absl::Mutex mu;
  // The latest accepted state: what the next write builds on, and what is
  // published once that write is durable. It may be ahead of `published` by
  // writes that are not durable yet. Never null once the create is queued.
  std::shared_ptr<const Snapshot> head ABSL_GUARDED_BY(mu);
  bool deleted ABSL_GUARDED_BY(mu) = false;
  // Set while a rewind replaces this entry with its new lineage's, and for
  // good once it has: writes that reach it are ABORTED (retry).
  bool rewound ABSL_GUARDED_BY(mu) = false;

  // OK while writes may build on the head: NOT_FOUND once deleted, ABORTED
  // while a rewind replaces the entry (the retry finds the new lineage's).
  absl::Status CheckLive() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (deleted) return absl::NotFoundError(absl::StrCat(name, ": not found"));
    if (rewound) {
      return absl::AbortedError(absl::StrCat(
          name, ": was rewound while this change was made; retry"));
    }
    return absl::OkStatus();
  }
  // The serialized AdvanceResponses of the last Advance calls with an id.
  RecentAdvances advances ABSL_GUARDED_BY(mu){kAdvanceDedupWindow};

  // The durable state readers see; null until created, and after deletion.
  // Accessed with std::atomic_load / std::atomic_store only.
  std::shared_ptr<const Snapshot> published;

  // The largest step served (-1: none), exact while the server runs; after
  // a restart it starts from the durable mark.
  std::atomic<int64_t> max_served;
  // When max_served last rose (absl::ToUnixNanos), 0 if not since start.
  std::atomic<int64_t> progressed_nanos{0};
  // The durable served mark (served_mark.h).
  ServedMark mark;
  // Pending timeline changes (fence.h).
  Fence fence;
  // The last reported values, for the exporter (last_reported.h).
  LastReported reported;
};

// The lineage a job's request presents (Evaluate, EvaluateRange, Advance,
// ReportMetrics), if any.
template <typename Request>
std::optional<int64_t> LineageOf(const Request& r) {
  if (!r.has_lineage()) return std::nullopt;
  return r.lineage();
}

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_REGISTRY_ENTRY_H_
