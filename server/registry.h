// The registry: every live schedule, in memory, behind the Store.
//
// Reads (Get, List, Evaluate, EvaluateRange) never touch the disk and never
// wait for writers: each schedule publishes an immutable snapshot (its
// resource and compiled timeline) that readers load atomically. Writers of a
// schedule are serialized by its mutex only while they compute the new state
// and hand a batch to the Store; the RPC is answered from the Store's
// completion, once the batch is durable, and the new snapshot is published
// then, so readers never see a write that could still be lost. Many writes
// (of one schedule or many) share a group commit.
//
// A Store failure is sticky (leveldb's background error): later writes fail
// with UNAVAILABLE until the server restarts and reloads what is durable.
#ifndef ANNEAL_SERVER_REGISTRY_H_
#define ANNEAL_SERVER_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/v1/service.pb.h"
#include "google/protobuf/empty.pb.h"
#include "server/store.h"
#include "server/timeline.h"

namespace anneal {

struct RegistryOptions {
  int64_t max_schedules = 10'000;
  int64_t max_range_count = 1'000'000;
  // How often max_step_served is persisted (it is not durable per read).
  absl::Duration served_flush_interval = absl::Seconds(1);
  // How many reported steps each schedule keeps (the newest).
  int64_t metrics_history = 10'000;
};

class Registry {
 public:
  template <typename T>
  using Done = absl::AnyInvocable<void(absl::StatusOr<T>) &&>;

  // `store` must outlive the registry.
  Registry(Store* store, RegistryOptions options);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads every stored schedule and compiles its timeline. Call once, before
  // serving.
  absl::Status Load();

  // Reads: answered at once from the published snapshots.
  absl::StatusOr<v1::Schedule> Get(const v1::GetScheduleRequest& request) const;
  absl::StatusOr<v1::ListSchedulesResponse> List(
      const v1::ListSchedulesRequest& request) const;
  absl::StatusOr<v1::EvaluateResponse> Evaluate(
      const v1::EvaluateRequest& request);
  absl::Status EvaluateRange(const v1::EvaluateRangeRequest& request,
                             v1::EvaluateRangeResponse* response);
  absl::Status Simulate(const v1::SimulateRequest& request,
                        v1::EvaluateRangeResponse* response) const;

  // Writes: `done` runs once the change is durable (on the Store's thread),
  // or at once with the error that rejected it.
  void Create(const v1::CreateScheduleRequest& request,
              Done<v1::Schedule> done);
  void Update(const v1::UpdateScheduleRequest& request,
              Done<v1::Schedule> done);
  void Delete(const v1::DeleteScheduleRequest& request,
              Done<google::protobuf::Empty> done);
  void Restart(const v1::RestartScheduleRequest& request,
               Done<v1::Schedule> done);
  void Advance(const v1::AdvanceRequest& request,
               Done<v1::AdvanceResponse> done);
  // Metric reports (registry_reports.cc): a write, durable when answered,
  // and a read from the Store (reports are not kept in memory).
  void ReportMetrics(const v1::ReportMetricsRequest& request,
                     Done<v1::MetricReport> done);
  absl::StatusOr<v1::ListMetricReportsResponse> ListMetricReports(
      const v1::ListMetricReportsRequest& request) const;

  // Persists the served high-water marks and waits until every write
  // accepted so far is durable. Called on shutdown.
  absl::Status Flush();

  int64_t size() const;

 private:
  struct Snapshot {
    v1::Schedule schedule;
    std::shared_ptr<const Timeline> timeline;
  };
  struct Entry;

  std::shared_ptr<Entry> Find(const std::string& name) const;
  // The entry and its published snapshot, or NOT_FOUND (also while a create
  // is not yet durable, and once a delete is).
  absl::StatusOr<
      std::pair<std::shared_ptr<Entry>, std::shared_ptr<const Snapshot>>>
  Published(const std::string& name) const;
  absl::StatusOr<std::shared_ptr<Entry>> FindForWrite(
      const std::string& field, const std::string& name) const;
  // Makes `s` the sticky store error (writes stop, see above) unless one is
  // recorded already.
  void RecordStoreError(const absl::Status& s);
  // Submits `batch` and, once durable, publishes `snapshot` for `entry` and
  // runs `then`. On a store error, records it and passes it to `then`.
  void Commit(std::shared_ptr<Entry> entry, WriteBatch batch,
              std::shared_ptr<const Snapshot> snapshot,
              absl::AnyInvocable<void(absl::Status) &&> then);
  absl::Status WriteGate() const;
  // Raises the entry's fence to cover a timeline change from `from`, then
  // checks nothing at or past it was served; FAILED_PRECONDITION (and the
  // fence dropped) if something was. Pairs with ServeAndCheckFence.
  absl::Status RaiseFence(Entry& entry, int64_t from, const char* field);
  void DropFence(Entry& entry);
  // Records that reads served up to `last`; false if a pending change's
  // fence covers it, after waiting for that change to be published (the
  // caller evaluates again).
  bool ServeAndCheckFence(Entry& entry, int64_t last);
  // The entry's head ready to change: NOT_FOUND once deleted, ABORTED on an
  // etag mismatch, max_step_served brought up to date.
  absl::StatusOr<v1::Schedule> WritableHead(Entry& entry,
                                            const std::string& etag);
  // Makes `head` the entry's head, persists it and answers `done` with it
  // once durable.
  void AcceptHead(std::shared_ptr<Entry> entry, v1::Schedule head,
                  std::shared_ptr<const Timeline> timeline,
                  Done<v1::Schedule> done, bool fenced);
  void RaiseServed(Entry& entry, int64_t step);
  v1::Schedule Present(const Entry& entry, const Snapshot& snapshot) const;
  void PersistServed();
  void FlusherLoop();

  Store* const store_;
  const RegistryOptions options_;

  mutable absl::Mutex map_mu_;
  std::map<std::string, std::shared_ptr<Entry>> entries_
      ABSL_GUARDED_BY(map_mu_);

  mutable absl::Mutex error_mu_;
  absl::Status store_error_ ABSL_GUARDED_BY(error_mu_);

  absl::Mutex flusher_mu_;
  bool stopping_ ABSL_GUARDED_BY(flusher_mu_) = false;
  std::thread flusher_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_H_
