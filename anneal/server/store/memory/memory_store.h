// The in-memory Store: store.h's contract without a disk, for tests and
// demos (nothing survives the process). Batches go through the same
// CommitQueue as the SQLite store's, so callers see the same grouping,
// ordering, asynchrony and failed state.
#ifndef ANNEAL_SERVER_STORE_MEMORY_MEMORY_STORE_H_
#define ANNEAL_SERVER_STORE_MEMORY_MEMORY_STORE_H_

#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "anneal/server/store/store.h"

namespace anneal {

struct MemoryStoreOptions {
  // Called before each group is committed; a non-OK status fails the group
  // as a disk error would (for tests of failure and recovery). Also called
  // by Resume's probe.
  std::function<absl::Status()> commit_fault;
};

std::unique_ptr<Store> NewMemoryStore(MemoryStoreOptions options = {});

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_MEMORY_MEMORY_STORE_H_
