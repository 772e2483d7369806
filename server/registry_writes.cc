// The registry's writes: create, update, delete, restart and advance (see
// registry.h). Each derives the new head under the schedule's mutex, hands a
// batch to the Store and answers once it is durable.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "google/protobuf/util/time_util.h"
#include "server/registry.h"
#include "server/registry_entry.h"
#include "server/resource_name.h"

namespace anneal {
namespace {

using google::protobuf::util::TimeUtil;

google::protobuf::Timestamp Now() {
  return TimeUtil::NanosecondsToTimestamp(absl::ToUnixNanos(absl::Now()));
}

// Opaque, changes with every revision (not with the position counter, so a
// busy Advance loop does not invalidate an operator's Update).
std::string Etag(const v1::Schedule& s) {
  uint64_t h = 1469598103934665603ull;
  auto mix = [&h](const std::string& bytes) {
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  };
  mix(s.name());
  mix(s.create_time().SerializeAsString());
  mix(std::to_string(s.revision()));
  return absl::StrCat("W/\"", absl::Hex(h, absl::kZeroPad16), "\"");
}

absl::Status CheckEtag(const std::string& sent, const v1::Schedule& head) {
  if (sent.empty() || sent == head.etag()) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      "etag: ", sent, " does not match the current etag ", head.etag(),
      " (the schedule changed; re-read it and retry)"));
}

// Starts the next revision of `s`.
void Bump(v1::Schedule* s) {
  s->set_revision(s->revision() + 1);
  *s->mutable_update_time() = Now();
  s->set_etag(Etag(*s));
}

absl::Status ValidateSpec(const std::string& field,
                          const v1::ScheduleSpec& spec) {
  absl::Status s = Schedule::Validate(spec);
  if (s.ok()) return s;
  return absl::InvalidArgumentError(absl::StrCat(field, ".", s.message()));
}

// Drops the segments that start at or after `from` (not served yet: `from`
// is past max_step_served) and appends `segment`.
void ReplaceFuture(v1::Schedule* s, v1::Segment segment) {
  auto* timeline = s->mutable_timeline();
  while (!timeline->empty() &&
         timeline->Get(timeline->size() - 1).from_step() >=
             segment.from_step()) {
    timeline->RemoveLast();
  }
  *s->mutable_spec() = segment.spec();
  *timeline->Add() = std::move(segment);
}

// The cycle offset that keeps cycle numbers from going backwards when a new
// spec takes over at `from` on the same clock: the cycle in progress goes on
// (or, if the new spec starts a cycle exactly there, the next one begins).
int64_t ContinuedCycleOffset(const Timeline& old, const v1::ScheduleSpec& spec,
                             int64_t from, const v1::Segment& current) {
  if (from == 0) return 0;
  auto compiled = Schedule::Compile(spec);  // validated by the caller
  if (!compiled.ok()) return current.cycle_offset();
  const StepResult next = (*compiled)->At(from - current.time_origin());
  const int64_t wanted =
      old.At(from - 1).cycle + (next.step_in_cycle == 0 ? 1 : 0);
  return std::max<int64_t>(0, wanted - next.cycle);
}

// A new timeline segment, stamped with the head's new revision and time.
v1::Segment NewSegment(v1::Segment::Kind kind, int64_t from,
                       const v1::ScheduleSpec& spec, int64_t origin,
                       int64_t cycle_offset, const v1::Schedule& head,
                       const std::string& actor, const std::string& reason) {
  v1::Segment segment;
  segment.set_from_step(from);
  *segment.mutable_spec() = spec;
  segment.set_time_origin(origin);
  segment.set_cycle_offset(cycle_offset);
  segment.set_kind(kind);
  segment.set_revision(head.revision());
  segment.set_actor(actor);
  segment.set_reason(reason);
  *segment.mutable_create_time() = head.update_time();
  return segment;
}

absl::Status CheckFutureStep(const char* field, int64_t step,
                             int64_t max_served) {
  if (step > max_served && step <= kMaxStep) return absl::OkStatus();
  if (step > kMaxStep) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be <= 2^62, got ", step));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(field, ": must be > max_step_served (", max_served,
                   ") so no LR already served is rewritten, got ", step));
}

}  // namespace

absl::Status Registry::WriteGate() const {
  absl::MutexLock lock(&error_mu_);
  if (store_error_.ok()) return store_error_;
  return absl::UnavailableError(absl::StrCat(
      "the store failed earlier and accepts no writes until the server "
      "restarts: ",
      store_error_.message()));
}

