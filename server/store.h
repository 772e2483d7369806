// The persistence seam of the server (leveldb's `DB` is the model).
//
// A Store keeps schedule records durably. Mutations are submitted as
// batches and acknowledged asynchronously: `done` runs once the batch is
// durable, so an RPC is answered only after its write survives kill -9.
// Implementations commit batches in submission order and may group many
// batches into one transaction (one fsync). The interface knows nothing of
// SQL, so a networked backend (PostgreSQL) can implement it later; tests use
// the in-memory store.
#ifndef ANNEAL_SERVER_STORE_H_
#define ANNEAL_SERVER_STORE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/v1/service.pb.h"

namespace anneal {

// One applied Advance, kept for request_id deduplication.
struct AdvanceRecord {
  std::string request_id;
  int64_t position = 0;  // the position after the advance
  std::string response;  // serialized v1::AdvanceResponse
};

// A schedule as loaded at startup.
struct StoredSchedule {
  v1::Schedule schedule;  // including position and max_step_served
  std::vector<AdvanceRecord> recent_advances;  // oldest first
};

// An ordered list of mutations applied atomically.
class WriteBatch {
 public:
  enum class Kind { kPut, kDelete, kAdvance, kServed, kReport };
  struct Op {
    Kind kind = Kind::kPut;
    std::string name;
    std::string record;  // kPut: serialized v1::Schedule
    // kAdvance: new position; kServed: max_step_served; kReport: how many
    // reported steps the schedule keeps.
    int64_t value = 0;
    AdvanceRecord advance;    // kAdvance
    v1::MetricReport report;  // kReport
  };

  // Inserts or replaces the whole record (metadata, timeline, counters).
  void Put(const v1::Schedule& schedule);
  // Removes the schedule and its advance records.
  void Delete(const std::string& name);
  // Sets the position and remembers the advance for deduplication.
  void Advance(const std::string& name, AdvanceRecord record);
  // Raises max_step_served (never lowers it).
  void Served(const std::string& name, int64_t max_step_served);
  // Merges `report` into the schedule's report at its step (a metric
  // reported again takes the new value; revision and report_time are the
  // new report's), then drops the lowest steps beyond the newest `keep`.
  // Fails the batch with NOT_FOUND if the schedule is not stored, and with
  // INVALID_ARGUMENT if the step would hold more than kMaxMetricsPerStep.
  void Report(const std::string& name, v1::MetricReport report, int64_t keep);

  const std::vector<Op>& ops() const { return ops_; }
  bool empty() const { return ops_.empty(); }

 private:
  std::vector<Op> ops_;
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
  // durable, or with the error that prevented it. Batches become durable in
  // submission order.
  virtual void Submit(WriteBatch batch, Done done) = 0;

  // Blocks until every batch submitted before the call is durable. The
  // default submits an empty marker batch and waits for its callback, which
  // runs after every earlier batch's since callbacks run in order.
  virtual absl::Status Flush();
};

// How many recent advances per schedule are kept for request_id dedup: a
// retry older than this many advances is treated as a new request.
inline constexpr int kAdvanceDedupWindow = 1024;

// The most metrics one reported step holds (merged over its reports).
inline constexpr int kMaxMetricsPerStep = 64;

// Merges `update` into `*into` as WriteBatch::Report describes; the error
// (INVALID_ARGUMENT) if the merge would exceed kMaxMetricsPerStep.
absl::Status MergeReport(const v1::MetricReport& update,
                         v1::MetricReport* into);

// An in-memory Store for tests: `done` runs on a background thread, as with
// a real store, so callers see the same asynchrony.
std::unique_ptr<Store> NewMemoryStore();

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_H_
