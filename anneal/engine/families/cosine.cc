// Single cosine anneal: CosineAnnealingLR for t <= period, then min_lr.
//
// PyTorch's closed form, operation for operation:
//   eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2
// PyTorch does not clamp past T_max (the LR climbs back up, period 2*T_max);
// anneal holds min_lr, as optax, Keras and timm do.
#include <cmath>

#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

class CosineCurve final : public Curve {
 public:
  CosineCurve(const Levels& levels, int64_t period)
      : levels_(levels), period_(period) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    out->cycle = 0;
    out->step_in_cycle = t;
    if (t > period_) {
      out->lr = levels_.min_lr;
      out->h = 0;
      out->cycle_length = 0;
      out->phase = v1::HOLD;
      out->snapshot = false;
      return;
    }
    double c = 1 + std::cos(kPi * static_cast<double>(t) /
                            static_cast<double>(period_));
    out->lr = levels_.min_lr + (levels_.max_lr - levels_.min_lr) * c / 2;
    out->h = c / 2;
    out->cycle_length = period_ + 1;
    out->phase = v1::ANNEAL;
    out->snapshot = t == period_;
  }

  Asymptotics Tail() const override {
    return TailConstant(levels_.min_lr,
                        "a single cosine anneal (holds min_lr after period)");
  }
  int64_t SettlesAt() const override { return period_; }

 private:
  Levels levels_;
  int64_t period_;
};

}  // namespace

absl::StatusOr<CurvePtr> MakeCosine(const v1::Cosine& spec,
                                    const Levels& levels,
                                    const FieldPath& path) {
  FieldPath period = path.Child("period");
  if (auto s = RequireAtLeast(period, spec.period(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(period, spec.period(), kMaxStep); !s.ok()) {
    return s;
  }
  return CurvePtr(new CosineCurve(levels, spec.period()));
}

}  // namespace anneal
