// Single cosine anneal: CosineAnnealingLR for t <= period, then held.
//
// PyTorch's closed form, operation for operation:
//   eta_min + (base_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2
// PyTorch does not clamp past T_max (the LR climbs back up, period 2*T_max);
// anneal holds min_lr, as optax, Keras and timm do.
//
// Options, each as its anchor computes it: optax's `exponent` on the cosine
// factor; Hugging Face's `num_cycles` as full waves over the period
// (`waves`), and its hard restarts (`restart_cycles` equal half-waves, each
// from the peak). Hard-restart cycles are found exactly: the cycle of step t
// is floor(n t / period) in integer arithmetic (n as an exact fraction),
// where HF's float `(n * t / P) % 1` can put a restart's step at the end of
// the previous cycle.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

// 128-bit products of a step and a fraction (GCC and Clang both have it).
__extension__ typedef __int128 int128;

// Largest waves / restart_cycles accepted (more than a million per period
// is a unit mistake, and keeps the exact fractions in 128 bits).
constexpr double kMaxCyclesPerPeriod = 1e6;
constexpr double kMaxExponent = 1e3;

// A positive double as an exact fraction num / den (den a power of two),
// when both fit comfortably in 64 bits.
struct Fraction {
  int64_t num = 0;
  int64_t den = 1;
  bool exact = false;
};

Fraction ExactFraction(double v) {
  int exp = 0;
  const double f = std::frexp(v, &exp);  // v = f * 2^exp, f in [0.5, 1)
  auto mantissa = static_cast<int64_t>(std::ldexp(f, 53));
  int shift = 53 - exp;  // v = mantissa / 2^shift
  while (shift > 0 && (mantissa & 1) == 0) {
    mantissa >>= 1;
    --shift;
  }
  Fraction out;
  if (shift < 0 || shift > 40) return out;  // not needed for sane inputs
  out.num = mantissa;
  out.den = int64_t{1} << shift;
  out.exact = true;
  return out;
}

class CosineCurve final : public Curve {
 public:
  CosineCurve(const Levels& levels, const v1::Cosine& spec)
      : levels_(levels),
        period_(spec.period()),
        exponent_(spec.has_exponent() ? spec.exponent() : 1.0),
        waves_(spec.has_waves() ? spec.waves() : 0.5),
        restarts_(spec.has_restart_cycles() ? spec.restart_cycles() : 0),
        plain_(!spec.has_waves() && !spec.has_restart_cycles()),
        ratio_(ExactFraction(restarts_)) {
    if (restarts_ > 0) {
      hold_lr_ = levels_.min_lr;
    } else {
      CurvePoint end;
      Wave(period_, &end);
      hold_lr_ = end.lr;
    }
  }

  void Eval(int64_t t, CurvePoint* out) const override {
    out->cycle = 0;
    out->step_in_cycle = t;
    const int64_t end = restarts_ > 0 ? period_ - 1 : period_;
    if (t > end) {
      out->lr = hold_lr_;
      out->h = 0;
      out->cycle = restarts_ > 0 ? CycleOf(end) : 0;
      out->step_in_cycle = t - (restarts_ > 0 ? CycleStart(out->cycle) : 0);
      out->cycle_length = 0;
      out->phase = v1::HOLD;
      out->snapshot = false;
      return;
    }
    if (restarts_ > 0) {
      HardRestart(t, out);
    } else {
      Wave(t, out);
    }
  }

  Asymptotics Tail() const override {
    return TailConstant(hold_lr_,
                        "a single cosine anneal (holds its end after period)");
  }
  int64_t SettlesAt() const override { return period_; }

 private:
  // The factor's power (optax exponent), skipped at 1 so that the plain
  // cosine stays PyTorch's expression.
  double Power(double f) const {
    return exponent_ == 1.0 ? f : std::pow(f, exponent_);
  }

  void Wave(int64_t t, CurvePoint* out) const {
    const double p = static_cast<double>(t) / static_cast<double>(period_);
    double f;
    if (plain_) {
      const double c = 1 + std::cos(kPi * static_cast<double>(t) /
                                    static_cast<double>(period_));
      f = Power(c / 2);
      out->lr = exponent_ == 1.0
                    ? levels_.min_lr + (levels_.max_lr - levels_.min_lr) * c / 2
                    : levels_.min_lr + (levels_.max_lr - levels_.min_lr) * f;
      out->phase = v1::ANNEAL;
    } else {
      bool rising = false;
      f = Power(HfCosineWave(waves_, p, &rising));
      out->lr = levels_.min_lr + (levels_.max_lr - levels_.min_lr) * f;
      out->phase = rising ? v1::RISE : v1::ANNEAL;
    }
    out->h = f;
    out->cycle_length = period_ + 1;
    out->snapshot = t == period_;
  }

