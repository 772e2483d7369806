// The fence that keeps a served LR from being rewritten by a timeline change
// that is accepted but not yet durable.
//
// A change raises the fence at its first step and holds a Lease until it is
// published (or has failed); the Lease drops it on every path, an exception
// included. A reader that would serve a step at or past the fence does not
// serve it: it asks to be called again once no change is pending
// (WhenClear), and evaluates again then. The protocol with the served marks
// is in registry.h.
#ifndef ANNEAL_SERVER_REGISTRY_FENCE_H_
#define ANNEAL_SERVER_REGISTRY_FENCE_H_

#include <atomic>
#include <cstdint>
#include <limits>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"

namespace anneal {

class Fence {
 public:
  static constexpr int64_t kNone = std::numeric_limits<int64_t>::max();

  // A change pending from a step on; dropped when destroyed or moved from.
  class Lease {
   public:
    Lease() = default;
    Lease(Lease&& other) noexcept : fence_(other.fence_) {
      other.fence_ = nullptr;
    }
    Lease& operator=(Lease&& other) noexcept;
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    ~Lease() { Drop(); }
    // Drops it now (idempotent).
    void Drop();

   private:
    friend class Fence;
    explicit Lease(Fence* fence) : fence_(fence) {}
    Fence* fence_ = nullptr;
  };

  Fence() = default;
  Fence(const Fence&) = delete;
  Fence& operator=(const Fence&) = delete;

  // Raises the fence to cover a change from `from`. The fence stays at the
  // smallest first step of the pending changes until none is pending.
  Lease Raise(int64_t from);

  // The fence (kNone when no change is pending). Sequentially consistent:
  // see the protocol in registry.h.
  int64_t from() const { return from_.load(); }

  // Runs `then` once no change is pending: at once, inline, if none is;
  // else on the thread that drops the last lease, outside the lock.
  void WhenClear(absl::AnyInvocable<void() &&> then);

 private:
  void Drop();

  absl::Mutex mu_;
  int pending_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t min_ ABSL_GUARDED_BY(mu_) = kNone;
  std::vector<absl::AnyInvocable<void() &&>> waiters_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> from_{kNone};
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_FENCE_H_
