// SqliteStore: the SQLite implementation of Store (see sqlite_store.h).
//
// Threads: the CommitQueue's thread owns the write connection and its
// prepared statements (Writer, the queue's backend). LoadAll uses a second
// connection (Reader) under its own mutex; in WAL mode it (and ReadReports)
// reads the last committed state without blocking the writer or being
// blocked by it, so LoadAll may be called at any time. Open() runs the
// migrations and a probe write on the write connection before the queue
// starts.
#include "anneal/server/store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/store/commit_queue.h"

namespace anneal {
namespace {

// Migration i takes the schema from user_version i to i + 1. Append only:
// a migration that has shipped is never edited.
constexpr const char* kMigrations[] = {
    // 1: the initial schema.
    //
    // position and max_step_served are columns so that Advance and Served
    // update a few bytes instead of rewriting the record; they override the
    // copies inside `record`. advance_seq counts the advances remembered for
    // the schedule and numbers them: pruning the dedup window is then a range
    // delete, and the order is the order they were applied in.
    R"sql(
CREATE TABLE schedules(
  name TEXT PRIMARY KEY,
  record BLOB NOT NULL,
  position INTEGER NOT NULL,
  max_step_served INTEGER NOT NULL,
  advance_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE advances(
  name TEXT NOT NULL,
  seq INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  response BLOB NOT NULL,
  PRIMARY KEY(name, seq),
  UNIQUE(name, request_id)
) WITHOUT ROWID;
)sql",
    // 2: metric reports. One row per reported step, the merged
    // v1::MetricReport as a blob (a REAL column would turn a reported NaN
    // into NULL). report_count counts a schedule's rows, so pruning to the
    // newest steps needs no COUNT(*) per report.
    R"sql(
ALTER TABLE schedules ADD COLUMN report_count INTEGER NOT NULL DEFAULT 0;
CREATE TABLE reports(
  name TEXT NOT NULL,
  step INTEGER NOT NULL,
  record BLOB NOT NULL,
  PRIMARY KEY(name, step)
) WITHOUT ROWID;
)sql",
    // 3: an Advance writes two narrow rows instead of a wide one and three
    // index entries. `counters` holds what changes per Advance and per
    // report: advances (every advance since creation), the position after
    // the last one, remembered (the advances with a request id) and reports
    // (the schedule's report rows). A schedule's position is
    // counters.position if counters.advances is above schedules.advance_seq,
    // which a Put sets to counters.advances (its record holds the position
    // then); else schedules.position. `advance_ring` keeps the last 1024
    // (kAdvanceDedupWindow) remembered advances in slots: remembered advance
    // number n (from 1) lives in slot (n - 1) % 1024, so an advance replaces
    // its slot instead of inserting and pruning. schedules.report_count is
    // no longer used.
    R"sql(
CREATE TABLE counters(
  name TEXT PRIMARY KEY,
  advances INTEGER NOT NULL DEFAULT 0,
  position INTEGER NOT NULL DEFAULT 0,
  remembered INTEGER NOT NULL DEFAULT 0,
  reports INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
INSERT INTO counters(name, advances, position, remembered, reports)
  SELECT name, advance_seq, position, advance_seq, report_count
  FROM schedules;
CREATE TABLE advance_ring(
  name TEXT NOT NULL,
  slot INTEGER NOT NULL,
  number INTEGER NOT NULL,
  request_id TEXT NOT NULL,
  position INTEGER NOT NULL,
  response BLOB NOT NULL,
  PRIMARY KEY(name, slot)
) WITHOUT ROWID;
INSERT INTO advance_ring(name, slot, number, request_id, position, response)
  SELECT name, (seq - 1) % 1024, seq, request_id, position, response
  FROM advances;
DROP TABLE advances;
)sql",
};
static_assert(kAdvanceDedupWindow == 1024,
              "migration 3 and the advance statements spell the window");
static_assert(sizeof(kMigrations) / sizeof(kMigrations[0]) ==
                  kSqliteSchemaVersion,
              "kSqliteSchemaVersion must be the number of migrations");

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
using Db = std::unique_ptr<sqlite3, DbCloser>;

struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Maps a SQLite result code to the closest canonical code; the message keeps
// SQLite's own text, which names the failing call.
absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  std::string message =
      absl::StrCat(what, ": ", db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::UnavailableError(message);
    case SQLITE_FULL:
      return absl::ResourceExhaustedError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return absl::FailedPreconditionError(message);
    default:
      return absl::InternalError(message);
  }
}

