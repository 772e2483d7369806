// The monotone families: constant, step/multistep, exponential (and its
// growth), polynomial (and its rise, and Keras's cycling form), inverse-time
// and linear. Formulas follow PyTorch's closed forms operation
// for operation so results match PyTorch to the last bit where PyTorch itself
// uses a closed form; a positive min_lr acts as a floor (PyTorch has none).
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

// Position of `lr` between floor (0) and peak (1).
double Mix(double lr, const Levels& levels) {
  double span = levels.max_lr - levels.min_lr;
  if (span <= 0) return 1.0;
  return std::clamp((lr - levels.min_lr) / span, 0.0, 1.0);
}

// The first t in [0, kMaxStep] at which raw(t) <= floor (raw must be
// non-increasing in t), or kNever. Found by bisection on the formula itself,
// so skipping the formula from there on changes no result; it saves the cost
// of pow() deep in its underflow range, where glibc is ~3x slower.
constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

template <typename Raw>
int64_t FirstAtFloor(const Raw& raw, double floor) {
  if (!(raw(kMaxStep) <= floor)) return kNever;
  int64_t lo = -1,
          hi = kMaxStep;  // raw(lo) > floor (or lo = -1), raw(hi) <= floor
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (raw(mid) <= floor ? hi : lo) = mid;
  }
  return hi;
}

void Monotone(int64_t t, double lr, const Levels& levels, v1::Phase phase,
              CurvePoint* out) {
  out->lr = lr;
  out->h = Mix(lr, levels);
  out->cycle = 0;
  out->step_in_cycle = t;
  out->cycle_length = 0;
  out->phase = phase;
  out->snapshot = false;
}

class ConstantCurve final : public Curve {
 public:
  explicit ConstantCurve(const Levels& levels) : levels_(levels) {}
  void Eval(int64_t t, CurvePoint* out) const override {
    Monotone(t, levels_.max_lr, levels_, v1::STABLE, out);
    out->h = 1.0;
  }
  Asymptotics Tail() const override {
    return TailConstant(levels_.max_lr, "a constant LR");
  }
  int64_t SettlesAt() const override { return 0; }

 private:
  Levels levels_;
};

class StepDecayCurve final : public Curve {
 public:
  StepDecayCurve(const Levels& levels, int64_t step_size,
                 std::vector<int64_t> milestones, double gamma)
      : levels_(levels),
        step_size_(step_size),
        milestones_(std::move(milestones)),
        gamma_(gamma) {
    // values_[k] = the LR after k decays, until it reaches the floor.
    const size_t limit = step_size_ > 0 ? kMaxTable : milestones_.size() + 1;
    for (size_t k = 0; k < limit; ++k) {
      const double lr = std::max(levels_.min_lr, Raw(static_cast<int64_t>(k)));
      values_.push_back(lr);
      if (lr <= levels_.min_lr && k > 0) break;
    }
  }

  void Eval(int64_t t, CurvePoint* out) const override {
    int64_t k;
    if (step_size_ > 0) {
      k = t / step_size_;
    } else {
      k = std::upper_bound(milestones_.begin(), milestones_.end(), t) -
          milestones_.begin();
    }
    const double lr = k < static_cast<int64_t>(values_.size())
                          ? values_[static_cast<size_t>(k)]
                          : (values_.back() <= levels_.min_lr
                                 ? levels_.min_lr
                                 : std::max(levels_.min_lr, Raw(k)));
    Monotone(t, lr, levels_, v1::ANNEAL, out);
  }

  Asymptotics Tail() const override {
    if (gamma_ == 1.0)
      return TailConstant(levels_.max_lr, "step decay with gamma 1");
    if (step_size_ > 0) return TailGeometric(levels_.min_lr, "step decay");
    return TailConstant(values_.back(),
                        "multi-step decay (finitely many milestones)");
  }

  int64_t SettlesAt() const override {
    if (gamma_ == 1.0) return 0;
    return step_size_ > 0 ? -1 : milestones_.back();
  }

  static constexpr size_t kMaxTable = 4096;

 private:
  double Raw(int64_t k) const {
    return levels_.max_lr * std::pow(gamma_, static_cast<double>(k));
  }

  Levels levels_;
  int64_t step_size_;
  std::vector<int64_t> milestones_;
  double gamma_;
  std::vector<double> values_;
};

