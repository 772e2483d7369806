// How an update or a restart edits a schedule's timeline: pure functions of
// the schedule and its compiled timeline, with no locking or I/O, so the
// rules can be tested alone (timeline_test.cc).
//
// An edit never touches a served step: it replaces the segments that start
// at or after its own step (none of them served yet) with one new segment.
#ifndef ANNEAL_MODEL_TIMELINE_EDIT_H_
#define ANNEAL_MODEL_TIMELINE_EDIT_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "anneal/engine/schedule.h"
#include "anneal/model/timeline.h"
#include "anneal/v1/resources.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace anneal {

// Who made a change, why and when, as stamped on the segment it adds.
struct ChangeStamp {
  int64_t revision = 0;
  std::string actor;
  std::string reason;
  google::protobuf::Timestamp time;
};

// The stamp of a change that made `head`'s current revision.
inline ChangeStamp StampOf(const v1::Schedule& head, const std::string& actor,
                           const std::string& reason) {
  return ChangeStamp{head.revision(), actor, reason, head.update_time()};
}

// OK if `step` may start a change: past every served step and at most
// 2^62. FAILED_PRECONDITION naming `field` if it was served, else
// INVALID_ARGUMENT.
absl::Status CheckFutureStep(const char* field, int64_t step,
                             int64_t max_step_served);

// The UPDATE segment that runs `spec` (compiled as `compiled`) from step
// `from`, on the clock of the segment in force there, with the cycle offset
// that keeps cycle numbers going forward: the cycle in progress continues,
// unless the new spec starts a cycle exactly there.
v1::Segment UpdateSegment(const v1::Schedule& head, const Timeline& current,
                          int64_t from, const v1::ScheduleSpec& spec,
                          const Schedule& compiled, const ChangeStamp& stamp);

// The RESTART segment at `at` (>= 1): the spec in force there, its clock
// restarted at `at`, the next cycle number, the level (lr_level) in force.
v1::Segment RestartSegment(const v1::Schedule& head, const Timeline& current,
                           int64_t at, const ChangeStamp& stamp);

// The PLATEAU segment at `at`: the spec, clock and cycle numbering in force
// there, served at `level` (Segment.lr_level).
v1::Segment ScaledSegment(const v1::Schedule& head, const Timeline& current,
                          int64_t at, double level, const ChangeStamp& stamp);

// The most replaced segments a schedule keeps in Schedule.superseded.
inline constexpr int kMaxSupersededSegments = 32;

// Replaces head's segments from segment.from_step() on with `segment`, and
// head's spec with its spec. The replaced segments' stamps go to
// head->superseded (without their specs; the oldest beyond
// kMaxSupersededSegments dropped).
void ApplySegment(v1::Segment segment, v1::Schedule* head);

}  // namespace anneal

#endif  // ANNEAL_MODEL_TIMELINE_EDIT_H_
