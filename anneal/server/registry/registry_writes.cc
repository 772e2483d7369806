// The registry's writes: create, update, delete, restart and advance (see
// registry.h). Each derives the new head under the schedule's mutex, hands a
// batch to the Store and answers once it is durable. The entry's head
// changes only after the batch is queued, so a write that fails before that
// (an exception included) leaves nothing behind.
#include <algorithm>
#include <optional>
#include <utility>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "anneal/engine/field_error.h"
#include "anneal/model/resource_name.h"
#include "anneal/model/schedule_resource.h"
#include "anneal/model/timeline_edit.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_entry.h"
#include "anneal/server/registry/tombstones.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"

namespace anneal {
namespace {

using google::protobuf::util::TimeUtil;

// A failure of the batch itself (see store.h), not of the store.
bool IsBatchRejection(const absl::Status& s) {
  return absl::IsNotFound(s) || absl::IsInvalidArgument(s);
}

}  // namespace

absl::Status Registry::WriteGate() const {
  absl::MutexLock lock(&error_mu_);
  if (store_error_.ok()) return store_error_;
  return absl::UnavailableError(absl::StrCat(
      "store: writes are stopped until the store recovers",
      absl::IsDataLoss(store_error_) ? " (it needs a restart after repair)"
                                     : "",
      ": ", store_error_.message()));
}

absl::Status Registry::StoreFailure(const absl::Status& s) {
  if (absl::IsUnavailable(s)) return s;
  return absl::UnavailableError(
      absl::StrCat("store: the write failed and may be retried: ",
                   absl::StatusCodeToString(s.code()), ": ", s.message()));
}

absl::StatusOr<Registry::EntryPtr> Registry::FindForWrite(
    const std::string& field, const std::string& name) const {
  if (auto s = ValidateScheduleName(field, name); !s.ok()) return s;
  if (auto s = WriteGate(); !s.ok()) return s;
  EntryPtr entry = Find(name);
  if (!entry) return absl::NotFoundError(absl::StrCat(name, ": not found"));
  return entry;
}

void Registry::Commit(EntryPtr entry, WriteBatch batch,
                      std::shared_ptr<const Snapshot> snapshot,
                      StatusDone then) {
  store_->Submit(
      std::move(batch),
      [this, entry = std::move(entry), snapshot = std::move(snapshot),
       then = std::move(then)](absl::Status s) mutable {
        if (s.ok()) {
          std::atomic_store(&entry->published, std::move(snapshot));
        } else if (!IsBatchRejection(s)) {
          RecordStoreError(s);
          s = StoreFailure(s);
        }
        std::move(then)(std::move(s));
      });
}

absl::StatusOr<v1::Schedule> Registry::WritableHead(Entry& entry,
                                                    const std::string& etag) {
  entry.mu.AssertHeld();
  if (auto s = entry.CheckLive(); !s.ok()) return s;
  if (auto s = CheckEtag(etag, *entry.head->schedule); !s.ok()) return s;
  return Present(entry, *entry.head);
}

absl::Status Registry::CheckHead(const v1::Schedule& head,
                                 const Timeline& timeline,
                                 int64_t old_table_bytes) const {
  if (head.timeline_size() > options_.max_timeline_segments) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "timeline: must hold at most ", options_.max_timeline_segments,
        " segments (max_timeline_segments), got ", head.timeline_size(),
        "; create a new schedule for a new run"));
  }
  const auto bytes = static_cast<int64_t>(head.ByteSizeLong());
  if (bytes > options_.max_schedule_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "schedule: must be at most ", options_.max_schedule_bytes,
        " bytes with its timeline (max_schedule_bytes), got ", bytes,
        "; shorten reasons and labels, or create a new schedule"));
  }
  const int64_t total =
      table_bytes_.load() + timeline.table_bytes() - old_table_bytes;
  if (timeline.table_bytes() > old_table_bytes &&
      total > options_.max_table_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "spec: the compiled tables of all schedules must stay within ",
        options_.max_table_bytes, " bytes (max_table_bytes), got ", total,
        "; delete unused schedules or use simpler specs"));
  }
  return absl::OkStatus();
}