// A non-increasing raw(t) clamped below at min_lr. Once raw reaches the
// floor (found by bisection at build time), Eval skips it.
class FlooredDecay : public Curve {
 public:
  void Eval(int64_t t, CurvePoint* out) const final {
    const double lr =
        t >= floor_from_ ? levels_.min_lr : std::max(levels_.min_lr, Raw(t));
    Monotone(t, lr, levels_, v1::ANNEAL, out);
  }

 protected:
  explicit FlooredDecay(const Levels& levels) : levels_(levels) {}
  // Call at the end of the derived constructor (Raw is virtual).
  void FindFloor() {
    floor_from_ =
        FirstAtFloor([this](int64_t t) { return Raw(t); }, levels_.min_lr);
  }
  virtual double Raw(int64_t t) const = 0;

  const Levels levels_;

 private:
  int64_t floor_from_ = kNever;
};

class ExponentialCurve final : public FlooredDecay {
 public:
  ExponentialCurve(const Levels& levels, double gamma, int64_t transition,
                   bool staircase)
      : FlooredDecay(levels),
        gamma_(gamma),
        transition_(transition),
        staircase_(staircase) {
    FindFloor();
  }

  Asymptotics Tail() const override {
    if (gamma_ == 1.0)
      return TailConstant(levels_.max_lr, "exponential decay with gamma 1");
    return TailGeometric(levels_.min_lr, "exponential decay");
  }
  int64_t SettlesAt() const override { return gamma_ == 1.0 ? 0 : -1; }

 private:
  double Raw(int64_t t) const override {
    if (staircase_) {
      const int64_t k = t / transition_;  // floor(t / T): t >= 0
      return levels_.max_lr * std::pow(gamma_, static_cast<double>(k));
    }
    return levels_.max_lr *
           std::pow(gamma_,
                    static_cast<double>(t) / static_cast<double>(transition_));
  }

  double gamma_;
  int64_t transition_;
  bool staircase_;
};

// Exponential growth up to max_lr (optax/Keras decay_rate > 1, optax's
// end_value as the cap): min(max_lr, start_lr * gamma^p), as optax clips it.
class ExponentialGrowthCurve final : public Curve {
 public:
  ExponentialGrowthCurve(const Levels& levels, double start, double gamma,
                         int64_t transition, bool staircase)
      : levels_(levels),
        start_(start),
        gamma_(gamma),
        transition_(transition),
        staircase_(staircase) {
    // raw(t) is non-decreasing: the first step at the cap, by bisection.
    cap_from_ =
        FirstAtFloor([this](int64_t t) { return -Raw(t); }, -levels_.max_lr);
  }

  void Eval(int64_t t, CurvePoint* out) const override {
    const bool capped = t >= cap_from_;
    const double lr =
        capped ? levels_.max_lr : std::min(levels_.max_lr, Raw(t));
    Monotone(t, lr, levels_, capped ? v1::HOLD : v1::RISE, out);
  }

  Asymptotics Tail() const override {
    return TailConstant(levels_.max_lr,
                        "exponential growth (holds max_lr once reached)");
  }
  int64_t SettlesAt() const override {
    return cap_from_ == kNever ? -1 : cap_from_;
  }

 private:
  double Raw(int64_t t) const {
    if (staircase_) {
      const int64_t k = t / transition_;  // floor(t / T): t >= 0
      return start_ * std::pow(gamma_, static_cast<double>(k));
    }
    return start_ * std::pow(gamma_, static_cast<double>(t) /
                                         static_cast<double>(transition_));
  }

  Levels levels_;
  double start_;
  double gamma_;
  int64_t transition_;
  bool staircase_;
  int64_t cap_from_ = kNever;
};