absl::StatusOr<std::shared_ptr<Registry::Entry>> Registry::FindForWrite(
    const std::string& field, const std::string& name) const {
  if (auto s = ValidateScheduleName(field, name); !s.ok()) return s;
  if (auto s = WriteGate(); !s.ok()) return s;
  std::shared_ptr<Entry> entry = Find(name);
  if (!entry) return absl::NotFoundError(absl::StrCat(name, ": not found"));
  return entry;
}

void Registry::RecordStoreError(const absl::Status& s) {
  absl::MutexLock lock(&error_mu_);
  if (store_error_.ok()) store_error_ = s;
}

void Registry::Commit(std::shared_ptr<Entry> entry, WriteBatch batch,
                      std::shared_ptr<const Snapshot> snapshot,
                      absl::AnyInvocable<void(absl::Status) &&> then) {
  store_->Submit(
      std::move(batch),
      [this, entry = std::move(entry), snapshot = std::move(snapshot),
       then = std::move(then)](absl::Status s) mutable {
        if (s.ok()) {
          std::atomic_store(&entry->published, snapshot);
        } else {
          RecordStoreError(s);
        }
        std::move(then)(s);
      });
}

absl::Status Registry::RaiseFence(Entry& entry, int64_t from,
                                  const char* field) {
  {
    absl::MutexLock lock(&entry.fence_mu);
    ++entry.pending_changes;
    entry.pending_min = std::min(entry.pending_min, from);
    entry.fence_from.store(entry.pending_min);
  }
  // Sequentially consistent with ServeAndCheckFence: either this load sees
  // the reader's raised max_served, or the reader sees the fence.
  const int64_t served = entry.max_served.load();
  if (from > served) return absl::OkStatus();
  DropFence(entry);
  return CheckFutureStep(field, from, served);
}

void Registry::DropFence(Entry& entry) {
  absl::MutexLock lock(&entry.fence_mu);
  if (--entry.pending_changes == 0) {
    entry.pending_min = Entry::kNoFence;
    entry.fence_from.store(Entry::kNoFence);
  }
}

absl::StatusOr<v1::Schedule> Registry::WritableHead(Entry& entry,
                                                    const std::string& etag) {
  if (entry.deleted) {
    return absl::NotFoundError(absl::StrCat(entry.name, ": not found"));
  }
  if (auto s = CheckEtag(etag, entry.head); !s.ok()) return s;
  v1::Schedule head = entry.head;
  head.set_max_step_served(
      std::max(head.max_step_served(), entry.max_served.load()));
  return head;
}

void Registry::AcceptHead(std::shared_ptr<Entry> entry, v1::Schedule head,
                          std::shared_ptr<const Timeline> timeline,
                          Done<v1::Schedule> done, bool fenced) {
  entry->head = head;
  entry->head_timeline = timeline;
  WriteBatch batch;
  batch.Put(head);
  auto snapshot = std::make_shared<const Snapshot>(Snapshot{head, timeline});
  Entry* raw = entry.get();
  Commit(std::move(entry), std::move(batch), std::move(snapshot),
         [this, raw, fenced, head = std::move(head),
          done = std::move(done)](absl::Status s) mutable {
           // Published (or failed for good): readers behind the fence go on.
           if (fenced) DropFence(*raw);
           if (!s.ok()) return std::move(done)(s);
           std::move(done)(std::move(head));
         });
}

void Registry::Create(const v1::CreateScheduleRequest& request,
                      Done<v1::Schedule> done) {
  if (auto s = ValidateScheduleId("schedule_id", request.schedule_id());
      !s.ok()) {
    return std::move(done)(s);
  }
  if (!request.schedule().has_spec()) {
    return std::move(done)(
        absl::InvalidArgumentError("schedule.spec: is required"));
  }
  if (auto s = ValidateSpec("schedule.spec", request.schedule().spec());
      !s.ok()) {
    return std::move(done)(s);
  }
  if (auto s = WriteGate(); !s.ok()) return std::move(done)(s);

  v1::Schedule head;
  head.set_name(ScheduleName(request.schedule_id()));
  *head.mutable_spec() = request.schedule().spec();
  head.set_display_name(request.schedule().display_name());
  *head.mutable_labels() = request.schedule().labels();
  head.set_state(v1::Schedule::ACTIVE);
  *head.mutable_create_time() = Now();
  head.set_max_step_served(-1);
  v1::Segment* first = head.add_timeline();
  first->set_from_step(0);
  *first->mutable_spec() = request.schedule().spec();
  first->set_kind(v1::Segment::CREATE);
  first->set_actor(request.actor());
  first->set_reason(request.reason());
  Bump(&head);
  *first->mutable_create_time() = head.create_time();
  first->set_revision(head.revision());
  auto timeline = Timeline::Build(head.timeline());
  if (!timeline.ok()) return std::move(done)(timeline.status());

  auto entry = std::make_shared<Entry>(head.name());
  // Hold the entry before it becomes visible, so a write racing with the
  // create queues behind it instead of seeing an empty head.
  absl::MutexLock lock(&entry->mu);
  {
    absl::MutexLock map_lock(&map_mu_);
    if (entries_.count(head.name()) > 0) {
      return std::move(done)(absl::AlreadyExistsError(
          absl::StrCat(head.name(), ": already exists")));
    }
    if (static_cast<int64_t>(entries_.size()) >= options_.max_schedules) {
      return std::move(done)(absl::ResourceExhaustedError(absl::StrCat(
          "schedules: the server holds its limit of ", options_.max_schedules,
          " (max_schedules); delete some first")));
    }
    entries_[head.name()] = entry;
  }
  entry->head = head;
  entry->head_timeline = *timeline;
  WriteBatch batch;
  batch.Put(head);
  auto snapshot = std::make_shared<const Snapshot>(Snapshot{head, *timeline});
  Commit(entry, std::move(batch), snapshot,
         [this, head, entry, done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) {
             absl::MutexLock map_lock(&map_mu_);
             entries_.erase(entry->name);
             return std::move(done)(s);
           }
           std::move(done)(head);
         });
}

