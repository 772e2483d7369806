// EvaluateRange's packed StepRange back into StepResult values, so `lr` can
// use the same renderers as `preview`.
//
// The wire form carries lr, cycle, step_in_cycle and the flags (bit 0
// restart, bit 1 snapshot, bits 8..15 the Phase), and momentum /
// beta1_bias_correction only for the steps that have them. Two things are
// not on the wire: cycle_length, and which steps have momentum (a timeline
// can mix specs with and without it). Both come from the schedule's own
// timeline (GetSchedule, same revision), evaluated here with the engine the
// server uses: segment i covers [from_i, from_{i+1}) and runs its spec at
// local time t - time_origin_i.
#ifndef ANNEAL_CLIENT_STEP_RANGE_RESULTS_H_
#define ANNEAL_CLIENT_STEP_RANGE_RESULTS_H_

#include <vector>

#include "absl/status/statusor.h"
#include "anneal/v1/service.pb.h"
#include "schedule/step.h"

namespace anneal {

inline constexpr uint32_t kRangeFlagRestart = 1u << 0;
inline constexpr uint32_t kRangeFlagSnapshot = 1u << 1;
inline constexpr int kRangeFlagPhaseShift = 8;

// The steps of `range`, served from `schedule`'s timeline. INTERNAL when the
// arrays disagree in length or a segment's spec does not compile here.
absl::StatusOr<std::vector<StepResult>> UnpackStepRange(
    const v1::StepRange& range, const v1::Schedule& schedule);

}  // namespace anneal

#endif  // ANNEAL_CLIENT_STEP_RANGE_RESULTS_H_
