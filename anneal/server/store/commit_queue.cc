// Group commit for every Store backend (see commit_queue.h).
#include "anneal/server/store/commit_queue.h"

#include <pthread.h>

#include <algorithm>
#include <utility>

#include "absl/synchronization/notification.h"

namespace anneal {

CommitQueue::CommitQueue(Backend* backend, Options options)
    : backend_(backend), options_(std::move(options)) {
  thread_ = std::thread([this] { Loop(); });
}

CommitQueue::~CommitQueue() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_.Signal();
  }
  thread_.join();  // the thread drains the queue before it returns
}

void CommitQueue::Submit(WriteBatch batch, Store::Done done) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(Pending{std::move(batch), std::move(done)});
  ++stats_.queued;
  work_.Signal();
}

absl::Status CommitQueue::Resume() {
  absl::Notification resumed;
  absl::Status result;
  {
    absl::MutexLock lock(&mu_);
    Pending marker;
    marker.probe = true;
    marker.done = [&](absl::Status s) {
      result = std::move(s);
      resumed.Notify();
    };
    queue_.push_back(std::move(marker));
    work_.Signal();
  }
  resumed.WaitForNotification();
  return result;
}

StoreStats CommitQueue::stats() const {
  absl::MutexLock lock(&mu_);
  return stats_;
}

void CommitQueue::Loop() {
  pthread_setname_np(pthread_self(),
                     options_.thread_name.substr(0, 15).c_str());
  std::vector<Pending> group;
  while (NextGroup(&group)) {
    Run(group);
    group.clear();
  }
}

bool CommitQueue::NextGroup(std::vector<Pending>* group) {
  absl::MutexLock lock(&mu_);
  while (queue_.empty() && !stopping_) work_.Wait(&mu_);
  if (queue_.empty()) return false;
  if (queue_.front().probe) {
    group->push_back(std::move(queue_.front()));
    queue_.pop_front();
    return true;
  }
  size_t ops = 0;
  do {
    ops += queue_.front().batch.ops().size();
    group->push_back(std::move(queue_.front()));
    queue_.pop_front();
    --stats_.queued;
  } while (!queue_.empty() && !queue_.front().probe &&
           ops + queue_.front().batch.ops().size() <=
               static_cast<size_t>(options_.max_group_ops));
  return true;
}

void CommitQueue::Run(std::vector<Pending>& group) {
  if (group.size() == 1 && group[0].probe) {
    absl::Status s = failure_.ok() ? absl::OkStatus() : backend_->Probe();
    if (s.ok()) {
      failure_ = absl::OkStatus();
      absl::MutexLock lock(&mu_);
      stats_.failed = false;
    }
    std::move(group[0].done)(std::move(s));
    return;
  }
  std::vector<absl::Status> results(group.size(), absl::OkStatus());
  std::vector<const WriteBatch*> batches;
  batches.reserve(group.size());
  for (const Pending& p : group) batches.push_back(&p.batch);
  const bool any_ops =
      std::any_of(group.begin(), group.end(),
                  [](const Pending& p) { return !p.batch.empty(); });
  // Only flush markers: nothing to commit, and nothing to wait for, since
  // every earlier group has committed (or failed).
  absl::Status s = failure_;
  bool commit_failed = false;
  if (s.ok() && any_ops) {
    s = backend_->Commit(batches, absl::MakeSpan(results));
    commit_failed = !s.ok();
    if (commit_failed) failure_ = s;
  }
  {
    int64_t committed = 0, ops = 0;
    for (size_t i = 0; i < group.size(); ++i) {
      if (group[i].batch.empty() || !results[i].ok()) continue;
      ++committed;
      ops += static_cast<int64_t>(group[i].batch.ops().size());
    }
    absl::MutexLock lock(&mu_);
    if (!failure_.ok()) {
      stats_.failed = true;
      if (commit_failed) ++stats_.failed_commits;
    } else if (any_ops) {
      ++stats_.commits;
      stats_.batches += committed;
      stats_.ops += ops;
      stats_.largest_group = std::max(stats_.largest_group, committed);
    }
  }
  // Outside the lock: a callback may Submit again.
  for (size_t i = 0; i < group.size(); ++i) {
    if (group[i].done) std::move(group[i].done)(s.ok() ? results[i] : s);
  }
}

}  // namespace anneal
