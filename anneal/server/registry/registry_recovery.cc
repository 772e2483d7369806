// The registry after a store failure (see registry.h): writes stop, and the
// registry tries the store again every store_retry_interval until it can
// commit, then reloads every schedule from it and writes resume.
//
// Why reload: writes accepted before the failure was noticed advanced the
// in-memory heads, but their batches failed (the store fails every batch
// after a failure, store.h), so the heads are ahead of what is durable. The
// published snapshots are not (they are published only once durable), and
// the store is the truth: each head is reset to what it holds.
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/server/common/log.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_entry.h"

namespace anneal {

bool Registry::writable() const {
  absl::MutexLock lock(&error_mu_);
  return store_error_.ok();
}

void Registry::RecordStoreError(const absl::Status& s) {
  {
    absl::MutexLock lock(&error_mu_);
    if (!store_error_.ok()) return;
    store_error_ = s;
  }
  if (absl::IsDataLoss(s)) {
    Log("store: writes stopped for good: ", s.ToString(),
        "; the database needs repair, then a restart of the server");
  } else {
    Log("store: writes stopped: ", s.ToString(), "; retrying every ",
        absl::FormatDuration(options_.store_retry_interval));
  }
  if (options_.on_store_state) options_.on_store_state(false, s);
}

void Registry::RecoveryLoop() {
  int attempts = 0;
  absl::MutexLock lock(&error_mu_);
  for (;;) {
    auto failed_and_retryable =
        [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(error_mu_) {
          return stopping_ ||
                 (!store_error_.ok() && !absl::IsDataLoss(store_error_));
        };
    error_mu_.Await(absl::Condition(&failed_and_retryable));
    if (stopping_) return;
    error_mu_.AwaitWithTimeout(absl::Condition(&stopping_),
                               options_.store_retry_interval);
    if (stopping_) return;
    error_mu_.Unlock();
    const absl::Status s = Recover();
    ++attempts;
    if (s.ok()) {
      Log("store: writes resumed after ", attempts, " attempt",
          attempts == 1 ? "" : "s");
      attempts = 0;
      if (options_.on_store_state) options_.on_store_state(true, s);
    } else if (attempts == 1 || attempts % 60 == 0) {
      Log("store: still failing after ", attempts, " attempt",
          attempts == 1 ? "" : "s", ": ", s.ToString());
    }
    error_mu_.Lock();
  }
}

absl::Status Registry::Recover() {
  // No writer is between the gate and the store while this holds it.
  absl::MutexLock writes(&writes_mu_);
  if (absl::Status s = store_->Resume(); !s.ok()) return s;
  absl::StatusOr<std::vector<StoredSchedule>> stored = store_->LoadAll();
  if (!stored.ok()) return stored.status();
  int64_t table_bytes = 0;
  for (StoredSchedule& s : *stored) {
    EntryPtr entry = Find(s.schedule.name());
    if (!entry)
      continue;  // cannot happen: a create is listed before it
                 // is durable, and unlisted only once deleted
    std::shared_ptr<const Snapshot> published =
        std::atomic_load(&entry->published);
    std::shared_ptr<const Timeline> timeline;
    if (published && published->schedule->revision() == s.schedule.revision()) {
      timeline = published->timeline;
    } else {
      CompileLimits unlimited;
      unlimited.max_table_bytes = std::numeric_limits<int64_t>::max();
      auto built =
          Timeline::Build(s.schedule.timeline(), unlimited, &spec_cache_);
      if (!built.ok()) {
        return absl::DataLossError(absl::StrCat(
            s.schedule.name(),
            ": stored timeline does not compile: ", built.status().message()));
      }
      timeline = *std::move(built);
    }
    table_bytes += timeline->table_bytes();
    {
      // The stored labels may be ones a failed update never published.
      absl::MutexLock map_lock(&map_mu_);
      labels_.Add(entry->name, entry, s.schedule.labels());
    }
    Reset(*entry, std::move(s), std::move(timeline));
  }
  table_bytes_ = table_bytes;
  absl::MutexLock lock(&error_mu_);
  store_error_ = absl::OkStatus();
  return absl::OkStatus();
}

std::shared_ptr<const Registry::Snapshot> Registry::Reset(
    Entry& entry, StoredSchedule stored,
    std::shared_ptr<const Timeline> timeline) {
  absl::MutexLock lock(&entry.mu);
  const int64_t mark = LoadedServedMark(stored.schedule);
  RaiseServed(entry, mark);
  if (stored.last_report) {
    entry.reported.Merge(*stored.last_report, options_.max_reported_names);
  }
  entry.head = NewSnapshot(std::move(stored.schedule), std::move(timeline));
  entry.deleted = false;
  entry.advances.Clear();
  for (AdvanceRecord& a : stored.recent_advances) {
    entry.advances.Remember(std::move(a.request_id), std::move(a.response));
  }
  return entry.head;
}

}  // namespace anneal