class PolynomialCurve final : public Curve {
 public:
  PolynomialCurve(const Levels& levels, int64_t total, double power, bool rise,
                  bool cycle)
      : levels_(levels),
        total_(total),
        power_(power),
        rise_(rise),
        cycle_(cycle) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    if (cycle_ && t > total_) return Cycling(t, out);
    double done = static_cast<double>(std::min(total_, t));
    double factor =
        t >= total_
            ? 0.0
            : std::pow(1.0 - done / static_cast<double>(total_), power_);
    const double span = levels_.max_lr - levels_.min_lr;
    const v1::Phase moving = rise_ ? v1::RISE : v1::ANNEAL;
    Monotone(
        t,
        rise_ ? levels_.max_lr - span * factor : levels_.min_lr + span * factor,
        levels_, t > total_ ? v1::HOLD : moving, out);
    out->h = rise_ ? 1 - factor : factor;
    out->cycle_length = total_ + 1;
    out->snapshot = !rise_ && t == total_;
    if (t > total_) out->cycle_length = 0;
  }

  Asymptotics Tail() const override {
    if (rise_) {
      return TailConstant(levels_.max_lr,
                          "rising polynomial (holds max_lr after total_steps)");
    }
    if (cycle_ && levels_.min_lr == 0) {
      // Cycle k spans ((k)T, (k+1)T] at 1 - t/((k+1)T) <= 1/(k+1): its LRs
      // are ~ max_lr (1/k)^power, T of them.
      Asymptotics a;
      a.sum_diverges = power_ <= 1.0;
      a.sum_squares_converges = 2.0 * power_ > 1.0;
      a.reason = absl::StrCat(
          "cycling polynomial decay: cycle k adds ~ k^-", power_,
          " to the sum and k^-", 2 * power_,
          " to the sum of squares: the sum diverges iff power <= 1, the sum "
          "of squares converges iff power > 1/2");
      return a;
    }
    if (cycle_) {
      return TailConstant(levels_.min_lr,
                          "cycling polynomial decay never goes below min_lr, "
                          "which");
    }
    return TailConstant(levels_.min_lr,
                        "polynomial decay (holds min_lr after total_steps)");
  }
  int64_t SettlesAt() const override { return cycle_ ? -1 : total_; }

 private:
  // Keras: 1 - t / (decay_steps * ceil(t / decay_steps)). Cycle k >= 1
  // holds the steps (kT, (k+1)T]. The remaining fraction is taken from the
  // exact integer (k+1)T - t: Keras's float 1 - t/D can round below 0 at
  // large t, where a fractional power is NaN.
  void Cycling(int64_t t, CurvePoint* out) const {
    const int64_t k = (t - 1) / total_;  // t > T >= 1
    const int64_t end = k < kMaxStep / total_ ? (k + 1) * total_ : kMaxStep;
    const double horizon =
        static_cast<double>(total_) * static_cast<double>(k + 1);
    const double factor = std::pow(
        static_cast<double>(std::max<int64_t>(0, end - t)) / horizon, power_);
    Monotone(t, levels_.min_lr + (levels_.max_lr - levels_.min_lr) * factor,
             levels_, v1::ANNEAL, out);
    out->h = factor;
    out->cycle = k;
    out->step_in_cycle = t - (k * total_ + 1);
    out->cycle_length = total_;
    out->snapshot = t == (k + 1) * total_;
  }

  Levels levels_;
  int64_t total_;
  double power_;
  bool rise_;
  bool cycle_;
};

class InverseTimeCurve final : public FlooredDecay {
 public:
  InverseTimeCurve(const Levels& levels, double t0, double power,
                   int64_t staircase)
      : FlooredDecay(levels), t0_(t0), power_(power), staircase_(staircase) {
    FindFloor();
  }

  Asymptotics Tail() const override {
    if (levels_.min_lr > 0) {
      return TailConstant(levels_.min_lr,
                          "inverse-time decay floored at min_lr");
    }
    Asymptotics a;
    a.sum_diverges = power_ <= 1.0;
    a.sum_squares_converges = 2.0 * power_ > 1.0;
    a.reason = absl::StrCat(
        "inverse-time decay ~ t^-", power_,
        ": sum diverges iff power <= 1, sum of squares converges iff power > "
        "1/2");
    return a;
  }

 private:
  double Raw(int64_t t) const override {
    const int64_t at = staircase_ > 1 ? t / staircase_ * staircase_ : t;
    return levels_.max_lr *
           std::pow(t0_ / (static_cast<double>(at) + t0_), power_);
  }

  double t0_;
  double power_;
  int64_t staircase_;  // 1: continuous
};

