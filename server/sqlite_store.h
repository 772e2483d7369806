// The SQLite Store: one file, WAL mode, one writer thread doing group
// commit (leveldb's DBImpl::Write is the model).
//
// Submit() only queues. The writer thread takes everything queued (up to
// max_group_ops), applies it in one BEGIN IMMEDIATE ... COMMIT and then runs
// the `done` callbacks in submission order, so N concurrent writers pay for
// one fsync instead of N. synchronous=FULL makes every acknowledged batch
// survive kill -9 and power loss.
#ifndef ANNEAL_SERVER_SQLITE_STORE_H_
#define ANNEAL_SERVER_SQLITE_STORE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "server/store.h"

namespace anneal {

struct SqliteStoreOptions {
  // Upper bound on the ops applied in one transaction. A group always takes
  // at least one batch, however large; the cap bounds how long the batches
  // queued behind a big group wait for their own commit.
  int max_group_ops = 4096;
  // How long a write waits for a lock held by another connection (for
  // example an operator's sqlite3 shell) before the group fails UNAVAILABLE.
  int busy_timeout_ms = 5000;
};

// Counters for metrics, cumulative since Open. They show the grouping:
// batches / commits is the mean group size.
struct StoreStats {
  int64_t commits = 0;         // transactions committed (one fsync each)
  int64_t batches = 0;         // non-empty batches they made durable
  int64_t ops = 0;             // ops in those batches
  int64_t failed_commits = 0;  // groups rolled back (every batch got the error)
  int64_t largest_group = 0;   // most batches in one commit
};

// Semantics beyond store.h, shared with the in-memory store:
// - Each batch is atomic. An Advance on a schedule that does not exist fails
//   its batch with NOT_FOUND, and a Put whose record does not parse with
//   INVALID_ARGUMENT; neither affects the other batches of the group. A
//   SQLite error (disk full, I/O, lock timeout) rolls back the whole group
//   and every batch in it gets that error.
// - A Report whose step falls below the newest `keep` steps is pruned at
//   once (it is older than every step kept).
// - Served on a missing schedule is a no-op: it is a lazy hint that may race
//   with a Delete.
// - An Advance with an empty request_id moves the position but is not
//   remembered (there is nothing to deduplicate on). Re-using a request_id
//   replaces the older record, which then counts as the newest.
// - Flush() returns the status of the commit that carried its marker; the
//   errors of earlier batches went to their own `done`.
// - `done` must not call Flush() or destroy the store (it runs on the
//   writer thread, which both wait for); it may call Submit(). Other threads
//   must not call Submit() once destruction has begun.
class SqliteStore : public Store {
 public:
  // Opens (creating if missing) the store at `path` and migrates its schema.
  // Fails if the file was written by a newer schema version than this build
  // knows, or is not a SQLite database.
  static absl::StatusOr<std::unique_ptr<SqliteStore>> Open(
      const std::string& path, const SqliteStoreOptions& options = {});

  virtual StoreStats stats() const = 0;
};

// The schema version this build creates and understands (PRAGMA
// user_version).
inline constexpr int kSqliteSchemaVersion = 2;

// Open() for callers that only need the Store interface.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const std::string& path, const SqliteStoreOptions& options = {});

}  // namespace anneal

#endif  // ANNEAL_SERVER_SQLITE_STORE_H_
