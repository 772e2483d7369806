// SpecCache: one compiled form per distinct spec, shared by every timeline
// that holds it. A fleet's schedules often run the same spec (one config,
// many jobs); each compiled form holds tables (an SGDR cycle table, a
// momentum bias-correction table) of 1-10 KiB, so sharing them is most of a
// schedule's memory (docs/performance.md).
//
//   SpecCache cache;
//   auto a = cache.Compile(spec, limits);  // compiles
//   auto b = cache.Compile(spec, limits);  // compiles (checks), returns *a
#ifndef ANNEAL_MODEL_SPEC_CACHE_H_
#define ANNEAL_MODEL_SPEC_CACHE_H_

#include <cstddef>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "anneal/engine/schedule.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

// Thread-safe. Holds only weak references: a form is freed once no timeline
// uses it.
class SpecCache {
 public:
  // Compiles `spec` under `limits` (so every caller gets its own validation
  // and errors), then returns the form already shared for an equal spec if
  // one is alive, else the new one, now shared.
  absl::StatusOr<std::shared_ptr<const Schedule>> Compile(
      const v1::ScheduleSpec& spec, const CompileLimits& limits);

  // Distinct specs with a live compiled form.
  size_t size() const;

 private:
  // Drops the entries whose form has been freed.
  void Sweep() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  // Keyed by the spec's deterministic serialization: equal bytes are equal
  // specs (the converse may miss, which only costs sharing).
  absl::flat_hash_map<std::string, std::weak_ptr<const Schedule>> forms_
      ABSL_GUARDED_BY(mu_);
  size_t sweep_at_ ABSL_GUARDED_BY(mu_) = 64;
};

}  // namespace anneal

#endif  // ANNEAL_MODEL_SPEC_CACHE_H_