void Registry::AcceptHead(const EntryPtr& entry, v1::Schedule head,
                          std::shared_ptr<const Timeline> timeline,
                          Done<v1::Schedule> done, Fence::Lease lease) {
  entry->mu.AssertHeld();
  const int64_t delta =
      timeline->table_bytes() - entry->head->timeline->table_bytes();
  WriteBatch batch;
  batch.Put(head);
  std::shared_ptr<const Snapshot> next =
      NewSnapshot(std::move(head), std::move(timeline));
  Commit(entry, std::move(batch), next,
         [this, entry, reply = next, lease = std::move(lease),
          done = std::move(done)](absl::Status s) mutable {
           // Published (or failed for good): readers behind the fence go on.
           lease.Drop();
           if (!s.ok()) return std::move(done)(s);
           std::move(done)(Present(*entry, *reply));
         });
  entry->head = std::move(next);
  table_bytes_ += delta;
}

absl::StatusOr<int64_t> Registry::ClaimStep(Entry& entry, const char* field,
                                            std::optional<int64_t> requested,
                                            int64_t min_step,
                                            Fence::Lease* lease) {
  // The fence first, then the served mark (the protocol in registry.h).
  if (requested.has_value()) {
    if (auto s = CheckFutureStep(field, *requested, entry.max_served.load());
        !s.ok()) {
      return s;
    }
    *lease = entry.fence.Raise(*requested);
    if (auto s = CheckFutureStep(field, *requested, entry.max_served.load());
        !s.ok()) {
      lease->Drop();
      return s;
    }
    return *requested;
  }
  // The next unserved step. Readers that raced past it before the fence
  // was up have raised max_served, so the step is taken after the fence:
  // the fence may then sit lower than the step, which only holds back
  // readers of steps no one has been served yet.
  const int64_t first = std::max(min_step, entry.max_served.load() + 1);
  if (auto s = CheckFutureStep(field, first, -1); !s.ok()) return s;
  *lease = entry.fence.Raise(first);
  const int64_t step = std::max(first, entry.max_served.load() + 1);
  if (auto s = CheckFutureStep(field, step, -1); !s.ok()) {
    lease->Drop();
    return s;
  }
  return step;
}

void Registry::AcceptEdit(const EntryPtr& entry, v1::Schedule head,
                          v1::Segment segment,
                          std::shared_ptr<const Schedule> compiled,
                          Done<v1::Schedule> done, Fence::Lease lease) {
  entry->mu.AssertHeld();
  std::shared_ptr<const Timeline> timeline =
      Timeline::Append(*entry->head->timeline, segment, std::move(compiled));
  ApplySegment(std::move(segment), &head);
  if (auto s = CheckHead(head, *timeline, entry->head->timeline->table_bytes());
      !s.ok()) {
    return std::move(done)(s);
  }
  AcceptHead(entry, std::move(head), std::move(timeline), std::move(done),
             std::move(lease));
}

absl::StatusOr<std::shared_ptr<const Schedule>> Registry::CompileSpec(
    absl::string_view field, const v1::ScheduleSpec& spec) {
  auto compiled = spec_cache_.Compile(spec, options_.compile);
  if (!compiled.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".", compiled.status().message()));
  }
  return compiled;
}

std::optional<int64_t> Registry::DeletedAt(const std::string& name) const {
  absl::ReaderMutexLock map_lock(&map_mu_);
  return tombstones_.Revision(name);
}

