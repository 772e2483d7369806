// The persistence seam of the server (leveldb's `DB` is the model).
//
// A Store keeps schedule records durably. Mutations are submitted as
// batches and acknowledged asynchronously: `done` runs once the batch is
// durable, so an RPC is answered only after its write survives kill -9.
// The interface knows nothing of SQL, so a networked backend (PostgreSQL)
// can implement it; every backend commits through the one CommitQueue
// (commit_queue.h) and passes the one conformance suite
// (anneal/server/store/testing/store_test_suite.h).
//
// The contract, for every backend:
// - Batches become durable in submission order, and `done` callbacks run in
//   that order on the store's own thread. Many batches may share one
//   transaction (one fsync): group commit.
// - Each batch is atomic. A batch that fails on its own (an Advance or a
//   Report for a schedule that is not stored: NOT_FOUND; a Put whose record
//   does not parse, or a Report that would leave a step with more than
//   kMaxMetricsPerStep metrics: INVALID_ARGUMENT) is rolled back alone.
// - A storage failure (disk full, I/O error, a lock held too long) fails the
//   whole group, and from then on the store is *failed*: every batch queued
//   or submitted later fails with that error without being attempted, so
//   nothing is committed on top of a write that was lost. Resume() ends it.
// - Served is a lazy hint that may race with a Delete: on a missing
//   schedule it is a no-op. The served mark of a record is never lowered by
//   Served or Put, only by ResetServed.
// - An Advance with an empty request_id moves the position but is not
//   remembered (nothing to deduplicate on). Re-using a request_id replaces
//   the older record, which then counts as the newest.
// - A Report whose step falls below the newest `keep` steps is pruned at
//   once (it is older than every step kept).
// - `done` must not call Flush(), Resume() or destroy the store (it runs on
//   the thread those wait for); it may call Submit(). Other threads must not
//   call Submit() once destruction has begun. Destruction commits (or
//   fails) everything queued first.
#ifndef ANNEAL_SERVER_STORE_STORE_H_
#define ANNEAL_SERVER_STORE_STORE_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

// One applied Advance, kept for request_id deduplication.
struct AdvanceRecord {
  std::string request_id;
  int64_t position = 0;  // the position after the advance
  std::string response;  // serialized v1::AdvanceResponse
};

// A schedule as loaded at startup.
struct StoredSchedule {
  // Including position and max_step_served, the durable served mark: at or
  // above every step a reader was answered with.
  v1::Schedule schedule;
  std::vector<AdvanceRecord> recent_advances;  // oldest first
  // The report of the highest reported step, if any (what the exporter
  // shows until the job reports again after a restart).
  std::optional<v1::MetricReport> last_report;
};

// An ordered list of mutations applied atomically.
class WriteBatch {
 public:
  enum class Kind { kPut, kDelete, kAdvance, kServed, kResetServed, kReport };
  struct Op {
    Kind kind = Kind::kPut;
    std::string name;
    std::string record;  // kPut: serialized v1::Schedule
    // kAdvance: new position; kServed, kResetServed: the served mark;
    // kReport: how many reported steps the schedule keeps.
    int64_t value = 0;
    AdvanceRecord advance;    // kAdvance
    v1::MetricReport report;  // kReport
  };

  // Inserts or replaces the whole record (metadata, timeline, counters); the
  // stored served mark becomes the larger of the two.
  void Put(const v1::Schedule& schedule);
  // Removes the schedule, its advance records and its reports.
  void Delete(const std::string& name);
  // Sets the position and remembers the advance for deduplication (the
  // last kAdvanceDedupWindow with a request id; a request id used again
  // replaces its older record).
  void Advance(const std::string& name, AdvanceRecord record);
  // Raises the served mark (max_step_served) to `mark`; never lowers it.
  void Served(const std::string& name, int64_t mark);
  // Sets the served mark to exactly `mark`, lowering it. Only for a clean
  // stop, once no read is in flight: then `mark` is the exact largest step
  // served, while the mark kept durable during the run has headroom.
  void ResetServed(const std::string& name, int64_t mark);
  // Merges `report` into the schedule's report at its step (a metric
  // reported again takes the new value; revision and report_time are the
  // new report's), then drops the lowest steps beyond the newest `keep`.
  void Report(const std::string& name, v1::MetricReport report, int64_t keep);

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }

 private:
  std::vector<Op> ops_;
};