class LinearCurve final : public Curve {
 public:
  LinearCurve(const Levels& levels, double start, double end, int64_t total)
      : levels_(levels), start_(start), end_(end), total_(total) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    double lr =
        levels_.max_lr *
        (start_ + (end_ - start_) * static_cast<double>(std::min(total_, t)) /
                      static_cast<double>(total_));
    v1::Phase phase = end_ < start_   ? v1::ANNEAL
                      : end_ > start_ ? v1::WARMUP
                                      : v1::STABLE;
    Monotone(t, std::max(levels_.min_lr, lr), levels_,
             t > total_ ? v1::HOLD : phase, out);
    if (end_ < start_) {
      out->cycle_length = t > total_ ? 0 : total_ + 1;
      out->snapshot = t == total_;
    }
  }

  Asymptotics Tail() const override {
    return TailConstant(std::max(levels_.min_lr, levels_.max_lr * end_),
                        "linear schedule (holds its end value)");
  }
  int64_t SettlesAt() const override { return total_; }

 private:
  Levels levels_;
  double start_, end_;
  int64_t total_;
};

}  // namespace

Asymptotics TailConstant(double value, const std::string& what) {
  Asymptotics a;
  if (value > 0) {
    a.sum_diverges = true;
    a.sum_squares_converges = false;
    a.reason = absl::StrCat(what,
                            " settles at a positive LR: sum of LRs "
                            "diverges, sum of squares diverges "
                            "(violates condition 2)");
  } else {
    a.sum_diverges = false;
    a.sum_squares_converges = true;
    a.reason = absl::StrCat(what,
                            " reaches 0: the sum of LRs is finite "
                            "(violates condition 1)");
  }
  return a;
}

Asymptotics TailGeometric(double floor, const std::string& what) {
  if (floor > 0) return TailConstant(floor, absl::StrCat(what, " to min_lr"));
  Asymptotics a;
  a.sum_diverges = false;
  a.sum_squares_converges = true;
  a.reason = absl::StrCat(what,
                          " decays geometrically to 0: the sum of LRs "
                          "converges (violates condition 1)");
  return a;
}

absl::StatusOr<CurvePtr> MakeConstant(const Levels& levels) {
  return CurvePtr(new ConstantCurve(levels));
}

absl::StatusOr<CurvePtr> MakeStepDecay(const v1::StepDecay& spec,
                                       const Levels& levels,
                                       const FieldPath& path,
                                       BuildContext& ctx) {
  double gamma = spec.has_gamma() ? spec.gamma() : 0.1;
  if (auto s = RequireInRange(path.Child("gamma"), gamma, 0, 1); !s.ok()) {
    return s;
  }
  if (gamma == 0) return path.Child("gamma").Error("must be > 0, got 0");
  bool has_milestones = spec.milestones_size() > 0;
  if (spec.step_size() != 0 && has_milestones) {
    return path.Error("set exactly one of step_size and milestones, got both");
  }
  if (spec.step_size() == 0 && !has_milestones) {
    return path.Error(
        "set exactly one of step_size (>= 1) and milestones (non-empty), got "
        "neither");
  }
  if (spec.step_size() != 0) {
    if (auto s = RequireAtLeast(path.Child("step_size"), spec.step_size(), 1);
        !s.ok()) {
      return s;
    }
    // Up to kMaxTable decay values, until they reach the floor.
    if (auto s = ctx.Charge(StepDecayCurve::kMaxTable * sizeof(double),
                            path.Child("step_size"));
        !s.ok()) {
      return s;
    }
    return CurvePtr(new StepDecayCurve(levels, spec.step_size(), {}, gamma));
  }
  // A copy of the milestones and one decay value each.
  if (auto s = ctx.Charge(
          static_cast<int64_t>(spec.milestones_size()) * 2 * sizeof(double),
          path.Child("milestones"));
      !s.ok()) {
    return s;
  }
  std::vector<int64_t> milestones(spec.milestones().begin(),
                                  spec.milestones().end());
  for (size_t i = 0; i < milestones.size(); ++i) {
    FieldPath p = path.Child("milestones").Index(static_cast<int64_t>(i));
    if (auto s = RequireAtLeast(p, milestones[i], 0); !s.ok()) return s;
    if (auto s = RequireAtMost(p, milestones[i], kMaxStep); !s.ok()) {
      return s;
    }
    if (i > 0 && milestones[i] < milestones[i - 1]) {
      return p.Error(absl::StrCat("must be >= the previous milestone (",
                                  milestones[i - 1], "), got ", milestones[i]));
    }
  }
  return CurvePtr(new StepDecayCurve(levels, 0, std::move(milestones), gamma));
}