void Registry::Create(const v1::CreateScheduleRequest& request,
                      Done<v1::Schedule> done) {
  done = Observed(ScheduleName(request.schedule_id()), ScheduleChange::kCreate,
                  std::move(done));
  if (auto s = ValidateScheduleId("schedule_id", request.schedule_id());
      !s.ok()) {
    return std::move(done)(s);
  }
  if (!request.schedule().has_spec()) {
    return std::move(done)(
        absl::InvalidArgumentError("schedule.spec: is required"));
  }
  const std::optional<int64_t> deleted_at =
      DeletedAt(ScheduleName(request.schedule_id()));
  v1::Schedule head =
      NewSchedule(request.schedule_id(), request.schedule(), request.actor(),
                  request.reason(), NowTimestamp(), deleted_at.value_or(0));
  // Compiled once, outside every lock.
  auto timeline =
      Timeline::Build(head.timeline(), options_.compile, &spec_cache_);
  if (!timeline.ok()) {
    return std::move(done)(absl::InvalidArgumentError(
        absl::StrCat("schedule.spec.", timeline.status().message())));
  }
  if (auto s = CheckHead(head, **timeline, 0); !s.ok()) {
    return std::move(done)(s);
  }
  InsertNew(std::move(head), *std::move(timeline), deleted_at, std::move(done));
}

void Registry::Fork(const v1::ForkScheduleRequest& request,
                    Done<v1::Schedule> done) {
  done = Observed(ScheduleName(request.schedule_id()), ScheduleChange::kCreate,
                  std::move(done));
  if (auto s = ValidateScheduleId("schedule_id", request.schedule_id());
      !s.ok()) {
    return std::move(done)(s);
  }
  if (request.at_step() < 0 || request.at_step() > kMaxStep) {
    return std::move(done)(absl::InvalidArgumentError(absl::StrCat(
        "at_step: must be in [0, 2^62], got ", request.at_step())));
  }
  auto source = Inspect(request.source());
  if (!source.ok()) {
    return std::move(done)(
        absl::Status(source.status().code(),
                     absl::StrCat("source: ", source.status().message())));
  }
  const std::optional<int64_t> deleted_at =
      DeletedAt(ScheduleName(request.schedule_id()));
  v1::Schedule head = ForkedSchedule(request.schedule_id(), source->first,
                                     request.at_step(), request.schedule(),
                                     NowTimestamp(), deleted_at.value_or(0));
  auto timeline =
      Timeline::Build(head.timeline(), options_.compile, &spec_cache_);
  if (!timeline.ok()) return std::move(done)(timeline.status());
  if (request.schedule().has_spec()) {
    // PBT's explore: the new spec from at_step, on the copied clock.
    auto compiled = CompileSpec("schedule.spec", request.schedule().spec());
    if (!compiled.ok()) return std::move(done)(compiled.status());
    ApplySegment(
        UpdateSegment(head, **timeline, request.at_step(),
                      request.schedule().spec(), **compiled,
                      StampOf(head, request.actor(), request.reason())),
        &head);
    timeline = Timeline::Build(head.timeline(), options_.compile, &spec_cache_);
    if (!timeline.ok()) return std::move(done)(timeline.status());
  }
  if (auto s = CheckHead(head, **timeline, 0); !s.ok()) {
    return std::move(done)(s);
  }
  InsertNew(std::move(head), *std::move(timeline), deleted_at, std::move(done));
}

