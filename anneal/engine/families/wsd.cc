// Warmup-stable-decay, as Hugging Face get_wsd_schedule: with r = min_lr /
// max_lr, the factor is g(t/W)(1-r)+r while warming up (g: linear x, cosine
// (1-cos(pi x))/2, sqrt 1-sqrt(1-x)), 1 while stable, d(x)(1-r)+r while
// decaying (d: linear 1-x, cosine (1+cos(2 pi num_cycles x))/2, sqrt
// 1-sqrt(x)), then r. Each factor is clamped at 0 as HF does. The floor step
// W+S+D is the snapshot (as cosine's t = period): the LR reaches r there, so
// a decay of 0 steps goes from the stable LR straight to the floor, as HF.
#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "anneal/engine/families/curves.h"

namespace anneal {
namespace {

// Beyond a million waves the decay is noise at any step count a run has.
constexpr double kMaxNumCycles = 1e6;

class WsdCurve final : public Curve {
 public:
  WsdCurve(const Levels& levels, const v1::Wsd& spec, v1::Wsd::Shape warmup,
           v1::Wsd::Shape decay)
      : levels_(levels),
        ratio_(levels.min_lr / levels.max_lr),
        num_cycles_(spec.has_num_cycles() ? spec.num_cycles() : 0.5),
        warmup_steps_(spec.warmup_steps()),
        stable_end_(spec.warmup_steps() + spec.stable_steps()),
        decay_end_(spec.warmup_steps() + spec.stable_steps() +
                   spec.decay_steps()),
        warmup_shape_(warmup),
        decay_shape_(decay) {}

  void Eval(int64_t t, CurvePoint* out) const override {
    out->cycle = 0;
    out->step_in_cycle = t;
    out->cycle_length = decay_end_ + 1;
    out->snapshot = t == decay_end_;
    double factor;
    double g;
    if (t < warmup_steps_) {
      double x = static_cast<double>(t) / static_cast<double>(warmup_steps_);
      g = warmup_shape_ == v1::Wsd::COSINE ? 0.5 * (1.0 - std::cos(kPi * x))
          : warmup_shape_ == v1::Wsd::SQRT ? 1.0 - std::sqrt(1.0 - x)
                                           : x;
      factor = std::max(0.0, g * (1.0 - ratio_) + ratio_);
      out->phase = v1::WARMUP;
    } else if (t < stable_end_) {
      g = 1.0;
      factor = 1.0;
      out->phase = v1::STABLE;
    } else if (t < decay_end_) {
      double x = static_cast<double>(t - stable_end_) /
                 static_cast<double>(decay_end_ - stable_end_);
      out->phase = v1::ANNEAL;
      if (decay_shape_ == v1::Wsd::COSINE) {
        // HF's operation order; for num_cycles = 0.5, pi * 0.5 * 2 * x is
        // exactly pi * x.
        bool rising = false;
        g = HfCosineWave(num_cycles_, x, &rising);
        // More than half a wave climbs back up on the way.
        if (rising) out->phase = v1::RISE;
      } else {
        g = decay_shape_ == v1::Wsd::LINEAR ? 1.0 - x : 1.0 - std::sqrt(x);
      }
      factor = std::max(0.0, g * (1.0 - ratio_) + ratio_);
    } else {
      // HF returns min_lr_ratio from W+S+D on, whatever the decay reached.
      g = 0;
      factor = ratio_;
      if (t == decay_end_) {
        out->phase = v1::ANNEAL;
      } else {
        out->phase = v1::HOLD;
        out->cycle_length = 0;
      }
    }
    out->lr = levels_.max_lr * factor;
    out->h = g;
  }

  Asymptotics Tail() const override {
    return TailConstant(levels_.min_lr, "warmup-stable-decay (holds min_lr)");
  }
  int64_t SettlesAt() const override { return decay_end_; }

 private:
  Levels levels_;
  double ratio_;
  double num_cycles_;
  int64_t warmup_steps_, stable_end_, decay_end_;
  v1::Wsd::Shape warmup_shape_, decay_shape_;
};

absl::StatusOr<v1::Wsd::Shape> CheckShape(v1::Wsd::Shape shape,
                                          v1::Wsd::Shape default_shape,
                                          const FieldPath& path) {
  if (shape == v1::Wsd::SHAPE_UNSPECIFIED) return default_shape;
  if (shape == v1::Wsd::LINEAR || shape == v1::Wsd::COSINE ||
      shape == v1::Wsd::SQRT) {
    return shape;
  }
  return path.Error(
      absl::StrCat("must be LINEAR, COSINE or SQRT, got ", shape));
}

}  // namespace

absl::StatusOr<CurvePtr> MakeWsd(const v1::Wsd& spec, const Levels& levels,
                                 const FieldPath& path) {
  const int64_t third = kMaxStep / 3;
  struct Length {
    const char* name;
    int64_t value;
    int64_t min;
  } lengths[] = {{"warmup_steps", spec.warmup_steps(), 0},
                 {"stable_steps", spec.stable_steps(), 0},
                 {"decay_steps", spec.decay_steps(), 0}};
  for (const Length& l : lengths) {
    FieldPath p = path.Child(l.name);
    if (auto s = RequireAtLeast(p, l.value, l.min); !s.ok()) return s;
    if (auto s = RequireAtMost(p, l.value, third); !s.ok()) return s;
  }
  auto warmup = CheckShape(spec.warmup_shape(), v1::Wsd::LINEAR,
                           path.Child("warmup_shape"));
  if (!warmup.ok()) return warmup.status();
  auto decay = CheckShape(spec.decay_shape(), v1::Wsd::COSINE,
                          path.Child("decay_shape"));
  if (!decay.ok()) return decay.status();
  if (spec.has_num_cycles()) {
    FieldPath p = path.Child("num_cycles");
    if (*decay != v1::Wsd::COSINE) {
      return p.Error(
          absl::StrCat("only applies to decay_shape COSINE, got decay_shape ",
                       v1::Wsd::Shape_Name(*decay)));
    }
    if (auto s = RequireInRange(p, spec.num_cycles(), 0, kMaxNumCycles);
        !s.ok()) {
      return s;
    }
  }
  return CurvePtr(new WsdCurve(levels, spec, *warmup, *decay));
}

}  // namespace anneal
