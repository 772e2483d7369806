// The question a training job asks each step, and the engine's answer.
//
// StepQuery carries the step and the optional job facts some modifiers use
// (batch size for batch_scaling, gradient norm and parameter count for the
// thermostat). StepResult is a plain value type, cheap to copy; see
// proto/anneal/v1/schedule.proto (StepResult) for the meaning of each field.
#ifndef ANNEAL_ENGINE_STEP_H_
#define ANNEAL_ENGINE_STEP_H_

#include <cstdint>
#include <optional>

#include "anneal/v1/schedule.pb.h"

namespace anneal {

// Largest step the engine evaluates: every t in [0, kMaxStep] is valid.
inline constexpr int64_t kMaxStep = int64_t{1} << 62;

struct StepQuery {
  int64_t step = 0;  // optimizer steps already taken, in [0, kMaxStep]
  std::optional<int64_t> batch_size;   // job's batch size, >= 1
  std::optional<double> grad_norm_sq;  // |g|^2 of this step's gradient, >= 0
  std::optional<int64_t> num_params;   // d, >= 1
  // Set by the timeline, not by callers: a plateau policy's level
  // (v1::Segment.lr_level). When > 0 the curve is served scaled by
  // lr_level / max_lr, before batch scaling and the thermostat. 0: none.
  double lr_level = 0;
};

struct StepResult {
  int64_t step = 0;
  double lr = 0;
  // Valid only when has_momentum.
  double momentum = 0;
  double beta1_bias_correction = 0;
  // Valid only when has_noise_std.
  double noise_std = 0;
  int64_t cycle = 0;
  int64_t step_in_cycle = 0;
  int64_t cycle_length = 0;  // 0: the cycle never ends
  v1::Phase phase = v1::PHASE_UNSPECIFIED;
  bool restart = false;
  bool snapshot = false;
  bool has_momentum = false;
  bool has_noise_std = false;
};

// Copies `in` into the wire form.
void ToProto(const StepResult& in, v1::StepResult* out);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_STEP_H_