void Registry::InsertNew(v1::Schedule head,
                         std::shared_ptr<const Timeline> timeline,
                         std::optional<int64_t> deleted_at,
                         Done<v1::Schedule> done) {
  absl::ReaderMutexLock writes(&writes_mu_);
  if (auto s = WriteGate(); !s.ok()) return std::move(done)(s);
  auto entry = std::make_shared<Entry>(head.name(), head.max_step_served());
  // Hold the entry before it becomes visible, so a write racing with the
  // create queues behind it instead of seeing an empty head.
  absl::MutexLock lock(&entry->mu);
  {
    absl::MutexLock map_lock(&map_mu_);
    if (by_name_.contains(head.name())) {
      return std::move(done)(absl::AlreadyExistsError(
          absl::StrCat(head.name(), ": already exists")));
    }
    if (tombstones_.Revision(head.name()) != deleted_at) {
      // Deleted (again) since the revision was read: rare, and the caller's
      // create raced a delete of the same name anyway.
      return std::move(done)(absl::AbortedError(absl::StrCat(
          head.name(), ": was deleted while being created; retry")));
    }
    if (static_cast<int64_t>(entries_.size()) >= options_.max_schedules) {
      return std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
          "schedules: the server holds its limit of ", options_.max_schedules,
          " (max_schedules); delete some first")));
    }
    Insert(entry, head.labels());
    ++pending_creates_;
  }
  // Ends the create's pending count once, whichever of the answer and the
  // cleanup below comes first (a throw can run both). Under map_mu_.
  auto pending = std::make_shared<bool>(true);
  auto end_pending = [this, pending] {
    map_mu_.AssertHeld();
    if (std::exchange(*pending, false)) --pending_creates_;
  };
  // If anything below throws, the entry must not stay visible.
  absl::Cleanup unlist = [this, &entry, &end_pending] {
    absl::MutexLock map_lock(&map_mu_);
    Erase(entry->name);
    end_pending();
  };
  WriteBatch batch;
  if (deleted_at) batch.Delete(Tombstones::StoredName(head.name()));
  batch.Put(head);
  const int64_t bytes = timeline->table_bytes();
  std::shared_ptr<const Snapshot> next =
      NewSnapshot(std::move(head), std::move(timeline));
  Commit(entry, std::move(batch), next,
         [this, reply = next, entry, bytes, end_pending,
          done = std::move(done)](absl::Status s) mutable {
           {
             absl::MutexLock map_lock(&map_mu_);
             end_pending();
             if (!s.ok()) {
               Erase(entry->name);
             } else {
               tombstones_.Remove(entry->name);
             }
           }
           if (!s.ok()) {
             table_bytes_ -= bytes;
             return std::move(done)(s);
           }
           std::move(done)(Present(*entry, *reply));
         });
  std::move(unlist).Cancel();
  entry->head = std::move(next);
  table_bytes_ += bytes;
}

void Registry::Update(const v1::UpdateScheduleRequest& request,
                      Done<v1::Schedule> done) {
  done = Observed(request.schedule().name(), ScheduleChange::kUpdate,
                  std::move(done));
  const v1::Schedule& in = request.schedule();
  absl::StatusOr<UpdatedFields> fields =
      FieldsToUpdate(request.update_mask(), in);
  if (!fields.ok()) return std::move(done)(fields.status());
  const bool set_spec = fields->spec;
  // Compiled once, outside every lock.
  std::shared_ptr<const Schedule> compiled;
  if (set_spec) {
    auto built = CompileSpec("schedule.spec", in.spec());
    if (!built.ok()) return std::move(done)(built.status());
    compiled = *std::move(built);
  }

  absl::ReaderMutexLock writes(&writes_mu_);
  auto found = FindForWrite("schedule.name", in.name());
  if (!found.ok()) return std::move(done)(found.status());
  const EntryPtr& entry = *found;
  absl::MutexLock lock(&entry->mu);
  absl::StatusOr<v1::Schedule> writable = WritableHead(*entry, in.etag());
  if (!writable.ok()) return std::move(done)(writable.status());
  v1::Schedule head = *std::move(writable);
  if (fields->display_name) head.set_display_name(in.display_name());
  if (fields->labels) {
    *head.mutable_labels() = in.labels();
    // The index keeps what may still be published (the published snapshot
    // and the head before this change) and adds the new labels.
    absl::MutexLock map_lock(&map_mu_);
    const std::shared_ptr<const Snapshot> published =
        std::atomic_load(&entry->published);
    labels_.Retain(entry->name,
                   {&entry->head->schedule->labels(),
                    published ? &published->schedule->labels() : nullptr});
    labels_.Add(entry->name, entry, head.labels());
  }
  NextRevision(NowTimestamp(), &head);
  // A new spec is taken as given: at its own max_lr, with a fresh plateau
  // policy (docs/adaptive.md).
  if (set_spec) head.clear_plateau_state();
  if (!set_spec) {
    if (auto s = CheckHead(head, *entry->head->timeline,
                           entry->head->timeline->table_bytes());
        !s.ok()) {
      return std::move(done)(s);
    }
    return AcceptHead(entry, std::move(head), entry->head->timeline,
                      std::move(done), Fence::Lease());
  }
  Fence::Lease lease;
  const absl::StatusOr<int64_t> claimed =
      ClaimStep(*entry, "effective_step",
                request.has_effective_step()
                    ? std::optional<int64_t>(request.effective_step())
                    : std::nullopt,
                0, &lease);
  if (!claimed.ok()) return std::move(done)(claimed.status());
  const int64_t from = *claimed;
  const Timeline& current = *entry->head->timeline;
  // The same spec as the one in force shares its compiled form.
  const auto& in_force = current.compiled(current.SegmentAt(from));
  if (google::protobuf::util::MessageDifferencer::Equals(in_force->spec(),
                                                         in.spec())) {
    compiled = in_force;
  }
  v1::Segment segment =
      UpdateSegment(head, current, from, in.spec(), *compiled,
                    StampOf(head, request.actor(), request.reason()));
  AcceptEdit(entry, std::move(head), std::move(segment), std::move(compiled),
             std::move(done), std::move(lease));
}

