// The registry: every live schedule, in memory, behind the Store.
//
// Reads (Get, List, Evaluate, EvaluateRange) never touch the disk and never
// wait for writers: each schedule publishes an immutable snapshot (its
// resource and compiled timeline) that readers load atomically. Writers of a
// schedule are serialized by its mutex only while they compute the new state
// and hand a batch to the Store; the request is answered from the Store's
// completion, once the batch is durable, and the new snapshot is published
// then, so readers never see a write that could still be lost. Many writes
// (of one schedule or many) share a group commit.
//
// No served LR is ever rewritten, across crashes too. A read that serves up
// to step `last`:
//   1. evaluates the published snapshot;
//   2. raises the schedule's max_served to `last` (sequentially consistent);
//   3. checks that no pending change's fence is at or before `last` and that
//      its snapshot is still the published one; otherwise it waits (without
//      holding a thread) until the change is published and starts again;
//   4. makes sure the durable served mark is at least `last`, raising it
//      with headroom if not (served_mark.h), and only then is answered.
// A timeline change from step `from` raises the fence to `from` (also
// sequentially consistent) and then reads max_served: if `from` was served
// it drops the fence and is refused. So either the change sees the read's
// mark or the read sees the change's fence. A change at the default step
// raises the fence at max_served + 1 and only then takes its step,
// max(that, max_served + 1): readers racing it cannot make it fail. On load,
// max_served is the larger of the durable mark and the position (an Advance
// serves its position, which is durable when answered).
//
// A Store failure stops writes (leveldb's background error) and puts the
// registry in the unwritable state: writes, and reads past the durable mark,
// fail with UNAVAILABLE. Every store_retry_interval it tries Store::Resume;
// once that succeeds it reloads every schedule from the store (the durable
// truth) and writes resume. A DATA_LOSS failure is not retried: the server
// must be restarted once the file is repaired.
#ifndef ANNEAL_SERVER_REGISTRY_REGISTRY_H_
#define ANNEAL_SERVER_REGISTRY_REGISTRY_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/container/btree_map.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "anneal/model/spec_cache.h"
#include "anneal/model/timeline.h"
#include "anneal/server/common/once.h"
#include "anneal/server/common/work_pool.h"
#include "anneal/server/registry/fence.h"
#include "anneal/server/registry/label_index.h"
#include "anneal/server/registry/last_reported.h"
#include "anneal/server/registry/tombstones.h"
#include "anneal/server/registry/watch_hub.h"
#include "anneal/server/store/store.h"
#include "anneal/server/telemetry/telemetry.h"
#include "anneal/v1/service.pb.h"
#include "google/protobuf/empty.pb.h"

namespace anneal {

struct RegistryOptions {
  int64_t max_schedules = 10'000;
  int64_t max_range_count = 1'000'000;
  // How many reported steps each schedule keeps (the newest).
  int64_t metrics_history = 10'000;
  // How many reported metric names per schedule the exporter is shown (the
  // first to be reported).
  int64_t max_reported_names = 32;
  // A plateau policy counts a report only up to this many steps past the
  // highest step served, so one report at a far step cannot end the policy
  // (it counts no step below the last it counted).
  int64_t plateau_max_report_lead = 100'000;
  // Deleted names whose last revision is remembered (tombstones.h).
  int64_t max_tombstones = 10'000;
  // A read past the durable served mark raises it to last + max(count,
  // served_headroom): one durable write every served_headroom steps of a
  // job. After a crash the mark (and so the default step of a change) can
  // be up to that far ahead of what was really served.
  int64_t served_headroom = 1024;
  // The most segments a schedule's timeline holds.
  int64_t max_timeline_segments = 1000;
  // The largest serialized schedule record (the resource with its timeline).
  int64_t max_schedule_bytes = int64_t{1} << 20;
  // The budget of one compiled spec.
  CompileLimits compile;
  // The compiled tables of all schedules together.
  int64_t max_table_bytes = int64_t{1} << 30;
  // Where continuations run (a read that waited for a fence or its served
  // mark). Required.
  Executor* executor = nullptr;
  // How often a failed store is tried again.
  absl::Duration store_retry_interval = absl::Seconds(1);
  // Told (on the registry's own thread) when writes stop, with the cause,
  // and when they resume. Optional.
  std::function<void(bool writable, const absl::Status& cause)> on_store_state;
  // Told of reads, writes and training reports (telemetry.h). Must outlive
  // the registry; never null.
  Telemetry* telemetry = NoTelemetry();
  // WatchSchedules streams at once, and the live events one may fall behind
  // before it is ended (watch_hub.h).
  int64_t max_watchers = 256;
  int64_t watch_queue_events = 1024;
};

// One schedule as an exporter sees it at a scrape (Registry::Observe).
struct ScheduleObservation {
  std::string name;
  int64_t revision = 0;
  int64_t position = 0;
  // The largest step served (-1: none) and the step's result; `at_served`
  // is meaningful only when max_step_served >= 0.
  int64_t max_step_served = -1;
  StepResult at_served;
  // When max_step_served last rose while this server ran; absl::InfinitePast()
  // if it has not.
  absl::Time progressed = absl::InfinitePast();
  // The last value of each reported training metric (last_reported.h);
  // after a restart, those of the highest step stored until the job
  // reports again.
  ReportedValues reported;
};

class Registry {
 public:
  template <typename T>
  using Done = Once<absl::StatusOr<T>>;
  using StatusDone = Once<absl::Status>;