  // Cycle k of the hard restarts holds the steps t < period with
  // floor(n t / period) == k.
  int64_t CycleOf(int64_t t) const {
    if (ratio_.exact) {
      return static_cast<int64_t>(static_cast<int128>(ratio_.num) * t /
                                  (static_cast<int128>(ratio_.den) * period_));
    }
    return static_cast<int64_t>(std::floor(
        restarts_ * (static_cast<double>(t) / static_cast<double>(period_))));
  }

  // The first step of cycle k: the smallest t with floor(n t / P) >= k, or
  // the period if that is later (no step of the curve is in cycle k).
  int64_t CycleStart(int64_t k) const {
    if (ratio_.exact) {
      const int128 need = static_cast<int128>(k) * ratio_.den * period_;
      const int128 start = (need + ratio_.num - 1) / ratio_.num;
      return start >= period_ ? period_ : static_cast<int64_t>(start);
    }
    const double estimate = std::ceil(static_cast<double>(k) *
                                      static_cast<double>(period_) / restarts_);
    if (!(estimate < static_cast<double>(period_))) return period_;
    auto t = static_cast<int64_t>(estimate);
    while (t > 0 && CycleOf(t - 1) >= k) --t;
    while (t < period_ && CycleOf(t) < k) ++t;
    return t;
  }

  void HardRestart(int64_t t, CurvePoint* out) const {
    const int64_t k = CycleOf(t);
    double x;  // the position in the half-wave, in [0, 1)
    if (ratio_.exact) {
      const int128 den = static_cast<int128>(ratio_.den) * period_;
      const int128 rem = static_cast<int128>(ratio_.num) * t - k * den;
      x = static_cast<double>(static_cast<long double>(rem) /
                              static_cast<long double>(den));
    } else {
      const double q =
          restarts_ * (static_cast<double>(t) / static_cast<double>(period_));
      x = q - std::floor(q);
    }
    // HF: max(0.0, 0.5 * (1.0 + cos(pi * ((num_cycles * progress) % 1.0))))
    const double f = Power(std::max(0.0, 0.5 * (1.0 + std::cos(kPi * x))));
    out->lr = levels_.min_lr + (levels_.max_lr - levels_.min_lr) * f;
    out->h = f;
    const int64_t start = CycleStart(k);
    const int64_t next = std::min(CycleStart(k + 1), period_);
    out->cycle = k;
    out->step_in_cycle = t - start;
    out->cycle_length = next - start;
    out->phase = v1::ANNEAL;
    out->snapshot = t == next - 1;
  }

  Levels levels_;
  int64_t period_;
  double exponent_;
  double waves_;
  double restarts_;
  bool plain_;
  Fraction ratio_;
  double hold_lr_ = 0;
};

}  // namespace

double HfCosineWave(double cycles, double x, bool* rising) {
  const double angle = kPi * cycles * 2.0 * x;
  // The wave climbs where sin < 0 (past each trough).
  *rising = std::sin(angle) < 0;
  return 0.5 * (1.0 + std::cos(angle));
}

absl::StatusOr<CurvePtr> MakeCosine(const v1::Cosine& spec,
                                    const Levels& levels,
                                    const FieldPath& path) {
  FieldPath period = path.Child("period");
  if (auto s = RequireAtLeast(period, spec.period(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(period, spec.period(), kMaxStep); !s.ok()) {
    return s;
  }
  if (spec.has_exponent()) {
    if (auto s = RequireAbove(path.Child("exponent"), spec.exponent(), 0);
        !s.ok()) {
      return s;
    }
    if (spec.exponent() > kMaxExponent) {
      return path.Child("exponent")
          .Error(absl::StrCat("must be <= ", FormatNumber(kMaxExponent),
                              ", got ", FormatNumber(spec.exponent())));
    }
  }
  for (auto [name, has, v] :
       {std::tuple{"waves", spec.has_waves(), spec.waves()},
        std::tuple{"restart_cycles", spec.has_restart_cycles(),
                   spec.restart_cycles()}}) {
    if (!has) continue;
    const FieldPath field = path.Child(name);
    if (auto s = RequireAbove(field, v, 0); !s.ok()) return s;
    if (v > kMaxCyclesPerPeriod) {
      return field.Error(
          absl::StrCat("must be <= ", FormatNumber(kMaxCyclesPerPeriod),
                       ", got ", FormatNumber(v)));
    }
  }
  if (spec.has_waves() && spec.has_restart_cycles()) {
    return path.Child("restart_cycles")
        .Error(
            "cannot be set with waves (continuous waves or hard "
            "restarts, not both)");
  }
  return CurvePtr(new CosineCurve(levels, spec));
}

}  // namespace anneal
