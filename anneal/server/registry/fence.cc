// The fence of a schedule's pending timeline changes (see fence.h).
#include "anneal/server/registry/fence.h"

#include <algorithm>
#include <utility>

namespace anneal {

Fence::Lease& Fence::Lease::operator=(Lease&& other) noexcept {
  if (this != &other) {
    Drop();
    fence_ = std::exchange(other.fence_, nullptr);
  }
  return *this;
}

void Fence::Lease::Drop() {
  if (Fence* fence = std::exchange(fence_, nullptr)) fence->Drop();
}

Fence::Lease Fence::Raise(int64_t from) {
  absl::MutexLock lock(&mu_);
  ++pending_;
  min_ = std::min(min_, from);
  from_.store(min_);
  return Lease(this);
}

void Fence::Drop() {
  std::vector<absl::AnyInvocable<void() &&>> clear;
  {
    absl::MutexLock lock(&mu_);
    if (--pending_ > 0) return;
    min_ = kNone;
    from_.store(kNone);
    clear.swap(waiters_);
  }
  for (auto& then : clear) std::move(then)();
}

void Fence::WhenClear(absl::AnyInvocable<void() &&> then) {
  {
    absl::MutexLock lock(&mu_);
    if (pending_ > 0) {
      waiters_.push_back(std::move(then));
      return;
    }
  }
  std::move(then)();
}

}  // namespace anneal