void Registry::Update(const v1::UpdateScheduleRequest& request,
                      Done<v1::Schedule> done) {
  auto found = FindForWrite("schedule.name", request.schedule().name());
  if (!found.ok()) return std::move(done)(found.status());
  std::shared_ptr<Entry> entry = *found;

  const v1::Schedule& in = request.schedule();
  bool set_spec = false, set_display = false, set_labels = false;
  if (request.update_mask().paths_size() == 0) {
    set_spec = in.has_spec();
    set_display = !in.display_name().empty();
    set_labels = !in.labels().empty();
  }
  for (int i = 0; i < request.update_mask().paths_size(); ++i) {
    const std::string& path = request.update_mask().paths(i);
    if (path == "*") {
      set_spec = set_display = set_labels = true;
    } else if (path == "spec") {
      set_spec = true;
    } else if (path == "display_name") {
      set_display = true;
    } else if (path == "labels") {
      set_labels = true;
    } else {
      return std::move(done)(absl::InvalidArgumentError(absl::StrCat(
          "update_mask.paths[", i, "]: \"", path,
          "\" is not updatable (allowed: spec, display_name, labels, *)")));
    }
  }
  if (set_spec) {
    if (!in.has_spec()) {
      return std::move(done)(absl::InvalidArgumentError(
          "schedule.spec: is required when the mask names spec"));
    }
    if (auto s = ValidateSpec("schedule.spec", in.spec()); !s.ok()) {
      return std::move(done)(s);
    }
  }

  absl::MutexLock lock(&entry->mu);
  absl::StatusOr<v1::Schedule> writable = WritableHead(*entry, in.etag());
  if (!writable.ok()) return std::move(done)(writable.status());
  v1::Schedule head = *std::move(writable);
  if (set_display) head.set_display_name(in.display_name());
  if (set_labels) *head.mutable_labels() = in.labels();
  Bump(&head);
  std::shared_ptr<const Timeline> timeline = entry->head_timeline;
  bool fenced = false;
  if (set_spec) {
    const int64_t from = request.has_effective_step()
                             ? request.effective_step()
                             : head.max_step_served() + 1;
    if (auto s =
            CheckFutureStep("effective_step", from, head.max_step_served());
        !s.ok()) {
      return std::move(done)(s);
    }
    if (auto s = RaiseFence(*entry, from, "effective_step"); !s.ok()) {
      return std::move(done)(s);
    }
    fenced = true;
    const v1::Segment& current =
        head.timeline(static_cast<int>(timeline->SegmentAt(from)));
    ReplaceFuture(
        &head,
        NewSegment(v1::Segment::UPDATE, from, in.spec(), current.time_origin(),
                   ContinuedCycleOffset(*timeline, in.spec(), from, current),
                   head, request.actor(), request.reason()));
    auto rebuilt = Timeline::Build(head.timeline());
    if (!rebuilt.ok()) {
      DropFence(*entry);
      return std::move(done)(rebuilt.status());
    }
    timeline = *rebuilt;
  }
  AcceptHead(entry, std::move(head), std::move(timeline), std::move(done),
             fenced);
}