absl::Status Exec(sqlite3* db, const char* sql, absl::string_view what) {
  int rc = sqlite3_exec(db, sql, nullptr, nullptr, nullptr);
  return rc == SQLITE_OK ? absl::OkStatus() : SqliteError(db, rc, what);
}

absl::StatusOr<Stmt> Prepare(sqlite3* db, const char* sql) {
  sqlite3_stmt* raw = nullptr;
  // PERSISTENT: these statements live as long as the connection.
  int rc =
      sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db, rc, sql);
  return Stmt(raw);
}

// Resets a cached statement when it goes out of scope: a statement left
// mid-step would keep its transaction (and the WAL snapshot) open.
class ResetOnExit {
 public:
  explicit ResetOnExit(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ResetOnExit(const ResetOnExit&) = delete;
  ResetOnExit& operator=(const ResetOnExit&) = delete;
  ~ResetOnExit() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

 private:
  sqlite3_stmt* stmt_;
};

void BindText(sqlite3_stmt* stmt, int index, absl::string_view text) {
  // SQLITE_STATIC: the caller's string outlives the step.
  sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()),
                    SQLITE_STATIC);
}

void BindBlob(sqlite3_stmt* stmt, int index, absl::string_view blob) {
  // A null pointer would bind NULL; a zero-length blob needs a valid one.
  sqlite3_bind_blob(stmt, index, blob.empty() ? "" : blob.data(),
                    static_cast<int>(blob.size()), SQLITE_STATIC);
}

std::string ColumnString(sqlite3_stmt* stmt, int column) {
  const void* data = sqlite3_column_blob(stmt, column);
  int size = sqlite3_column_bytes(stmt, column);
  return data ? std::string(static_cast<const char*>(data), size)
              : std::string();
}

// Runs a statement expected to produce no rows.
absl::Status StepDone(sqlite3* db, sqlite3_stmt* stmt) {
  int rc = sqlite3_step(stmt);
  return rc == SQLITE_DONE ? absl::OkStatus()
                           : SqliteError(db, rc, sqlite3_sql(stmt));
}

// Reads a single-integer pragma such as user_version.
absl::StatusOr<int64_t> QueryInt(sqlite3* db, const char* sql) {
  absl::StatusOr<Stmt> stmt = Prepare(db, sql);
  if (!stmt.ok()) return stmt.status();
  int rc = sqlite3_step(stmt->get());
  if (rc != SQLITE_ROW) return SqliteError(db, rc, sql);
  return sqlite3_column_int64(stmt->get(), 0);
}

absl::StatusOr<Db> OpenConnection(const std::string& path, int flags,
                                  const SqliteStoreOptions& options) {
  sqlite3* raw = nullptr;
  // NOMUTEX: each connection is used by one thread at a time (the writer
  // thread, or LoadAll under Reader's mutex), so SQLite's own locking is
  // redundant.
  int rc =
      sqlite3_open_v2(path.c_str(), &raw, flags | SQLITE_OPEN_NOMUTEX, nullptr);
  Db db(raw);  // a failed open still allocates a handle
  if (rc != SQLITE_OK) {
    return SqliteError(raw, rc, absl::StrCat("opening ", path));
  }
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  return db;
}

absl::Status NewerSchemaError(const std::string& path, int64_t version) {
  return absl::FailedPreconditionError(
      absl::StrCat(path, ": schema version ", version,
                   " is newer than this build supports (version ",
                   kSqliteSchemaVersion, "); run a newer anneal-server"));
}

