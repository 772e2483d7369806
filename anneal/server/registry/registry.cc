// The registry: loading and reads (see registry.h). Writes are in
// registry_writes.cc, metric reports in registry_reports.cc, store failure
// and recovery in registry_recovery.cc.
#include "anneal/server/registry/registry.h"

#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/model/resource_name.h"
#include "anneal/model/schedule_resource.h"
#include "anneal/model/step_range.h"
#include "anneal/server/registry/list_filter.h"
#include "anneal/server/registry/registry_entry.h"

namespace anneal {
namespace {

constexpr int32_t kDefaultPageSize = 50;
constexpr int32_t kMaxPageSize = 1000;
// A range this long is answered from the executor when it had to wait, not
// from the store's thread (serializing it takes a while).
constexpr int64_t kInlineRangeSteps = 4096;

StepQuery QueryOf(const v1::EvaluateRequest& r) {
  StepQuery q;
  q.step = r.step();
  if (r.has_batch_size()) q.batch_size = r.batch_size();
  if (r.has_grad_norm_sq()) q.grad_norm_sq = r.grad_norm_sq();
  if (r.has_num_params()) q.num_params = r.num_params();
  return q;
}

}  // namespace

Registry::Registry(Store* store, RegistryOptions options)
    : store_(store),
      options_(std::move(options)),
      tombstones_(options_.max_tombstones),
      watch_hub_({options_.max_watchers, options_.watch_queue_events}) {
  recovery_ = std::thread([this] { RecoveryLoop(); });
}

Registry::~Registry() {
  {
    absl::MutexLock lock(&error_mu_);
    stopping_ = true;
  }
  recovery_.join();
  // Completions still queued in the store refer to the entries (which they
  // hold) and to this registry: let them run first.
  (void)store_->Flush();
}

absl::Status Registry::Load() {
  absl::StatusOr<std::vector<StoredSchedule>> stored = store_->LoadAll();
  if (!stored.ok()) return stored.status();
  // What is stored was accepted under some budget: never refuse it now.
  CompileLimits unlimited;
  unlimited.max_table_bytes = std::numeric_limits<int64_t>::max();
  absl::MutexLock map_lock(&map_mu_);
  std::vector<const v1::Schedule*> tombstones;
  for (StoredSchedule& s : *stored) {
    if (Tombstones::ScheduleOf(s.schedule.name())) {
      tombstones.push_back(&s.schedule);
      continue;
    }
    auto timeline =
        Timeline::Build(s.schedule.timeline(), unlimited, &spec_cache_);
    if (!timeline.ok()) {
      return absl::DataLossError(absl::StrCat(
          s.schedule.name(),
          ": stored timeline does not compile: ", timeline.status().message()));
    }
    // An Advance serves its position, which is durable when answered.
    const int64_t mark = LoadedServedMark(s.schedule);
    s.schedule.set_max_step_served(mark);
    auto entry = std::make_shared<Entry>(s.schedule.name(), mark);
    Insert(entry, s.schedule.labels());
    std::atomic_store(&entry->published,
                      Reset(*entry, std::move(s), *timeline));
    table_bytes_ += (*timeline)->table_bytes();
  }
  // Oldest first, so that the cap forgets what it would have.
  std::sort(tombstones.begin(), tombstones.end(),
            [](const v1::Schedule* a, const v1::Schedule* b) {
              return std::make_pair(a->update_time().seconds(),
                                    a->update_time().nanos()) <
                     std::make_pair(b->update_time().seconds(),
                                    b->update_time().nanos());
            });
  WriteBatch forget;
  for (const v1::Schedule* t : tombstones) {
    const std::string name = *Tombstones::ScheduleOf(t->name());
    if (by_name_.contains(name)) {  // re-created: the record is stale
      forget.Delete(t->name());
      continue;
    }
    for (const std::string& gone : tombstones_.Add(name, t->revision())) {
      forget.Delete(Tombstones::StoredName(gone));
    }
  }
  if (!forget.empty()) store_->Submit(std::move(forget), [](absl::Status) {});
  return absl::OkStatus();
}

int64_t Registry::size() const {
  absl::ReaderMutexLock lock(&map_mu_);
  return static_cast<int64_t>(entries_.size()) - pending_creates_;
}

void Registry::Insert(const EntryPtr& entry, const LabelIndex::Labels& labels) {
  // Erased first: a key views the name of the entry it maps to.
  Erase(entry->name);
  entries_.emplace(entry->name, entry);
  by_name_.emplace(entry->name, entry);
  labels_.Add(entry->name, entry, labels);
}

void Registry::Erase(const std::string& name) {
  auto it = by_name_.find(name);
  if (it == by_name_.end()) return;
  const EntryPtr keep = it->second;  // owns the keys' text until they go
  by_name_.erase(it);
  entries_.erase(name);
  labels_.Remove(name);
}

int64_t Registry::Observe(
    int64_t limit,
    const std::function<void(const ScheduleObservation&)>& visit) const {
  std::vector<std::pair<EntryPtr, std::shared_ptr<const Snapshot>>> picked;
  int64_t total = 0;
  {
    // Up to the limit only: a scrape holds writers of new schedules back
    // for its picks, not for a walk over every schedule.
    absl::ReaderMutexLock lock(&map_mu_);
    total = static_cast<int64_t>(entries_.size()) - pending_creates_;
    for (auto it = entries_.begin();
         it != entries_.end() && static_cast<int64_t>(picked.size()) < limit;
         ++it) {
      std::shared_ptr<const Snapshot> snapshot =
          std::atomic_load(&it->second->published);
      if (snapshot) picked.emplace_back(it->second, std::move(snapshot));
    }
  }
  ScheduleObservation o;
  for (const auto& [entry, snapshot] : picked) {
    o.name = entry->name;
    o.revision = snapshot->schedule->revision();
    o.position = snapshot->position;
    o.max_step_served = entry->max_served.load(std::memory_order_relaxed);
    o.at_served = o.max_step_served >= 0
                      ? snapshot->timeline->At(o.max_step_served)
                      : StepResult();
    const int64_t nanos =
        entry->progressed_nanos.load(std::memory_order_relaxed);
    o.progressed =
        nanos == 0 ? absl::InfinitePast() : absl::FromUnixNanos(nanos);
    o.reported = entry->reported.Get();
    visit(o);
  }
  return total;
}

Registry::EntryPtr Registry::Find(const std::string& name) const {
  absl::ReaderMutexLock lock(&map_mu_);
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

absl::StatusOr<
    std::pair<Registry::EntryPtr, std::shared_ptr<const Registry::Snapshot>>>
Registry::Published(const std::string& name) const {
  if (auto s = ValidateScheduleName("name", name); !s.ok()) return s;
  EntryPtr entry = Find(name);
  std::shared_ptr<const Snapshot> snapshot =
      entry ? std::atomic_load(&entry->published) : nullptr;
  if (!snapshot) return absl::NotFoundError(absl::StrCat(name, ": not found"));
  return std::make_pair(std::move(entry), std::move(snapshot));
}

std::shared_ptr<const Registry::Snapshot> Registry::NewSnapshot(
    v1::Schedule record, std::shared_ptr<const Timeline> timeline) {
  const int64_t position = record.position();
  // The spec is the last segment's (ApplySegment); Present puts it back.
  // Not holding it twice is ~170 bytes less per schedule.
  record.clear_spec();
  return std::make_shared<const Snapshot>(
      Snapshot{std::make_shared<const v1::Schedule>(std::move(record)),
               position, std::move(timeline)});
}

v1::Schedule Registry::Present(const Entry& entry,
                               const Snapshot& snapshot) const {
  v1::Schedule out = *snapshot.schedule;
  if (out.timeline_size() > 0) {
    *out.mutable_spec() = out.timeline(out.timeline_size() - 1).spec();
  }
  out.set_position(snapshot.position);
  out.set_max_step_served(
      std::max(out.max_step_served(), entry.max_served.load()));
  return out;
}

std::optional<int64_t> Registry::RaiseServed(Entry& entry, int64_t step) {
  // Sequentially consistent: the protocol in registry.h relies on it.
  int64_t seen = entry.max_served.load();
  while (step > seen) {
    if (entry.max_served.compare_exchange_weak(seen, step)) {
      // Once per new highest step, not per read: a job re-reading a step
      // has not progressed.
      entry.progressed_nanos.store(absl::GetCurrentTimeNanos(),
                                   std::memory_order_relaxed);
      return seen;
    }
  }
  return std::nullopt;
}

bool Registry::Serve(Entry& entry, const Snapshot* snapshot, int64_t last) {
  if (std::optional<int64_t> before = RaiseServed(entry, last);
      before && watch_hub_.watched()) {
    PublishCycle(entry, *snapshot, *before, last);
  }
  if (last >= entry.fence.from()) return false;  // a change is pending there
  // A change may have been published, and its fence dropped, while this
  // read evaluated the old snapshot.
  return std::atomic_load(&entry.published).get() == snapshot;
}

void Registry::RetryWhenClear(Entry& entry,
                              absl::AnyInvocable<void() &&> retry) {
  options_.telemetry->ReadWaited(ReadWait::kFence);
  // Not inline: the fence clears on the store's thread, and a retry may
  // evaluate a long range.
  entry.fence.WhenClear(
      [executor = options_.executor, retry = std::move(retry)]() mutable {
        executor->Run(std::move(retry));
      });
}

int64_t Registry::RaiseTarget(int64_t last, int64_t count) const {
  const int64_t headroom = std::max(count, options_.served_headroom);
  return last > kMaxStep - headroom ? kMaxStep : last + headroom;
}

void Registry::MaybeRaiseAhead(const EntryPtr& entry, int64_t last,
                               int64_t count) {
  const int64_t durable = entry->mark.durable();
  if (durable - last >= options_.served_headroom / 2 || durable >= kMaxStep) {
    return;  // the usual case: far enough ahead
  }
  if (!WriteGate().ok()) return;
  entry->mark.RaiseAhead(RaiseTarget(last, count), store_, entry);
}

void Registry::RequireServed(const EntryPtr& entry, int64_t last, int64_t count,
                             StatusDone then) {
  if (last <= entry->mark.durable()) return std::move(then)(absl::OkStatus());
  if (auto s = WriteGate(); !s.ok()) return std::move(then)(s);
  options_.telemetry->ReadWaited(ReadWait::kServedMark);
  entry->mark.Require(last, RaiseTarget(last, count), store_, entry,
                      [this, then = std::move(then)](absl::Status s) mutable {
                        if (!s.ok()) {
                          RecordStoreError(s);
                          return std::move(then)(StoreFailure(s));
                        }
                        std::move(then)(absl::OkStatus());
                      });
}

absl::StatusOr<v1::Schedule> Registry::Get(
    const v1::GetScheduleRequest& request) const {
  auto found = Published(request.name());
  if (!found.ok()) return found.status();
  auto [entry, snapshot] = *std::move(found);
  return Present(*entry, *snapshot);
}

absl::StatusOr<google::protobuf::Map<std::string, std::string>>
Registry::Labels(const std::string& name) const {
  auto found = Published(name);
  if (!found.ok()) return found.status();
  return found->second->schedule->labels();
}

absl::StatusOr<std::pair<v1::Schedule, std::shared_ptr<const Timeline>>>
Registry::Inspect(const std::string& name) const {
  auto found = Published(name);
  if (!found.ok()) return found.status();
  auto [entry, snapshot] = *std::move(found);
  return std::make_pair(Present(*entry, *snapshot), snapshot->timeline);
}

absl::StatusOr<v1::ListSchedulesResponse> Registry::List(
    const v1::ListSchedulesRequest& request, int64_t max_page_bytes) const {
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0, got ", request.page_size()));
  }
  const int32_t page_size = request.page_size() == 0
                                ? kDefaultPageSize
                                : std::min(request.page_size(), kMaxPageSize);
  auto filter = LabelFilter::Parse(request.filter());
  if (!filter.ok()) return filter.status();
  std::string after;
  if (!request.page_token().empty()) {
    auto last = DecodePageToken(request.page_token(), request.filter());
    if (!last.ok()) return last.status();
    after = *last;
  }
  // The candidates are picked under the map lock, from the label index's
  // smallest posting list when the filter has terms (so the work is the
  // matches, not every schedule); the page is built outside it, so writers
  // wait for pointer copies only.
  std::vector<std::pair<EntryPtr, std::shared_ptr<const Snapshot>>> picked;
  auto pick = [&](const auto& names, auto entry_of) {
    auto it = after.empty() ? names.begin() : names.upper_bound(after);
    for (;
         it != names.end() && static_cast<int32_t>(picked.size()) <= page_size;
         ++it) {
      EntryPtr entry = entry_of(it->second);
      std::shared_ptr<const Snapshot> snapshot =
          std::atomic_load(&entry->published);
      if (!snapshot || !filter->Matches(snapshot->schedule->labels())) continue;
      picked.emplace_back(std::move(entry), std::move(snapshot));
    }
  };
  {
    absl::ReaderMutexLock lock(&map_mu_);
    if (filter->terms().empty()) {
      pick(entries_, [](const EntryPtr& e) { return e; });
    } else {
      const LabelIndex::Postings* smallest = nullptr;
      bool none = false;
      for (const LabelFilter::Term& t : filter->terms()) {
        const LabelIndex::Postings* p =
            labels_.Find(t.key, t.any_value ? nullptr : &t.value);
        if (p == nullptr) {
          none = true;  // no schedule has this label
          break;
        }
        if (smallest == nullptr || p->size() < smallest->size()) smallest = p;
      }
      if (!none) {
        pick(*smallest, [](const std::shared_ptr<void>& v) {
          return std::static_pointer_cast<Entry>(v);
        });
      }
    }
  }
  v1::ListSchedulesResponse response;
  int64_t bytes = 0;
  for (size_t i = 0; i < picked.size(); ++i) {
    v1::Schedule next = Present(*picked[i].first, *picked[i].second);
    const int64_t size = static_cast<int64_t>(next.ByteSizeLong());
    const bool full =
        response.schedules_size() == page_size ||
        (response.schedules_size() > 0 && bytes + size > max_page_bytes);
    if (full) {
      response.set_next_page_token(EncodePageToken(
          request.filter(),
          response.schedules(response.schedules_size() - 1).name()));
      break;
    }
    *response.add_schedules() = std::move(next);
    bytes += size;
  }
  return response;
}

void Registry::Evaluate(const v1::EvaluateRequest& request,
                        Done<v1::EvaluateResponse> done) {
  auto found = Published(request.name());
  if (!found.ok()) return std::move(done)(found.status());
  auto [entry, snapshot] = *std::move(found);
  if (auto s = CheckLineage(LineageOf(request), *snapshot->schedule); !s.ok()) {
    return std::move(done)(s);
  }
  absl::StatusOr<StepResult> result =
      snapshot->timeline->Evaluate(QueryOf(request));
  if (!result.ok()) return std::move(done)(result.status());
  if (!Serve(*entry, snapshot.get(), request.step())) {
    return RetryWhenClear(*entry,
                          [this, request, done = std::move(done)]() mutable {
                            Evaluate(request, std::move(done));
                          });
  }
  v1::EvaluateResponse response;
  ToProto(*result, response.mutable_result());
  response.set_revision(snapshot->schedule->revision());
  response.set_lineage(snapshot->schedule->lineage());
  if (request.step() <= entry->mark.durable()) {
    MaybeRaiseAhead(entry, request.step(), 1);
    options_.telemetry->Evaluated();
    return std::move(done)(std::move(response));  // the usual case
  }
  RequireServed(entry, request.step(), 1,
                [this, response = std::move(response),
                 done = std::move(done)](absl::Status s) mutable {
                  if (!s.ok()) return std::move(done)(s);
                  options_.telemetry->Evaluated();
                  std::move(done)(std::move(response));
                });
}

void Registry::EvaluateRange(const v1::EvaluateRangeRequest& request,
                             v1::EvaluateRangeResponse* response,
                             StatusDone done) {
  if (auto s = CheckRangeCount(request.count(), options_.max_range_count);
      !s.ok()) {
    return std::move(done)(s);
  }
  auto found = Published(request.name());
  if (!found.ok()) return std::move(done)(found.status());
  auto [entry, snapshot] = *std::move(found);
  if (auto s = CheckLineage(LineageOf(request), *snapshot->schedule); !s.ok()) {
    return std::move(done)(s);
  }
  StepQuery options;
  if (request.has_batch_size()) options.batch_size = request.batch_size();
  response->Clear();
  StepRangeBuilder builder(request.start_step(), request.count(),
                           response->mutable_range());
  absl::Status s = snapshot->timeline->EvaluateRange(
      request.start_step(), request.count(), options,
      [&](const StepResult& r) { builder.Add(r); });
  if (!s.ok()) return std::move(done)(s);
  if (request.compact()) {
    MoveToCompactArrays(response->mutable_range());
  } else if (request.raw_arrays()) {
    MoveToRawArrays(response->mutable_range());
  }
  response->set_revision(snapshot->schedule->revision());
  response->set_lineage(snapshot->schedule->lineage());
  if (request.count() == 0 || request.inspect_only()) {
    return std::move(done)(absl::OkStatus());
  }
  const int64_t last = request.start_step() + request.count() - 1;
  if (!Serve(*entry, snapshot.get(), last)) {
    return RetryWhenClear(
        *entry, [this, request, response, done = std::move(done)]() mutable {
          EvaluateRange(request, response, std::move(done));
        });
  }
  if (last <= entry->mark.durable()) {
    MaybeRaiseAhead(entry, last, request.count());
    options_.telemetry->RangeServed(request.count());
    return std::move(done)(absl::OkStatus());
  }
  const bool inline_answer = request.count() <= kInlineRangeSteps;
  RequireServed(entry, last, request.count(),
                [this, inline_answer, count = request.count(),
                 done = std::move(done)](absl::Status served) mutable {
                  if (served.ok()) options_.telemetry->RangeServed(count);
                  if (inline_answer) return std::move(done)(std::move(served));
                  options_.executor->Run([status = std::move(served),
                                          done = std::move(done)]() mutable {
                    std::move(done)(std::move(status));
                  });
                });
}

absl::Status Registry::Simulate(const v1::SimulateRequest& request,
                                v1::EvaluateRangeResponse* response) const {
  if (auto s = CheckRangeCount(request.count(), options_.max_range_count);
      !s.ok()) {
    return s;
  }
  auto schedule = Schedule::Compile(request.spec(), options_.compile);
  if (!schedule.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.", schedule.status().message()));
  }
  StepQuery options;
  if (request.has_batch_size()) options.batch_size = request.batch_size();
  StepRangeBuilder builder(request.start_step(), request.count(),
                           response->mutable_range());
  absl::Status s =
      (*schedule)->EvaluateRange(request.start_step(), request.count(), options,
                                 [&](const StepResult& r) { builder.Add(r); });
  if (s.ok() && request.compact()) {
    MoveToCompactArrays(response->mutable_range());
  } else if (s.ok() && request.raw_arrays()) {
    MoveToRawArrays(response->mutable_range());
  }
  return s;
}

absl::Status Registry::Close() {
  WriteBatch batch;
  {
    absl::ReaderMutexLock lock(&map_mu_);
    for (const auto& [name, entry] : entries_) {
      const int64_t exact = entry->max_served.load();
      if (exact < entry->mark.durable()) batch.ResetServed(entry->name, exact);
    }
  }
  if (!batch.empty()) store_->Submit(std::move(batch), [](absl::Status) {});
  return store_->Flush();
}

absl::StatusOr<std::shared_ptr<WatchHub::Watcher>> Registry::Watch(
    const v1::WatchSchedulesRequest& request, std::function<void()> wake) {
  auto filter = LabelFilter::Parse(request.filter());
  if (!filter.ok()) return filter.status();
  auto watcher = watch_hub_.Add(
      request,
      [this](const std::string& name) -> std::optional<v1::WatchEvent> {
        auto found = Published(name);
        if (!found.ok()) return std::nullopt;
        v1::WatchEvent event;
        event.set_kind(v1::WatchEvent::CURRENT);
        event.set_name(name);
        *event.mutable_schedule() = Present(*found->first, *found->second);
        event.set_revision(event.schedule().revision());
        return event;
      },
      std::move(wake));
  if (!watcher.ok()) return watcher.status();
  // Listed after the watcher is added: a schedule created in between is in
  // both, and the watcher sends it once.
  std::vector<std::string> existing;
  {
    absl::ReaderMutexLock lock(&map_mu_);
    for (const auto& [name, entry] : entries_) {
      std::shared_ptr<const Snapshot> snapshot =
          std::atomic_load(&entry->published);
      if (snapshot && WatchHub::Matches(request, entry->name, *filter,
                                        snapshot->schedule->labels())) {
        existing.push_back(entry->name);
      }
    }
  }
  (*watcher)->Start(std::move(existing));
  return watcher;
}

void Registry::StopWatching(const std::shared_ptr<WatchHub::Watcher>& watcher) {
  watch_hub_.Remove(watcher);
}

void Registry::EndWatches(const absl::Status& status) {
  watch_hub_.EndAll(status);
}

void Registry::PublishChange(const std::string& name, ScheduleChange kind,
                             const v1::Schedule* schedule,
                             v1::WatchEvent event) {
  if (!watch_hub_.watched()) return;
  switch (kind) {
    case ScheduleChange::kCreate:
      event.set_kind(v1::WatchEvent::CREATED);
      break;
    case ScheduleChange::kUpdate:
    case ScheduleChange::kPlateau:  // a new level: clients refresh as for one
      event.set_kind(v1::WatchEvent::UPDATED);
      break;
    case ScheduleChange::kRestart:
      event.set_kind(v1::WatchEvent::RESTARTED);
      break;
    case ScheduleChange::kDelete:
      event.set_kind(v1::WatchEvent::DELETED);
      break;
    case ScheduleChange::kRewind:
      event.set_kind(v1::WatchEvent::REWOUND);
      break;
  }
  event.set_name(name);
  if (schedule != nullptr) {
    *event.mutable_schedule() = *schedule;
    event.set_revision(schedule->revision());
  }
  watch_hub_.Publish(event, schedule ? &schedule->labels() : nullptr);
}

void Registry::PublishCycle(const Entry& entry, const Snapshot& snapshot,
                            int64_t before, int64_t last) {
  const StepResult now = snapshot.timeline->At(last);
  // Before anything was served the job was at step 0's cycle.
  if (snapshot.timeline->At(std::max<int64_t>(before, 0)).cycle == now.cycle) {
    return;
  }
  v1::WatchEvent event;
  event.set_kind(v1::WatchEvent::CYCLE);
  event.set_name(entry.name);
  event.set_revision(snapshot.schedule->revision());
  event.set_cycle(now.cycle);
  event.set_cycle_start_step(now.step - now.step_in_cycle);
  watch_hub_.Publish(event, &snapshot.schedule->labels());
}

}  // namespace anneal
