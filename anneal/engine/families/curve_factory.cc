// BuildCurve: validates the levels of a spec, dispatches on its `curve` oneof
// and applies its warmup. The one place that knows every family.
#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"
#include "anneal/engine/schedule.h"

namespace anneal {
namespace {

absl::StatusOr<Levels> ResolveLevels(const v1::ScheduleSpec& spec,
                                     const Levels* inherited,
                                     const FieldPath& path) {
  Levels levels;
  if (inherited != nullptr) {
    levels = *inherited;
  } else if (spec.has_momentum()) {
    levels.has_momentum = true;
    levels.momentum_base = spec.momentum().base();
    levels.momentum_max = spec.momentum().max();
  }
  FieldPath max_path = path.Child("max_lr");
  if (spec.has_max_lr()) {
    levels.max_lr = spec.max_lr();
  } else if (inherited == nullptr) {
    return max_path.Error("is required (the peak LR, > 0)");
  }
  if (auto s = RequireAbove(max_path, levels.max_lr, 0); !s.ok()) return s;
  if (levels.max_lr > kMaxLrLimit) {
    return max_path.Error(absl::StrCat("must be <= ", FormatNumber(kMaxLrLimit),
                                       ", got ", FormatNumber(levels.max_lr)));
  }
  FieldPath min_path = path.Child("min_lr");
  if (spec.has_min_lr()) levels.min_lr = spec.min_lr();
  if (auto s = RequireAtLeast(min_path, levels.min_lr, 0); !s.ok()) return s;
  if (levels.min_lr > levels.max_lr) {
    return min_path.Error(absl::StrCat("must be <= max_lr (",
                                       FormatNumber(levels.max_lr), "), got ",
                                       FormatNumber(levels.min_lr)));
  }
  return levels;
}

absl::StatusOr<CurvePtr> BuildFamily(const v1::ScheduleSpec& spec,
                                     const Levels& levels,
                                     const v1::Warmup* every_cycle,
                                     const FieldPath& path, BuildContext& ctx) {
  using S = v1::ScheduleSpec;
  switch (spec.curve_case()) {
    case S::kConstant:
      return MakeConstant(levels);
    case S::kStepDecay:
      return MakeStepDecay(spec.step_decay(), levels, path.Child("step_decay"),
                           ctx);
    case S::kExponentialDecay:
      return MakeExponentialDecay(spec.exponential_decay(), levels,
                                  path.Child("exponential_decay"));
    case S::kPolynomialDecay:
      return MakePolynomialDecay(spec.polynomial_decay(), levels,
                                 path.Child("polynomial_decay"));
    case S::kInverseTimeDecay:
      return MakeInverseTimeDecay(spec.inverse_time_decay(), levels,
                                  path.Child("inverse_time_decay"));
    case S::kLinear:
      return MakeLinear(spec.linear(), levels, path.Child("linear"));
    case S::kCosine:
      return MakeCosine(spec.cosine(), levels, path.Child("cosine"));
    case S::kWarmRestarts:
      return MakeWarmRestarts(spec.warm_restarts(), levels, every_cycle,
                              path.Child("warm_restarts"), ctx);
    case S::kCyclic:
      return MakeCyclic(spec.cyclic(), levels, path.Child("cyclic"));
    case S::kOneCycle:
      return MakeOneCycle(spec.one_cycle(), levels, path.Child("one_cycle"));
    case S::kWsd:
      return MakeWsd(spec.wsd(), levels, path.Child("wsd"));
    case S::kSequence:
      return MakeSequence(spec.sequence(), levels, path.Child("sequence"), ctx);
    case S::CURVE_NOT_SET:
      break;
  }
  return path.Child("curve").Error(
      "exactly one curve is required: constant, step_decay, "
      "exponential_decay, polynomial_decay, inverse_time_decay, linear, "
      "cosine, warm_restarts, cyclic, one_cycle, wsd or sequence");
}

}  // namespace

absl::Status BuildContext::Charge(int64_t bytes, const FieldPath& path) {
  if (bytes <= max_table_bytes_ - charged_) {
    charged_ += bytes;
    return absl::OkStatus();
  }
  return path.Error(absl::StrCat(
      "must fit the compile budget of ", max_table_bytes_,
      " bytes of tables, got more (", charged_,
      " bytes already used by the parts before it); use fewer or simpler "
      "parts, fewer distinct cycles (a period_mult further from 1, or "
      "max_cycles) or a lower momentum.max"));
}

absl::Status BuildContext::EnterSequence(const FieldPath& path) {
  if (depth_ >= kMaxSequenceDepth) {
    return path.Error(absl::StrCat("sequences may nest at most ",
                                   kMaxSequenceDepth, " deep, got ",
                                   depth_ + 1));
  }
  ++depth_;
  return absl::OkStatus();
}

absl::StatusOr<CurvePtr> BuildCurve(const v1::ScheduleSpec& spec,
                                    const Levels* inherited,
                                    const FieldPath& path, BuildContext& ctx) {
  if (auto s = ctx.Charge(kCurveNodeBytes,
                          path.str().empty() ? FieldPath("curve") : path);
      !s.ok()) {
    return s;
  }
  absl::StatusOr<Levels> levels = ResolveLevels(spec, inherited, path);
  if (!levels.ok()) return levels.status();
  ctx.RaiseCeiling(levels->max_lr);
  const v1::Warmup* every_cycle = nullptr;
  if (spec.has_warmup()) {
    FieldPath warmup_path = path.Child("warmup");
    if (auto s = ValidateWarmup(spec.warmup(), warmup_path); !s.ok()) {
      return s;
    }
    ctx.RaiseCeiling(spec.warmup().start_lr());
    if (spec.warmup().every_cycle()) {
      if (spec.curve_case() != v1::ScheduleSpec::kWarmRestarts) {
        return warmup_path.Child("every_cycle")
            .Error("requires a warm_restarts curve (cycles to warm up)");
      }
      every_cycle = &spec.warmup();
    }
  }
  absl::StatusOr<CurvePtr> curve =
      BuildFamily(spec, *levels, every_cycle, path, ctx);
  if (!curve.ok() || !spec.has_warmup()) return curve;
  if (every_cycle != nullptr) {
    return WithCycleWarmupTail(*every_cycle, spec.warm_restarts().max_cycles(),
                               *std::move(curve));
  }
  return WrapWithWarmup(spec.warmup(), *levels, *std::move(curve));
}

}  // namespace anneal