absl::StatusOr<CurvePtr> MakeExponentialDecay(const v1::ExponentialDecay& spec,
                                              const Levels& levels,
                                              const FieldPath& path) {
  FieldPath g = path.Child("gamma");
  if (auto s = RequireFinite(g, spec.gamma()); !s.ok()) return s;
  if (!(spec.gamma() > 0)) {
    return g.Error(absl::StrCat("must be > 0, got ", FormatNumber(spec.gamma()),
                                spec.gamma() == 0 ? " (required)" : ""));
  }
  int64_t transition =
      spec.has_transition_steps() ? spec.transition_steps() : 1;
  if (auto s = RequireAtLeast(path.Child("transition_steps"), transition, 1);
      !s.ok()) {
    return s;
  }
  const FieldPath start = path.Child("start_lr");
  if (spec.gamma() > 1) {
    if (!spec.has_start_lr()) {
      return start.Error(absl::StrCat(
          "is required when gamma > 1 (got ", FormatNumber(spec.gamma()),
          "): the LR grows from start_lr up to max_lr, where it holds"));
    }
    if (auto s = RequireAbove(start, spec.start_lr(), 0); !s.ok()) return s;
    if (!(spec.start_lr() < levels.max_lr)) {
      return start.Error(absl::StrCat("must be < max_lr (",
                                      FormatNumber(levels.max_lr), "), got ",
                                      FormatNumber(spec.start_lr())));
    }
    return CurvePtr(new ExponentialGrowthCurve(
        levels, spec.start_lr(), spec.gamma(), transition, spec.staircase()));
  }
  if (spec.has_start_lr()) {
    return start.Error(absl::StrCat(
        "is only for growth (gamma > 1); a decay starts at max_lr, got gamma ",
        FormatNumber(spec.gamma())));
  }
  return CurvePtr(
      new ExponentialCurve(levels, spec.gamma(), transition, spec.staircase()));
}

absl::StatusOr<CurvePtr> MakePolynomialDecay(const v1::PolynomialDecay& spec,
                                             const Levels& levels,
                                             const FieldPath& path) {
  FieldPath total = path.Child("total_steps");
  if (auto s = RequireAtLeast(total, spec.total_steps(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(total, spec.total_steps(), kMaxStep); !s.ok()) {
    return s;
  }
  double power = spec.has_power() ? spec.power() : 1.0;
  if (auto s = RequireAbove(path.Child("power"), power, 0); !s.ok()) return s;
  if (spec.rise() && spec.cycle()) {
    return path.Child("cycle").Error(
        "cannot be set with rise (Keras cycles a decay only)");
  }
  return CurvePtr(new PolynomialCurve(levels, spec.total_steps(), power,
                                      spec.rise(), spec.cycle()));
}

absl::StatusOr<CurvePtr> MakeInverseTimeDecay(const v1::InverseTimeDecay& spec,
                                              const Levels& levels,
                                              const FieldPath& path) {
  if (auto s = RequireAbove(path.Child("t0"), spec.t0(), 0); !s.ok()) return s;
  double power = spec.has_power() ? spec.power() : 1.0;
  if (auto s = RequireAbove(path.Child("power"), power, 0); !s.ok()) return s;
  int64_t staircase = 1;
  if (spec.has_staircase_steps()) {
    staircase = spec.staircase_steps();
    const FieldPath field = path.Child("staircase_steps");
    if (auto s = RequireAtLeast(field, staircase, 1); !s.ok()) return s;
    if (auto s = RequireAtMost(field, staircase, kMaxStep); !s.ok()) return s;
  }
  return CurvePtr(new InverseTimeCurve(levels, spec.t0(), power, staircase));
}

absl::StatusOr<CurvePtr> MakeLinear(const v1::Linear& spec,
                                    const Levels& levels,
                                    const FieldPath& path) {
  double start = spec.has_start_factor() ? spec.start_factor() : 1.0 / 3.0;
  double end = spec.has_end_factor() ? spec.end_factor() : 1.0;
  if (auto s = RequireInRange(path.Child("start_factor"), start, 0, 1);
      !s.ok()) {
    return s;
  }
  if (auto s = RequireInRange(path.Child("end_factor"), end, 0, 1); !s.ok()) {
    return s;
  }
  FieldPath total = path.Child("total_steps");
  if (auto s = RequireAtLeast(total, spec.total_steps(), 1); !s.ok()) return s;
  if (auto s = RequireAtMost(total, spec.total_steps(), kMaxStep); !s.ok()) {
    return s;
  }
  return CurvePtr(new LinearCurve(levels, start, end, spec.total_steps()));
}

}  // namespace anneal
