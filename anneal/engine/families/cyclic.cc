// CyclicLR (Smith 2017) with base_lr = min_lr: triangular waves of
// step_size_up rising and step_size_down falling steps, scaled per cycle
// (TRIANGULAR2: 1/2^k) or per step (EXP_RANGE: gamma^t).
//
// PyTorch computes the position in the cycle in floating point
// (x = 1 + t/S - floor(1 + t/S)); anneal uses the exact remainder t mod S,
// which agrees with PyTorch to a few ulps for small t and stays exact up to
// 2^62.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

class CyclicCurve final : public Curve {
 public:
  CyclicCurve(const Levels& levels, int64_t up, int64_t down,
              v1::Cyclic::Mode mode, double gamma)
      : levels_(levels), up_(up), down_(down), mode_(mode), gamma_(gamma) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    const int64_t size = up_ + down_;
    const int64_t k = t / size;
    const int64_t r = t % size;
    const double scale_factor =
        r <= up_ ? static_cast<double>(r) / static_cast<double>(up_)
                 : static_cast<double>(size - r) / static_cast<double>(down_);
    double scale = 1.0;
    if (mode_ == v1::Cyclic::TRIANGULAR2) {
      scale = 1 / std::pow(2.0, static_cast<double>(k));
    } else if (mode_ == v1::Cyclic::EXP_RANGE) {
      scale = std::pow(gamma_, static_cast<double>(t));
    }
    const double base_height = (levels_.max_lr - levels_.min_lr) * scale_factor;
    out->lr = levels_.min_lr + base_height * scale;
    out->h = scale_factor * scale;
    if (levels_.has_momentum) {  // PyTorch's grouping, for bit equality
      const double height =
          (levels_.momentum_max - levels_.momentum_base) * scale_factor;
      out->momentum = levels_.momentum_max - height * scale;
    }
    out->cycle = k;
    out->step_in_cycle = r;
    out->cycle_length = size;
    out->phase = r < up_ ? v1::RISE : v1::ANNEAL;
    out->snapshot = r == size - 1;
  }

  Asymptotics Tail() const override {
    const bool damped = mode_ == v1::Cyclic::TRIANGULAR2 ||
                        (mode_ == v1::Cyclic::EXP_RANGE && gamma_ < 1);
    if (!damped || levels_.min_lr > 0) {
      return TailConstant(damped ? levels_.min_lr : levels_.max_lr,
                          damped
                              ? "a damped cyclic schedule tends to min_lr; it"
                              : "a cyclic schedule oscillates forever and");
    }
    return TailGeometric(0, "a damped cyclic schedule");
  }

 private:
  Levels levels_;
  int64_t up_, down_;
  v1::Cyclic::Mode mode_;
  double gamma_;
};

}  // namespace

absl::StatusOr<CurvePtr> MakeCyclic(const v1::Cyclic& spec,
                                    const Levels& levels,
                                    const FieldPath& path) {
  const int64_t half = kMaxStep / 2;
  FieldPath up = path.Child("step_size_up");
  if (auto s = RequireAtLeast(up, spec.step_size_up(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(up, spec.step_size_up(), half); !s.ok()) return s;
  int64_t down =
      spec.has_step_size_down() ? spec.step_size_down() : spec.step_size_up();
  FieldPath down_path = path.Child("step_size_down");
  if (auto s = RequireAtLeast(down_path, down, 1); !s.ok()) return s;
  if (auto s = RequireAtMost(down_path, down, half); !s.ok()) return s;
  double gamma = spec.has_gamma() ? spec.gamma() : 1.0;
  FieldPath gamma_path = path.Child("gamma");
  if (auto s = RequireInRange(gamma_path, gamma, 0, 1); !s.ok()) return s;
  if (gamma == 0) return gamma_path.Error("must be > 0, got 0");
  v1::Cyclic::Mode mode = spec.mode();
  if (mode == v1::Cyclic::MODE_UNSPECIFIED) mode = v1::Cyclic::TRIANGULAR;
  if (mode != v1::Cyclic::TRIANGULAR && mode != v1::Cyclic::TRIANGULAR2 &&
      mode != v1::Cyclic::EXP_RANGE) {
    return path.Child("mode").Error(absl::StrCat(
        "must be TRIANGULAR, TRIANGULAR2 or EXP_RANGE, got ", spec.mode()));
  }
  return CurvePtr(
      new CyclicCurve(levels, spec.step_size_up(), down, mode, gamma));
}

}  // namespace anneal
