// The registry: loading, reads and the served-step flusher (see registry.h).
// Writes are in registry_writes.cc.
#include "server/registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/list_filter.h"
#include "server/registry_entry.h"
#include "server/resource_name.h"
#include "server/step_range.h"

namespace anneal {
namespace {

constexpr int32_t kDefaultPageSize = 50;
constexpr int32_t kMaxPageSize = 1000;

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
    : store_(store), options_(options) {
  flusher_ = std::thread([this] { FlusherLoop(); });
}

Registry::~Registry() {
  {
    absl::MutexLock lock(&flusher_mu_);
    stopping_ = true;
  }
  flusher_.join();
  PersistServed();
  (void)store_->Flush();
}

absl::Status Registry::Load() {
  absl::StatusOr<std::vector<StoredSchedule>> stored = store_->LoadAll();
  if (!stored.ok()) return stored.status();
  absl::MutexLock map_lock(&map_mu_);
  for (StoredSchedule& s : *stored) {
    auto timeline = Timeline::Build(s.schedule.timeline());
    if (!timeline.ok()) {
      return absl::DataLossError(absl::StrCat(
          s.schedule.name(),
          ": stored timeline does not compile: ", timeline.status().message()));
    }
    auto entry = std::make_shared<Entry>(s.schedule.name());
    absl::MutexLock lock(&entry->mu);
    entry->head = s.schedule;
    entry->head_timeline = *timeline;
    for (AdvanceRecord& a : s.recent_advances) {
      entry->advance_order.push_back(a.request_id);
      entry->advances[a.request_id] = std::move(a.response);
    }
    entry->max_served = s.schedule.max_step_served();
    entry->persisted_served = s.schedule.max_step_served();
    std::atomic_store(
        &entry->published,
        std::shared_ptr<const Snapshot>(new Snapshot{s.schedule, *timeline}));
    entries_[entry->name] = std::move(entry);
  }
  return absl::OkStatus();
}

int64_t Registry::size() const {
  absl::ReaderMutexLock lock(&map_mu_);
  return static_cast<int64_t>(entries_.size());
}

std::shared_ptr<Registry::Entry> Registry::Find(const std::string& name) const {
  absl::ReaderMutexLock lock(&map_mu_);
  auto it = entries_.find(name);
  return it == entries_.end() ? nullptr : it->second;
}

absl::StatusOr<std::pair<std::shared_ptr<Registry::Entry>,
                         std::shared_ptr<const Registry::Snapshot>>>
Registry::Published(const std::string& name) const {
  if (auto s = ValidateScheduleName("name", name); !s.ok()) return s;
  std::shared_ptr<Entry> entry = Find(name);
  std::shared_ptr<const Snapshot> snapshot =
      entry ? std::atomic_load(&entry->published) : nullptr;
  if (!snapshot) return absl::NotFoundError(absl::StrCat(name, ": not found"));
  return std::make_pair(std::move(entry), std::move(snapshot));
}

v1::Schedule Registry::Present(const Entry& entry,
                               const Snapshot& snapshot) const {
  v1::Schedule out = snapshot.schedule;
  out.set_max_step_served(
      std::max(out.max_step_served(), entry.max_served.load()));
  return out;
}

bool Registry::ServeAndCheckFence(Entry& entry, int64_t last) {
  RaiseServed(entry, last);
  if (last < entry.fence_from.load()) return true;  // the usual case
  // A change from a step at or before `last` is accepted but not yet
  // published: wait for it (a commit's time), then the caller reads again.
  absl::MutexLock lock(&entry.fence_mu);
  entry.fence_mu.Await(absl::Condition(
      +[](Entry* e) ABSL_EXCLUSIVE_LOCKS_REQUIRED(e->fence_mu) {
        return e->pending_changes == 0;
      },
      &entry));
  return false;
}

void Registry::RaiseServed(Entry& entry, int64_t step) {
  // Sequentially consistent: the fence protocol (RaiseFence) relies on it.
  int64_t seen = entry.max_served.load();
  while (step > seen && !entry.max_served.compare_exchange_weak(seen, step)) {
  }
}

absl::StatusOr<v1::Schedule> Registry::Get(
    const v1::GetScheduleRequest& request) const {
  auto found = Published(request.name());
  if (!found.ok()) return found.status();
  auto [entry, snapshot] = *std::move(found);
  return Present(*entry, *snapshot);
}

absl::StatusOr<v1::ListSchedulesResponse> Registry::List(
    const v1::ListSchedulesRequest& request) const {
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
  v1::ListSchedulesResponse response;
  absl::ReaderMutexLock lock(&map_mu_);
  auto it = after.empty() ? entries_.begin() : entries_.upper_bound(after);
  for (; it != entries_.end(); ++it) {
    std::shared_ptr<const Snapshot> snapshot =
        std::atomic_load(&it->second->published);
    if (!snapshot || !filter->Matches(snapshot->schedule.labels())) continue;
    if (response.schedules_size() == page_size) {
      response.set_next_page_token(EncodePageToken(
          request.filter(),
          response.schedules(response.schedules_size() - 1).name()));
      break;
    }
    *response.add_schedules() = Present(*it->second, *snapshot);
  }
  return response;
}

absl::StatusOr<v1::EvaluateResponse> Registry::Evaluate(
    const v1::EvaluateRequest& request) {
  auto found = Published(request.name());
  if (!found.ok()) return found.status();
  auto [entry, snapshot] = *std::move(found);
  absl::StatusOr<StepResult> result =
      snapshot->timeline->Evaluate(QueryOf(request));
  if (!result.ok()) return result.status();
  // Served only if no pending change covers the step and the snapshot is
  // still the published one (a change may have been published and its
  // fence dropped while this read evaluated the old snapshot).
  for (;;) {
    const bool fence_clear = ServeAndCheckFence(*entry, request.step());
    std::shared_ptr<const Snapshot> now = std::atomic_load(&entry->published);
    if (fence_clear && now == snapshot) break;
    if (!now) {
      return absl::NotFoundError(absl::StrCat(request.name(), ": not found"));
    }
    snapshot = std::move(now);
    result = snapshot->timeline->Evaluate(QueryOf(request));
  }
  v1::EvaluateResponse response;
  ToProto(*result, response.mutable_result());
  response.set_revision(snapshot->schedule.revision());
  return response;
}

absl::Status Registry::EvaluateRange(const v1::EvaluateRangeRequest& request,
                                     v1::EvaluateRangeResponse* response) {
  if (auto s = CheckRangeCount(request.count(), options_.max_range_count);
      !s.ok()) {
    return s;
  }
  auto found = Published(request.name());
  if (!found.ok()) return found.status();
  auto [entry, snapshot] = *std::move(found);
  StepQuery options;
  if (request.has_batch_size()) options.batch_size = request.batch_size();
  for (;;) {
    response->Clear();
    StepRangeBuilder builder(request.start_step(), request.count(),
                             response->mutable_range());
    absl::Status s = snapshot->timeline->EvaluateRange(
        request.start_step(), request.count(), options,
        [&](const StepResult& r) { builder.Add(r); });
    if (!s.ok()) return s;
    if (request.count() == 0 || request.inspect_only()) break;
    // As in Evaluate: the fence and the snapshot must both still hold.
    const bool fence_clear =
        ServeAndCheckFence(*entry, request.start_step() + request.count() - 1);
    std::shared_ptr<const Snapshot> now = std::atomic_load(&entry->published);
    if (fence_clear && now == snapshot) break;
    if (!now) {
      return absl::NotFoundError(absl::StrCat(request.name(), ": not found"));
    }
    snapshot = std::move(now);
  }
  response->set_revision(snapshot->schedule.revision());
  return absl::OkStatus();
}

absl::Status Registry::Simulate(const v1::SimulateRequest& request,
                                v1::EvaluateRangeResponse* response) const {
  if (auto s = CheckRangeCount(request.count(), options_.max_range_count);
      !s.ok()) {
    return s;
  }
  auto schedule = Schedule::Compile(request.spec());
  if (!schedule.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.", schedule.status().message()));
  }
  StepQuery options;
  if (request.has_batch_size()) options.batch_size = request.batch_size();
  StepRangeBuilder builder(request.start_step(), request.count(),
                           response->mutable_range());
  return (*schedule)->EvaluateRange(
      request.start_step(), request.count(), options,
      [&](const StepResult& r) { builder.Add(r); });
}

void Registry::PersistServed() {
  WriteBatch batch;
  std::vector<std::pair<std::shared_ptr<Entry>, int64_t>> raised;
  {
    absl::ReaderMutexLock lock(&map_mu_);
    for (const auto& [name, entry] : entries_) {
      const int64_t served = entry->max_served.load();
      if (served > entry->persisted_served.load()) {
        batch.Served(name, served);
        raised.emplace_back(entry, served);
      }
    }
  }
  if (batch.empty()) return;
  store_->Submit(
      std::move(batch), [raised = std::move(raised)](absl::Status s) mutable {
        if (!s.ok()) return;
        for (auto& [entry, served] : raised) {
          int64_t seen = entry->persisted_served.load();
          while (served > seen &&
                 !entry->persisted_served.compare_exchange_weak(seen, served)) {
          }
        }
      });
}

void Registry::FlusherLoop() {
  absl::MutexLock lock(&flusher_mu_);
  while (!stopping_) {
    flusher_mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                                 options_.served_flush_interval);
    if (stopping_) break;
    flusher_mu_.Unlock();
    PersistServed();
    flusher_mu_.Lock();
  }
}

absl::Status Registry::Flush() {
  PersistServed();
  return store_->Flush();
}

}  // namespace anneal