// Brings the schema to kSqliteSchemaVersion, one transaction per migration
// so a crash leaves a consistent version behind.
absl::Status Migrate(sqlite3* db, const std::string& path) {
  for (;;) {
    if (absl::Status s = Exec(db, "BEGIN IMMEDIATE", path); !s.ok()) return s;
    // Read inside the write transaction: another process may have migrated
    // since we looked.
    absl::StatusOr<int64_t> version = QueryInt(db, "PRAGMA user_version");
    absl::Status s = version.status();
    if (s.ok() && *version > kSqliteSchemaVersion) {
      s = NewerSchemaError(path, *version);
    }
    if (!s.ok() || *version == kSqliteSchemaVersion) {
      Exec(db, "ROLLBACK", path).IgnoreError();
      return s;
    }
    s = Exec(db, kMigrations[*version],
             absl::StrCat(path, ": migration ", *version + 1));
    if (s.ok()) {
      // PRAGMA takes no parameters, hence the formatting.
      s = Exec(db, absl::StrCat("PRAGMA user_version = ", *version + 1).c_str(),
               path);
    }
    if (s.ok()) s = Exec(db, "COMMIT", path);
    if (!s.ok()) {
      Exec(db, "ROLLBACK", path).IgnoreError();
      return s;
    }
  }
}

// The write connection and its cached statements. Used only by the queue's
// thread (after Open hands it over), so it needs no lock.
class Writer final : public CommitQueue::Backend {
 public:
  static absl::StatusOr<std::unique_ptr<Writer>> Create(Db db,
                                                        std::string path) {
    std::unique_ptr<Writer> owned(new Writer);
    Writer& w = *owned;
    sqlite3* raw = db.get();
    w.db_ = std::move(db);
    w.path_ = std::move(path);
    struct {
      Stmt* stmt;
      const char* sql;
    } const statements[] = {
        {&w.begin_, "BEGIN IMMEDIATE"},
        {&w.commit_, "COMMIT"},
        {&w.savepoint_, "SAVEPOINT batch"},
        {&w.release_, "RELEASE batch"},
        {&w.rollback_to_, "ROLLBACK TO batch"},
        // The counters row first: the Put's record holds the position after
        // every advance counted so far (schema migration 3). An upsert, not
        // INSERT OR REPLACE: the served mark is never lowered by a Put
        // (store.h).
        {&w.put_counters_, "INSERT OR IGNORE INTO counters(name) VALUES(?1)"},
        {&w.put_,
         "INSERT INTO schedules(name, record, position, max_step_served, "
         "advance_seq) VALUES(?1, ?2, ?3, ?4, "
         "(SELECT advances FROM counters WHERE name = ?1)) "
         "ON CONFLICT(name) DO UPDATE SET "
         "record = excluded.record, position = excluded.position, "
         "max_step_served = MAX(max_step_served, excluded.max_step_served), "
         "advance_seq = excluded.advance_seq"},
        {&w.delete_schedule_, "DELETE FROM schedules WHERE name = ?1"},
        {&w.delete_counters_, "DELETE FROM counters WHERE name = ?1"},
        {&w.delete_advances_, "DELETE FROM advance_ring WHERE name = ?1"},
        // RETURNING needs SQLite 3.35 (Debian 12 has 3.40). No row: the
        // schedule is not stored, and nothing was written.
        {&w.advance_,
         "UPDATE counters SET advances = advances + 1, position = ?2, "
         "remembered = remembered + ?3 WHERE name = ?1 RETURNING remembered"},
        {&w.remember_advance_,
         "INSERT OR REPLACE INTO advance_ring(name, slot, number, request_id, "
         "position, response) VALUES(?1, (?2 - 1) % 1024, ?2, ?3, ?4, ?5)"},
        {&w.served_,
         "UPDATE schedules SET max_step_served = MAX(max_step_served, ?2) "
         "WHERE name = ?1"},
        {&w.reset_served_,
         "UPDATE schedules SET max_step_served = ?2 WHERE name = ?1"},
        {&w.probe_, "PRAGMA user_version = 0"},  // re-prepared below
        {&w.delete_reports_, "DELETE FROM reports WHERE name = ?1"},
        {&w.read_report_,
         "SELECT record FROM reports WHERE name = ?1 AND step = ?2"},
        {&w.count_report_,
         "UPDATE counters SET reports = reports + ?2 "
         "WHERE name = ?1 RETURNING reports"},
        {&w.put_report_,
         "INSERT OR REPLACE INTO reports(name, step, record) "
         "VALUES(?1, ?2, ?3)"},
        {&w.prune_reports_,
         "DELETE FROM reports WHERE name = ?1 AND step IN (SELECT step FROM "
         "reports WHERE name = ?1 ORDER BY step LIMIT ?2)"},
        {&w.set_report_count_,
         "UPDATE counters SET reports = ?2 WHERE name = ?1"},
    };
    for (const auto& [stmt, sql] : statements) {
      absl::StatusOr<Stmt> prepared = Prepare(raw, sql);
      if (!prepared.ok()) return prepared.status();
      *stmt = *std::move(prepared);
    }
    // The probe rewrites the schema version with its own value: a real
    // write (a WAL frame and an fsync) that changes nothing.
    absl::StatusOr<Stmt> probe = Prepare(
        raw,
        absl::StrCat("PRAGMA user_version = ", kSqliteSchemaVersion).c_str());
    if (!probe.ok()) return probe.status();
    w.probe_ = *std::move(probe);
    return owned;
  }

