// The compiled schedule: curve + restart/snapshot flags + momentum and its
// exact bias correction + batch scaling + thermostat (see schedule.h).
#include "anneal/engine/schedule.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "anneal/engine/bias_correction.h"
#include "anneal/engine/families/curves.h"

namespace anneal {

namespace {

absl::Status ValidateModifiers(const v1::ScheduleSpec& spec) {
  if (spec.has_momentum()) {
    FieldPath path("momentum");
    const v1::Momentum& m = spec.momentum();
    if (auto s = RequireInRange(path.Child("max"), m.max(), 0, kMaxMomentum);
        !s.ok()) {
      return s;
    }
    if (auto s = RequireInRange(path.Child("base"), m.base(), 0, m.max());
        !s.ok()) {
      return s;
    }
  }
  if (spec.has_batch_scaling()) {
    FieldPath path("batch_scaling");
    const v1::BatchScaling& b = spec.batch_scaling();
    if (auto s = RequireAtLeast(path.Child("reference_batch_size"),
                                b.reference_batch_size(), 1);
        !s.ok()) {
      return s;
    }
    if (b.rule() != v1::BatchScaling::RULE_UNSPECIFIED &&
        b.rule() != v1::BatchScaling::LINEAR &&
        b.rule() != v1::BatchScaling::SQRT) {
      return path.Child("rule").Error(
          absl::StrCat("must be LINEAR or SQRT, got ", b.rule()));
    }
  }
  if (spec.has_thermostat()) {
    if (auto s = RequireAbove(FieldPath("thermostat.target_update_norm_sq"),
                              spec.thermostat().target_update_norm_sq(), 0);
        !s.ok()) {
      return s;
    }
  }
  return absl::OkStatus();
}

}  // namespace

Schedule::Schedule(const v1::ScheduleSpec& spec) : spec_(spec) {}
Schedule::~Schedule() = default;

absl::StatusOr<std::shared_ptr<const Schedule>> Schedule::Compile(
    const v1::ScheduleSpec& spec, const CompileLimits& limits) {
  if (auto s = ValidateModifiers(spec); !s.ok()) return s;
  BuildContext ctx(limits.max_table_bytes);
  absl::StatusOr<CurvePtr> curve = BuildCurve(spec, nullptr, FieldPath(), ctx);
  if (!curve.ok()) return curve.status();
  std::shared_ptr<Schedule> schedule(new Schedule(spec));
  schedule->curve_ = *std::move(curve);
  schedule->ceiling_ = ctx.ceiling();
  if (spec.has_batch_scaling()) {
    schedule->batch_reference_ =
        static_cast<double>(spec.batch_scaling().reference_batch_size());
    schedule->batch_sqrt_ =
        spec.batch_scaling().rule() == v1::BatchScaling::SQRT;
  }
  if (spec.has_thermostat()) {
    schedule->thermostat_k_ = spec.thermostat().target_update_norm_sq();
  }
  if (spec.has_momentum()) {
    schedule->momentum_base_ = spec.momentum().base();
    schedule->momentum_max_ = spec.momentum().max();
    auto bias = BiasCorrection::Build(
        MomentumCurve(schedule->curve_.get(), schedule->momentum_base_,
                      schedule->momentum_max_),
        ctx);
    if (!bias.ok()) return bias.status();
    schedule->bias_ = *std::move(bias);
  }
  schedule->table_bytes_ = ctx.charged();
  return std::shared_ptr<const Schedule>(std::move(schedule));
}

absl::Status Schedule::Validate(const v1::ScheduleSpec& spec,
                                const CompileLimits& limits) {
  // Compiling is the validation: the bias-correction table has its own
  // budget, so it must be built too.
  return Compile(spec, limits).status();
}

StepResult Schedule::Finish(int64_t step, const CurvePoint& point,
                            double scale) const {
  StepResult r;
  r.step = step;
  // Rounding can leave a closed form an ulp outside [0, peak] (a floor of
  // 1e-308 divided by 1e168 and re-added, say): an LR is never negative,
  // NaN or above every peak of the spec.
  double lr = point.lr;
  if (!(lr >= 0)) {
    lr = 0;
  } else if (lr > ceiling_) {
    lr = ceiling_;
  }
  r.lr = scale == 1.0 ? lr : lr * scale;
  r.cycle = point.cycle;
  r.step_in_cycle = point.step_in_cycle;
  r.cycle_length = point.cycle_length;
  r.phase = point.phase;
  r.restart = point.cycle > 0 && point.step_in_cycle == 0;
  r.snapshot = point.snapshot;
  if (bias_ != nullptr) {
    r.has_momentum = true;
    r.momentum =
        point.momentum >= 0
            ? point.momentum
            : MomentumCurve::FromMix(momentum_base_, momentum_max_, point.h);
  }
  return r;
}

StepResult Schedule::At(int64_t step) const {
  CurvePoint point;
  curve_->Eval(step, &point);
  StepResult r = Finish(step, point, 1.0);
  if (bias_ != nullptr) {
    r.beta1_bias_correction = bias_->At(step, r.momentum);
  }
  return r;
}

absl::Status Schedule::CheckQuery(const StepQuery& q) {
  if (q.step < 0 || q.step > kMaxStep) {
    return absl::InvalidArgumentError(
        absl::StrCat("step: must be in [0, 2^62], got ", q.step));
  }
  if (q.batch_size.has_value() && *q.batch_size < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("batch_size: must be >= 1, got ", *q.batch_size));
  }
  if (q.grad_norm_sq.has_value() &&
      !(std::isfinite(*q.grad_norm_sq) && *q.grad_norm_sq >= 0)) {
    return absl::InvalidArgumentError(
        absl::StrCat("grad_norm_sq: must be a finite number >= 0, got ",
                     FormatNumber(*q.grad_norm_sq)));
  }
  if (q.num_params.has_value() && *q.num_params < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("num_params: must be >= 1, got ", *q.num_params));
  }
  return absl::OkStatus();
}

