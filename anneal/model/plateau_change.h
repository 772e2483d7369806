// How a training report changes a schedule that has a plateau policy
// (v1::Plateau): pure functions of the schedule, its compiled timeline and
// the report, with no locking or I/O, so the rules can be tested alone
// (plateau_change_test.cc). The registry persists what they produce.
//
// A report is counted into the schedule's PlateauState; when the policy
// decides, the change is one segment from the first unserved step: a
// PLATEAU segment (the same spec and clock at a lower lr_level), or a
// RESTART one (the RESTART action), stamped with the evidence.
#ifndef ANNEAL_MODEL_PLATEAU_CHANGE_H_
#define ANNEAL_MODEL_PLATEAU_CHANGE_H_

#include <cstdint>
#include <optional>

#include "anneal/engine/plateau.h"
#include "anneal/model/timeline.h"
#include "anneal/model/timeline_edit.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

struct PlateauCount {
  bool counted = false;  // head->plateau_state changed
  std::optional<PlateauEvidence> decision;
};

// Counts `report` into head->plateau_state when head's spec (the last
// segment's) has a plateau policy and the report carries its metric at a
// step above the last one counted; otherwise changes nothing.
PlateauCount CountPlateauReport(const v1::MetricReport& report,
                                v1::Schedule* head);

// The LR level in force at `step`: its segment's lr_level, or the spec's
// max_lr when the segment is unscaled.
double LevelAt(const v1::Schedule& head, const Timeline& current, int64_t step);

// The segment that carries out `decision` from step `at` (>= 1 for a
// restart), or nullopt when the cut would lower the level by no more than
// the policy's eps (PyTorch then keeps the LR; the counters are reset all
// the same).
std::optional<v1::Segment> PlateauDecisionSegment(
    const v1::Schedule& head, const Timeline& current, int64_t at,
    const PlateauEvidence& decision, const ChangeStamp& stamp);

}  // namespace anneal

#endif  // ANNEAL_MODEL_PLATEAU_CHANGE_H_