  absl::Status Commit(absl::Span<const WriteBatch* const> group,
                      absl::Span<absl::Status> results) override {
    absl::Status s = Step(begin_.get());
    for (size_t i = 0; s.ok() && i < group.size(); ++i) {
      if (group[i]->empty()) continue;
      // An op that rejects its batch does so before it writes anything, so
      // a batch of one op needs no savepoint to be undone (most batches:
      // an Advance, a report, a served mark).
      if (group[i]->ops().size() == 1) {
        s = ApplyBatch(*group[i], &results[i]);
        continue;
      }
      s = Step(savepoint_.get());
      if (s.ok()) s = ApplyBatch(*group[i], &results[i]);
      if (s.ok() && !results[i].ok()) s = Step(rollback_to_.get());
      if (s.ok()) s = Step(release_.get());
    }
    if (s.ok()) s = Step(commit_.get());
    return Finish(s);
  }

  absl::Status Probe() override {
    absl::Status s = Step(begin_.get());
    if (s.ok()) s = Step(probe_.get());
    if (s.ok()) s = Step(commit_.get());
    s = Finish(s);
    if (s.ok()) return s;
    return absl::Status(s.code(), absl::StrCat(path_, ": ", s.message()));
  }

 private:
  Writer() = default;

  // Leaves no transaction open after a failure.
  absl::Status Finish(absl::Status s) {
    if (!s.ok() && !sqlite3_get_autocommit(db_.get())) {
      // Some errors (I/O, disk full) have already rolled back; otherwise we
      // must, so that nothing of the group is committed by a later COMMIT.
      Exec(db_.get(), "ROLLBACK", "rollback").IgnoreError();
    }
    return s;
  }

  absl::Status Step(sqlite3_stmt* stmt) {
    ResetOnExit reset(stmt);
    return StepDone(db_.get(), stmt);
  }

