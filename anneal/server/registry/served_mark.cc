// The durable served mark of a schedule (see served_mark.h).
#include "anneal/server/registry/served_mark.h"

#include <algorithm>

namespace anneal {

int64_t LoadedServedMark(const v1::Schedule& stored) {
  return stored.position() > 0
             ? std::max(stored.max_step_served(), stored.position())
             : stored.max_step_served();
}

void ServedMark::Require(int64_t last, int64_t target, Store* store,
                         std::shared_ptr<const void> owner,
                         Once<absl::Status> then) {
  if (last <= durable()) return std::move(then)(absl::OkStatus());
  bool waiting = false;
  bool submit = false;
  {
    absl::MutexLock lock(&mu_);
    if (last > durable()) {  // else raised since the check above
      waiting = true;
      waiters_.emplace_back(last, std::move(then));
      if (target_ < last) {
        target_ = target;
        submit = true;
      }
    }
  }
  // `then` was moved from only if waiting.
  // NOLINTNEXTLINE(bugprone-use-after-move)
  if (!waiting) return std::move(then)(absl::OkStatus());
  if (submit) Submit(target, store, std::move(owner));
}

void ServedMark::RaiseAhead(int64_t target, Store* store,
                            std::shared_ptr<const void> owner) {
  {
    absl::MutexLock lock(&mu_);
    if (target_ >= target) return;
    target_ = target;
  }
  Submit(target, store, std::move(owner));
}

void ServedMark::Covered(int64_t step) {
  int64_t seen = durable();
  while (step > seen && !durable_.compare_exchange_weak(seen, step)) {
  }
}

void ServedMark::Submit(int64_t target, Store* store,
                        std::shared_ptr<const void> owner) {
  WriteBatch batch;
  batch.Served(name_, target);
  store->Submit(std::move(batch), [this, target, owner = std::move(owner)](
                                      absl::Status s) { Raised(target, s); });
}

void ServedMark::Raised(int64_t target, const absl::Status& s) {
  std::vector<Once<absl::Status>> ready;
  {
    absl::MutexLock lock(&mu_);
    if (s.ok()) {
      Covered(target);
    } else if (target_ == target) {
      target_ = durable();  // nothing in flight covers more: raise again
    }
    const int64_t covered = durable();
    auto keep = waiters_.begin();
    for (auto& waiter : waiters_) {
      // On failure, the waiters this raise was for get its error; those
      // waiting for a later raise keep waiting for it.
      if (waiter.first <= covered || (!s.ok() && waiter.first <= target)) {
        ready.push_back(std::move(waiter.second));
      } else {
        *keep++ = std::move(waiter);
      }
    }
    waiters_.erase(keep, waiters_.end());
  }
  for (Once<absl::Status>& then : ready) {
    std::move(then)(s.ok() ? absl::OkStatus() : s);
  }
}

}  // namespace anneal
