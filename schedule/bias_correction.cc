// Exact Adam bias correction for a cycled beta1 (see bias_correction.h).
#include "schedule/bias_correction.h"

#include <cmath>

namespace anneal {
namespace {
// Below this the correction 1 - p rounds to exactly 1.0 (p < 2^-54 suffices).
const double kVanishing = std::ldexp(1.0, -60);
constexpr int64_t kMaxTable = 4096;
}  // namespace

double MomentumCurve::At(int64_t t) const {
  CurvePoint p;
  curve_->Eval(t, &p);
  return p.momentum >= 0 ? p.momentum : FromMix(base_, max_, p.h);
}

BiasCorrection::BiasCorrection(const MomentumCurve& momentum, double max)
    : momentum_(momentum) {
  // Bound on the number of steps until the product vanishes: max^n < 2^-60.
  const double bound =
      max <= 0 ? 1 : std::ceil(-60 * std::log(2.0) / std::log(max)) + 1;
  const auto limit = static_cast<int64_t>(bound);
  stride_ = std::max<int64_t>(1, (limit + kMaxTable - 1) / kMaxTable);
  prefix_.push_back(1.0);
  double product = 1.0;
  int64_t t = 0;
  for (; product >= kVanishing; ++t) {
    if (t % stride_ == 0 && t > 0) prefix_.push_back(product);
    product *= momentum_.At(t);
  }
  vanishes_at_ = t - 1;  // product through step t-1 fell below the limit
}

double BiasCorrection::ProductBefore(int64_t t) const {
  if (t > vanishes_at_) return 0.0;
  const int64_t j = t / stride_;
  double product = prefix_[j];
  for (int64_t i = j * stride_; i < t; ++i) product *= momentum_.At(i);
  return product;
}

double BiasCorrection::At(int64_t t) const {
  if (t >= vanishes_at_) return 1.0;
  double product = ProductBefore(t) * momentum_.At(t);
  return 1.0 - product;
}

double BiasCorrection::Next(int64_t t, double product_before,
                            double momentum_t, double* correction) const {
  if (t >= vanishes_at_) {
    *correction = 1.0;
    return 0.0;
  }
  const double product = product_before * momentum_t;
  *correction = 1.0 - product;
  return product;
}

}  // namespace anneal
