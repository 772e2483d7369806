// StepResult to its wire form (see step.h).
#include "anneal/engine/step.h"

namespace anneal {

void ToProto(const StepResult& in, v1::StepResult* out) {
  out->Clear();
  out->set_step(in.step);
  out->set_lr(in.lr);
  if (in.has_momentum) {
    out->set_momentum(in.momentum);
    out->set_beta1_bias_correction(in.beta1_bias_correction);
  }
  out->set_cycle(in.cycle);
  out->set_step_in_cycle(in.step_in_cycle);
  out->set_cycle_length(in.cycle_length);
  out->set_phase(in.phase);
  out->set_restart(in.restart);
  out->set_snapshot(in.snapshot);
  if (in.has_noise_std) out->set_noise_std(in.noise_std);
}

}  // namespace anneal
