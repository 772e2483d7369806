// Internal to the registry: one schedule's writer-side head state and its
// published snapshot. Shared by registry.cc (reads) and registry_writes.cc.
#ifndef ANNEAL_SERVER_REGISTRY_ENTRY_H_
#define ANNEAL_SERVER_REGISTRY_ENTRY_H_

#include <atomic>
#include <deque>
#include <limits>
#include <memory>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "server/registry.h"

namespace anneal {

struct Registry::Entry {
  explicit Entry(std::string n) : name(std::move(n)) {}

  const std::string name;

  // Serializes writers of this schedule. Held while a writer derives the new
  // head and submits its batch, never while waiting for the disk.
  absl::Mutex mu;
  // The latest accepted state: what the next write builds on. It may be
  // ahead of `published` by writes that are not durable yet.
  v1::Schedule head ABSL_GUARDED_BY(mu);
  std::shared_ptr<const Timeline> head_timeline ABSL_GUARDED_BY(mu);
  bool deleted ABSL_GUARDED_BY(mu) = false;
  // request_id -> serialized AdvanceResponse, the last kAdvanceDedupWindow.
  absl::flat_hash_map<std::string, std::string> advances ABSL_GUARDED_BY(mu);
  std::deque<std::string> advance_order ABSL_GUARDED_BY(mu);

  // The durable state readers see; null until created, and after deletion.
  // Accessed with std::atomic_load / std::atomic_store only.
  std::shared_ptr<const Snapshot> published;

  // Largest step served by reads (-1: none), and the value last persisted.
  std::atomic<int64_t> max_served{-1};
  std::atomic<int64_t> persisted_served{-1};

  // The fence that keeps a served LR from being rewritten by a timeline
  // change that is accepted but not yet durable: the smallest from_step of
  // the pending changes (kNoFence when none). A reader that serves a step at
  // or past it waits for the publish and evaluates again (see Registry).
  static constexpr int64_t kNoFence = std::numeric_limits<int64_t>::max();
  std::atomic<int64_t> fence_from{kNoFence};
  absl::Mutex fence_mu;
  int pending_changes ABSL_GUARDED_BY(fence_mu) = 0;
  int64_t pending_min ABSL_GUARDED_BY(fence_mu) = kNoFence;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_ENTRY_H_