  // Returns SQLite failures (which abort the group); the batch's own
  // outcome goes to *batch_status.
  absl::Status ApplyBatch(const WriteBatch& batch, absl::Status* batch_status) {
    for (const WriteBatch::Op& op : batch.ops()) {
      absl::Status s;
      switch (op.kind) {
        case WriteBatch::Kind::kPut:
          s = Put(op, batch_status);
          break;
        case WriteBatch::Kind::kDelete:
          s = Delete(op);
          break;
        case WriteBatch::Kind::kAdvance:
          s = Advance(op, batch_status);
          break;
        case WriteBatch::Kind::kServed:
          s = Served(op, served_.get());
          break;
        case WriteBatch::Kind::kResetServed:
          s = Served(op, reset_served_.get());
          break;
        case WriteBatch::Kind::kReport:
          s = Report(op, batch_status);
          break;
      }
      if (!s.ok() || !batch_status->ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Put(const WriteBatch::Op& op, absl::Status* batch_status) {
    // Parsed for its position and max_step_served, and so that a record
    // LoadAll would reject is never written.
    v1::Schedule schedule;
    if (!schedule.ParseFromString(op.record) || schedule.name() != op.name) {
      *batch_status = absl::InvalidArgumentError(
          absl::StrCat(op.name, ": Put with a malformed record"));
      return absl::OkStatus();
    }
    {
      sqlite3_stmt* stmt = put_counters_.get();
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      if (absl::Status s = StepDone(db_.get(), stmt); !s.ok()) return s;
    }
    sqlite3_stmt* stmt = put_.get();
    ResetOnExit reset(stmt);
    BindText(stmt, 1, op.name);
    BindBlob(stmt, 2, op.record);
    sqlite3_bind_int64(stmt, 3, schedule.position());
    sqlite3_bind_int64(stmt, 4, schedule.max_step_served());
    return StepDone(db_.get(), stmt);
  }

  absl::Status Delete(const WriteBatch::Op& op) {
    for (sqlite3_stmt* stmt : {delete_schedule_.get(), delete_counters_.get(),
                               delete_advances_.get(), delete_reports_.get()}) {
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      if (absl::Status s = StepDone(db_.get(), stmt); !s.ok()) return s;
    }
    return absl::OkStatus();
  }

  absl::Status Advance(const WriteBatch::Op& op, absl::Status* batch_status) {
    const bool remember = !op.advance.request_id.empty();
    int64_t number = 0;  // of this advance among the remembered ones
    {
      sqlite3_stmt* stmt = advance_.get();
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      sqlite3_bind_int64(stmt, 2, op.value);
      sqlite3_bind_int64(stmt, 3, remember ? 1 : 0);
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        *batch_status = absl::NotFoundError(absl::StrCat(
            op.name, ": Advance of a schedule that is not stored"));
        return absl::OkStatus();
      }
      if (rc != SQLITE_ROW) return SqliteError(db_.get(), rc, "Advance");
      number = sqlite3_column_int64(stmt, 0);
      if (absl::Status s = StepDone(db_.get(), stmt); !s.ok()) return s;
    }
    if (!remember) return absl::OkStatus();
    sqlite3_stmt* stmt = remember_advance_.get();
    ResetOnExit reset(stmt);
    BindText(stmt, 1, op.name);
    sqlite3_bind_int64(stmt, 2, number);
    BindText(stmt, 3, op.advance.request_id);
    sqlite3_bind_int64(stmt, 4, op.advance.position);
    BindBlob(stmt, 5, op.advance.response);
    return StepDone(db_.get(), stmt);
  }

  // Served and ResetServed. A missing schedule matches no row: the mark is a
  // hint that may arrive after a Delete, so that is not an error.
  absl::Status Served(const WriteBatch::Op& op, sqlite3_stmt* stmt) {
    ResetOnExit reset(stmt);
    BindText(stmt, 1, op.name);
    sqlite3_bind_int64(stmt, 2, op.value);
    return StepDone(db_.get(), stmt);
  }

  absl::Status Report(const WriteBatch::Op& op, absl::Status* batch_status) {
    v1::MetricReport merged;
    bool existed = false;
    {
      sqlite3_stmt* stmt = read_report_.get();
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      sqlite3_bind_int64(stmt, 2, op.report.step());
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) {
        existed = true;
        if (!merged.ParseFromString(ColumnString(stmt, 0))) {
          return absl::DataLossError(
              absl::StrCat(op.name, ": stored report at step ",
                           op.report.step(), " is corrupt"));
        }
      } else if (rc != SQLITE_DONE) {
        return SqliteError(db_.get(), rc, "Report read");
      }
    }
    if (absl::Status s = MergeReport(op.report, &merged); !s.ok()) {
      *batch_status = s;
      return absl::OkStatus();
    }
    int64_t count = 0;
    {
      sqlite3_stmt* stmt = count_report_.get();
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      sqlite3_bind_int64(stmt, 2, existed ? 0 : 1);
      int rc = sqlite3_step(stmt);
      if (rc == SQLITE_DONE) {
        *batch_status = absl::NotFoundError(absl::StrCat(
            op.name, ": Report for a schedule that is not stored"));
        return absl::OkStatus();
      }
      if (rc != SQLITE_ROW) return SqliteError(db_.get(), rc, "Report");
      count = sqlite3_column_int64(stmt, 0);
      if (absl::Status s = StepDone(db_.get(), stmt); !s.ok()) return s;
    }
    {
      const std::string record = merged.SerializeAsString();
      sqlite3_stmt* stmt = put_report_.get();
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      sqlite3_bind_int64(stmt, 2, op.report.step());
      BindBlob(stmt, 3, record);
      if (absl::Status s = StepDone(db_.get(), stmt); !s.ok()) return s;
    }
    if (count <= op.value) return absl::OkStatus();
    {
      sqlite3_stmt* stmt = prune_reports_.get();
      ResetOnExit reset(stmt);
      BindText(stmt, 1, op.name);
      sqlite3_bind_int64(stmt, 2, count - op.value);
      if (absl::Status s = StepDone(db_.get(), stmt); !s.ok()) return s;
    }
    sqlite3_stmt* stmt = set_report_count_.get();
    ResetOnExit reset(stmt);
    BindText(stmt, 1, op.name);
    sqlite3_bind_int64(stmt, 2, op.value);
    return StepDone(db_.get(), stmt);
  }

  // Declared first so that it is closed after the statements are finalized.
  Db db_;
  std::string path_;
  Stmt begin_, commit_, savepoint_, release_, rollback_to_, probe_;
  Stmt put_counters_, put_, delete_schedule_, delete_counters_,
      delete_advances_, advance_, remember_advance_, served_, reset_served_;
  Stmt delete_reports_, read_report_, count_report_, put_report_,
      prune_reports_, set_report_count_;
};

// The read connection behind LoadAll and ReadReports.
class Reader {
 public:
  static absl::StatusOr<std::unique_ptr<Reader>> Create(Db db) {
    auto r = std::unique_ptr<Reader>(new Reader);
    absl::MutexLock lock(&r->mu_);
    sqlite3* raw = db.get();
    r->db_ = std::move(db);
    for (auto [stmt, sql] : {
             std::pair{&r->begin_, "BEGIN"},
             std::pair{&r->end_, "ROLLBACK"},
             // The position as schema migration 3 describes.
             std::pair{&r->schedules_,
                       "SELECT s.name, s.record, "
                       "CASE WHEN c.advances > s.advance_seq THEN c.position "
                       "ELSE s.position END, s.max_step_served, "
                       // One index seek per schedule for its newest report.
                       "(SELECT record FROM reports r WHERE r.name = s.name "
                       "ORDER BY r.step DESC LIMIT 1) "
                       "FROM schedules s LEFT JOIN counters c USING(name) "
                       "ORDER BY s.name"},
             std::pair{&r->advances_,
                       "SELECT name, number, request_id, position, response "
                       "FROM advance_ring ORDER BY name, slot"},
             std::pair{&r->reports_,
                       "SELECT record FROM reports WHERE name = ?1 AND "
                       "step >= ?2 AND step < ?3 ORDER BY step LIMIT ?4"},
         }) {
      absl::StatusOr<Stmt> prepared = Prepare(raw, sql);
      if (!prepared.ok()) return prepared.status();
      *stmt = *std::move(prepared);
    }
    return r;
  }

