// Packing evaluated steps into StepRange (see step_range.h).
#include "anneal/model/step_range.h"

#include "absl/strings/str_cat.h"

namespace anneal {

absl::Status CheckRangeCount(int64_t count, int64_t limit) {
  if (count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: must be >= 0, got ", count));
  }
  if (count > limit) {
    return absl::ResourceExhaustedError(
        absl::StrCat("count: must be <= ", limit,
                     " (the server's max_range_count), got ", count));
  }
  return absl::OkStatus();
}

uint32_t PackFlags(const StepResult& r) {
  return (r.restart ? v1::STEP_FLAG_RESTART : 0) |
         (r.snapshot ? v1::STEP_FLAG_SNAPSHOT : 0) |
         (r.has_momentum ? v1::STEP_FLAG_HAS_MOMENTUM : 0) |
         (static_cast<uint32_t>(r.phase) << v1::STEP_FLAG_PHASE_SHIFT);
}

StepRangeBuilder::StepRangeBuilder(int64_t start, int64_t count,
                                   v1::StepRange* out)
    : out_(out), count_(count) {
  out_->set_start_step(start);
  const int n = static_cast<int>(count);
  out_->mutable_lr()->Reserve(n);
  out_->mutable_cycle_length()->Reserve(n);
  out_->mutable_cycle()->Reserve(n);
  out_->mutable_step_in_cycle()->Reserve(n);
  out_->mutable_flags()->Reserve(n);
}

void StepRangeBuilder::Add(const StepResult& r) {
  if (r.has_momentum && !momentum_) {
    momentum_ = true;
    // The first step with momentum: the arrays become full length, with
    // zeros for the steps before it (flag bit 2 tells them apart).
    out_->mutable_momentum()->Reserve(static_cast<int>(count_));
    out_->mutable_beta1_bias_correction()->Reserve(static_cast<int>(count_));
    for (int i = 0; i < out_->lr_size(); ++i) {
      out_->add_momentum(0);
      out_->add_beta1_bias_correction(0);
    }
  }
  if (momentum_) {
    out_->add_momentum(r.has_momentum ? r.momentum : 0);
    out_->add_beta1_bias_correction(r.has_momentum ? r.beta1_bias_correction
                                                   : 0);
  }
  out_->add_lr(r.lr);
  out_->add_cycle_length(r.cycle_length);
  out_->add_cycle(r.cycle);
  out_->add_step_in_cycle(r.step_in_cycle);
  out_->add_flags(PackFlags(r));
}

absl::StatusOr<std::vector<StepResult>> UnpackStepRange(
    const v1::StepRange& range) {
  const int n = range.lr_size();
  const bool momentum = range.momentum_size() > 0;
  if (range.cycle_size() != n || range.step_in_cycle_size() != n ||
      range.flags_size() != n || range.cycle_length_size() != n ||
      (momentum && (range.momentum_size() != n ||
                    range.beta1_bias_correction_size() != n))) {
    return absl::InternalError(absl::StrCat(
        "the server sent a step range whose arrays differ in length (", n,
        " learning rates)"));
  }
  std::vector<StepResult> out(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) {
    StepResult& r = out[static_cast<size_t>(i)];
    const uint32_t flags = range.flags(i);
    r.step = range.start_step() + i;
    r.lr = range.lr(i);
    r.cycle = range.cycle(i);
    r.step_in_cycle = range.step_in_cycle(i);
    r.cycle_length = range.cycle_length(i);
    r.restart = (flags & v1::STEP_FLAG_RESTART) != 0;
    r.snapshot = (flags & v1::STEP_FLAG_SNAPSHOT) != 0;
    r.phase = static_cast<v1::Phase>((flags & v1::STEP_FLAG_PHASE_MASK) >>
                                     v1::STEP_FLAG_PHASE_SHIFT);
    r.has_momentum = (flags & v1::STEP_FLAG_HAS_MOMENTUM) != 0;
    if (r.has_momentum && momentum) {
      r.momentum = range.momentum(i);
      r.beta1_bias_correction = range.beta1_bias_correction(i);
    }
  }
  return out;
}

}  // namespace anneal
