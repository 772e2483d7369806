// Bad specs: each is rejected with INVALID_ARGUMENT and a message naming the
// field path and the rule. None crashes, hangs or compiles to NaN.
#include <cctype>
#include <string>
#include <vector>

#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

struct BadSpec {
  std::string spec;
  std::string message;  // the full expected message
};

class ValidationTest : public testing::TestWithParam<BadSpec> {};

TEST_P(ValidationTest, RejectedWithFieldAndRule) {
  EXPECT_EQ(CompileError(GetParam().spec), GetParam().message)
      << GetParam().spec;
}

const std::vector<BadSpec>& Cases() {
  static const auto* cases = new std::vector<BadSpec>{
      {"{cosine: {period: 10}}", "max_lr: is required (the peak LR, > 0)"},
      {"{max_lr: 0, cosine: {period: 10}}", "max_lr: must be > 0, got 0"},
      {"{max_lr: -1, cosine: {period: 10}}", "max_lr: must be > 0, got -1"},
      {"{max_lr: .nan, cosine: {period: 10}}",
       "max_lr: must be a finite number, got nan"},
      {"{max_lr: .inf, cosine: {period: 10}}",
       "max_lr: must be a finite number, got inf"},
      {"{max_lr: 1e9, cosine: {period: 10}}",
       "max_lr: must be <= 1e+06, got 1e+09"},
      {"{max_lr: 0.1, min_lr: 0.2, cosine: {period: 10}}",
       "min_lr: must be <= max_lr (0.1), got 0.2"},
      {"{max_lr: 0.1, min_lr: -0.1, cosine: {period: 10}}",
       "min_lr: must be >= 0, got -0.1"},
      {"{max_lr: 0.1}",
       "curve: exactly one curve is required: constant, step_decay, "
       "exponential_decay, polynomial_decay, inverse_time_decay, linear, "
       "cosine, warm_restarts, cyclic, one_cycle, wsd or sequence"},
      {"{max_lr: 0.1, cosine: {period: 10, exponent: 0}}",
       "cosine.exponent: must be > 0, got 0"},
      {"{max_lr: 0.1, cosine: {period: 10, waves: -1}}",
       "cosine.waves: must be > 0, got -1"},
      {"{max_lr: 0.1, cosine: {period: 10, restart_cycles: 2e6}}",
       "cosine.restart_cycles: must be <= 1e+06, got 2e+06"},
      {"{max_lr: 0.1, cosine: {period: 10, waves: 1, restart_cycles: 2}}",
       "cosine.restart_cycles: cannot be set with waves (continuous waves or "
       "hard restarts, not both)"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, power: 2}}",
       "warm_restarts.power: is only for shape POLYNOMIAL"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, shape: TANH, tanh_lower: "
       "3, tanh_upper: 1}}",
       "warm_restarts.tanh_upper: must be > tanh_lower (3), got 1"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, k_decay: 0}}",
       "warm_restarts.k_decay: must be > 0, got 0"},
      {"{max_lr: 0.1, warmup: {steps: 5, to_curve: true}, cosine: {period: "
       "10}}",
       "warmup.to_curve: requires overlap (a prefix warmup always ends at "
       "max_lr, where the curve starts)"},
      {"{max_lr: 0.1, warmup: {steps: 1, shape: LOG}, constant: {}}",
       "warmup.steps: must be >= 2 with shape LOG (ln(steps) divides), got "
       "1"},
      {"{max_lr: 0.1, constant: {}, plateau: {}}",
       "plateau.metric: is required (the reported metric to watch, e.g. "
       "\"val_loss\")"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: \"9x\"}}",
       "plateau.metric: must match ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$, got "
       "\"9x\""},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, factor: 1}}",
       "plateau.factor: must be in (0, 1), got 1"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, factor: 0}}",
       "plateau.factor: must be in (0, 1), got 0"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, patience: -1}}",
       "plateau.patience: must be >= 0, got -1"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, cooldown: 1e10}}",
       "plateau.cooldown: must be <= 2147483647, got 10000000000"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, threshold: -1}}",
       "plateau.threshold: must be in [0, 1e+300], got -1"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, min_lr: 0.2}}",
       "plateau.min_lr: must be in [0, 0.1], got 0.2"},
      {"{max_lr: 0.1, constant: {}, plateau: {metric: l, eps: .nan}}",
       "plateau.eps: must be a finite number, got nan"},
      {"{max_lr: 0.1, sequence: {phases: [{steps: 5, spec: {constant: {}, "
       "plateau: {metric: l}}}, {spec: {constant: {}}}]}}",
       "sequence.phases[0].spec.plateau: is only allowed at the top level of "
       "a spec"},
      {"{max_lr: 0.1, constant: {}, lr_noise: {pct: 1.5}}",
       "lr_noise.pct: must be <= 1 (the LR stays non-negative), got 1.5"},
      {"{max_lr: 0.1, constant: {}, lr_noise: {pct: 0.001}}",
       "lr_noise.pct: must be >= 0.01 with NORMAL (each step resamples until "
       "inside the band), got 0.001"},
      {"{max_lr: 0.1, constant: {}, lr_noise: {pct: 0, type: UNIFORM}}",
       "lr_noise.pct: must be > 0, got 0"},
      {"{max_lr: 0.1, constant: {}, lr_noise: {start_step: 5, end_step: 5}}",
       "lr_noise.end_step: must be > start_step (5), got 5"},
      {"{max_lr: 0.1, sequence: {phases: [{spec: {constant: {}, lr_noise: "
       "{}}}]}}",
       "sequence.phases[0].spec.lr_noise: is only allowed at the top level of "
       "a spec"},
      {"{max_lr: 0.1, warm_restarts: {period: 0}}",
       "warm_restarts.period: must be >= 1, got 0"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: -2}}",
       "warm_restarts.period_mult: must be > 0, got -2"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: .nan}}",
       "warm_restarts.period_mult: must be a finite number, got nan"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, peak_decay: 1.5}}",
       "warm_restarts.peak_decay: above 1 (growing peaks) requires "
       "max_cycles, got 1.5 with unlimited cycles"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, peak_decay: 10, "
       "max_cycles: 9}}",
       "warm_restarts.peak_decay: must keep the last cycle's peak <= 1e+06, "
       "got 10 (peak 1e+07 in cycle 8)"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, peak_decay: 0}}",
       "warm_restarts.peak_decay: must be > 0, got 0"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 1.5, "
       "cycle_lengths: REAL}, warmup: {steps: 2, every_cycle: true}}",
       "warm_restarts.cycle_lengths: REAL cannot have warmup.every_cycle "
       "(timm and Keras have no per-cycle warmup); use INTEGER, or a warmup "
       "without every_cycle"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 0.5, "
       "cycle_lengths: REAL}}",
       "warm_restarts.cycle_lengths: REAL with period_mult 0.5 < 1 requires "
       "max_cycles (the cycles shrink to nothing before step 20)"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 0.5, "
       "cycle_lengths: REAL, max_cycles: 5}}",
       "warm_restarts.cycle_lengths: REAL needs every cycle to last at least "
       "one step, got 0.625 steps for cycle 4 (period 10, period_mult 0.5); "
       "lower max_cycles"},
      {"{max_lr: 0.1, warm_restarts: {period: 10, max_cycles: -1}}",
       "warm_restarts.max_cycles: must be >= 0, got -1"},
      {"{max_lr: 0.1, warm_restarts: {period: 4611686018427387905}}",
       "warm_restarts.period: must be <= 4611686018427387904, got "
       "4611686018427387905"},
      {"{max_lr: 0.1, step_decay: {gamma: 0.5}}",
       "step_decay: set exactly one of step_size (>= 1) and milestones "
       "(non-empty), got neither"},
      {"{max_lr: 0.1, step_decay: {step_size: 2, milestones: [3]}}",
       "step_decay: set exactly one of step_size and milestones, got both"},
      {"{max_lr: 0.1, step_decay: {milestones: [5, 3]}}",
       "step_decay.milestones[1]: must be >= the previous milestone (5), got "
       "3"},
      {"{max_lr: 0.1, step_decay: {milestones: [-1]}}",
       "step_decay.milestones[0]: must be >= 0, got -1"},
      {"{max_lr: 0.1, step_decay: {step_size: 2, gamma: 0}}",
       "step_decay.gamma: must be > 0, got 0"},
      {"{max_lr: 0.1, exponential_decay: {}}",
       "exponential_decay.gamma: must be > 0, got 0 (required)"},
      {"{max_lr: 0.1, exponential_decay: {gamma: 2}}",
       "exponential_decay.start_lr: is required when gamma > 1 (got 2): the "
       "LR grows from start_lr up to max_lr, where it holds"},
      {"{max_lr: 0.1, exponential_decay: {gamma: 2, start_lr: 0.2}}",
       "exponential_decay.start_lr: must be < max_lr (0.1), got 0.2"},
      {"{max_lr: 0.1, exponential_decay: {gamma: 0.5, start_lr: 0.01}}",
       "exponential_decay.start_lr: is only for growth (gamma > 1); a decay "
       "starts at max_lr, got gamma 0.5"},
      {"{max_lr: 0.1, exponential_decay: {gamma: -1}}",
       "exponential_decay.gamma: must be > 0, got -1"},
      {"{max_lr: 0.1, polynomial_decay: {total_steps: 5, rise: true, cycle: "
       "true}}",
       "polynomial_decay.cycle: cannot be set with rise (Keras cycles a decay "
       "only)"},
      {"{max_lr: 0.1, inverse_time_decay: {t0: 5, staircase_steps: 0}}",
       "inverse_time_decay.staircase_steps: must be >= 1, got 0"},
      {"{max_lr: 0.1, exponential_decay: {gamma: 0.5, transition_steps: 0}}",
       "exponential_decay.transition_steps: must be >= 1, got 0"},
      {"{max_lr: 0.1, polynomial_decay: {total_steps: 0}}",
       "polynomial_decay.total_steps: must be >= 1, got 0"},
      {"{max_lr: 0.1, polynomial_decay: {total_steps: 10, power: -1}}",
       "polynomial_decay.power: must be > 0, got -1"},
      {"{max_lr: 0.1, inverse_time_decay: {t0: 0}}",
       "inverse_time_decay.t0: must be > 0, got 0"},
      {"{max_lr: 0.1, linear: {total_steps: 5, start_factor: 1.5}}",
       "linear.start_factor: must be in [0, 1], got 1.5"},
      {"{max_lr: 0.1, cosine: {period: -3}}",
       "cosine.period: must be >= 1, got -3"},
      {"{max_lr: 0.1, cyclic: {step_size_up: 0}}",
       "cyclic.step_size_up: must be >= 1, got 0"},
      {"{max_lr: 0.1, cyclic: {step_size_up: 5, step_size_down: 0}}",
       "cyclic.step_size_down: must be >= 1, got 0"},
      {"{max_lr: 0.1, cyclic: {step_size_up: 5, mode: EXP_RANGE, gamma: 1.2}}",
       "cyclic.gamma: must be in [0, 1], got 1.2"},
      {"{max_lr: 0.1, one_cycle: {total_steps: 100, pct_start: 1.0}}",
       "one_cycle.pct_start: must be in (0, 1), got 1"},
      {"{max_lr: 0.1, one_cycle: {total_steps: 100, pct_start: 0}}",
       "one_cycle.pct_start: must be in (0, 1), got 0"},
      {"{max_lr: 0.1, one_cycle: {total_steps: 3, pct_start: 0.3}}",
       "one_cycle.pct_start: with total_steps 3, pct_start 0.3 leaves a phase "
       "of zero or negative length (need pct_start * total_steps > 1 and "
       "pct_start < 1)"},
      {"{max_lr: 0.1, one_cycle: {total_steps: 1}}",
       "one_cycle.total_steps: must be >= 2, got 1"},
      {"{max_lr: 0.1, one_cycle: {total_steps: 100, div_factor: 0.5}}",
       "one_cycle.div_factor: must be >= 1, got 0.5"},
      {"{max_lr: 0.1, min_lr: 0.01, one_cycle: {total_steps: 100}}",
       "one_cycle: derives its floor from div_factor and final_div_factor; "
       "min_lr must be unset or 0, got 0.01"},
      {"{max_lr: 0.1, wsd: {decay_steps: -1}}",
       "wsd.decay_steps: must be >= 0, got -1"},
      {"{max_lr: 0.1, wsd: {decay_steps: 5, decay_shape: LINEAR, num_cycles: "
       "0.5}}",
       "wsd.num_cycles: only applies to decay_shape COSINE, got decay_shape "
       "LINEAR"},
      {"{max_lr: 0.1, wsd: {decay_steps: 5, num_cycles: -1}}",
       "wsd.num_cycles: must be in [0, 1e+06], got -1"},
      {"{max_lr: 0.1, wsd: {warmup_steps: -5, decay_steps: 10}}",
       "wsd.warmup_steps: must be >= 0, got -5"},
      {"{max_lr: 0.1, sequence: {}}",
       "sequence.phases: must have 1 to 64 phases, got 0"},
      {"{max_lr: 0.1, sequence: {phases: [{steps: 5, spec: {constant: {}}}]}}",
       "sequence.phases[0].steps: must be 0 for the last phase (it runs "
       "forever), got 5"},
      {"{max_lr: 0.1, sequence: {phases: [{steps: 0, spec: {constant: {}}}, "
       "{spec: {constant: {}}}]}}",
       "sequence.phases[0].steps: must be >= 1, got 0"},
      {"{max_lr: 0.1, sequence: {phases: [{steps: 5, spec: {constant: {}}}, "
       "{spec: {cosine: {period: 0}}}]}}",
       "sequence.phases[1].spec.cosine.period: must be >= 1, got 0"},
      {"{max_lr: 0.1, sequence: {phases: [{steps: 5, spec: {constant: {}}}, "
       "{spec: {max_lr: 0.01, min_lr: 0.05, constant: {}}}]}}",
       "sequence.phases[1].spec.min_lr: must be <= max_lr (0.01), got 0.05"},
      {"{max_lr: 0.1, sequence: {phases: [{spec: {constant: {}, momentum: "
       "{base: 0.8, max: 0.9}}}]}}",
       "sequence.phases[0].spec.momentum: is only allowed at the top level of "
       "a "
       "spec"},
      {"{max_lr: 0.1, sequence: {phases: [{spec: {}}]}}",
       "sequence.phases[0].spec.curve: exactly one curve is required: "
       "constant, "
       "step_decay, exponential_decay, polynomial_decay, inverse_time_decay, "
       "linear, cosine, warm_restarts, cyclic, one_cycle, wsd or sequence"},
      {"{max_lr: 0.1, warmup: {steps: 0}, cosine: {period: 10}}",
       "warmup.steps: must be >= 1, got 0"},
      {"{max_lr: 0.1, warmup: {steps: 5, start_lr: 2e6}, cosine: {period: 10}}",
       "warmup.start_lr: must be in [0, 1e+06], got 2e+06"},
      {"{max_lr: 0.1, warmup: {steps: 5, every_cycle: true, overlap: true}, "
       "warm_restarts: {period: 10}}",
       "warmup.overlap: cannot be set with every_cycle (a per-cycle warmup "
       "already runs on each cycle's own clock)"},
      {"{max_lr: 0.1, warmup: {steps: 5, every_cycle: true}, cosine: {period: "
       "10}}",
       "warmup.every_cycle: requires a warm_restarts curve (cycles to warm "
       "up)"},
      {"{max_lr: 0.1, cosine: {period: 10}, momentum: {base: 0.9, max: 0.8}}",
       "momentum.base: must be in [0, 0.8], got 0.9"},
      {"{max_lr: 0.1, cosine: {period: 10}, momentum: {base: 0.9, max: 1.0}}",
       "momentum.max: must be in [0, 0.9999], got 1"},
      {"{max_lr: 0.1, cosine: {period: 10}, batch_scaling: {}}",
       "batch_scaling.reference_batch_size: must be >= 1, got 0"},
      {"{max_lr: 0.1, cosine: {period: 10}, thermostat: "
       "{target_update_norm_sq: -1}}",
       "thermostat.target_update_norm_sq: must be in (0, 1e+300], got -1"},
      {"{max_lr: 0.1, cosine: {period: 10}, thermostat: "
       "{target_update_norm_sq: 1e301}}",
       "thermostat.target_update_norm_sq: must be in (0, 1e+300], got 1e+301"},
      {"{max_lr: 0.1, cosine: {period: 10}, thermostat: "
       "{target_update_norm_sq: 1, momentum: 1}}",
       "thermostat.momentum: must be in [0, 0.9999], got 1"},
      {"{max_lr: 0.1, cosine: {period: 10}, momentum: {base: 0.85, max: 0.95}, "
       "thermostat: {target_update_norm_sq: 1, momentum: 0.9}}",
       "thermostat.momentum: must be 0 when the spec schedules momentum (the "
       "step's momentum is used), got 0.9"},
      {"{max_lr: 0.1, cosine: {period: 10}, momentum: {base: 0.9, max: 0.995, "
       "restart_bias_correction: true}}",
       "momentum.max: must be in [0, 0.99] with restart_bias_correction, got "
       "0.995"},
  };
  return *cases;
}

// Test names from the field the message names: "warm_restarts_period_9".
std::string CaseName(const testing::TestParamInfo<BadSpec>& info) {
  std::string name;
  for (char c : info.param.message.substr(0, info.param.message.find(':'))) {
    name += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  }
  return name + "_" + std::to_string(info.index);
}

INSTANTIATE_TEST_SUITE_P(BadSpecs, ValidationTest, testing::ValuesIn(Cases()),
                         CaseName);

}  // namespace
}  // namespace anneal