  absl::StatusOr<std::vector<v1::MetricReport>> ReadReports(
      const std::string& name, int64_t from, int64_t to, int limit) {
    absl::MutexLock lock(&mu_);
    // One statement: its own read transaction, so one commit's state.
    sqlite3_stmt* stmt = reports_.get();
    ResetOnExit reset(stmt);
    BindText(stmt, 1, name);
    sqlite3_bind_int64(stmt, 2, from);
    sqlite3_bind_int64(stmt, 3, to);
    sqlite3_bind_int64(stmt, 4, limit);
    std::vector<v1::MetricReport> out;
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      if (!out.emplace_back().ParseFromString(ColumnString(stmt, 0))) {
        return absl::DataLossError(
            absl::StrCat(name, ": a stored report is corrupt"));
      }
    }
    if (rc != SQLITE_DONE) return SqliteError(db_.get(), rc, "ReadReports");
    return out;
  }

  absl::StatusOr<std::vector<StoredSchedule>> LoadAll() {
    absl::MutexLock lock(&mu_);
    sqlite3* db = db_.get();
    // One read transaction, so both queries see the same commit.
    {
      ResetOnExit reset(begin_.get());
      if (absl::Status s = StepDone(db, begin_.get()); !s.ok()) return s;
    }
    absl::StatusOr<std::vector<StoredSchedule>> result = Read(db);
    ResetOnExit reset(end_.get());
    StepDone(db, end_.get()).IgnoreError();
    return result;
  }

