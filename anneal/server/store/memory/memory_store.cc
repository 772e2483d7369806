// The in-memory Store (NewMemoryStore in store.h): store.h's contract without
// a disk, for tests. Batches go through the same CommitQueue as the SQLite
// store's, so callers see the same grouping, ordering, asynchrony and failed
// state; MemoryStoreOptions::commit_fault makes a group fail on demand.
#include "anneal/server/store/memory/memory_store.h"

#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/store/commit_queue.h"
#include "anneal/server/store/store.h"

namespace anneal {
namespace {

struct Entry {
  v1::Schedule schedule;
  int64_t position = 0;
  int64_t max_step_served = 0;
  std::deque<AdvanceRecord> advances;           // oldest first
  std::map<int64_t, v1::MetricReport> reports;  // by step
};

// The data and how a group is applied to it; the queue's backend.
class MemoryData final : public CommitQueue::Backend {
 public:
  explicit MemoryData(std::function<absl::Status()> fault)
      : fault_(std::move(fault)) {}

  absl::Status Commit(absl::Span<const WriteBatch* const> group,
                      absl::Span<absl::Status> results) override {
    if (fault_) {
      if (absl::Status s = fault_(); !s.ok()) return s;
    }
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < group.size(); ++i) results[i] = Apply(*group[i]);
    return absl::OkStatus();
  }

  absl::Status Probe() override { return fault_ ? fault_() : absl::OkStatus(); }

  absl::StatusOr<std::vector<StoredSchedule>> LoadAll() {
    absl::MutexLock lock(&mu_);
    std::vector<StoredSchedule> out;
    out.reserve(data_.size());
    for (const auto& [name, entry] : data_) {
      StoredSchedule& s = out.emplace_back();
      s.schedule = entry.schedule;
      s.schedule.set_position(entry.position);
      s.schedule.set_max_step_served(entry.max_step_served);
      s.recent_advances.assign(entry.advances.begin(), entry.advances.end());
      if (!entry.reports.empty())
        s.last_report = entry.reports.rbegin()->second;
    }
    return out;
  }

  std::vector<v1::MetricReport> ReadReports(const std::string& name,
                                            int64_t from, int64_t to,
                                            int limit) {
    absl::MutexLock lock(&mu_);
    std::vector<v1::MetricReport> out;
    auto found = data_.find(name);
    if (found == data_.end()) return out;
    const auto& reports = found->second.reports;
    for (auto it = reports.lower_bound(from);
         it != reports.end() && it->first < to &&
         static_cast<int>(out.size()) < limit;
         ++it) {
      out.push_back(it->second);
    }
    return out;
  }

 private:
  // Applies `batch` atomically: ops run against copies of the entries they
  // touch, which replace the originals only if every op succeeds.
  absl::Status Apply(const WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (batch.ops().size() == 1) return ApplyInPlace(batch.ops()[0]);
    std::map<std::string, std::optional<Entry>> staged;
    auto entry = [&](const std::string& name) ABSL_EXCLUSIVE_LOCKS_REQUIRED(
                     mu_) -> std::optional<Entry>& {
      auto it = staged.find(name);
      if (it == staged.end()) {
        auto found = data_.find(name);
        it = staged
                 .emplace(name, found == data_.end()
                                    ? std::nullopt
                                    : std::optional<Entry>(found->second))
                 .first;
      }
      return it->second;
    };
    for (const WriteBatch::Op& op : batch.ops()) {
      std::optional<Entry>& e = entry(op.name);
      if (absl::Status s = ApplyOp(op, e); !s.ok()) {
        return s;  // the staged copies are dropped with the batch
      }
    }
    for (auto& [name, e] : staged) {
      if (e) {
        data_[name] = *std::move(e);
      } else {
        data_.erase(name);
      }
    }
    return absl::OkStatus();
  }

