// Exact Adam bias correction for a cycled beta1 (see bias_correction.h).
#include "schedule/bias_correction.h"

#include <algorithm>
#include <cmath>

namespace anneal {
namespace {
// Below this the correction 1 - p rounds to exactly 1.0 (p < 2^-54 suffices).
const double kVanishing = std::ldexp(1.0, -60);
constexpr int64_t kMaxTable = 16384;
}  // namespace

double MomentumCurve::At(int64_t t) const {
  CurvePoint p;
  curve_->Eval(t, &p);
  return p.momentum >= 0 ? p.momentum : FromMix(base_, max_, p.h);
}

BiasCorrection::BiasCorrection(const MomentumCurve& momentum)
    : momentum_(momentum) {
  // All prefix products until the product vanishes (at most ~416k steps for
  // max = 0.9999), then keep every stride-th so the table stays small; the
  // stride follows where the product really vanishes, not the worst case.
  std::vector<double> products{1.0};  // products[t] = prod_{i<t}
  while (products.back() >= kVanishing) {
    const auto t = static_cast<int64_t>(products.size()) - 1;
    products.push_back(products.back() * momentum_.At(t));
  }
  const auto n = static_cast<int64_t>(products.size());
  vanishes_at_ = n - 2;  // prod_{i <= n-2} = products[n-1] < 2^-60
  stride_ = std::max<int64_t>(1, (n + kMaxTable - 1) / kMaxTable);
  for (int64_t t = 0; t < n; t += stride_) prefix_.push_back(products[t]);
}

double BiasCorrection::ProductBefore(int64_t t) const {
  if (t > vanishes_at_) return 0.0;
  const int64_t j = t / stride_;
  double product = prefix_[j];
  for (int64_t i = j * stride_; i < t; ++i) product *= momentum_.At(i);
  return product;
}

double BiasCorrection::At(int64_t t, double momentum_t) const {
  if (t >= vanishes_at_) return 1.0;
  return 1.0 - ProductBefore(t) * momentum_t;
}

double BiasCorrection::Next(int64_t t, double product_before, double momentum_t,
                            double* correction) const {
  if (t >= vanishes_at_) {
    *correction = 1.0;
    return 0.0;
  }
  const double product = product_before * momentum_t;
  *correction = 1.0 - product;
  return product;
}

}  // namespace anneal