  // `store` must outlive the registry.
  Registry(Store* store, RegistryOptions options);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Loads every stored schedule and compiles its timeline. Call once, before
  // serving.
  absl::Status Load();

  // Reads: answered from the published snapshots. Evaluate and
  // EvaluateRange answer at once, unless they must wait for a pending
  // change or raise the durable served mark (then from another thread).
  absl::StatusOr<v1::Schedule> Get(const v1::GetScheduleRequest& request) const;
  // The published schedule's labels (for the edge's label-scoped tokens),
  // or NOT_FOUND as Get says it.
  absl::StatusOr<google::protobuf::Map<std::string, std::string>> Labels(
      const std::string& name) const;
  // As Get, with the compiled timeline of the same snapshot (immutable), to
  // evaluate steps without serving them (the status page's plots).
  absl::StatusOr<std::pair<v1::Schedule, std::shared_ptr<const Timeline>>>
  Inspect(const std::string& name) const;
  // A page holds at most page_size schedules and at most `max_page_bytes`
  // serialized (at least one schedule).
  absl::StatusOr<v1::ListSchedulesResponse> List(
      const v1::ListSchedulesRequest& request, int64_t max_page_bytes) const;
  void Evaluate(const v1::EvaluateRequest& request,
                Done<v1::EvaluateResponse> done);
  // Fills `*response`, which must stay valid until `done` runs.
  void EvaluateRange(const v1::EvaluateRangeRequest& request,
                     v1::EvaluateRangeResponse* response, StatusDone done);
  absl::Status Simulate(const v1::SimulateRequest& request,
                        v1::EvaluateRangeResponse* response) const;

