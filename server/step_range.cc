// Packing evaluated steps into StepRange (see step_range.h).
#include "server/step_range.h"

#include "absl/strings/str_cat.h"

namespace anneal {

absl::Status CheckRangeCount(int64_t count, int64_t limit) {
  if (count < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: must be >= 0, got ", count));
  }
  if (count > limit) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "count: must be <= ", limit, " (the server's max_range_count), got ",
        count));
  }
  return absl::OkStatus();
}

uint32_t PackFlags(const StepResult& r) {
  return (r.restart ? kFlagRestart : 0) | (r.snapshot ? kFlagSnapshot : 0) |
         (static_cast<uint32_t>(r.phase) << kFlagPhaseShift);
}

StepRangeBuilder::StepRangeBuilder(int64_t start, int64_t count,
                                   v1::StepRange* out)
    : out_(out) {
  out_->set_start_step(start);
  const int n = static_cast<int>(count);
  out_->mutable_lr()->Reserve(n);
  out_->mutable_cycle()->Reserve(n);
  out_->mutable_step_in_cycle()->Reserve(n);
  out_->mutable_flags()->Reserve(n);
}

void StepRangeBuilder::Add(const StepResult& r) {
  out_->add_lr(r.lr);
  if (r.has_momentum) {
    out_->add_momentum(r.momentum);
    out_->add_beta1_bias_correction(r.beta1_bias_correction);
  }
  out_->add_cycle(r.cycle);
  out_->add_step_in_cycle(r.step_in_cycle);
  out_->add_flags(PackFlags(r));
}

}  // namespace anneal
