// Packing evaluated steps into StepRange (see step_range.h).
#include "anneal/model/step_range.h"

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"

namespace anneal {
namespace {

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the *_raw fields are little-endian, as this machine's memory");

template <typename T>
void ToBytes(google::protobuf::RepeatedField<T>* from, std::string* to) {
  to->assign(reinterpret_cast<const char*>(from->data()),
             sizeof(T) * static_cast<size_t>(from->size()));
  google::protobuf::RepeatedField<T>().Swap(from);  // frees its memory too
}

// False if `bytes` is not a whole number of T.
template <typename T>
bool FromBytes(const std::string& bytes,
               google::protobuf::RepeatedField<T>* to) {
  if (bytes.size() % sizeof(T) != 0) return false;
  const int n = static_cast<int>(bytes.size() / sizeof(T));
  to->Resize(n, T{});
  if (n > 0) std::memcpy(to->mutable_data(), bytes.data(), bytes.size());
  return true;
}

bool HasRawArrays(const v1::StepRange& r) {
  return !r.lr_raw().empty() || !r.flags_raw().empty() ||
         !r.cycle_raw().empty() || !r.step_in_cycle_raw().empty() ||
         !r.cycle_length_raw().empty() || !r.momentum_raw().empty() ||
         !r.beta1_bias_correction_raw().empty();
}

}  // namespace

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

void MoveToRawArrays(v1::StepRange* range) {
  ToBytes(range->mutable_lr(), range->mutable_lr_raw());
  ToBytes(range->mutable_momentum(), range->mutable_momentum_raw());
  ToBytes(range->mutable_beta1_bias_correction(),
          range->mutable_beta1_bias_correction_raw());
  ToBytes(range->mutable_cycle(), range->mutable_cycle_raw());
  ToBytes(range->mutable_step_in_cycle(), range->mutable_step_in_cycle_raw());
  ToBytes(range->mutable_flags(), range->mutable_flags_raw());
  ToBytes(range->mutable_cycle_length(), range->mutable_cycle_length_raw());
}

absl::StatusOr<std::vector<StepResult>> UnpackStepRange(
    const v1::StepRange& range) {
  if (HasRawArrays(range)) {
    v1::StepRange expanded;
    expanded.set_start_step(range.start_step());
    if (range.lr_size() > 0 ||
        !FromBytes(range.lr_raw(), expanded.mutable_lr()) ||
        !FromBytes(range.momentum_raw(), expanded.mutable_momentum()) ||
        !FromBytes(range.beta1_bias_correction_raw(),
                   expanded.mutable_beta1_bias_correction()) ||
        !FromBytes(range.cycle_raw(), expanded.mutable_cycle()) ||
        !FromBytes(range.step_in_cycle_raw(),
                   expanded.mutable_step_in_cycle()) ||
        !FromBytes(range.flags_raw(), expanded.mutable_flags()) ||
        !FromBytes(range.cycle_length_raw(), expanded.mutable_cycle_length())) {
      return absl::InternalError(
          "the server sent a step range with raw arrays of partial elements, "
          "or both encodings");
    }
    return UnpackStepRange(expanded);
  }
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
