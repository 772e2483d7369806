// Analysis of a compiled schedule: Robbins-Monro conditions and the
// stability bounds for a given maximum curvature (docs/analysis.md).
//
// Robbins-Monro: the asymptotic verdict comes from the family's structure
// (Schedule::Tail); the horizon sums are measured.
// Stability: gradient descent on f = L/2 x^2 multiplies x by (1 - lr_t L) at
// each step. The profile is cut into windows judged on their own: each
// complete cycle, a cycle that never ends (up to the horizon) and the settled
// tail; a cycle cut by the horizon is not judged, so the answer does not
// depend on where the horizon falls. Two bounds on a factor s applied to the
// whole profile:
//  * net contraction: no window's product prod |1 - s lr_t L| exceeds 1
//    (2/L for a constant LR, -> 4/L for one long cosine cycle);
//  * bounded transient: no partial product inside a window exceeds 1, i.e.
//    |x| never passes its value at the cycle's start (-> 2/L).
// A maximum curvature L covers every eigenvalue lambda <= L, and scaling the
// LRs by s is the same as scaling lambda, so each bound is the FIRST s at
// which growth appears: the bounds, and `stable`, are monotone in L.
#ifndef ANNEAL_ENGINE_ANALYSIS_H_
#define ANNEAL_ENGINE_ANALYSIS_H_

#include <cstdint>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
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
  // The job's batch size: the LRs analysed are those served under the spec's
  // batch_scaling (unset: the reference LRs).
  std::optional<int64_t> batch_size;
};

// The horizon used when none is given: until the schedule settles (at least
// 1000 steps), or kDefaultAnalysisHorizon.
int64_t DefaultHorizon(const Schedule& schedule);

absl::StatusOr<v1::Analysis> Analyze(const Schedule& schedule,
                                     const AnalysisOptions& options);

// A stretch of the LR profile judged on its own: steps [begin, begin + size)
// of the profile.
struct StabilityWindow {
  int64_t begin = 0;
  int64_t size = 0;
};

enum class GrowthMeasure {
  kNet,        // the product over the whole window
  kTransient,  // the largest partial product from the window's start
};

// The first factor s > 0 at which the profile s * lrs makes |x| grow (by
// `measure`) in one of `windows` for curvature `curvature`: below it, every
// scale is stable. +inf when no window has a positive LR.
double CriticalScale(absl::Span<const double> lrs,
                     absl::Span<const StabilityWindow> windows,
                     double curvature, GrowthMeasure measure);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_ANALYSIS_H_
