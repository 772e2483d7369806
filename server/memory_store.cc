// The in-memory Store (NewMemoryStore in store.h): the SQLite store's
// semantics without a disk, for tests. Batches are applied and acknowledged
// on a background thread in submission order, so callers see the same
// asynchrony as with the real store; the semantics beyond store.h are those
// listed in sqlite_store.h.
#include <algorithm>
#include <deque>
#include <map>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "server/store.h"

namespace anneal {
namespace {

class MemoryStore final : public Store {
 public:
  MemoryStore() : thread_([this] { Loop(); }) {}

  ~MemoryStore() override {
    {
      absl::MutexLock lock(&queue_mu_);
      stopping_ = true;
      work_.Signal();
    }
    thread_.join();  // drains the queue first
  }

  absl::StatusOr<std::vector<StoredSchedule>> LoadAll() override {
    absl::MutexLock lock(&data_mu_);
    std::vector<StoredSchedule> out;
    out.reserve(data_.size());
    for (const auto& [name, entry] : data_) {
      StoredSchedule& s = out.emplace_back();
      s.schedule = entry.schedule;
      s.schedule.set_position(entry.position);
      s.schedule.set_max_step_served(entry.max_step_served);
      s.recent_advances.assign(entry.advances.begin(), entry.advances.end());
    }
    return out;
  }

  absl::StatusOr<std::vector<v1::MetricReport>> ReadReports(
      const std::string& name, int64_t from, int64_t to, int limit) override {
    absl::MutexLock lock(&data_mu_);
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

  void Submit(WriteBatch batch, Done done) override {
    absl::MutexLock lock(&queue_mu_);
    queue_.push_back(Pending{std::move(batch), std::move(done)});
    work_.Signal();
  }

 private:
  struct Pending {
    WriteBatch batch;
    Done done;
  };

  struct Entry {
    v1::Schedule schedule;
    int64_t position = 0;
    int64_t max_step_served = 0;
    std::deque<AdvanceRecord> advances;           // oldest first
    std::map<int64_t, v1::MetricReport> reports;  // by step
  };

  void Loop() {
    for (;;) {
      Pending next;
      {
        absl::MutexLock lock(&queue_mu_);
        while (queue_.empty() && !stopping_) work_.Wait(&queue_mu_);
        if (queue_.empty()) return;
        next = std::move(queue_.front());
        queue_.pop_front();
      }
      absl::Status s;
      {
        absl::MutexLock lock(&data_mu_);
        s = Apply(next.batch);
      }
      if (next.done) std::move(next.done)(std::move(s));
    }
  }

  // Applies `batch` atomically: ops run against copies of the entries they
  // touch, which replace the originals only if every op succeeds.
  absl::Status Apply(const WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(data_mu_) {
    std::map<std::string, std::optional<Entry>> staged;
    auto entry = [&](const std::string& name) -> std::optional<Entry>& {
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
      switch (op.kind) {
        case WriteBatch::Kind::kPut: {
          v1::Schedule schedule;
          if (!schedule.ParseFromString(op.record) ||
              schedule.name() != op.name) {
            return absl::InvalidArgumentError(
                absl::StrCat(op.name, ": Put with a malformed record"));
          }
          if (!e) e.emplace();
          e->position = schedule.position();
          e->max_step_served = schedule.max_step_served();
          e->schedule = std::move(schedule);
          break;
        }
        case WriteBatch::Kind::kDelete:
          e.reset();
          break;
        case WriteBatch::Kind::kAdvance: {
          if (!e) {
            return absl::NotFoundError(absl::StrCat(
                op.name, ": Advance of a schedule that is not stored"));
          }
          e->position = op.value;
          const std::string& id = op.advance.request_id;
          if (id.empty()) break;  // nothing to deduplicate on
          for (auto it = e->advances.begin(); it != e->advances.end(); ++it) {
            if (it->request_id == id) {
              e->advances.erase(it);
              break;
            }
          }
          e->advances.push_back(op.advance);
          while (e->advances.size() >
                 static_cast<size_t>(kAdvanceDedupWindow)) {
            e->advances.pop_front();
          }
          break;
        }
        case WriteBatch::Kind::kServed:
          // A missing schedule is not an error (see sqlite_store.h).
          if (e) e->max_step_served = std::max(e->max_step_served, op.value);
          break;
        case WriteBatch::Kind::kReport: {
          if (!e) {
            return absl::NotFoundError(absl::StrCat(
                op.name, ": Report for a schedule that is not stored"));
          }
          v1::MetricReport& merged = e->reports[op.report.step()];
          if (absl::Status s = MergeReport(op.report, &merged); !s.ok()) {
            return s;  // the staged copy is dropped with the batch
          }
          while (static_cast<int64_t>(e->reports.size()) > op.value) {
            e->reports.erase(e->reports.begin());
          }
          break;
        }
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

  absl::Mutex queue_mu_;
  absl::CondVar work_;  // signalled when queue_ grows or stopping_ is set
  std::deque<Pending> queue_ ABSL_GUARDED_BY(queue_mu_);
  bool stopping_ ABSL_GUARDED_BY(queue_mu_) = false;

  absl::Mutex data_mu_;
  std::map<std::string, Entry> data_ ABSL_GUARDED_BY(data_mu_);

  std::thread thread_;  // last: it runs Loop, which uses every member
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() {
  return std::make_unique<MemoryStore>();
}

}  // namespace anneal
