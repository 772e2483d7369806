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
  enum class Kind { kPut, kDelete, kAdvance, kServed };
  struct Op {
    Kind kind = Kind::kPut;
    std::string name;
    std::string record;     // kPut: serialized v1::Schedule
    int64_t value = 0;      // kAdvance: new position; kServed: max_step_served
    AdvanceRecord advance;  // kAdvance
  };

  // Inserts or replaces the whole record (metadata, timeline, counters).
  void Put(const v1::Schedule& schedule);
  // Removes the schedule and its advance records.
  void Delete(const std::string& name);
  // Sets the position and remembers the advance for deduplication.
  void Advance(const std::string& name, AdvanceRecord record);
  // Raises max_step_served (never lowers it).
  void Served(const std::string& name, int64_t max_step_served);

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

// An in-memory Store for tests: `done` runs on a background thread, as with
// a real store, so callers see the same asynchrony.
std::unique_ptr<Store> NewMemoryStore();

}  // namespace anneal

#endif  // ANNEAL_SERVER_STORE_H_
