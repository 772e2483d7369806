// Exact Adam bias correction for a cycled beta1 (see bias_correction.h).
#include "anneal/engine/bias_correction.h"

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

absl::StatusOr<std::unique_ptr<const BiasCorrection>> BiasCorrection::Build(
    const MomentumCurve& momentum, BuildContext& ctx) {
  std::unique_ptr<BiasCorrection> b(new BiasCorrection(momentum));
  const FieldPath path("momentum");
  // One pass over the prefix products until the product vanishes (at most
  // ~416k steps for max = 0.9999), keeping every stride-th; when the table
  // fills, every other entry goes and the stride doubles. The stride thus
  // follows where the product really vanishes, not the worst case.
  if (auto s = ctx.Charge(kMaxTable * sizeof(double) / 16, path); !s.ok()) {
    return s;
  }
  b->prefix_.reserve(kMaxTable / 16);
  double product = 1.0;  // prod_{i<t}
  int64_t t = 0;
  for (;; ++t) {
    if (t % b->stride_ == 0) {
      if (b->prefix_.size() == static_cast<size_t>(kMaxTable)) {
        for (size_t j = 0; 2 * j < b->prefix_.size(); ++j) {
          b->prefix_[j] = b->prefix_[2 * j];
        }
        b->prefix_.resize(b->prefix_.size() / 2);
        b->stride_ *= 2;
      }
      if (t % b->stride_ == 0) {
        if (b->prefix_.size() == b->prefix_.capacity()) {
          // Charged before the vector grows (it doubles).
          const auto more = static_cast<int64_t>(
              std::min<size_t>(b->prefix_.capacity(), kMaxTable));
          if (auto s = ctx.Charge(more * sizeof(double), path); !s.ok()) {
            return s;
          }
        }
        b->prefix_.push_back(product);
      }
    }
    if (product < kVanishing) break;
    product *= b->momentum_.At(t);
  }
  // The loop ended at the first t with prod_{i<t} < 2^-60.
  b->vanishes_at_ = t - 1;
  return std::unique_ptr<const BiasCorrection>(std::move(b));
}

double BiasCorrection::ProductBefore(int64_t t, int64_t from) const {
  if (from > 0) {
    double product = 1.0;
    for (int64_t i = from; i < t && product >= kVanishing; ++i) {
      product *= momentum_.At(i);
    }
    return product < kVanishing ? 0.0 : product;
  }
  if (t > vanishes_at_) return 0.0;
  const int64_t j = t / stride_;
  double product = prefix_[j];
  for (int64_t i = j * stride_; i < t; ++i) product *= momentum_.At(i);
  return product;
}

double BiasCorrection::At(int64_t t, int64_t from, double momentum_t) const {
  if (from == 0 && t >= vanishes_at_) return 1.0;
  return 1.0 - ProductBefore(t, from) * momentum_t;
}

double BiasCorrection::Next(int64_t t, int64_t from, double product_before,
                            double momentum_t, double* correction) const {
  if (from == 0 && t >= vanishes_at_) {
    *correction = 1.0;
    return 0.0;
  }
  const double product = (t == from ? 1.0 : product_before) * momentum_t;
  *correction = 1.0 - product;
  return product;
}

}  // namespace anneal