void Registry::Restart(const v1::RestartScheduleRequest& request,
                       Done<v1::Schedule> done) {
  done = Observed(request.name(), ScheduleChange::kRestart, std::move(done));
  absl::ReaderMutexLock writes(&writes_mu_);
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  const EntryPtr& entry = *found;
  absl::MutexLock lock(&entry->mu);
  absl::StatusOr<v1::Schedule> writable = WritableHead(*entry, request.etag());
  if (!writable.ok()) return std::move(done)(writable.status());
  v1::Schedule head = *std::move(writable);
  if (request.has_at_step() && request.at_step() < 1) {
    return std::move(done)(absl::InvalidArgumentError(
        absl::StrCat("at_step: must be >= 1 (step 0 already starts a cycle), "
                     "got ",
                     request.at_step())));
  }
  // Step 0 already starts a cycle: the default is the next unserved step,
  // and at least 1.
  Fence::Lease lease;
  const absl::StatusOr<int64_t> claimed = ClaimStep(
      *entry, "at_step",
      request.has_at_step() ? std::optional<int64_t>(request.at_step())
                            : std::nullopt,
      1, &lease);
  if (!claimed.ok()) return std::move(done)(claimed.status());
  const int64_t at = *claimed;
  NextRevision(NowTimestamp(), &head);
  const Timeline& current = *entry->head->timeline;
  v1::Segment segment = RestartSegment(
      head, current, at, StampOf(head, request.actor(), request.reason()));
  // A restart runs the spec in force on a new clock: the same compiled form.
  std::shared_ptr<const Schedule> compiled =
      current.compiled(current.SegmentAt(at));
  AcceptEdit(entry, std::move(head), std::move(segment), std::move(compiled),
             std::move(done), std::move(lease));
}