void Registry::Restart(const v1::RestartScheduleRequest& request,
                       Done<v1::Schedule> done) {
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  std::shared_ptr<Entry> entry = *found;
  absl::MutexLock lock(&entry->mu);
  absl::StatusOr<v1::Schedule> writable = WritableHead(*entry, request.etag());
  if (!writable.ok()) return std::move(done)(writable.status());
  v1::Schedule head = *std::move(writable);
  const int64_t at =
      request.has_at_step() ? request.at_step() : head.max_step_served() + 1;
  if (auto s = CheckFutureStep("at_step", at, head.max_step_served());
      !s.ok()) {
    return std::move(done)(s);
  }
  if (at < 1) {
    return std::move(done)(absl::InvalidArgumentError(absl::StrCat(
        "at_step: must be >= 1 (step 0 already starts a cycle), got ", at)));
  }
  if (auto s = RaiseFence(*entry, at, "at_step"); !s.ok()) {
    return std::move(done)(s);
  }
  const Timeline& old = *entry->head_timeline;
  // Copied: ReplaceFuture may drop the segment it refers to.
  const v1::ScheduleSpec spec =
      head.timeline(static_cast<int>(old.SegmentAt(at))).spec();
  Bump(&head);
  ReplaceFuture(&head, NewSegment(v1::Segment::RESTART, at, spec, at,
                                  old.At(at - 1).cycle + 1, head,
                                  request.actor(), request.reason()));
  auto timeline = Timeline::Build(head.timeline());
  if (!timeline.ok()) {
    DropFence(*entry);
    return std::move(done)(timeline.status());
  }
  AcceptHead(entry, std::move(head), *std::move(timeline), std::move(done),
             /*fenced=*/true);
}

void Registry::Delete(const v1::DeleteScheduleRequest& request,
                      Done<google::protobuf::Empty> done) {
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  std::shared_ptr<Entry> entry = *found;
  absl::MutexLock lock(&entry->mu);
  if (auto head = WritableHead(*entry, request.etag()); !head.ok()) {
    return std::move(done)(head.status());
  }
  entry->deleted = true;
  WriteBatch batch;
  batch.Delete(entry->name);
  Commit(entry, std::move(batch), nullptr,
         [this, entry, done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) return std::move(done)(s);
           {
             absl::MutexLock map_lock(&map_mu_);
             auto it = entries_.find(entry->name);
             if (it != entries_.end() && it->second == entry)
               entries_.erase(it);
           }
           std::move(done)(google::protobuf::Empty());
         });
}

void Registry::Advance(const v1::AdvanceRequest& request,
                       Done<v1::AdvanceResponse> done) {
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  std::shared_ptr<Entry> entry = *found;
  absl::MutexLock lock(&entry->mu);
  if (entry->deleted) {
    return std::move(done)(
        absl::NotFoundError(absl::StrCat(entry->name, ": not found")));
  }
  if (!request.request_id().empty()) {
    auto it = entry->advances.find(request.request_id());
    if (it != entry->advances.end()) {
      // A retry: answer as the first time, once that answer is durable (the
      // store runs callbacks in order, so an empty batch waits for it).
      v1::AdvanceResponse first;
      first.ParseFromString(it->second);
      store_->Submit(WriteBatch(),
                     [first, done = std::move(done)](absl::Status s) mutable {
                       if (!s.ok()) return std::move(done)(s);
                       std::move(done)(first);
                     });
      return;
    }
  }
  v1::Schedule head = entry->head;
  if (request.has_expected_position() &&
      request.expected_position() != head.position()) {
    return std::move(done)(absl::FailedPreconditionError(
        absl::StrCat("expected_position: ", request.expected_position(),
                     " is stale; the position is ", head.position())));
  }
  if (head.position() >= kMaxStep) {
    return std::move(done)(
        absl::OutOfRangeError("position: already at 2^62, the last step"));
  }
  const int64_t position = head.position() + 1;
  head.set_position(position);
  v1::AdvanceResponse response;
  response.set_position(position);
  ToProto(entry->head_timeline->At(position), response.mutable_result());
  response.set_revision(head.revision());
  RaiseServed(*entry, position);
  head.set_max_step_served(
      std::max(head.max_step_served(), entry->max_served.load()));

  AdvanceRecord record;
  record.request_id = request.request_id();
  record.position = position;
  response.SerializeToString(&record.response);
  if (!request.request_id().empty()) {
    entry->advances[record.request_id] = record.response;
    entry->advance_order.push_back(record.request_id);
    while (entry->advance_order.size() > kAdvanceDedupWindow) {
      entry->advances.erase(entry->advance_order.front());
      entry->advance_order.pop_front();
    }
  }
  entry->head = head;
  WriteBatch batch;
  batch.Advance(entry->name, std::move(record));
  Commit(entry, std::move(batch),
         std::make_shared<const Snapshot>(Snapshot{head, entry->head_timeline}),
         [response, done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) return std::move(done)(s);
           std::move(done)(response);
         });
}

}  // namespace anneal