double Schedule::BatchScale(const StepQuery& q) const {
  if (batch_reference_ == 0 || !q.batch_size.has_value()) return 1.0;
  const double ratio = static_cast<double>(*q.batch_size) / batch_reference_;
  return batch_sqrt_ ? std::sqrt(ratio) : ratio;
}

void Schedule::ApplyThermostat(const StepQuery& q, StepResult* r) const {
  if (thermostat_k_ == 0 || !q.grad_norm_sq.has_value() ||
      !q.num_params.has_value()) {
    return;
  }
  r->has_noise_std = true;
  if (r->lr <= 0) {  // no step moves theta: no noise can reach the target
    r->noise_std = 0;
    return;
  }
  const double k = thermostat_k_;
  const double needed = k / (r->lr * r->lr) - *q.grad_norm_sq;
  const double v =
      std::sqrt(std::max(0.0, needed) / static_cast<double>(*q.num_params));
  r->noise_std = std::min(v, std::numeric_limits<double>::max());
}

absl::StatusOr<StepResult> Schedule::Evaluate(const StepQuery& query) const {
  if (auto s = CheckQuery(query); !s.ok()) return s;
  CurvePoint point;
  curve_->Eval(query.step, &point);
  StepResult r = Finish(query.step, point, BatchScale(query));
  if (bias_ != nullptr) {
    r.beta1_bias_correction = bias_->At(query.step, r.momentum);
  }
  ApplyThermostat(query, &r);
  return r;
}

absl::Status Schedule::EvaluateRange(
    int64_t start, int64_t count, const StepQuery& options,
    absl::FunctionRef<void(const StepResult&)> visit) const {
  StepQuery first = options;
  first.step = start;
  if (auto s = CheckQuery(first); !s.ok()) return s;
  if (count < 0 || count > kMaxStep - start + 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("count: must be in [0, 2^62 - start + 1], got ", count));
  }
  const double scale = BatchScale(options);
  double product = bias_ != nullptr ? bias_->ProductBefore(start) : 0;
  CurvePoint point;
  for (int64_t t = start; t < start + count; ++t) {
    point.momentum = -1;
    curve_->Eval(t, &point);
    StepResult r = Finish(t, point, scale);
    if (bias_ != nullptr) {
      product = bias_->Next(t, product, r.momentum, &r.beta1_bias_correction);
    }
    ApplyThermostat(options, &r);
    visit(r);
  }
  return absl::OkStatus();
}

Asymptotics Schedule::Tail() const { return curve_->Tail(); }
int64_t Schedule::SettlesAt() const { return curve_->SettlesAt(); }

}  // namespace anneal
