// Property: for random valid specs of every family (fixed seed), at random
// steps up to 2^62, every LR is finite and within [0, the spec's largest peak
// or warmup start], and every momentum and bias correction is finite.
#include <cmath>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "anneal/engine/schedule.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

class SpecGenerator {
 public:
  explicit SpecGenerator(uint64_t seed) : rng_(seed) {}

  v1::ScheduleSpec Next() {
    v1::ScheduleSpec spec;
    Fill(&spec, /*depth=*/0, /*top=*/true);
    return spec;
  }

 private:
  double Uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  // Log-uniform over [10^lo, 10^hi].
  double LogUniform(double lo, double hi) {
    return std::pow(10.0, Uniform(lo, hi));
  }
  int64_t Int(int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng_);
  }
  // Mostly small lengths, sometimes huge ones.
  int64_t Length(int64_t lo = 1) {
    switch (Int(0, 3)) {
      case 0:
        return Int(lo, 10);
      case 1:
        return Int(lo, 10'000);
      case 2:
        return Int(lo, int64_t{1} << 40);
      default:
        return Int(lo, kMaxStep / 4);
    }
  }
  bool Coin() { return Int(0, 1) == 1; }

  void Fill(v1::ScheduleSpec* spec, int depth, bool top) {
    if (top || Coin()) {
      spec->set_max_lr(Coin() ? LogUniform(-308, 6) : LogUniform(-4, 0));
    }
    const double max_lr = spec->has_max_lr() ? spec->max_lr() : 1.0;
    const int family = static_cast<int>(Int(0, depth < 2 ? 11 : 10));
    if (family != 9 && Coin()) {  // one_cycle derives its floor
      if (spec->has_max_lr()) spec->set_min_lr(max_lr * Uniform(0, 1));
    }
    switch (family) {
      case 0:
        spec->mutable_constant();
        break;
      case 1: {
        auto* d = spec->mutable_step_decay();
        if (Coin()) {
          d->set_step_size(Length());
        } else {
          int64_t m = 0;
          for (int i = 0; i < Int(1, 8); ++i) d->add_milestones(m += Length(0));
        }
        d->set_gamma(Uniform(1e-9, 1));
        break;
      }
      case 2: {
        auto* d = spec->mutable_exponential_decay();
        d->set_gamma(Coin() ? Uniform(1e-9, 1) : 1 - LogUniform(-12, -1));
        d->set_transition_steps(Length());
        d->set_staircase(Coin());
        if (Int(0, 3) == 0) {  // growth up to max_lr
          d->set_gamma(1 + LogUniform(-12, 1));
          d->set_start_lr(max_lr * Uniform(1e-9, 0.999));
        }
        break;
      }
      case 3:
        spec->mutable_polynomial_decay()->set_total_steps(Length());
        spec->mutable_polynomial_decay()->set_power(LogUniform(-3, 2));
        if (Coin()) {
          spec->mutable_polynomial_decay()->set_rise(true);
        } else {
          spec->mutable_polynomial_decay()->set_cycle(Coin());
        }
        break;
      case 4:
        spec->mutable_inverse_time_decay()->set_t0(LogUniform(-300, 10));
        spec->mutable_inverse_time_decay()->set_power(LogUniform(-3, 1));
        if (Coin()) {
          spec->mutable_inverse_time_decay()->set_staircase_steps(Length());
        }
        break;
      case 5:
        spec->mutable_linear()->set_start_factor(Uniform(0, 1));
        spec->mutable_linear()->set_end_factor(Uniform(0, 1));
        spec->mutable_linear()->set_total_steps(Length());
        break;
      case 6: {
        auto* c = spec->mutable_cosine();
        c->set_period(Length());
        if (Coin()) c->set_exponent(LogUniform(-2, 2));
        switch (Int(0, 2)) {
          case 0:
            c->set_waves(LogUniform(-2, 3));
            break;
          case 1:
            c->set_restart_cycles(Coin() ? static_cast<double>(Int(1, 20))
                                         : LogUniform(-2, 3));
            break;
        }
        break;
      }
      case 7: {
        auto* w = spec->mutable_warm_restarts();
        w->set_period(Length());
        w->set_period_mult(Coin() ? static_cast<double>(Int(1, 4))
                                  : Uniform(0.05, 3));
        w->set_peak_decay(Uniform(1e-6, 1));
        if (Coin()) w->set_max_cycles(Int(1, 50));
        if (w->max_cycles() > 0 && Int(0, 3) == 0) {
          w->set_peak_decay(1 + LogUniform(-6, -1));  // growing peaks
        }
        w->set_shape(static_cast<v1::WarmRestarts::Shape>(Int(1, 4)));
        if (w->shape() == v1::WarmRestarts::POLYNOMIAL) {
          w->set_power(LogUniform(-2, 1));
        }
        if (w->shape() == v1::WarmRestarts::TANH) {
          w->set_tanh_lower(Uniform(-10, 0));
          w->set_tanh_upper(Uniform(0.1, 10));
        }
        if (Coin()) w->set_k_decay(LogUniform(-1, 1));
        w->set_decay_law(Coin() ? v1::WarmRestarts::PEAK
                                : v1::WarmRestarts::AMPLITUDE);
        if (Coin()) w->set_cycle_lengths(v1::WarmRestarts::REAL);
        break;
      }
      case 8: {
        auto* c = spec->mutable_cyclic();
        c->set_step_size_up(Length());
        c->set_step_size_down(Length());
        c->set_mode(static_cast<v1::Cyclic::Mode>(Int(1, 3)));
        c->set_gamma(1 - LogUniform(-12, -1));
        break;
      }
      case 9: {
        auto* o = spec->mutable_one_cycle();
        o->set_total_steps(Int(20, 1'000'000));
        o->set_pct_start(Uniform(0.1, 0.45));
        o->set_div_factor(Coin() ? LogUniform(0, 200) : Uniform(1, 100));
        o->set_final_div_factor(Coin() ? LogUniform(0, 200) : Uniform(1, 1e5));
        o->set_three_phase(Coin());
        o->set_anneal(Coin() ? v1::OneCycle::COSINE : v1::OneCycle::LINEAR);
        spec->clear_min_lr();
        break;
      }
      case 10: {
        auto* w = spec->mutable_wsd();
        w->set_warmup_steps(Length(0) / 3);
        w->set_stable_steps(Length(0) / 3);
        w->set_decay_steps(Length() / 3 + 1);
        w->set_warmup_shape(static_cast<v1::Wsd::Shape>(Int(1, 3)));
        w->set_decay_shape(static_cast<v1::Wsd::Shape>(Int(1, 3)));
        break;
      }
      default: {
        auto* seq = spec->mutable_sequence();
        const int phases = static_cast<int>(Int(1, 4));
        for (int i = 0; i < phases; ++i) {
          auto* part = seq->add_phases();
          if (i + 1 < phases) part->set_steps(Length());
          part->set_restart(i > 0 && Coin());
          Fill(part->mutable_spec(), depth + 1, false);
        }
        break;
      }
    }
    if (family != 11 && Coin()) {
      auto* w = spec->mutable_warmup();
      w->set_steps(Length());
      w->set_start_lr(max_lr * Uniform(0, 1));
      w->set_shape(Coin() ? v1::Warmup::LINEAR : v1::Warmup::COSINE);
      w->set_every_cycle(family == 7 && Coin());
      if (!w->every_cycle() && Coin()) {
        w->set_overlap(true);
        w->set_to_curve(Coin());
      }
      if (Int(0, 4) == 0) w->set_start_lr(max_lr * Uniform(1, 10));
    }
    if (top && Int(0, 5) == 0) {
      auto* n = spec->mutable_lr_noise();
      n->set_start_step(Length(0));
      n->set_pct(Uniform(0.01, 0.99));
      n->set_type(Coin() ? v1::LrNoise::NORMAL : v1::LrNoise::UNIFORM);
      n->set_seed(static_cast<int64_t>(rng_()));
    }
    if (top && Coin()) {
      const double max = Uniform(0.5, 0.9999);
      spec->mutable_momentum()->set_max(max);
      spec->mutable_momentum()->set_base(max * Uniform(0.5, 1));
    }
  }

  std::mt19937_64 rng_;
};

