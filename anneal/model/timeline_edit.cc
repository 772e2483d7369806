// How updates and restarts edit a timeline (see timeline_edit.h).
#include "anneal/model/timeline_edit.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"

namespace anneal {
namespace {

v1::Segment NewSegment(v1::Segment::Kind kind, int64_t from,
                       const v1::ScheduleSpec& spec, int64_t origin,
                       int64_t cycle_offset, const ChangeStamp& stamp) {
  v1::Segment segment;
  segment.set_from_step(from);
  *segment.mutable_spec() = spec;
  segment.set_time_origin(origin);
  segment.set_cycle_offset(cycle_offset);
  segment.set_kind(kind);
  segment.set_revision(stamp.revision);
  segment.set_actor(stamp.actor);
  segment.set_reason(stamp.reason);
  *segment.mutable_create_time() = stamp.time;
  return segment;
}

}  // namespace

absl::Status CheckFutureStep(const char* field, int64_t step,
                             int64_t max_step_served) {
  if (step > max_step_served && step <= kMaxStep) return absl::OkStatus();
  if (step > kMaxStep) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be <= 2^62, got ", step));
  }
  return absl::FailedPreconditionError(
      absl::StrCat(field, ": must be > max_step_served (", max_step_served,
                   ") so no LR already served is rewritten, got ", step));
}

v1::Segment UpdateSegment(const v1::Schedule& head, const Timeline& current,
                          int64_t from, const v1::ScheduleSpec& spec,
                          const Schedule& compiled, const ChangeStamp& stamp) {
  const v1::Segment& in_force =
      head.timeline(static_cast<int>(current.SegmentAt(from)));
  int64_t offset = 0;
  if (from > 0) {
    const StepResult next = compiled.At(from - in_force.time_origin());
    const int64_t wanted =
        current.At(from - 1).cycle + (next.step_in_cycle == 0 ? 1 : 0);
    offset = std::max<int64_t>(0, wanted - next.cycle);
  }
  return NewSegment(v1::Segment::UPDATE, from, spec, in_force.time_origin(),
                    offset, stamp);
}

v1::Segment RestartSegment(const v1::Schedule& head, const Timeline& current,
                           int64_t at, const ChangeStamp& stamp) {
  const v1::Segment& in_force =
      head.timeline(static_cast<int>(current.SegmentAt(at)));
  v1::Segment segment = NewSegment(v1::Segment::RESTART, at, in_force.spec(),
                                   at, current.At(at - 1).cycle + 1, stamp);
  segment.set_lr_level(in_force.lr_level());
  return segment;
}

v1::Segment ScaledSegment(const v1::Schedule& head, const Timeline& current,
                          int64_t at, double level, const ChangeStamp& stamp) {
  const v1::Segment& in_force =
      head.timeline(static_cast<int>(current.SegmentAt(at)));
  v1::Segment segment =
      NewSegment(v1::Segment::PLATEAU, at, in_force.spec(),
                 in_force.time_origin(), in_force.cycle_offset(), stamp);
  segment.set_lr_level(level);
  return segment;
}

void ApplySegment(v1::Segment segment, v1::Schedule* head) {
  auto* timeline = head->mutable_timeline();
  int first_replaced = timeline->size();
  while (first_replaced > 0 &&
         timeline->Get(first_replaced - 1).from_step() >= segment.from_step()) {
    --first_replaced;
  }
  // The history keeps who made the replaced changes, in order.
  for (int i = first_replaced; i < timeline->size(); ++i) {
    v1::Segment* kept = head->add_superseded();
    *kept = timeline->Get(i);
    kept->clear_spec();
    kept->set_replaced_by_revision(segment.revision());
  }
  auto* superseded = head->mutable_superseded();
  if (superseded->size() > kMaxSupersededSegments) {
    superseded->DeleteSubrange(0, superseded->size() - kMaxSupersededSegments);
  }
  while (timeline->size() > first_replaced) timeline->RemoveLast();
  *head->mutable_spec() = segment.spec();
  *timeline->Add() = std::move(segment);
}

}  // namespace anneal
