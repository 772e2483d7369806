// RewindSchedule (see registry.h): a new lineage of a schedule from a step
// that may have been served.
//
// The new lineage is a new Entry, since an entry's served marks only rise:
// it is built beside the old one and replaces it in the map once its batch
// is durable. Until then the old entry's fence, raised at to_step, holds
// back readers of to_step on (they retry and find the new entry), and its
// `rewound` flag turns writers away, so nothing is built on the old head.
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "anneal/model/schedule_resource.h"
#include "anneal/model/timeline_edit.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_entry.h"

namespace anneal {

void Registry::Rewind(const v1::RewindScheduleRequest& request,
                      Done<v1::Schedule> done) {
  done = Observed(request.name(), ScheduleChange::kRewind, std::move(done));
  // Compiled once, outside every lock.
  std::shared_ptr<const Schedule> compiled;
  if (request.has_spec()) {
    auto built = CompileSpec("spec", request.spec());
    if (!built.ok()) return std::move(done)(built.status());
    compiled = *std::move(built);
  }
  if (request.to_step() < 0 || request.to_step() > kMaxStep) {
    return std::move(done)(absl::InvalidArgumentError(absl::StrCat(
        "to_step: must be in [0, 2^62], got ", request.to_step())));
  }

  absl::ReaderMutexLock writes(&writes_mu_);
  auto found = FindForWrite("name", request.name());
  if (!found.ok()) return std::move(done)(found.status());
  const EntryPtr& old = *found;
  absl::MutexLock lock(&old->mu);
  absl::StatusOr<v1::Schedule> writable = WritableHead(*old, request.etag());
  if (!writable.ok()) return std::move(done)(writable.status());
  // The fence first, then the served mark (registry.h): once it is up, no
  // read serves the old lineage past what max_served says.
  Fence::Lease lease = old->fence.Raise(request.to_step());
  v1::Schedule current = *std::move(writable);
  current.set_max_step_served(old->max_served.load());
  if (auto s = CheckRewindStep(request.to_step(), current.max_step_served());
      !s.ok()) {
    return std::move(done)(s);  // the lease drops
  }
  v1::Schedule head =
      RewoundSchedule(current, request.to_step(), request.actor(),
                      request.reason(), NowTimestamp());
  std::shared_ptr<const Timeline> timeline = old->head->timeline;
  if (compiled != nullptr) {
    // The new lineage's spec from to_step, on the clock in force there.
    v1::Segment segment = UpdateSegment(
        head, *timeline, request.to_step(), request.spec(), *compiled,
        StampOf(head, request.actor(), request.reason()));
    TruncateTimeline(request.to_step(), &head);
    ApplySegment(std::move(segment), &head);
    auto built =
        Timeline::Build(head.timeline(), options_.compile, &spec_cache_);
    if (!built.ok()) return std::move(done)(built.status());
    timeline = *std::move(built);
  }
  const int64_t old_bytes = old->head->timeline->table_bytes();
  if (auto s = CheckHead(head, *timeline, old_bytes); !s.ok()) {
    return std::move(done)(s);
  }

  auto entry = std::make_shared<Entry>(old->name, head.max_step_served());
  absl::MutexLock new_lock(&entry->mu);  // invisible until the swap
  WriteBatch batch;
  batch.Put(head);
  // Put keeps the larger served mark: the new lineage's is lower.
  batch.ResetServed(entry->name, head.max_step_served());
  const int64_t delta = timeline->table_bytes() - old_bytes;
  std::shared_ptr<const Snapshot> next =
      NewSnapshot(std::move(head), std::move(timeline));
  Commit(entry, std::move(batch), next,
         [this, old, entry, delta, reply = next, lease = std::move(lease),
          done = std::move(done)](absl::Status s) mutable {
           if (!s.ok()) {
             {
               absl::MutexLock old_lock(&old->mu);
               old->rewound = false;
             }
             table_bytes_ -= delta;
             lease.Drop();
             return std::move(done)(s);
           }
           {
             absl::MutexLock map_lock(&map_mu_);
             Insert(entry, reply->schedule->labels());
           }
           // Readers held back retry now, and find the new lineage.
           lease.Drop();
           std::move(done)(Present(*entry, *reply));
         });
  old->rewound = true;
  entry->head = std::move(next);
  table_bytes_ += delta;
}

}  // namespace anneal
