// The SQLite Store: one file in WAL mode, written through the CommitQueue
// (one BEGIN IMMEDIATE ... COMMIT per group, with a savepoint per batch of
// several ops).
// synchronous=FULL makes every acknowledged batch survive kill -9 and power
// loss. The whole contract is store.h's.
#ifndef ANNEAL_SERVER_STORE_SQLITE_SQLITE_STORE_H_
#define ANNEAL_SERVER_STORE_SQLITE_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "anneal/server/store/commit_queue.h"
#include "anneal/server/store/store.h"

namespace anneal {

struct SqliteStoreOptions {
  // CommitQueue::Options::max_group_ops.
  int max_group_ops = 4096;
  // How long a write waits for a lock held by another connection (for
  // example an operator's sqlite3 shell) before the group fails UNAVAILABLE.
  int busy_timeout_ms = 5000;
  // The write connection's page cache. Every Advance touches its schedule's
  // counters row and a slot of its dedup window; with SQLite's default 2 MiB
  // those pages are re-read from the file on every commit once the database
  // outgrows it.
  int cache_mib = 64;
};

class SqliteStore : public QueuedStore {
 public:
  // Opens (creating if missing) the store at `path`, migrates its schema and
  // commits a probe write. Fails (FAILED_PRECONDITION, naming the path) if
  // the file or its directory cannot be written, if the file was written by
  // a newer schema version than this build knows, or is not a SQLite
  // database.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& path, const SqliteStoreOptions& options = {});

 protected:
  using QueuedStore::QueuedStore;
};

// The schema version this build creates and understands (PRAGMA
// user_version).
inline constexpr int kSqliteSchemaVersion = 3;

// Open() for callers that only need the Store interface.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const std::string& path, const SqliteStoreOptions& options = {});

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_SQLITE_SQLITE_STORE_H_