  // Writes: `done` runs once the change is durable (on the Store's thread),
  // or at once with the error that rejected it.
  void Create(const v1::CreateScheduleRequest& request,
              Done<v1::Schedule> done);
  // ForkSchedule: a new schedule from the source's timeline below at_step
  // (ForkedSchedule in schedule_resource.h), with the request's spec from
  // at_step as an UPDATE when it has one. The source is only read.
  void Fork(const v1::ForkScheduleRequest& request, Done<v1::Schedule> done);
  void Update(const v1::UpdateScheduleRequest& request,
              Done<v1::Schedule> done);
  // RewindSchedule (registry_rewind.cc): the schedule's next lineage from
  // to_step (RewoundSchedule in schedule_resource.h), with the request's
  // spec from there as an UPDATE when it has one. Writes racing it are
  // ABORTED; reads of to_step on wait for it.
  void Rewind(const v1::RewindScheduleRequest& request,
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
  // Diagnose (registry_diagnose.cc): the findings about the published
  // schedule and its kept reports (up to metrics_history of them, the
  // lowest steps first), from anneal/model/diagnosis.h. INVALID_ARGUMENT
  // for a bad metric name, NOT_FOUND; never an error for missing data.
  absl::StatusOr<v1::DiagnoseResponse> Diagnose(
      const v1::DiagnoseRequest& request) const;

  // For a clean stop, once no read or write is in flight: stores each
  // schedule's exact max_step_served (the durable mark has headroom) and
  // waits until every write accepted so far is durable.
  absl::Status Close();

  // The schedules a Get finds: creates not yet durable are not counted.
  int64_t size() const;
  // WatchSchedules (watch_hub.h): a watcher of the schedules `request`
  // names or filters, whose `wake` runs whenever it has events.
  absl::StatusOr<std::shared_ptr<WatchHub::Watcher>> Watch(
      const v1::WatchSchedulesRequest& request, std::function<void()> wake);
  void StopWatching(const std::shared_ptr<WatchHub::Watcher>& watcher);
  // Ends every watch with `status` (shutdown).
  void EndWatches(const absl::Status& status);

  // Calls `visit` for up to `limit` published schedules in name order;
  // returns how many schedules the registry holds (creates not yet durable
  // included). Holds the map lock (shared) only to pick them.
  int64_t Observe(
      int64_t limit,
      const std::function<void(const ScheduleObservation&)>& visit) const;
  // False while the store is failed (writes stop).
  bool writable() const;

 private:
  // One state of a schedule: an entry's head (accepted) and, once durable,
  // what readers see (published). Immutable. An Advance makes a new one
  // that shares the record, so the record's position and max_step_served
  // fields may be stale; `position` and the entry's marks are the truth.
  // The record holds no `spec` (it is the last segment's): Present is the
  // full resource.
  struct Snapshot {
    std::shared_ptr<const v1::Schedule> schedule;
    int64_t position = 0;
    std::shared_ptr<const Timeline> timeline;
  };
  struct Entry;
  using EntryPtr = std::shared_ptr<Entry>;

  // `record` at its own position, compiled as `timeline`.
  static std::shared_ptr<const Snapshot> NewSnapshot(
      v1::Schedule record, std::shared_ptr<const Timeline> timeline);

  EntryPtr Find(const std::string& name) const;
  // The entry and its published snapshot, or NOT_FOUND (also while a create
  // is not yet durable, and once a delete is).
  absl::StatusOr<std::pair<EntryPtr, std::shared_ptr<const Snapshot>>>
  Published(const std::string& name) const;
  absl::StatusOr<EntryPtr> FindForWrite(const std::string& field,
                                        const std::string& name) const;
  // The resource as callers see it: `snapshot`'s record with its spec,
  // position and served mark.
  v1::Schedule Present(const Entry& entry, const Snapshot& snapshot) const;

  // Reads (registry.cc). Steps 2 and 3 of the protocol above: true if the
  // read may serve up to `last` from `snapshot`.
  bool Serve(Entry& entry, const Snapshot* snapshot, int64_t last);
  // Step 4: runs `then` once the durable mark covers `last`.
  void RequireServed(const EntryPtr& entry, int64_t last, int64_t count,
                     StatusDone then);
  // Once a read is within half the headroom of the durable mark, raises it
  // ahead (nobody waits), so that a job going forward rarely waits.
  void MaybeRaiseAhead(const EntryPtr& entry, int64_t last, int64_t count);
  // Where a raise for a read up to `last` of `count` steps reaches.
  int64_t RaiseTarget(int64_t last, int64_t count) const;
  // Runs `retry` once the entry's pending changes are published, on the
  // executor.
  void RetryWhenClear(Entry& entry, absl::AnyInvocable<void() &&> retry);

  // `done`, and once it succeeds the telemetry and the watchers are told
  // of the change.
  // `event` holds what the change's own result does not say (a delete's
  // actor and reason).
  template <typename T>
  Done<T> Observed(std::string name, ScheduleChange kind, Done<T> done,
                   v1::WatchEvent event = {}) {
    return [this, name = std::move(name), kind, event = std::move(event),
            done = std::move(done)](absl::StatusOr<T> r) mutable {
      if (r.ok()) {
        options_.telemetry->Changed(name, kind);
        if constexpr (std::is_same_v<T, v1::Schedule>) {
          PublishChange(name, kind, &*r, std::move(event));
        } else {
          PublishChange(name, kind, nullptr, std::move(event));
        }
      }
      std::move(done)(std::move(r));
    };
  }
  // A change event for the watchers, from `event`; `schedule` is the new
  // state (null for a delete).
  void PublishChange(const std::string& name, ScheduleChange kind,
                     const v1::Schedule* schedule, v1::WatchEvent event);
  // A CYCLE event if a read raising the highest served step from `before`
  // to `last` crossed into a new cycle.
  void PublishCycle(const Entry& entry, const Snapshot& snapshot,
                    int64_t before, int64_t last);

  // Writes (registry_writes.cc).
  absl::Status WriteGate() const;
  // A store error for a write: UNAVAILABLE, with the cause.
  static absl::Status StoreFailure(const absl::Status& s);
  // Submits `batch` and, once durable, publishes `snapshot` for `entry` (if
  // non-null) and runs `then`. On a store error, records it and passes it
  // to `then`.
  void Commit(EntryPtr entry, WriteBatch batch,
              std::shared_ptr<const Snapshot> snapshot, StatusDone then);
  // The entry's head ready to change: NOT_FOUND once deleted, ABORTED on an
  // etag mismatch, max_step_served brought up to date.
  // (These three require entry.mu held; Entry is incomplete here, so the
  // definitions assert it.)
  absl::StatusOr<v1::Schedule> WritableHead(Entry& entry,
                                            const std::string& etag);
  // The last revision of `name` when it was deleted before (a new schedule
  // of that name continues from it, tombstones.h); nullopt if it never was.
  std::optional<int64_t> DeletedAt(const std::string& name) const
      ABSL_LOCKS_EXCLUDED(map_mu_);
  // Create's and Fork's end: lists `head` (compiled as `timeline`) under
  // its name, unless taken or over max_schedules, and commits it (removing
  // the name's tombstone, read as `deleted_at`, in the same batch).
  void InsertNew(v1::Schedule head, std::shared_ptr<const Timeline> timeline,
                 std::optional<int64_t> deleted_at, Done<v1::Schedule> done);
  // `spec` compiled (shared through the spec cache), or INVALID_ARGUMENT
  // naming `field` (the spec's path in the request) and the rule.
  absl::StatusOr<std::shared_ptr<const Schedule>> CompileSpec(
      absl::string_view field, const v1::ScheduleSpec& spec);
  // Checks the limits a new head must keep (segments, record size, tables).
  absl::Status CheckHead(const v1::Schedule& head, const Timeline& timeline,
                         int64_t old_table_bytes) const;
  // The first step of a timeline change, with its fence raised in `lease`:
  // `requested` if it is past every served step (else FAILED_PRECONDITION
  // naming `field`), or the next unserved step, at least `min_step`.
  absl::StatusOr<int64_t> ClaimStep(Entry& entry, const char* field,
                                    std::optional<int64_t> requested,
                                    int64_t min_step, Fence::Lease* lease);
  // Appends the segment to the head (a timeline change from its from_step,
  // claimed with `lease`), persists it and answers `done` once durable.
  // `compiled` is the segment's spec compiled.
  void AcceptEdit(const EntryPtr& entry, v1::Schedule head, v1::Segment segment,
                  std::shared_ptr<const Schedule> compiled,
                  Done<v1::Schedule> done, Fence::Lease lease);
  // Makes `head` the entry's head, persists it and answers `done` with it
  // once durable; `lease` (the change's fence, if any) is dropped once it
  // is published or has failed.
  void AcceptHead(const EntryPtr& entry, v1::Schedule head,
                  std::shared_ptr<const Timeline> timeline,
                  Done<v1::Schedule> done, Fence::Lease lease);
  // Counts a durable report into the schedule's plateau policy and carries
  // out its decision, if any (registry_reports.cc); answers `done` with the
  // report once that is durable too.
  void ApplyPlateau(const EntryPtr& entry, v1::MetricReport report,
                    Done<v1::MetricReport> done);
  // Returns the highest served step before, or nullopt if it was at or
  // above `step` already.
  std::optional<int64_t> RaiseServed(Entry& entry, int64_t step);

  // Store failure and recovery (registry_recovery.cc).
  // Makes `s` the store error (writes stop) unless one is recorded already.
  void RecordStoreError(const absl::Status& s);
  void RecoveryLoop();
  // Resumes the store and reloads every schedule from it.
  absl::Status Recover();
  // Sets the entry's writer-side state to what the store holds.
  // Returns the new head.
  std::shared_ptr<const Snapshot> Reset(
      Entry& entry, StoredSchedule stored,
      std::shared_ptr<const Timeline> timeline);

  // Makes `entry` (whose head carries `labels`) visible under its name.
  void Insert(const EntryPtr& entry, const LabelIndex::Labels& labels)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(map_mu_);
  // Makes the schedule `name` invisible.
  void Erase(const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(map_mu_);

  Store* const store_;
  const RegistryOptions options_;

  mutable absl::Mutex map_mu_;
  // Every schedule three ways, changed together by Insert and Erase: in
  // name order (ListSchedules pages), hashed (the lookup of every call: a
  // tree of 100k names costs a cache miss per level), and by label. Keys
  // view the entry's own name (the value keeps it alive).
  absl::btree_map<absl::string_view, EntryPtr> entries_
      ABSL_GUARDED_BY(map_mu_);
  absl::flat_hash_map<absl::string_view, EntryPtr> by_name_
      ABSL_GUARDED_BY(map_mu_);
  // Every entry under the labels of its head and published snapshot.
  LabelIndex labels_ ABSL_GUARDED_BY(map_mu_);
  // The compiled tables of every head, together (max_table_bytes). A form
  // shared by several schedules is counted once for each.
  std::atomic<int64_t> table_bytes_{0};
  // Creates listed (so a racing create of the name is refused) but not yet
  // durable: in entries_, not in size() or Observe's total.
  int64_t pending_creates_ ABSL_GUARDED_BY(map_mu_) = 0;
  Tombstones tombstones_ ABSL_GUARDED_BY(map_mu_);
  // Schedules of equal specs share one compiled form.
  SpecCache spec_cache_;
  WatchHub watch_hub_;

  // Writers hold it shared while they check the gate and submit; recovery
  // holds it exclusively, so no write is between the two while it reloads.
  mutable absl::Mutex writes_mu_;

  mutable absl::Mutex error_mu_;
  absl::Status store_error_ ABSL_GUARDED_BY(error_mu_);
  bool stopping_ ABSL_GUARDED_BY(error_mu_) = false;
  std::thread recovery_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_REGISTRY_H_
