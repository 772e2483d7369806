// The durable served mark of one schedule: a step at or above every step
// any reader was answered with, kept in the store.
//
// A read that would serve a step past it first raises it durably, with
// headroom (to last + max(count, headroom)), and is answered once that
// write is acknowledged; reads under it never wait. A prefetching job thus
// pays one group-committed write every headroom steps, and after kill -9 the
// server comes back with a mark that no default update or restart can land
// under: no served LR is ever rewritten.
#ifndef ANNEAL_SERVER_REGISTRY_SERVED_MARK_H_
#define ANNEAL_SERVER_REGISTRY_SERVED_MARK_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "anneal/server/common/once.h"
#include "anneal/server/store/store.h"

namespace anneal {

// The served mark a stored schedule loads with: its durable mark, raised to
// its position if an Advance served that. An Advance serves its new
// position, from 1, so position 0 says nothing: a schedule nobody read keeps
// the mark -1 across restarts (else an update would land from step 1).
int64_t LoadedServedMark(const v1::Schedule& stored);

class ServedMark {
 public:
  // `name` is the schedule's, and outlives the mark (the registry's entry
  // owns both); `durable` the mark loaded from the store.
  ServedMark(const std::string& name, int64_t durable)
      : name_(name), durable_(durable), target_(durable) {}
  ServedMark(const ServedMark&) = delete;
  ServedMark& operator=(const ServedMark&) = delete;

  int64_t durable() const { return durable_.load(std::memory_order_acquire); }

  // Notes that `step` is covered by something else made durable (an
  // Advance's position, which loads as a served mark too).
  void Covered(int64_t step);

  // Runs `then` once the durable mark is >= `last`: at once, inline, if it
  // is. Otherwise after the store acknowledges a raise that covers `last`,
  // submitted now (to `target`, which must be >= last) unless one in flight
  // covers it; or with the store's error if that raise failed. `then` runs
  // on the store's thread then. `owner` (what holds this mark) is kept
  // alive until the raise is acknowledged.
  void Require(int64_t last, int64_t target, Store* store,
               std::shared_ptr<const void> owner, Once<absl::Status> then);

  // Raises the mark to `target` without anyone waiting for it, unless a
  // raise in flight reaches that far: a job going forward then finds its
  // next steps durable already.
  void RaiseAhead(int64_t target, Store* store,
                  std::shared_ptr<const void> owner);

 private:
  void Raised(int64_t target, const absl::Status& s);
  void Submit(int64_t target, Store* store, std::shared_ptr<const void> owner);

  const std::string& name_;
  std::atomic<int64_t> durable_;
  absl::Mutex mu_;
  int64_t target_ ABSL_GUARDED_BY(mu_);  // the highest raise in flight
  std::vector<std::pair<int64_t, Once<absl::Status>>> waiters_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_REGISTRY_SERVED_MARK_H_
