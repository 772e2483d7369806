// timm's LR noise (Scheduler._add_noise), as a pure function of the step and
// the seed: lr * (1 + eps) for steps in the noise range, where eps is drawn
// by a torch.Generator seeded with seed + step, exactly as PyTorch's CPU
// generator draws torch.randn(1) (resampled until |eps| < pct) or
// torch.rand(1) (eps = 2 (u - 1/2) pct). So the same config gives the same
// noisy LRs in anneal as in timm, step for step, and a replay of a served
// step always gives the same value.
#ifndef ANNEAL_ENGINE_LR_NOISE_H_
#define ANNEAL_ENGINE_LR_NOISE_H_

#include <cstdint>

#include "absl/status/statusor.h"
#include "anneal/v1/schedule.pb.h"

namespace anneal {

class LrNoise {
 public:
  // Validates `spec` (errors name "lr_noise.<field>").
  static absl::StatusOr<LrNoise> Build(const v1::LrNoise& spec);

  // lr + lr * eps at `step` (timm's v + v * noise), or lr outside the
  // range.
  double Apply(int64_t step, double lr) const;
  // The largest factor any step can get: 1 + pct.
  double MaxFactor() const { return 1 + pct_; }

 private:
  LrNoise() = default;
  int64_t start_ = 0;
  int64_t end_ = 0;  // exclusive; 0: no end
  double pct_ = 0;
  bool uniform_ = false;
  int64_t seed_ = 0;
};

// torch.Generator().manual_seed(seed), then torch.randn(1).item() (float32,
// widened) `draws` times in a row: the last value. For tests.
double TorchRandnForTest(int64_t seed, int draws);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_LR_NOISE_H_
