// OneCycleLR (Smith & Topin 2018): from max_lr/div_factor up to max_lr, then
// down to max_lr/(div_factor*final_div_factor); three_phase goes back to the
// initial LR before the final annihilation.
//
// Phase ends are PyTorch's floating-point ones (pct_start*N - 1, N - 1, and
// 2*pct_start*N - 2 for three phases) and the anneal functions are PyTorch's,
// operation for operation. After step N - 1 the LR holds its final value:
// PyTorch overshoots at step N and raises after it.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

class OneCycleCurve final : public Curve {
 public:
  OneCycleCurve(const Levels& levels, const v1::OneCycle& spec, double pct,
                double div, double final_div)
      : total_(spec.total_steps()),
        has_momentum_(levels.has_momentum),
        base_m_(levels.momentum_base),
        max_m_(levels.momentum_max),
        linear_(spec.anneal() == v1::OneCycle::LINEAR),
        three_phase_(spec.three_phase()),
        max_lr_(levels.max_lr),
        initial_lr_(levels.max_lr / div),
        min_lr_(initial_lr_ / final_div) {
    const double n = static_cast<double>(total_);
    end1_ = pct * n - 1;
    if (three_phase_) {
      end2_ = 2 * pct * n - 2;
    } else {
      end2_ = n - 1;
    }
    end3_ = n - 1;
  }

  void Eval(int64_t t, CurvePoint* out) const override {
    out->cycle = 0;
    out->step_in_cycle = t;
    out->cycle_length = total_;
    out->snapshot = t == total_ - 1;
    if (t >= total_) {
      out->lr = min_lr_;
      out->h = 0;
      if (has_momentum_) out->momentum = max_m_;
      out->cycle_length = 0;
      out->phase = v1::HOLD;
      return;
    }
    const double step = static_cast<double>(t);
    if (step <= end1_) {
      double c;
      const double pct = step / end1_;
      out->lr = Anneal(initial_lr_, max_lr_, pct, &c);
      out->h = 1 - c;
      if (has_momentum_) out->momentum = Anneal(max_m_, base_m_, pct, &c);
      out->phase = v1::WARMUP;
    } else if (!three_phase_ || step <= end2_) {
      double c;
      const double pct = (step - end1_) / (end2_ - end1_);
      out->lr = Anneal(max_lr_, three_phase_ ? initial_lr_ : min_lr_, pct, &c);
      out->h = c;
      if (has_momentum_) out->momentum = Anneal(base_m_, max_m_, pct, &c);
      out->phase = v1::ANNEAL;
    } else {
      double c;
      out->lr =
          Anneal(initial_lr_, min_lr_, (step - end2_) / (end3_ - end2_), &c);
      out->h = 0;  // PyTorch holds max_momentum in the third phase
      if (has_momentum_) out->momentum = max_m_;
      out->phase = v1::ANNEAL;
    }
  }

  Asymptotics Tail() const override {
    return TailConstant(min_lr_, "one-cycle (holds its final LR)");
  }
  int64_t SettlesAt() const override { return total_ - 1; }

 private:
  // From `start` (pct 0) to `end` (pct 1); *c is the weight of `start`.
  double Anneal(double start, double end, double pct, double* c) const {
    if (linear_) {
      *c = 1 - pct;
      return (end - start) * pct + start;
    }
    double cos_out = std::cos(kPi * pct) + 1;
    *c = cos_out / 2;
    return end + (start - end) / 2.0 * cos_out;
  }

  int64_t total_;
  bool has_momentum_;
  double base_m_, max_m_;
  bool linear_, three_phase_;
  double max_lr_, initial_lr_, min_lr_;
  double end1_ = 0, end2_ = 0, end3_ = 0;
};

}  // namespace

absl::StatusOr<CurvePtr> MakeOneCycle(const v1::OneCycle& spec,
                                      const Levels& levels,
                                      const FieldPath& path) {
  FieldPath total_path = path.Child("total_steps");
  if (auto s = RequireAtLeast(total_path, spec.total_steps(), 2); !s.ok()) {
    return s;
  }
  if (auto s = RequireAtMost(total_path, spec.total_steps(), kMaxStep);
      !s.ok()) {
    return s;
  }
  const double pct = spec.has_pct_start() ? spec.pct_start() : 0.3;
  FieldPath pct_path = path.Child("pct_start");
  if (auto s = RequireFinite(pct_path, pct); !s.ok()) return s;
  if (!(pct > 0 && pct < 1)) {
    return pct_path.Error(
        absl::StrCat("must be in (0, 1), got ", FormatNumber(pct)));
  }
  const double div = spec.has_div_factor() ? spec.div_factor() : 25.0;
  if (auto s = RequireAtLeast(path.Child("div_factor"), div, 1); !s.ok()) {
    return s;
  }
  const double final_div =
      spec.has_final_div_factor() ? spec.final_div_factor() : 1e4;
  if (auto s = RequireAtLeast(path.Child("final_div_factor"), final_div, 1);
      !s.ok()) {
    return s;
  }
  if (spec.anneal() != v1::OneCycle::ANNEAL_UNSPECIFIED &&
      spec.anneal() != v1::OneCycle::COSINE &&
      spec.anneal() != v1::OneCycle::LINEAR) {
    return path.Child("anneal").Error(
        absl::StrCat("must be COSINE or LINEAR, got ", spec.anneal()));
  }
  // Every phase needs a positive width, or PyTorch divides by zero.
  const double n = static_cast<double>(spec.total_steps());
  const double end1 = pct * n - 1;
  const double end2 = spec.three_phase() ? 2 * pct * n - 2 : n - 1;
  if (!(end1 > 0) || !(end2 > end1) || !(n - 1 > end2 || !spec.three_phase())) {
    return pct_path.Error(
        absl::StrCat("with total_steps ", spec.total_steps(), ", pct_start ",
                     FormatNumber(pct),
                     " leaves a phase of zero or negative length "
                     "(need pct_start * total_steps > 1",
                     spec.three_phase()
                         ? " and 2 * pct_start * total_steps - 1 < total_steps"
                         : " and pct_start < 1",
                     ")"));
  }
  if (levels.min_lr != 0) {
    return path.Error(absl::StrCat(
        "derives its floor from div_factor and final_div_factor; min_lr must "
        "be unset or 0, got ",
        FormatNumber(levels.min_lr)));
  }
  return CurvePtr(new OneCycleCurve(levels, spec, pct, div, final_div));
}

}  // namespace anneal
