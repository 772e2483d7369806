// Internal: builders of every schedule family.
//
// Each builder validates its sub-message (errors name `path` and the rule)
// and returns the immutable Curve. BuildCurve dispatches on the spec's
// `curve` oneof and applies the spec's warmup; it is the one entry point the
// Schedule and the sequence family use. A BuildContext travels through every
// builder: it holds the compile budget (builders charge a table before they
// allocate it), the sequence nesting depth and the LR ceiling.
#ifndef ANNEAL_ENGINE_FAMILIES_CURVES_H_
#define ANNEAL_ENGINE_FAMILIES_CURVES_H_

#include <algorithm>
#include <cstdint>
#include <memory>

#include "absl/status/statusor.h"
#include "anneal/engine/families/curve.h"
#include "anneal/engine/field_error.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

using CurvePtr = std::unique_ptr<const Curve>;

// Largest LR a spec may reach (max_lr, or a growing peak): anything above is
// a unit mistake, and squares of larger values approach overflow in the
// analysis sums.
inline constexpr double kMaxLrLimit = 1e6;

// What compiling one spec may cost, and what it has cost so far.
class BuildContext {
 public:
  explicit BuildContext(int64_t max_table_bytes)
      : max_table_bytes_(max_table_bytes) {}

  // Accounts for `bytes` of tables (or the equivalent work) about to be
  // allocated at `path`; INVALID_ARGUMENT once the spec's total would pass
  // the budget, before anything is allocated.
  absl::Status Charge(int64_t bytes, const FieldPath& path);
  int64_t charged() const { return charged_; }

  // Sequence nesting: Enter fails past kMaxSequenceDepth.
  absl::Status EnterSequence(const FieldPath& path);
  void LeaveSequence() { --depth_; }

  // The largest LR any part of the spec can produce (every peak and warmup
  // start); the Schedule clamps to [0, ceiling] so rounding never serves a
  // negative LR or one above every peak.
  void RaiseCeiling(double lr) { ceiling_ = std::max(ceiling_, lr); }
  double ceiling() const { return ceiling_; }

 private:
  const int64_t max_table_bytes_;
  int64_t charged_ = 0;
  int depth_ = 0;
  double ceiling_ = 0;
};

// Validates max_lr/min_lr (inheriting unset ones from `inherited`, which is
// null at the top level) and builds the curve with its warmup.
absl::StatusOr<CurvePtr> BuildCurve(const v1::ScheduleSpec& spec,
                                    const Levels* inherited,
                                    const FieldPath& path, BuildContext& ctx);

// decay_curves.cc
absl::StatusOr<CurvePtr> MakeConstant(const Levels& levels);
absl::StatusOr<CurvePtr> MakeStepDecay(const v1::StepDecay& spec,
                                       const Levels& levels,
                                       const FieldPath& path,
                                       BuildContext& ctx);
absl::StatusOr<CurvePtr> MakeExponentialDecay(const v1::ExponentialDecay& spec,
                                              const Levels& levels,
                                              const FieldPath& path);
absl::StatusOr<CurvePtr> MakePolynomialDecay(const v1::PolynomialDecay& spec,
                                             const Levels& levels,
                                             const FieldPath& path);
absl::StatusOr<CurvePtr> MakeInverseTimeDecay(const v1::InverseTimeDecay& spec,
                                              const Levels& levels,
                                              const FieldPath& path);
absl::StatusOr<CurvePtr> MakeLinear(const v1::Linear& spec,
                                    const Levels& levels,
                                    const FieldPath& path);
// cosine.cc
absl::StatusOr<CurvePtr> MakeCosine(const v1::Cosine& spec,
                                    const Levels& levels,
                                    const FieldPath& path);
// warm_restarts.cc; `warmup` is non-null when it runs in every cycle.
absl::StatusOr<CurvePtr> MakeWarmRestarts(const v1::WarmRestarts& spec,
                                          const Levels& levels,
                                          const v1::Warmup* warmup,
                                          const FieldPath& path,
                                          BuildContext& ctx);
// cyclic.cc
absl::StatusOr<CurvePtr> MakeCyclic(const v1::Cyclic& spec,
                                    const Levels& levels,
                                    const FieldPath& path);
// one_cycle.cc
absl::StatusOr<CurvePtr> MakeOneCycle(const v1::OneCycle& spec,
                                      const Levels& levels,
                                      const FieldPath& path);
// wsd.cc
absl::StatusOr<CurvePtr> MakeWsd(const v1::Wsd& spec, const Levels& levels,
                                 const FieldPath& path);
// sequence.cc
absl::StatusOr<CurvePtr> MakeSequence(const v1::Sequence& spec,
                                      const Levels& levels,
                                      const FieldPath& path, BuildContext& ctx);
// cosine.cc: Hugging Face's cosine wave, 0.5 * (1 + cos(pi * cycles * 2 *
// x)) in its operation order (its max(0, ...) never binds: cos >= -1), for
// `cycles` full waves over x in [0, 1]; *rising tells the climbing parts.
// Shared by cosine's `waves` and wsd's `num_cycles`.
double HfCosineWave(double cycles, double x, bool* rising);
// warmup.cc: validates `spec` (path names the warmup message).
absl::Status ValidateWarmup(const v1::Warmup& spec, const FieldPath& path);
// The LR `steps_done` steps into a warmup from start_lr to `peak`, and its
// mix factor; shared by the warmup prefix and per-cycle warmups.
double WarmupLr(const v1::Warmup& spec, int64_t steps_done, double peak,
                double* h);
absl::StatusOr<CurvePtr> WrapWithWarmup(const v1::Warmup& spec,
                                        const Levels& levels, CurvePtr inner);
// `restarts` (warm restarts built with `spec` as their per-cycle warmup) with
// the Robbins-Monro verdict of that warmup: a start_lr > 0 repeated in
// infinitely many cycles makes both sums diverge.
CurvePtr WithCycleWarmupTail(const v1::Warmup& spec, int64_t max_cycles,
                             CurvePtr restarts);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_FAMILIES_CURVES_H_