  // A batch of one op (every Advance and report) needs no copy: an op checks
  // everything before it changes anything, so a failed op leaves its entry
  // as it was. Copying the entry would copy its 1024 remembered advances
  // and its reports, which cost more than the rest of an Advance.
  absl::Status ApplyInPlace(const WriteBatch::Op& op)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto found = data_.find(op.name);
    std::optional<Entry> e;
    if (found != data_.end()) e = std::move(found->second);
    absl::Status s = ApplyOp(op, e);
    if (!e) {
      if (found != data_.end()) data_.erase(found);
    } else if (found != data_.end()) {
      found->second = *std::move(e);
    } else {
      data_.emplace(op.name, *std::move(e));
    }
    return s;
  }

  // Changes `e` only if it succeeds.
  static absl::Status ApplyOp(const WriteBatch::Op& op,
                              std::optional<Entry>& e) {
    switch (op.kind) {
      case WriteBatch::Kind::kPut: {
        v1::Schedule schedule;
        if (!schedule.ParseFromString(op.record) ||
            schedule.name() != op.name) {
          return absl::InvalidArgumentError(
              absl::StrCat(op.name, ": Put with a malformed record"));
        }
        const int64_t served =
            e ? std::max(e->max_step_served, schedule.max_step_served())
              : schedule.max_step_served();
        if (!e) e.emplace();
        e->position = schedule.position();
        e->max_step_served = served;
        e->schedule = std::move(schedule);
        return absl::OkStatus();
      }
      case WriteBatch::Kind::kDelete:
        e.reset();
        return absl::OkStatus();
      case WriteBatch::Kind::kAdvance: {
        if (!e) {
          return absl::NotFoundError(absl::StrCat(
              op.name, ": Advance of a schedule that is not stored"));
        }
        e->position = op.value;
        const std::string& id = op.advance.request_id;
        if (id.empty()) return absl::OkStatus();  // nothing to dedup on
        for (auto it = e->advances.begin(); it != e->advances.end(); ++it) {
          if (it->request_id == id) {
            e->advances.erase(it);
            break;
          }
        }
        e->advances.push_back(op.advance);
        while (e->advances.size() > static_cast<size_t>(kAdvanceDedupWindow)) {
          e->advances.pop_front();
        }
        return absl::OkStatus();
      }
      case WriteBatch::Kind::kServed:
        if (e) e->max_step_served = std::max(e->max_step_served, op.value);
        return absl::OkStatus();
      case WriteBatch::Kind::kResetServed:
        if (e) e->max_step_served = op.value;
        return absl::OkStatus();
      case WriteBatch::Kind::kReport: {
        if (!e) {
          return absl::NotFoundError(absl::StrCat(
              op.name, ": Report for a schedule that is not stored"));
        }
        // MergeReport checks before it merges; only a step it added is undone.
        auto [at, added] = e->reports.try_emplace(op.report.step());
        if (absl::Status s = MergeReport(op.report, &at->second); !s.ok()) {
          if (added) e->reports.erase(at);
          return s;
        }
        while (static_cast<int64_t>(e->reports.size()) > op.value) {
          e->reports.erase(e->reports.begin());
        }
        return absl::OkStatus();
      }
    }
    return absl::InternalError("unknown op");
  }

  const std::function<absl::Status()> fault_;
  absl::Mutex mu_;
  std::map<std::string, Entry> data_ ABSL_GUARDED_BY(mu_);
};

class MemoryStore final : public QueuedStore {
 public:
  // The data is the queue's backend (QueuedStore owns it); its reads lock
  // it themselves.
  explicit MemoryStore(MemoryStoreOptions options)
      : MemoryStore(new MemoryData(std::move(options.commit_fault))) {}

  absl::StatusOr<std::vector<StoredSchedule>> LoadAll() override {
    return data_->LoadAll();
  }
  absl::StatusOr<std::vector<v1::MetricReport>> ReadReports(
      const std::string& name, int64_t from, int64_t to, int limit) override {
    return data_->ReadReports(name, from, to, limit);
  }

 private:
  explicit MemoryStore(MemoryData* data)
      : QueuedStore(std::unique_ptr<MemoryData>(data),
                    CommitQueue::Options{4096, "anneal-memstore"}),
        data_(data) {}

  MemoryData* const data_;  // owned by QueuedStore
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore(MemoryStoreOptions options) {
  return std::make_unique<MemoryStore>(std::move(options));
}

}  // namespace anneal
