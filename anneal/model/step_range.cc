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
         !r.runs_raw().empty() || !r.momentum_runs_raw().empty() ||
         !r.beta1_bias_correction_runs_raw().empty() ||
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

namespace {

// One run of StepRange.runs_raw.
struct Run {
  int64_t steps, cycle, step_in_cycle, cycle_length, flags;
};
static_assert(sizeof(Run) == 5 * sizeof(int64_t), "runs are packed");

// The four per-step integer arrays of `range` as runs.
std::vector<Run> RunsOf(const v1::StepRange& range) {
  std::vector<Run> runs;
  for (int i = 0; i < range.lr_size(); ++i) {
    const int64_t cycle = range.cycle(i), in_cycle = range.step_in_cycle(i);
    const int64_t length = range.cycle_length(i), flags = range.flags(i);
    if (!runs.empty()) {
      Run& last = runs.back();
      if (last.cycle == cycle && last.cycle_length == length &&
          last.flags == flags && last.step_in_cycle + last.steps == in_cycle) {
        ++last.steps;
        continue;
      }
    }
    runs.push_back({1, cycle, in_cycle, length, flags});
  }
  return runs;
}

// `runs_raw` expanded into the four arrays of `to`; false unless it holds
// whole runs of positive length adding up to `steps`.
bool ExpandRuns(const std::string& runs_raw, int64_t steps, v1::StepRange* to) {
  if (runs_raw.size() % sizeof(Run) != 0) return false;
  std::vector<Run> runs(runs_raw.size() / sizeof(Run));
  if (!runs.empty()) std::memcpy(runs.data(), runs_raw.data(), runs_raw.size());
  int64_t total = 0;
  for (const Run& run : runs) {
    if (run.steps <= 0 || run.steps > steps - total || run.flags < 0 ||
        run.flags > UINT32_MAX) {
      return false;
    }
    total += run.steps;
  }
  if (total != steps) return false;
  for (const Run& run : runs) {
    for (int64_t k = 0; k < run.steps; ++k) {
      to->add_cycle(run.cycle);
      to->add_step_in_cycle(run.step_in_cycle + k);
      to->add_cycle_length(run.cycle_length);
      to->add_flags(static_cast<uint32_t>(run.flags));
    }
  }
  return true;
}

// One run of StepRange.momentum_runs_raw or beta1_bias_correction_runs_raw.
struct ValueRun {
  int64_t steps;
  double value;
};
static_assert(sizeof(ValueRun) == 16, "value runs are packed");

// `values` as runs of bitwise-equal values into `to`, and `values` freed,
// when that is fewer bytes; else nothing changes.
void MoveToValueRuns(google::protobuf::RepeatedField<double>* values,
                     std::string* to) {
  std::vector<ValueRun> runs;
  const size_t limit = static_cast<size_t>(values->size()) / 2;
  for (const double v : *values) {
    if (!runs.empty() &&
        std::memcmp(&runs.back().value, &v, sizeof(double)) == 0) {
      ++runs.back().steps;
      continue;
    }
    if (runs.size() >= limit) return;  // runs would not be smaller
    runs.push_back({1, v});
  }
  if (runs.empty()) return;
  to->assign(reinterpret_cast<const char*>(runs.data()),
             runs.size() * sizeof(ValueRun));
  google::protobuf::RepeatedField<double>().Swap(values);
}

// `runs_raw` expanded into `to`; false unless it holds whole runs of
// positive length adding up to `steps`.
bool ExpandValueRuns(const std::string& runs_raw, int64_t steps,
                     google::protobuf::RepeatedField<double>* to) {
  if (runs_raw.size() % sizeof(ValueRun) != 0) return false;
  std::vector<ValueRun> runs(runs_raw.size() / sizeof(ValueRun));
  if (!runs.empty()) std::memcpy(runs.data(), runs_raw.data(), runs_raw.size());
  int64_t total = 0;
  for (const ValueRun& run : runs) {
    if (run.steps <= 0 || run.steps > steps - total) return false;
    total += run.steps;
  }
  if (total != steps) return false;
  to->Reserve(static_cast<int>(steps));
  for (const ValueRun& run : runs) {
    for (int64_t k = 0; k < run.steps; ++k) to->Add(run.value);
  }
  return true;
}

}  // namespace

void MoveToCompactArrays(v1::StepRange* range) {
  MoveToValueRuns(range->mutable_momentum(),
                  range->mutable_momentum_runs_raw());
  MoveToValueRuns(range->mutable_beta1_bias_correction(),
                  range->mutable_beta1_bias_correction_runs_raw());
  std::vector<Run> runs = RunsOf(*range);
  // Per step the four arrays take 8 + 8 + 8 + 4 bytes.
  const size_t per_step = static_cast<size_t>(range->lr_size()) *
                          (3 * sizeof(int64_t) + sizeof(uint32_t));
  if (runs.size() * sizeof(Run) >= per_step) {
    MoveToRawArrays(range);
    return;
  }
  range->mutable_runs_raw()->assign(reinterpret_cast<const char*>(runs.data()),
                                    runs.size() * sizeof(Run));
  google::protobuf::RepeatedField<int64_t>().Swap(range->mutable_cycle());
  google::protobuf::RepeatedField<int64_t>().Swap(
      range->mutable_step_in_cycle());
  google::protobuf::RepeatedField<int64_t>().Swap(
      range->mutable_cycle_length());
  google::protobuf::RepeatedField<uint32_t>().Swap(range->mutable_flags());
  MoveToRawArrays(range);
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
        !FromBytes(range.cycle_length_raw(), expanded.mutable_cycle_length()) ||
        (!range.runs_raw().empty() &&
         (expanded.cycle_size() > 0 || expanded.flags_size() > 0 ||
          expanded.step_in_cycle_size() > 0 ||
          expanded.cycle_length_size() > 0 ||
          !ExpandRuns(range.runs_raw(), expanded.lr_size(), &expanded))) ||
        (!range.momentum_runs_raw().empty() &&
         (expanded.momentum_size() > 0 ||
          !ExpandValueRuns(range.momentum_runs_raw(), expanded.lr_size(),
                           expanded.mutable_momentum()))) ||
        (!range.beta1_bias_correction_runs_raw().empty() &&
         (expanded.beta1_bias_correction_size() > 0 ||
          !ExpandValueRuns(range.beta1_bias_correction_runs_raw(),
                           expanded.lr_size(),
                           expanded.mutable_beta1_bias_correction())))) {
      return absl::InternalError(
          "the server sent a step range with raw arrays of partial elements, "
          "runs that do not cover its steps, or both encodings");
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
