// EvaluateRange's StepRange back into StepResult values (see
// step_range_results.h).
#include "client/step_range_results.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "schedule/schedule.h"

namespace anneal {
namespace {

struct Segment {
  int64_t from = 0;
  int64_t origin = 0;
  std::shared_ptr<const Schedule> schedule;
};

absl::StatusOr<std::vector<Segment>> CompileTimeline(
    const v1::Schedule& schedule) {
  std::vector<Segment> segments;
  for (int i = 0; i < schedule.timeline_size(); ++i) {
    const v1::Segment& s = schedule.timeline(i);
    auto compiled = Schedule::Compile(s.spec());
    if (!compiled.ok()) {
      return absl::InternalError(
          absl::StrCat(schedule.name(), ": timeline segment ", i,
                       " does not compile in this annealctl: ",
                       compiled.status().message()));
    }
    segments.push_back({s.from_step(), s.time_origin(), *std::move(compiled)});
  }
  if (segments.empty() || segments[0].from > 0) {
    return absl::InternalError(absl::StrCat(
        schedule.name(), ": the server sent no timeline segment at step 0"));
  }
  return segments;
}

absl::Status MomentumMismatch(const v1::StepRange& range, int64_t step) {
  return absl::InternalError(
      absl::StrCat("the server sent ", range.momentum_size(),
                   " momentum values for ", range.lr_size(),
                   " steps, which does not match the steps its timeline "
                   "schedules momentum on (checked up to step ",
                   step, ")"));
}

}  // namespace

absl::StatusOr<std::vector<StepResult>> UnpackStepRange(
    const v1::StepRange& range, const v1::Schedule& schedule) {
  const int n = range.lr_size();
  if (range.cycle_size() != n || range.step_in_cycle_size() != n ||
      range.flags_size() != n ||
      range.momentum_size() != range.beta1_bias_correction_size()) {
    return absl::InternalError(absl::StrCat(
        "the server sent a step range with arrays of different lengths (lr ", n,
        ", cycle ", range.cycle_size(), ", step_in_cycle ",
        range.step_in_cycle_size(), ", flags ", range.flags_size(),
        ", momentum ", range.momentum_size(), ")"));
  }
  auto segments = CompileTimeline(schedule);
  if (!segments.ok()) return segments.status();

  std::vector<StepResult> results(static_cast<size_t>(n));
  int momentum_index = 0;
  for (int i = 0; i < n; ++i) {
    const int64_t step = range.start_step() + i;
    auto after = std::upper_bound(
        segments->begin(), segments->end(), step,
        [](int64_t t, const Segment& s) { return t < s.from; });
    const Segment& segment = *(after - 1);
    const StepResult local = segment.schedule->At(step - segment.origin);

    StepResult& r = results[static_cast<size_t>(i)];
    r.step = step;
    r.lr = range.lr(i);
    r.cycle = range.cycle(i);
    r.step_in_cycle = range.step_in_cycle(i);
    r.cycle_length = local.cycle_length;
    const uint32_t flags = range.flags(i);
    r.restart = (flags & kRangeFlagRestart) != 0;
    r.snapshot = (flags & kRangeFlagSnapshot) != 0;
    const int phase = static_cast<int>((flags >> kRangeFlagPhaseShift) & 0xff);
    if (!v1::Phase_IsValid(phase)) {
      return absl::InternalError(absl::StrCat("the server sent unknown phase ",
                                              phase, " at step ", step,
                                              " (a newer server?)"));
    }
    r.phase = static_cast<v1::Phase>(phase);
    r.has_momentum = local.has_momentum;
    if (r.has_momentum) {
      if (momentum_index >= range.momentum_size()) {
        return MomentumMismatch(range, step);
      }
      r.momentum = range.momentum(momentum_index);
      r.beta1_bias_correction = range.beta1_bias_correction(momentum_index);
      ++momentum_index;
    }
  }
  if (momentum_index != range.momentum_size()) {
    return MomentumMismatch(range, range.start_step() + n);
  }
  return results;
}

}  // namespace anneal