void Registry::Delete(const v1::DeleteScheduleRequest& request,
                      Done<google::protobuf::Empty> done) {
  v1::WatchEvent deleted;
  deleted.set_actor(request.actor());
  deleted.set_reason(request.reason());
  done = Observed(request.name(), ScheduleChange::kDelete, std::move(done),
                  std::move(deleted));
  absl::ReaderMutexLock writes(&writes_mu_);
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  const EntryPtr& entry = *found;
  absl::MutexLock lock(&entry->mu);
  if (auto head = WritableHead(*entry, request.etag()); !head.ok()) {
    return std::move(done)(head.status());
  }
  WriteBatch batch;
  batch.Delete(entry->name);
  const int64_t revision = entry->head->schedule->revision();
  batch.Put(Tombstones::Record(entry->name, revision, NowTimestamp()));
  {
    // Remembered now, in the batch with the records it pushes past
    // --max_tombstones. Should the delete fail, a tombstone of a schedule
    // that exists is harmless: creates see the schedule first, and its next
    // delete replaces it.
    absl::MutexLock map_lock(&map_mu_);
    for (const std::string& gone : tombstones_.Add(entry->name, revision)) {
      batch.Delete(Tombstones::StoredName(gone));
    }
  }
  const int64_t bytes = entry->head->timeline->table_bytes();
  Commit(entry, std::move(batch), nullptr,
         [this, entry, bytes, done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) return std::move(done)(s);
           {
             absl::MutexLock map_lock(&map_mu_);
             auto it = by_name_.find(entry->name);
             if (it != by_name_.end() && it->second == entry) {
               Erase(entry->name);
             }
           }
           table_bytes_ -= bytes;
           std::move(done)(google::protobuf::Empty());
         });
  entry->deleted = true;
}

void Registry::Advance(const v1::AdvanceRequest& request,
                       Done<v1::AdvanceResponse> done) {
  absl::ReaderMutexLock writes(&writes_mu_);
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  const EntryPtr& entry = *found;
  absl::MutexLock lock(&entry->mu);
  if (auto s = entry->CheckLive(); !s.ok()) return std::move(done)(s);
  if (auto s = CheckLineage(LineageOf(request), *entry->head->schedule);
      !s.ok()) {
    return std::move(done)(s);
  }
  if (!request.request_id().empty()) {
    if (const std::string* answer =
            entry->advances.Find(request.request_id())) {
      // A retry: answer as the first time, once that answer is durable (the
      // store runs callbacks in order, so an empty batch waits for it).
      v1::AdvanceResponse first;
      first.ParseFromString(*answer);
      store_->Submit(WriteBatch(),
                     [this, first = std::move(first),
                      done = std::move(done)](absl::Status s) mutable {
                       if (!s.ok()) return std::move(done)(StoreFailure(s));
                       options_.telemetry->Advanced(/*deduplicated=*/true);
                       std::move(done)(std::move(first));
                     });
      return;
    }
  }
  if (request.has_expected_position() &&
      request.expected_position() != entry->head->position) {
    return std::move(done)(absl::FailedPreconditionError(
        absl::StrCat("expected_position: ", request.expected_position(),
                     " is stale; the position is ", entry->head->position)));
  }
  if (entry->head->position >= kMaxStep) {
    return std::move(done)(
        absl::OutOfRangeError("position: already at 2^62, the last step"));
  }
  const int64_t position = entry->head->position + 1;
  v1::AdvanceResponse response;
  response.set_position(position);
  ToProto(entry->head->timeline->At(position), response.mutable_result());
  response.set_revision(entry->head->schedule->revision());
  response.set_lineage(entry->head->schedule->lineage());
  if (std::optional<int64_t> before = RaiseServed(*entry, position);
      before && watch_hub_.watched()) {
    PublishCycle(*entry, *entry->head, *before, position);
  }

  AdvanceRecord record;
  record.request_id = request.request_id();
  record.position = position;
  response.SerializeToString(&record.response);
  std::string request_id = record.request_id;
  std::string answer = record.response;
  WriteBatch batch;
  batch.Advance(entry->name, std::move(record));
  // Only the position changes: the new head shares the record.
  auto next = std::make_shared<const Snapshot>(
      Snapshot{entry->head->schedule, position, entry->head->timeline});
  Commit(entry, std::move(batch), next,
         [this, entry, response = std::move(response),
          done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) return std::move(done)(s);
           entry->mark.Covered(response.position());  // loads as served
           options_.telemetry->Advanced(/*deduplicated=*/false);
           std::move(done)(std::move(response));
         });
  // The head moves now (a later write builds on it, whatever this commit's
  // fate: a failed store reloads every head).
  entry->head = std::move(next);
  if (!request_id.empty()) {
    entry->advances.Remember(std::move(request_id), std::move(answer));
  }
}

}  // namespace anneal