 private:
  Reader() = default;

  absl::StatusOr<std::vector<StoredSchedule>> Read(sqlite3* db)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<StoredSchedule> out;
    {
      sqlite3_stmt* stmt = schedules_.get();
      ResetOnExit reset(stmt);
      int rc;
      while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        std::string name = ColumnString(stmt, 0);
        StoredSchedule& s = out.emplace_back();
        if (!s.schedule.ParseFromString(ColumnString(stmt, 1)) ||
            s.schedule.name() != name) {
          return absl::DataLossError(
              absl::StrCat(name, ": stored record is corrupt"));
        }
        s.schedule.set_position(sqlite3_column_int64(stmt, 2));
        s.schedule.set_max_step_served(sqlite3_column_int64(stmt, 3));
        if (sqlite3_column_type(stmt, 4) != SQLITE_NULL &&
            !s.last_report.emplace().ParseFromString(ColumnString(stmt, 4))) {
          return absl::DataLossError(
              absl::StrCat(name, ": a stored report is corrupt"));
        }
      }
      if (rc != SQLITE_DONE) return SqliteError(db, rc, "LoadAll schedules");
    }
    // Both queries are ordered by name: merge. An advance whose schedule is
    // gone cannot happen (Delete removes both) and would be skipped. A
    // schedule's ring comes in slot order: sorted by number, it is oldest
    // first; a request id used twice keeps its newer record (store.h).
    sqlite3_stmt* stmt = advances_.get();
    ResetOnExit reset(stmt);
    size_t i = 0;
    std::vector<std::pair<int64_t, AdvanceRecord>> ring;
    auto finish_ring = [&] {
      if (ring.empty()) return;
      std::sort(ring.begin(), ring.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      absl::flat_hash_set<absl::string_view> newer;
      std::vector<bool> keep(ring.size());
      for (size_t k = ring.size(); k-- > 0;) {
        keep[k] = newer.insert(ring[k].second.request_id).second;
      }
      for (size_t k = 0; k < ring.size(); ++k) {
        if (keep[k])
          out[i].recent_advances.push_back(std::move(ring[k].second));
      }
      ring.clear();
    };
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      std::string name = ColumnString(stmt, 0);
      if (i < out.size() && out[i].schedule.name() < name) finish_ring();
      while (i < out.size() && out[i].schedule.name() < name) ++i;
      if (i == out.size()) break;
      if (out[i].schedule.name() != name) continue;
      auto& [number, a] = ring.emplace_back();
      number = sqlite3_column_int64(stmt, 1);
      a.request_id = ColumnString(stmt, 2);
      a.position = sqlite3_column_int64(stmt, 3);
      a.response = ColumnString(stmt, 4);
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
      return SqliteError(db, rc, "LoadAll advances");
    }
    if (i < out.size()) finish_ring();
    return out;
  }

  absl::Mutex mu_;
  Db db_ ABSL_GUARDED_BY(mu_);
  Stmt begin_ ABSL_GUARDED_BY(mu_);
  Stmt end_ ABSL_GUARDED_BY(mu_);
  Stmt schedules_ ABSL_GUARDED_BY(mu_);
  Stmt advances_ ABSL_GUARDED_BY(mu_);
  Stmt reports_ ABSL_GUARDED_BY(mu_);
};

class SqliteStoreImpl final : public SqliteStore {
 public:
  SqliteStoreImpl(const SqliteStoreOptions& options,
                  std::unique_ptr<Writer> writer,
                  std::unique_ptr<Reader> reader)
      : SqliteStore(
            std::move(writer),
            CommitQueue::Options{options.max_group_ops, "anneal-store"}),
        reader_(std::move(reader)) {}

