// The compiled schedule: curve + restart/snapshot flags + momentum and its
// exact bias correction + batch scaling + thermostat (see schedule.h).
#include "anneal/engine/schedule.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "anneal/engine/bias_correction.h"
#include "anneal/engine/families/curves.h"
#include "anneal/engine/plateau.h"

namespace anneal {

namespace {

// The largest thermostat target: sqrt(K) stays below 1e150, so sigma only
// saturates where its true value passes DBL_MAX; a larger K is a unit mistake.
constexpr double kMaxThermostatTarget = 1e300;

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
    if (m.restart_bias_correction() && m.max() > kMaxRestartingMomentum) {
      // Each cycle's product starts afresh, so a step may have to replay
      // its cycle up to where the product vanishes: bounded by this max.
      return path.Child("max").Error(absl::StrCat(
          "must be in [0, ", FormatNumber(kMaxRestartingMomentum),
          "] with restart_bias_correction, got ", FormatNumber(m.max())));
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
    FieldPath path("thermostat");
    const v1::Thermostat& th = spec.thermostat();
    FieldPath k = path.Child("target_update_norm_sq");
    const double target = th.target_update_norm_sq();
    if (!(target > 0 && target <= kMaxThermostatTarget)) {
      return k.Error(absl::StrCat("must be in (0, ",
                                  FormatNumber(kMaxThermostatTarget), "], got ",
                                  FormatNumber(target)));
    }
    if (auto s = RequireInRange(path.Child("momentum"), th.momentum(), 0,
                                kMaxMomentum);
        !s.ok()) {
      return s;
    }
    if (spec.has_momentum() && th.momentum() != 0) {
      return path.Child("momentum")
          .Error(absl::StrCat(
              "must be 0 when the spec schedules momentum (the step's momentum "
              "is used), got ",
              FormatNumber(th.momentum())));
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
  // Checked here, once max_lr is known to be valid; the policy itself runs
  // in the server, on the reports (plateau.h).
  if (spec.has_plateau()) {
    auto policy = PlateauPolicy::Build(spec.plateau(), spec.max_lr());
    if (!policy.ok()) return policy.status();
  }
  std::shared_ptr<Schedule> schedule(new Schedule(spec));
  schedule->curve_ = *std::move(curve);
  schedule->ceiling_ = ctx.ceiling();
  if (spec.has_lr_noise()) {
    absl::StatusOr<LrNoise> noise = LrNoise::Build(spec.lr_noise());
    if (!noise.ok()) return noise.status();
    schedule->noise_ = *std::move(noise);
  }
  if (spec.has_batch_scaling()) {
    schedule->batch_reference_ =
        static_cast<double>(spec.batch_scaling().reference_batch_size());
    schedule->batch_sqrt_ =
        spec.batch_scaling().rule() == v1::BatchScaling::SQRT;
  }
  if (spec.has_thermostat()) {
    schedule->thermostat_k_ = spec.thermostat().target_update_norm_sq();
    schedule->thermostat_beta_ = spec.thermostat().momentum();
  }
  if (spec.has_momentum()) {
    schedule->momentum_base_ = spec.momentum().base();
    schedule->momentum_max_ = spec.momentum().max();
    schedule->bias_restarts_ = spec.momentum().restart_bias_correction();
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

StepResult Schedule::Finish(int64_t step, const CurvePoint& point, double level,
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
  // timm applies its noise to the scheduled LR (pct < 1 keeps it positive,
  // and at most ceiling * (1 + pct)).
  if (noise_.has_value()) lr = noise_->Apply(step, lr);
  // Divided first: at the peak lr / max_lr is exactly 1, so a plateau cut
  // of a constant LR serves its level bit for bit, as PyTorch's
  // ReduceLROnPlateau does.
  if (level > 0) lr = lr / spec_.max_lr() * level;
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

StepResult Schedule::At(int64_t step, double lr_level) const {
  CurvePoint point;
  curve_->Eval(step, &point);
  StepResult r = Finish(step, point, lr_level, 1.0);
  if (bias_ != nullptr) {
    r.beta1_bias_correction = bias_->At(step, ProductStart(r), r.momentum);
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
  if (!(q.lr_level >= 0 && std::isfinite(q.lr_level))) {
    return absl::InvalidArgumentError(
        absl::StrCat("lr_level: must be a finite number >= 0, got ",
                     FormatNumber(q.lr_level)));
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

int64_t Schedule::ProductStart(const StepResult& r) const {
  return bias_restarts_ && r.cycle > 0 ? r.step - r.step_in_cycle : 0;
}

void Schedule::ApplyThermostat(const StepQuery& q, StepResult* r) const {
  if (thermostat_k_ == 0 || !q.grad_norm_sq.has_value() ||
      !q.num_params.has_value()) {
    return;
  }
  r->has_noise_std = true;
  const double lr = r->lr;
  if (lr <= 0) {  // no step moves theta: no noise can reach the target
    r->noise_std = 0;
    return;
  }
  // sqrt(K - lr^2 |g|^2) / (lr sqrt(d)) rather than sqrt(K/lr^2 - |g|^2)/d:
  // K/lr^2 overflows for a small lr although sigma is representable (lr =
  // 1e-300, K = 1; lr = 0.1, K = 1e308). lr^2 |g|^2 may overflow to inf or
  // underflow to 0; both give the right answer here. Dividing by sqrt(d)
  // before lr leaves a single rounding that can overflow, and only when the
  // true sigma exceeds DBL_MAX.
  const double excess = thermostat_k_ - lr * lr * *q.grad_norm_sq;
  if (!(excess > 0)) {
    r->noise_std = 0;
    return;
  }
  double sigma =
      std::sqrt(excess) / std::sqrt(static_cast<double>(*q.num_params)) / lr;
  // With SGD momentum beta the injected noise accumulates in the velocity:
  // its steady-state share of E|delta theta|^2 is lr^2 d sigma^2 / (1 -
  // beta^2), so sigma shrinks by sqrt(1 - beta^2).
  const double beta = r->has_momentum ? r->momentum : thermostat_beta_;
  if (beta != 0) sigma *= std::sqrt((1.0 - beta) * (1.0 + beta));
  r->noise_std = std::min(sigma, std::numeric_limits<double>::max());
}

absl::StatusOr<StepResult> Schedule::Evaluate(const StepQuery& query) const {
  if (auto s = CheckQuery(query); !s.ok()) return s;
  CurvePoint point;
  curve_->Eval(query.step, &point);
  StepResult r = Finish(query.step, point, query.lr_level, BatchScale(query));
  if (bias_ != nullptr) {
    r.beta1_bias_correction =
        bias_->At(query.step, ProductStart(r), r.momentum);
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
  double product = 0;
  CurvePoint point;
  for (int64_t t = start; t < start + count; ++t) {
    point.momentum = -1;
    curve_->Eval(t, &point);
    StepResult r = Finish(t, point, options.lr_level, scale);
    if (bias_ != nullptr) {
      const int64_t from = ProductStart(r);
      if (t == start) product = bias_->ProductBefore(t, from);
      product =
          bias_->Next(t, from, product, r.momentum, &r.beta1_bias_correction);
    }
    ApplyThermostat(options, &r);
    visit(r);
  }
  return absl::OkStatus();
}

Asymptotics Schedule::Tail() const { return curve_->Tail(); }
int64_t Schedule::SettlesAt() const { return curve_->SettlesAt(); }

}  // namespace anneal
