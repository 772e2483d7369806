// A fixed pool of threads for heavy work (see work_pool.h).
#include "anneal/server/common/work_pool.h"

#include <pthread.h>

#include <exception>
#include <utility>

#include "anneal/engine/field_error.h"
#include "anneal/server/common/log.h"

namespace anneal {

WorkPool::WorkPool(Options options) : options_(options) {
  for (int i = 0; i < options_.threads; ++i) {
    threads_.emplace_back([this] { Loop(); });
  }
}

WorkPool::~WorkPool() {
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_.SignalAll();
  }
  for (std::thread& t : threads_) t.join();
}

void WorkPool::Run(Task task) {
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
  work_.Signal();
}

bool WorkPool::TryRun(Task task) {
  absl::MutexLock lock(&mu_);
  if (static_cast<int64_t>(queue_.size()) >= options_.max_queued) return false;
  queue_.push_back(std::move(task));
  work_.Signal();
  return true;
}

int64_t WorkPool::queued() const {
  absl::MutexLock lock(&mu_);
  return static_cast<int64_t>(queue_.size());
}

void WorkPool::Loop() {
  pthread_setname_np(pthread_self(), "anneal-work");
  for (;;) {
    Task task;
    {
      absl::MutexLock lock(&mu_);
      while (queue_.empty() && !stopping_) work_.Wait(&mu_);
      if (queue_.empty()) return;  // stopping, and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    try {
      std::move(task)();
    } catch (const std::exception& e) {
      // The task's completions answered while unwinding (once.h); the
      // thread stays for the next task.
      Log("work: a task failed: ", QuoteValue(e.what()));
    }
  }
}

}  // namespace anneal
