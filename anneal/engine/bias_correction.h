// Exact Adam bias correction for a cycled beta1.
//
// With beta1 varying per step, Adam's first-moment correction is
// 1 - prod_{i=1..t+1} beta1_i, not 1 - beta1^(t+1) (the seed text explains
// why). The product is computed left to right from step 0, exactly as a
// training loop would accumulate it. A table of at most 16384 prefix
// products, one every `stride` steps, makes one step cost at most stride - 1
// curve evaluations (stride is 1 unless the product takes more than 16384
// steps to vanish, and then a power of two: the table is built in one pass
// and halved whenever it fills); once the product falls below 2^-60 the
// correction is exactly 1.0 in double precision and no table is needed.
//
// With momentum.restart_bias_correction the product restarts at every
// restart step r (the client zeroed exp_avg there): 1 - prod_{i=r..t}
// beta1_i, still left to right. No table serves those cycles (they differ
// from one another); a step replays its cycle from r until the product
// vanishes, which momentum.max <= kMaxRestartingMomentum bounds to 4139
// curve evaluations, and a range costs one multiply per step.
#ifndef ANNEAL_ENGINE_BIAS_CORRECTION_H_
#define ANNEAL_ENGINE_BIAS_CORRECTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/statusor.h"
#include "anneal/engine/families/curves.h"

namespace anneal {

class MomentumCurve {
 public:
  MomentumCurve(const Curve* curve, double base, double max)
      : curve_(curve), base_(base), max_(max) {}
  // beta1 used by update t+1: inverse to the LR's position at step t.
  double At(int64_t t) const;
  static double FromMix(double base, double max, double h) {
    return max - (max - base) * h;
  }

 private:
  const Curve* curve_;
  double base_, max_;
};

class BiasCorrection {
 public:
  // `momentum` must stay within [0, kMaxMomentum]. The table is charged to
  // `ctx` (path "momentum") as it grows.
  static absl::StatusOr<std::unique_ptr<const BiasCorrection>> Build(
      const MomentumCurve& momentum, BuildContext& ctx);

  // 1 - prod_{i=from..t} momentum(i), given momentum(t) (the caller has
  // it). `from` is 0, or the restart step that begins t's cycle.
  double At(int64_t t, int64_t from, double momentum_t) const;

  // Given prod_{from<=i<t} (`product_before`; ignored when t == from) and
  // momentum(t), returns prod_{from<=i<=t} and stores the correction; used by
  // range evaluation so a range costs one multiply per step.
  double Next(int64_t t, int64_t from, double product_before, double momentum_t,
              double* correction) const;

  // prod_{i=from..t-1} momentum(i) (1 for t == from); 0 once it has
  // vanished (below 2^-60, where 1 - p is 1.0 either way).
  double ProductBefore(int64_t t, int64_t from) const;

 private:
  explicit BiasCorrection(const MomentumCurve& momentum)
      : momentum_(momentum) {}

  const MomentumCurve momentum_;
  int64_t stride_ = 1;
  int64_t vanishes_at_ = 0;     // first t with prod_{i<=t} < 2^-60
  std::vector<double> prefix_;  // prefix_[j] = prod_{i < j*stride}
};

// Largest momentum.max accepted; bounds the construction to ~420k curve
// evaluations (momentum held at the max) and the stride to 26.
inline constexpr double kMaxMomentum = 0.9999;

// Largest momentum.max with restart_bias_correction: a product of steps at
// most 0.99 falls below 2^-60 within 4139 steps, which bounds the replay of
// a cycle (0.9999 would allow 415868).
inline constexpr double kMaxRestartingMomentum = 0.99;

}  // namespace anneal

#endif  // ANNEAL_ENGINE_BIAS_CORRECTION_H_
