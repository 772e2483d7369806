// A schedule's timeline: the segments (spec, from_step, clock origin, cycle
// offset) that together define lr(t) for every step, compiled for evaluation.
//
// Segment i covers [from_i, from_{i+1}); there lr(t) is segment i's compiled
// spec at local time t - time_origin_i, its cycle index shifted by
// cycle_offset_i. A RESTART segment starts its clock at from_step, so that
// step begins a new cycle (restart = true) and the step before it closes one
// (snapshot = true). A segment with an lr_level (a plateau policy's cut)
// serves its spec scaled so that the peak is that level. Immutable and
// shareable between threads.
#ifndef ANNEAL_MODEL_TIMELINE_H_
#define ANNEAL_MODEL_TIMELINE_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "anneal/engine/schedule.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

class SpecCache;  // spec_cache.h

class Timeline {
 public:
  // Compiles every segment (a segment whose spec equals the one before it,
  // as a RESTART's does, shares its compiled form). Segments must start at
  // step 0 and have strictly increasing from_step (the registry guarantees
  // it).
  // With `cache`, the compiled forms come from it (shared with every other
  // timeline of an equal spec).
  static absl::StatusOr<std::shared_ptr<const Timeline>> Build(
      const google::protobuf::RepeatedPtrField<v1::Segment>& segments,
      const CompileLimits& limits = {}, SpecCache* cache = nullptr);

  // `base` with its segments from `segment.from_step()` on replaced by
  // `segment`, compiled as `compiled`. Reuses base's compiled parts, so an
  // edit costs the same however long the history.
  static std::shared_ptr<const Timeline> Append(
      const Timeline& base, const v1::Segment& segment,
      std::shared_ptr<const Schedule> compiled);

  // As Schedule::Evaluate, for the global step query.step.
  absl::StatusOr<StepResult> Evaluate(const StepQuery& query) const;
  // As Schedule::At (0 <= step <= kMaxStep).
  StepResult At(int64_t step) const;
  // As Schedule::EvaluateRange, across segment boundaries.
  absl::Status EvaluateRange(
      int64_t start, int64_t count, const StepQuery& options,
      absl::FunctionRef<void(const StepResult&)> visit) const;

  // The index of the segment in force at `step`.
  size_t SegmentAt(int64_t step) const;
  size_t size() const { return parts_.size(); }
  // The compiled spec of segment `i`.
  const std::shared_ptr<const Schedule>& compiled(size_t i) const {
    return parts_[i].schedule;
  }
  // The bytes of tables its compiled specs hold (each shared one once).
  int64_t table_bytes() const { return table_bytes_; }

 private:
  struct Part {
    int64_t from = 0;
    int64_t origin = 0;
    int64_t cycle_offset = 0;
    double lr_level = 0;         // the segment's plateau level (0: none)
    bool restart = false;        // a RESTART segment
    bool next_restarts = false;  // the next segment is a RESTART
    int64_t end = kMaxStep + 1;  // the next segment's from_step
    std::shared_ptr<const Schedule> schedule;
  };
  // Maps a segment-local result to the global step.
  static void Globalize(const Part& part, int64_t step, StepResult* r);
  static Part PartOf(const v1::Segment& segment,
                     std::shared_ptr<const Schedule> compiled);
  // Appends `part`, linking it to the one before.
  void Add(Part part);

  std::vector<Part> parts_;
  int64_t table_bytes_ = 0;
};

}  // namespace anneal

#endif  // ANNEAL_MODEL_TIMELINE_H_