// The largest LR a spec may serve: every max_lr, growing peak and warmup
// start_lr in it.
double Ceiling(const v1::ScheduleSpec& spec, double inherited) {
  double peak = spec.has_max_lr() ? spec.max_lr() : inherited;
  const v1::WarmRestarts& w = spec.warm_restarts();
  if (w.peak_decay() > 1 && w.max_cycles() > 0) {
    const double grow =
        std::pow(w.peak_decay(), static_cast<double>(w.max_cycles() - 1));
    peak = w.decay_law() == v1::WarmRestarts::AMPLITUDE
               ? spec.min_lr() + (peak - spec.min_lr()) * grow
               : peak * grow;
    peak *= 1 + 1e-12;  // the pow in the engine may round up
  }
  double ceiling = std::max(peak, spec.warmup().start_lr());
  for (const auto& phase : spec.sequence().phases()) {
    ceiling = std::max(ceiling, Ceiling(phase.spec(), peak));
  }
  // timm noise multiplies every LR by at most 1 + pct.
  if (spec.has_lr_noise()) ceiling *= 1 + spec.lr_noise().pct();
  return ceiling;
}

TEST(LrBoundsPropertyTest, EveryFamilyIsFiniteAndWithinItsPeaks) {
  SpecGenerator gen(20261201);
  std::mt19937_64 steps(7);
  int compiled = 0;
  for (int i = 0; i < 4000; ++i) {
    const v1::ScheduleSpec spec = gen.Next();
    auto schedule = Schedule::Compile(spec);
    if (!schedule.ok()) continue;  // the generator may break a rule
    ++compiled;
    const double ceiling = Ceiling(spec, 0);
    for (int j = 0; j < 64; ++j) {
      const int64_t t = j < 16 ? j
                               : std::uniform_int_distribution<int64_t>(
                                     0, j < 40 ? 1'000'000 : kMaxStep)(steps);
      const StepResult r = (*schedule)->At(t);
      ASSERT_TRUE(std::isfinite(r.lr) && r.lr >= 0 && r.lr <= ceiling)
          << "lr " << r.lr << " at step " << t << " (ceiling " << ceiling
          << ") for " << spec.ShortDebugString();
      if (r.has_momentum) {
        ASSERT_TRUE(std::isfinite(r.momentum) &&
                    std::isfinite(r.beta1_bias_correction))
            << t << " " << spec.ShortDebugString();
      }
    }
  }
  // Most generated specs are valid, so the property was tested widely.
  EXPECT_GT(compiled, 3000);
}

TEST(LrBoundsPropertyTest, TinyPeakWithHugeDivFactorIsNotNegative) {
  // Once served -5e-324 at step 3.
  auto s = CompileText(
      "{maxLr: 1.390671282587072e-308, oneCycle: {totalSteps: 5, divFactor: "
      "7.547924849643083e+168}}");
  ASSERT_NE(s, nullptr);
  for (int64_t t = 0; t < 10; ++t) EXPECT_GE(s->At(t).lr, 0.0) << t;
}

}  // namespace
}  // namespace anneal
