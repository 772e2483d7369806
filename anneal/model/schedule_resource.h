// The rules of a Schedule resource beyond its timeline: its etag, its
// revisions, what an update mask selects, and what a new schedule holds.
// Pure functions of the resource (the registry applies them under its
// locks; tests check them alone: schedule_resource_test.cc).
#ifndef ANNEAL_MODEL_SCHEDULE_RESOURCE_H_
#define ANNEAL_MODEL_SCHEDULE_RESOURCE_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/v1/resources.pb.h"
#include "google/protobuf/field_mask.pb.h"
#include "google/protobuf/timestamp.pb.h"

namespace anneal {

// Opaque; changes with every revision, not with the position counter, so
// a busy Advance loop does not invalidate an operator's Update.
std::string Etag(const v1::Schedule& schedule);

// OK if `sent` is empty or the schedule's etag; else ABORTED saying so.
absl::Status CheckEtag(const std::string& sent, const v1::Schedule& schedule);

// Starts the schedule's next revision, changed at `now`.
void NextRevision(const google::protobuf::Timestamp& now,
                  v1::Schedule* schedule);

// What an UpdateSchedule changes.
struct UpdatedFields {
  bool spec = false;
  bool display_name = false;
  bool labels = false;
};

// The fields `mask` names (spec, display_name, labels, or * for all); an
// empty mask means every field `input` sets. INVALID_ARGUMENT naming
// update_mask.paths[i] for any other path, and schedule.spec if the mask
// names the spec but `input` has none.
absl::StatusOr<UpdatedFields> FieldsToUpdate(
    const google::protobuf::FieldMask& mask, const v1::Schedule& input);

// A new schedule `id` from `input` (spec, display name, labels): revision
// `after_revision` + 1 (a deleted schedule's name continues its revisions),
// one CREATE segment from step 0 by `actor` for `reason`, nothing served.
v1::Schedule NewSchedule(const std::string& id, const v1::Schedule& input,
                         const std::string& actor, const std::string& reason,
                         const google::protobuf::Timestamp& now,
                         int64_t after_revision = 0);

// The schedule ForkSchedule makes from `source` (as Get presents it): the
// source's segments that start below `at_step` (the first always), each
// keeping its clock, level, actor, reason and time but stamped with the new
// schedule's first revision (`after_revision` + 1); `input`'s display name
// and labels (empty labels: the source's); the steps below `at_step` held
// as served (max_step_served `at_step` - 1, the position there, so the
// next Advance serves `at_step`); fresh plateau counters; forked_from
// naming the source.
v1::Schedule ForkedSchedule(const std::string& id, const v1::Schedule& source,
                            int64_t at_step, const v1::Schedule& input,
                            const google::protobuf::Timestamp& now,
                            int64_t after_revision);

// OK if a rewind may start at `to_step`: in [0, max_step_served + 1] (a
// later step serves nothing of the old lineage: that is an update).
// INVALID_ARGUMENT naming to_step otherwise.
absl::Status CheckRewindStep(int64_t to_step, int64_t max_step_served);

// The schedule RewindSchedule makes of `current` (as Get presents it, with
// its exact max_step_served) from `to_step`: the next lineage and its
// Rewind record (the old lineage's segments in force from to_step on, with
// their specs), the next revision stamped `now`, max_step_served
// `to_step` - 1, the position at most that, fresh plateau counters. The
// timeline is kept; a new spec is the caller's UPDATE at to_step, made
// after TruncateTimeline.
v1::Schedule RewoundSchedule(const v1::Schedule& current, int64_t to_step,
                             const std::string& actor,
                             const std::string& reason,
                             const google::protobuf::Timestamp& now);

// Removes the head's segments that start at or after `step`, without a
// trace in `superseded` (a rewind keeps them in its record instead).
void TruncateTimeline(int64_t step, v1::Schedule* head);

// OK if a job presenting `lineage` (nullopt: none) may be served by
// `schedule`; FAILED_PRECONDITION naming the lineage and the rewind that
// ended it otherwise (or INVALID_ARGUMENT for a negative one).
absl::Status CheckLineage(std::optional<int64_t> lineage,
                          const v1::Schedule& schedule);

}  // namespace anneal

#endif  // ANNEAL_MODEL_SCHEDULE_RESOURCE_H_
