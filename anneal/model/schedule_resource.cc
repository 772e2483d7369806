// The rules of a Schedule resource (see schedule_resource.h).
#include "anneal/model/schedule_resource.h"

#include <algorithm>
#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"
#include "anneal/model/resource_name.h"

namespace anneal {

std::string Etag(const v1::Schedule& schedule) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  auto mix = [&h](const std::string& bytes) {
    for (unsigned char c : bytes) h = (h ^ c) * 1099511628211ull;
  };
  mix(schedule.name());
  mix(schedule.create_time().SerializeAsString());
  mix(std::to_string(schedule.revision()));
  return absl::StrCat("W/\"", absl::Hex(h, absl::kZeroPad16), "\"");
}

absl::Status CheckEtag(const std::string& sent, const v1::Schedule& schedule) {
  if (sent.empty() || sent == schedule.etag()) return absl::OkStatus();
  return absl::AbortedError(absl::StrCat(
      // Etags hold quotes, and the edge bounds their size.
      "etag: ", sent, " does not match the current etag ", schedule.etag(),
      " (the schedule changed; re-read it and retry)"));
}

void NextRevision(const google::protobuf::Timestamp& now,
                  v1::Schedule* schedule) {
  schedule->set_revision(schedule->revision() + 1);
  *schedule->mutable_update_time() = now;
  schedule->set_etag(Etag(*schedule));
}

absl::StatusOr<UpdatedFields> FieldsToUpdate(
    const google::protobuf::FieldMask& mask, const v1::Schedule& input) {
  UpdatedFields fields;
  if (mask.paths_size() == 0) {
    fields.spec = input.has_spec();
    fields.display_name = !input.display_name().empty();
    fields.labels = !input.labels().empty();
  }
  for (int i = 0; i < mask.paths_size(); ++i) {
    const std::string& path = mask.paths(i);
    if (path == "*") {
      fields.spec = fields.display_name = fields.labels = true;
    } else if (path == "spec") {
      fields.spec = true;
    } else if (path == "display_name") {
      fields.display_name = true;
    } else if (path == "labels") {
      fields.labels = true;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "update_mask.paths[", i, "]: ", QuoteValue(path),
          " is not updatable (allowed: spec, display_name, labels, *)"));
    }
  }
  if (fields.spec && !input.has_spec()) {
    return absl::InvalidArgumentError(
        "schedule.spec: is required when the mask names spec");
  }
  return fields;
}

v1::Schedule NewSchedule(const std::string& id, const v1::Schedule& input,
                         const std::string& actor, const std::string& reason,
                         const google::protobuf::Timestamp& now,
                         int64_t after_revision) {
  v1::Schedule s;
  s.set_name(ScheduleName(id));
  *s.mutable_spec() = input.spec();
  s.set_display_name(input.display_name());
  *s.mutable_labels() = input.labels();
  s.set_state(v1::Schedule::ACTIVE);
  *s.mutable_create_time() = now;
  s.set_max_step_served(-1);
  s.set_revision(after_revision);
  NextRevision(now, &s);
  v1::Segment* first = s.add_timeline();
  first->set_from_step(0);
  *first->mutable_spec() = input.spec();
  first->set_kind(v1::Segment::CREATE);
  first->set_actor(actor);
  first->set_reason(reason);
  *first->mutable_create_time() = now;
  first->set_revision(s.revision());
  return s;
}

v1::Schedule ForkedSchedule(const std::string& id, const v1::Schedule& source,
                            int64_t at_step, const v1::Schedule& input,
                            const google::protobuf::Timestamp& now,
                            int64_t after_revision) {
  v1::Schedule s;
  s.set_name(ScheduleName(id));
  s.set_display_name(input.display_name());
  *s.mutable_labels() =
      input.labels().empty() ? source.labels() : input.labels();
  s.set_state(v1::Schedule::ACTIVE);
  *s.mutable_create_time() = now;
  // The steps below at_step are the donor's history, served there: the
  // fence keeps them, and Advance goes on from at_step.
  s.set_max_step_served(at_step - 1);
  s.set_position(std::max<int64_t>(at_step - 1, 0));
  s.set_revision(after_revision);
  NextRevision(now, &s);
  for (const v1::Segment& segment : source.timeline()) {
    if (s.timeline_size() > 0 && segment.from_step() >= at_step) break;
    v1::Segment* copy = s.add_timeline();
    *copy = segment;
    copy->set_revision(s.revision());
  }
  *s.mutable_spec() = s.timeline(s.timeline_size() - 1).spec();
  v1::ForkOrigin& origin = *s.mutable_forked_from();
  origin.set_source(source.name());
  origin.set_at_step(at_step);
  origin.set_source_revision(source.revision());
  return s;
}