// Counters, cumulative since the store opened. batches / commits is the
// mean group size.
struct StoreStats {
  int64_t commits = 0;         // transactions committed (one fsync each)
  int64_t batches = 0;         // non-empty batches they made durable
  int64_t ops = 0;             // ops in those batches
  int64_t failed_commits = 0;  // groups rolled back (every batch got the error)
  int64_t largest_group = 0;   // most batches in one commit
  int64_t queued = 0;          // batches waiting now
  bool failed = false;         // failed now (see Resume)
};

class Store {
 public:
  using Done = absl::AnyInvocable<void(absl::Status) &&>;

  virtual ~Store() = default;

  // Every stored schedule, ordered by name.
  virtual absl::StatusOr<std::vector<StoredSchedule>> LoadAll() = 0;

  // Up to `limit` of the schedule's reports with step in [from, to), ordered
  // by step; empty for a schedule that is not stored. Sees every batch
  // acknowledged before the call.
  virtual absl::StatusOr<std::vector<v1::MetricReport>> ReadReports(
      const std::string& name, int64_t from, int64_t to, int limit) = 0;

  // Queues `batch`. `done` runs (on the store's own thread) once the batch is
  // durable, or with the error that prevented it.
  virtual void Submit(WriteBatch batch, Done done) = 0;

  // Blocks until every batch submitted before the call has been committed
  // or failed; returns the status of the commit that would have carried an
  // empty batch submitted now (the failure, while failed).
  virtual absl::Status Flush();

  // Fails every batch submitted before the call (while failed), then, if
  // the store is failed, checks that it can commit again (a real write)
  // and, if so, ends the failed state. OK when the store accepts batches
  // again; the probe's error otherwise.
  virtual absl::Status Resume() = 0;

  virtual StoreStats stats() const = 0;
};

// Forwards every call to another Store (leveldb's EnvWrapper): derive from
// it to observe or alter a few calls of a real store, e.g. to inject faults
// in tests or time commits.
class StoreWrapper : public Store {
 public:
  // `target` must outlive the wrapper.
  explicit StoreWrapper(Store* target) : target_(target) {}

  Store* target() const { return target_; }

  absl::StatusOr<std::vector<StoredSchedule>> LoadAll() override {
    return target_->LoadAll();
  }
  absl::StatusOr<std::vector<v1::MetricReport>> ReadReports(
      const std::string& name, int64_t from, int64_t to, int limit) override {
    return target_->ReadReports(name, from, to, limit);
  }
  void Submit(WriteBatch batch, Done done) override {
    target_->Submit(std::move(batch), std::move(done));
  }
  absl::Status Flush() override { return target_->Flush(); }
  absl::Status Resume() override { return target_->Resume(); }
  StoreStats stats() const override { return target_->stats(); }

 private:
  Store* const target_;
};

// Submits `batch` to `store` and blocks until it is durable; returns the
// status its `done` would get. Not from a `done` callback (it would wait for
// its own thread).
absl::Status SubmitAndWait(Store& store, WriteBatch batch);

// How many recent advances per schedule are kept for request_id dedup: a
// retry older than this many advances is treated as a new request.
inline constexpr int kAdvanceDedupWindow = 1024;

// The most metrics one reported step holds (merged over its reports).
inline constexpr int kMaxMetricsPerStep = 64;

// Merges `update` into `*into` as WriteBatch::Report describes; the error
// (INVALID_ARGUMENT) if the merge would exceed kMaxMetricsPerStep.
absl::Status MergeReport(const v1::MetricReport& update,
                         v1::MetricReport* into);

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_STORE_H_