  absl::StatusOr<std::vector<StoredSchedule>> LoadAll() override {
    return reader_->LoadAll();
  }

  absl::StatusOr<std::vector<v1::MetricReport>> ReadReports(
      const std::string& name, int64_t from, int64_t to, int limit) override {
    return reader_->ReadReports(name, from, to, limit);
  }

 private:
  std::unique_ptr<Reader> reader_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<SqliteStore>> SqliteStore::Open(
    const std::string& path, const SqliteStoreOptions& options) {
  absl::StatusOr<Db> write_db =
      OpenConnection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, options);
  if (!write_db.ok()) return write_db.status();
  sqlite3* db = write_db->get();
  if (sqlite3_db_readonly(db, "main") == 1) {
    return absl::FailedPreconditionError(
        absl::StrCat(path,
                     ": the file is read-only (check its permissions "
                     "and the filesystem's mount options)"));
  }

  // Check the version before anything writes to the file (switching to WAL
  // does): a newer server's database is left exactly as it was.
  absl::StatusOr<int64_t> version = QueryInt(db, "PRAGMA user_version");
  if (!version.ok()) {
    return absl::Status(version.status().code(),
                        absl::StrCat(path, ": ", version.status().message()));
  }
  if (*version > kSqliteSchemaVersion) return NewerSchemaError(path, *version);

  // WAL: one fsync per commit (the WAL append), and readers never block
  // the writer. synchronous=FULL: that fsync happens before COMMIT returns,
  // which is what makes an acknowledged batch survive power loss (NORMAL
  // would only survive a process crash). Both are per connection except
  // journal_mode, which is persistent.
  absl::StatusOr<Stmt> wal = Prepare(db, "PRAGMA journal_mode = WAL");
  if (!wal.ok()) return wal.status();
  int rc = sqlite3_step(wal->get());
  if (rc != SQLITE_ROW) return SqliteError(db, rc, path);
  std::string mode = ColumnString(wal->get(), 0);
  wal->reset();
  if (mode != "wal") {
    return absl::FailedPreconditionError(absl::StrCat(
        path, ": cannot switch to WAL mode (journal_mode is ", mode, ")"));
  }
  if (absl::Status s = Exec(db, "PRAGMA synchronous = FULL", path); !s.ok()) {
    return s;
  }
  // PRAGMA takes no parameters, hence the formatting.
  if (absl::Status s = Exec(db,
                            absl::StrCat("PRAGMA cache_size = -",
                                         int64_t{options.cache_mib} * 1024)
                                .c_str(),
                            path);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Migrate(db, path); !s.ok()) return s;

  absl::StatusOr<std::unique_ptr<Writer>> writer =
      Writer::Create(*std::move(write_db), path);
  if (!writer.ok()) return writer.status();
  // Commit a real write now: a file or directory that cannot be written
  // fails at start, not at the first acknowledged write.
  if (absl::Status s = (*writer)->Probe(); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot write: ", s.message(),
        " (check the permissions of the file and its directory, and the "
        "free space)"));
  }

  absl::StatusOr<Db> read_db =
      OpenConnection(path, SQLITE_OPEN_READWRITE, options);
  if (!read_db.ok()) return read_db.status();
  // Read-write with query_only rather than SQLITE_OPEN_READONLY: a read-only
  // open of a WAL database needs its -shm file to be usable read-only,
  // which query_only avoids while still refusing writes.
  if (absl::Status s = Exec(read_db->get(), "PRAGMA query_only = 1", path);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<std::unique_ptr<Reader>> reader =
      Reader::Create(*std::move(read_db));
  if (!reader.ok()) return reader.status();

  return std::unique_ptr<SqliteStore>(
      new SqliteStoreImpl(options, *std::move(writer), *std::move(reader)));
}

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(
    const std::string& path, const SqliteStoreOptions& options) {
  absl::StatusOr<std::unique_ptr<SqliteStore>> store =
      SqliteStore::Open(path, options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

}  // namespace anneal