absl::Status CheckRewindStep(int64_t to_step, int64_t max_step_served) {
  const int64_t last = std::max<int64_t>(max_step_served, -1) + 1;
  if (to_step >= 0 && to_step <= last) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("to_step: must be in [0, max_step_served + 1 = ", last,
                   "], got ", to_step,
                   to_step > last ? "; a change past the served steps is an "
                                    "UpdateSchedule or RestartSchedule"
                                  : ""));
}

v1::Schedule RewoundSchedule(const v1::Schedule& current, int64_t to_step,
                             const std::string& actor,
                             const std::string& reason,
                             const google::protobuf::Timestamp& now) {
  v1::Schedule s = current;
  NextRevision(now, &s);
  s.set_lineage(current.lineage() + 1);
  v1::Rewind& rewind = *s.add_rewinds();
  rewind.set_lineage(s.lineage());
  rewind.set_to_step(to_step);
  rewind.set_revision(s.revision());
  rewind.set_abandoned_max_step_served(current.max_step_served());
  rewind.set_actor(actor);
  rewind.set_reason(reason);
  *rewind.mutable_create_time() = now;
  // The segment in force at to_step (the last starting at or before it)
  // and every later one: what the old lineage served from to_step on.
  int first = 0;
  for (int i = 0; i < current.timeline_size(); ++i) {
    if (current.timeline(i).from_step() <= to_step) first = i;
  }
  for (int i = first; i < current.timeline_size(); ++i) {
    *rewind.add_abandoned() = current.timeline(i);
  }
  // The job resumed from its checkpoint is served to_step next.
  s.set_max_step_served(to_step - 1);
  s.set_position(
      std::min(current.position(), std::max<int64_t>(to_step - 1, 0)));
  // The policy's counters summed reports of the old lineage's steps.
  s.clear_plateau_state();
  return s;
}

void TruncateTimeline(int64_t step, v1::Schedule* head) {
  auto* timeline = head->mutable_timeline();
  while (!timeline->empty() && timeline->rbegin()->from_step() >= step) {
    timeline->RemoveLast();
  }
}

absl::Status CheckLineage(std::optional<int64_t> lineage,
                          const v1::Schedule& schedule) {
  if (!lineage.has_value() || *lineage == schedule.lineage()) {
    return absl::OkStatus();
  }
  if (*lineage < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("lineage: must be >= 0, got ", *lineage));
  }
  if (*lineage > schedule.lineage()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lineage: ", *lineage, " is not a lineage of ", schedule.name(),
        ", which is on lineage ", schedule.lineage(),
        " (was it deleted and created again?)"));
  }
  // The rewind that ended the job's lineage, and the lowest step a later
  // one went back to: a checkpoint below it is on the current lineage.
  const v1::Rewind* ended = nullptr;
  int64_t below = std::numeric_limits<int64_t>::max();
  for (const v1::Rewind& r : schedule.rewinds()) {
    if (r.lineage() <= *lineage) continue;
    if (ended == nullptr) ended = &r;
    below = std::min(below, r.to_step());
  }
  if (ended == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "lineage: this job runs lineage ", *lineage, " of ", schedule.name(),
        ", which is on lineage ", schedule.lineage(), " now"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "lineage: this job runs lineage ", *lineage, " of ", schedule.name(),
      ", which was rewound to step ", ended->to_step(), " at revision ",
      ended->revision(), " by ", QuoteValue(ended->actor(), 64),
      ended->reason().empty()
          ? ""
          : absl::StrCat(" (", QuoteValue(ended->reason(), 128), ")"),
      "; it is on lineage ", schedule.lineage(),
      " now: resume from a checkpoint below step ", below));
}

}  // namespace anneal
