// Analysis of a compiled schedule: Robbins-Monro conditions and the
// stability bound for a given maximum curvature (docs/analysis.md).
//
// Robbins-Monro: the asymptotic verdict comes from the family's structure
// (Schedule::Tail); the horizon sums are measured.
// Stability: gradient descent on f = L/2 x^2 multiplies x by (1 - lr_t L) at
// each step. A schedule is stable when |x| does not grow over any complete
// cycle (checked at every snapshot step) nor over the whole horizon, i.e.
// sum_{t<=c} log|1 - lr_t L| <= 0 at each checkpoint c. The critical peak LR is
// found by scaling the whole LR profile and bisecting: 2/L for a constant LR,
// -> 4/L for one long cosine cycle (the seed text's bound).
#ifndef ANNEAL_ENGINE_ANALYSIS_H_
#define ANNEAL_ENGINE_ANALYSIS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "anneal/engine/schedule.h"
#include "anneal/v1/analysis.pb.h"

namespace anneal {

// Longest horizon analysed (the LR profile is held in memory).
inline constexpr int64_t kMaxAnalysisHorizon = 10'000'000;
// Horizon for schedules that never settle, when none is given.
inline constexpr int64_t kDefaultAnalysisHorizon = 1'000'000;

struct AnalysisOptions {
  int64_t horizon = 0;                  // 0: the default horizon
  std::optional<double> max_curvature;  // L > 0: adds the stability section
};

// The horizon used when none is given: until the schedule settles (at least
// 1000 steps), or kDefaultAnalysisHorizon.
int64_t DefaultHorizon(const Schedule& schedule);

absl::StatusOr<v1::Analysis> Analyze(const Schedule& schedule,
                                     const AnalysisOptions& options);

// The largest factor s such that the profile s * lrs is stable for curvature
// `curvature` at every step listed in `checkpoints` (ascending indices into
// lrs). Returns +inf if no factor up to 2^60 destabilises it.
double CriticalScale(const std::vector<double>& lrs,
                     const std::vector<int64_t>& checkpoints, double curvature);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_ANALYSIS_H_
