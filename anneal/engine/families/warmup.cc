// Warmup: a ramp from start_lr to the peak over `steps` steps.
//
// As a prefix (WrapWithWarmup) it runs before the curve, which then runs on
// t - steps; the warmup belongs to cycle 0. With `overlap` it replaces the
// curve's first steps instead, on the curve's own clock (timm's default).
// Linear warmup + cosine equals
// SequentialLR([LinearLR(start_factor=start_lr/max_lr, total_iters=W),
// CosineAnnealingLR(T_max=P)], milestones=[W]). warm_restarts also uses
// WarmupLr for its per-cycle warmups, and WithCycleWarmupTail gives those
// their Robbins-Monro verdict.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

class WarmupCurve final : public Curve {
 public:
  WarmupCurve(const v1::Warmup& spec, const Levels& levels, CurvePtr inner)
      : spec_(spec), levels_(levels), inner_(std::move(inner)) {
    CurvePoint first;
    inner_->Eval(0, &first);
    first_cycle_length_ = first.cycle_length;
    target_ = levels_.max_lr;
    if (spec_.to_curve()) {
      CurvePoint at;
      inner_->Eval(spec_.steps(), &at);
      target_ = at.lr;
    }
  }

  void Eval(int64_t t, CurvePoint* out) const override {
    const int64_t w = spec_.steps();
    if (spec_.overlap()) {
      // The curve's own clock and cycles; only the LR of its first w steps
      // is the ramp's (timm: warmup_lr_init + t * (base - init) / warmup_t).
      inner_->Eval(t, out);
      if (t < w) {
        out->lr = WarmupLr(spec_, t, target_, &out->h);
        out->phase = v1::WARMUP;
        out->snapshot = false;
      }
      return;
    }
    if (t < w) {
      out->lr = WarmupLr(spec_, t, levels_.max_lr, &out->h);
      out->cycle = 0;
      out->step_in_cycle = t;
      out->cycle_length =
          first_cycle_length_ == 0 ? 0 : first_cycle_length_ + w;
      out->phase = v1::WARMUP;
      out->snapshot = false;
      return;
    }
    inner_->Eval(t - w, out);
    if (out->cycle == 0) {
      out->step_in_cycle += w;
      if (out->cycle_length != 0) out->cycle_length += w;
    }
  }

  Asymptotics Tail() const override { return inner_->Tail(); }

  int64_t SettlesAt() const override {
    int64_t inner = inner_->SettlesAt();
    if (inner < 0) return -1;
    return spec_.overlap() ? std::max(inner, spec_.steps())
                           : inner + spec_.steps();
  }

 private:
  v1::Warmup spec_;
  Levels levels_;
  CurvePtr inner_;
  int64_t first_cycle_length_ = 0;
  double target_ = 0;  // what the ramp aims at
};

// Warm restarts with a warmup in every cycle: the LRs are the restarts' own;
// only the tail changes. Every cycle starts at start_lr whatever the cycle's
// (decayed) peak, so infinitely many cycles each add at least start_lr to the
// sum and start_lr^2 to the sum of squares: both diverge, whatever the
// restarts' own verdict (which describes their peaks).
class CycleWarmupTailCurve final : public Curve {
 public:
  CycleWarmupTailCurve(double start_lr, CurvePtr restarts)
      : start_lr_(start_lr), restarts_(std::move(restarts)) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    restarts_->Eval(t, out);
  }

  Asymptotics Tail() const override {
    Asymptotics a;
    a.sum_diverges = true;
    a.sum_squares_converges = false;
    a.reason = absl::StrCat(
        "warm restarts with a warmup in every cycle from start_lr = ",
        FormatNumber(start_lr_),
        " > 0: each of infinitely many cycles adds at least start_lr to the "
        "sum and start_lr^2 to the sum of squares, so both diverge (violates "
        "condition 2)");
    return a;
  }

  int64_t SettlesAt() const override { return restarts_->SettlesAt(); }

 private:
  double start_lr_;
  CurvePtr restarts_;
};

}  // namespace

absl::Status ValidateWarmup(const v1::Warmup& spec, const FieldPath& path) {
  FieldPath steps = path.Child("steps");
  if (auto s = RequireAtLeast(steps, spec.steps(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(steps, spec.steps(), kMaxStep); !s.ok()) return s;
  // Above max_lr is a ramp down to the peak (optax allows it).
  if (auto s = RequireInRange(path.Child("start_lr"), spec.start_lr(), 0,
                              kMaxLrLimit);
      !s.ok()) {
    return s;
  }
  if (spec.to_curve() && !spec.overlap()) {
    return path.Child("to_curve")
        .Error(
            "requires overlap (a prefix warmup always ends at max_lr, where "
            "the "
            "curve starts)");
  }
  if (spec.overlap() && spec.every_cycle()) {
    return path.Child("overlap").Error(
        "cannot be set with every_cycle (a per-cycle warmup already runs on "
        "each cycle's own clock)");
  }
  if (spec.shape() != v1::Warmup::SHAPE_UNSPECIFIED &&
      spec.shape() != v1::Warmup::LINEAR &&
      spec.shape() != v1::Warmup::COSINE && spec.shape() != v1::Warmup::LOG) {
    return path.Child("shape").Error(
        absl::StrCat("must be LINEAR, COSINE or LOG, got ", spec.shape()));
  }
  if (spec.shape() == v1::Warmup::LOG && spec.steps() < 2) {
    return steps.Error(absl::StrCat(
        "must be >= 2 with shape LOG (ln(steps) divides), got ", spec.steps()));
  }
  return absl::OkStatus();
}

double WarmupLr(const v1::Warmup& spec, int64_t steps_done, double peak,
                double* h) {
  const double x =
      static_cast<double>(steps_done) / static_cast<double>(spec.steps());
  double f = x;
  if (spec.shape() == v1::Warmup::COSINE) {
    f = (1 - std::cos(kPi * x)) / 2;
  } else if (spec.shape() == v1::Warmup::LOG) {
    // DeepSpeed's arithmetic, operation for operation (lr_schedules.py:
    // inverse_log_warm_up * math.log(t + 1)), so its LRs come out equal.
    f = (1.0 / std::log(static_cast<double>(spec.steps()))) *
        std::log(static_cast<double>(steps_done) + 1);
  }
  *h = f;
  return spec.start_lr() + (peak - spec.start_lr()) * f;
}

absl::StatusOr<CurvePtr> WrapWithWarmup(const v1::Warmup& spec,
                                        const Levels& levels, CurvePtr inner) {
  return CurvePtr(new WarmupCurve(spec, levels, std::move(inner)));
}

CurvePtr WithCycleWarmupTail(const v1::Warmup& spec, int64_t max_cycles,
                             CurvePtr restarts) {
  // max_cycles ends the cycles (the restarts' verdict holds); start_lr 0
  // adds nothing the restarts' peaks do not already decide.
  if (max_cycles > 0 || spec.start_lr() == 0) return restarts;
  return CurvePtr(
      new CycleWarmupTailCurve(spec.start_lr(), std::move(restarts)));
}

}  // namespace anneal
