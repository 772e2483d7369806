// Semantics of every schedule family and modifier: formulas at chosen steps,
// phases and flags, holds after the end, momentum with its exact bias
// correction, batch scaling, the thermostat, and huge steps for every family.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "anneal/engine/schedule.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

constexpr double kPi = 3.141592653589793;

TEST(FamiliesTest, Constant) {
  auto s = CompileText("{max_lr: 0.1, constant: {}}");
  EXPECT_EQ(s->At(0).lr, 0.1);
  EXPECT_EQ(s->At(kMaxStep).lr, 0.1);
  EXPECT_EQ(s->At(5).phase, v1::STABLE);
  EXPECT_FALSE(s->At(5).restart);
}

TEST(FamiliesTest, StepDecayStepSizeAndRepeatedMilestones) {
  auto s = CompileText("{max_lr: 1.0, step_decay: {step_size: 3, gamma: 0.5}}");
  EXPECT_EQ(s->At(2).lr, 1.0);
  EXPECT_EQ(s->At(3).lr, 0.5);
  EXPECT_EQ(s->At(7).lr, 0.25);
  // MultiStepLR: a repeated milestone applies gamma twice; decay lands at it.
  auto m = CompileText(
      "{max_lr: 1.0, step_decay: {milestones: [2, 5, 5], gamma: 0.1}}");
  EXPECT_EQ(m->At(1).lr, 1.0);
  EXPECT_EQ(m->At(2).lr, 0.1);
  EXPECT_DOUBLE_EQ(m->At(5).lr, 1e-3);
  // The floor stops the decay.
  auto f = CompileText(
      "{max_lr: 1.0, min_lr: 0.3, step_decay: {step_size: 1, gamma: 0.5}}");
  EXPECT_EQ(f->At(1).lr, 0.5);
  EXPECT_EQ(f->At(2).lr, 0.3);
}

TEST(FamiliesTest, CosineHardRestartsFindEachCycleExactly) {
  // HF hard restarts with 3 cycles over 10 steps: half-waves of 10/3 steps
  // starting at the first step at or after 0, 3.33, 6.67: 0, 4, 7.
  auto s =
      CompileText("{max_lr: 1.0, cosine: {period: 10, restart_cycles: 3}}");
  const int64_t starts[] = {0, 4, 7};
  const int64_t lengths[] = {4, 3, 3};
  for (int k = 0; k < 3; ++k) {
    StepResult r = s->At(starts[k]);
    EXPECT_EQ(r.cycle, k);
    EXPECT_EQ(r.step_in_cycle, 0);
    EXPECT_EQ(r.cycle_length, lengths[k]);
    EXPECT_EQ(r.restart, k > 0);
    EXPECT_TRUE(s->At(starts[k] + lengths[k] - 1).snapshot);
  }
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_EQ(s->At(10).phase, v1::HOLD);
  EXPECT_EQ(s->At(10).lr, 0.0);
  // Step 4 is 0.2 of a half-wave into cycle 1 (4 * 3 / 10 = 1.2).
  EXPECT_NEAR(s->At(4).lr, 0.5 * (1 + std::cos(M_PI * 0.2)), 1e-15);
}

TEST(FamiliesTest, CosineWavesRiseAndHoldTheirEnd) {
  // HF num_cycles = 1: down and back up to the peak over the period.
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, cosine: {period: 8, "
      "waves: 1}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_NEAR(s->At(4).lr, 0.1, 1e-15);
  EXPECT_EQ(s->At(3).phase, v1::ANNEAL);
  EXPECT_EQ(s->At(5).phase, v1::RISE);
  EXPECT_EQ(s->At(8).lr, 1.0);
  EXPECT_EQ(s->At(9).phase, v1::HOLD);
  EXPECT_EQ(s->At(9).lr, 1.0);  // held where the period ended
}

TEST(FamiliesTest, CosineExponentSharpensTheFactor) {
  auto s = CompileText("{max_lr: 1.0, cosine: {period: 4, exponent: 2}}");
  EXPECT_DOUBLE_EQ(s->At(2).lr, 0.25);  // (cos½(1/2))^2
  EXPECT_EQ(s->At(4).lr, 0.0);
}

TEST(FamiliesTest, ExponentialDecayContinuousAndStaircase) {
  auto s = CompileText("{max_lr: 2.0, exponential_decay: {gamma: 0.9}}");
  EXPECT_EQ(s->At(3).lr, 2.0 * std::pow(0.9, 3.0));
  auto c = CompileText(
      "{max_lr: 1.0, exponential_decay: {gamma: 0.5, transition_steps: 4}}");
  EXPECT_EQ(c->At(2).lr, std::pow(0.5, 0.5));
  auto st = CompileText(
      "{max_lr: 1.0, exponential_decay: {gamma: 0.5, transition_steps: 4, "
      "staircase: true}}");
  EXPECT_EQ(st->At(3).lr, 1.0);
  EXPECT_EQ(st->At(4).lr, 0.5);
}

TEST(FamiliesTest, PolynomialDecayWithFloorAndHold) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, polynomial_decay: {total_steps: 10, power: "
      "2}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_DOUBLE_EQ(s->At(5).lr, 0.1 + 0.9 * 0.25);
  EXPECT_EQ(s->At(10).lr, 0.1);
  EXPECT_TRUE(s->At(10).snapshot);
  EXPECT_EQ(s->At(11).phase, v1::HOLD);
  EXPECT_EQ(s->At(kMaxStep).lr, 0.1);
}

TEST(FamiliesTest, InverseTimeIsSeedsEta0OverTPlusT0AndHfInverseSqrt) {
  auto s = CompileText("{max_lr: 1.0, inverse_time_decay: {t0: 10}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_EQ(s->At(10).lr, 0.5);
  // HF get_inverse_sqrt_schedule after warmup W with timescale T:
  // 1/sqrt((t + T - W)/T) at global t; here on local time t - W.
  auto hf = CompileText(
      "{max_lr: 1.0, warmup: {steps: 5}, inverse_time_decay: {t0: 100, power: "
      "0.5}}");
  for (int64_t t = 5; t < 400; t += 7) {
    double expected = 1.0 / std::sqrt((t + 100.0 - 5.0) / 100.0);
    EXPECT_NEAR(hf->At(t).lr, expected, 1e-15) << t;
  }
}

TEST(FamiliesTest, LinearLrHoldsItsEnd) {
  auto s = CompileText(
      "{max_lr: 1.0, linear: {start_factor: 1.0, end_factor: 0.25, "
      "total_steps: 3}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_EQ(s->At(3).lr, 0.25);
  EXPECT_TRUE(s->At(3).snapshot);
  EXPECT_EQ(s->At(100).lr, 0.25);
  EXPECT_EQ(s->At(100).phase, v1::HOLD);
}

TEST(FamiliesTest, CosineClampsAfterPeriodUnlikePyTorch) {
  auto s = CompileText("{max_lr: 1.0, min_lr: 0.1, cosine: {period: 100}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_EQ(s->At(50).lr, 0.1 + 0.9 * (1 + std::cos(kPi * 50 / 100)) / 2);
  EXPECT_EQ(s->At(100).lr, 0.1);
  EXPECT_TRUE(s->At(100).snapshot);
  EXPECT_EQ(s->At(150).lr, 0.1);  // PyTorch would climb back to 0.55
  EXPECT_EQ(s->At(150).phase, v1::HOLD);
}

TEST(FamiliesTest, WarmupPlusCosineIsSequentialLinearThenCosine) {
  // SequentialLR([LinearLR(start_factor=s/B, total_iters=W),
  // CosineAnnealingLR(T_max=P)], milestones=[W]), closed forms.
  const double b = 0.4, start = 0.04;
  const int w = 10, p = 50;
  auto s = CompileText(
      "{max_lr: 0.4, warmup: {steps: 10, start_lr: 0.04}, cosine: {period: "
      "50}}");
  for (int t = 0; t < w + p; ++t) {
    double expected = t < w ? b * (start / b + (1 - start / b) * t / w)
                            : b * (1 + std::cos(kPi * (t - w) / p)) / 2;
    EXPECT_NEAR(s->At(t).lr, expected, 1e-15) << t;
    EXPECT_EQ(s->At(t).phase, t < w ? v1::WARMUP : v1::ANNEAL);
  }
  EXPECT_EQ(s->At(3).cycle_length, w + p + 1);
  EXPECT_EQ(s->At(w + 2).step_in_cycle, w + 2);
}

TEST(FamiliesTest, CyclicModes) {
  auto tri = CompileText(
      "{max_lr: 1.0, min_lr: 0.0, cyclic: {step_size_up: 2, step_size_down: "
      "4}}");
  const double want[] = {0, 0.5, 1, 0.75, 0.5, 0.25, 0, 0.5};
  for (int t = 0; t < 8; ++t) EXPECT_EQ(tri->At(t).lr, want[t]) << t;
  EXPECT_EQ(tri->At(1).phase, v1::RISE);
  EXPECT_EQ(tri->At(3).phase, v1::ANNEAL);
  EXPECT_TRUE(tri->At(5).snapshot);
  EXPECT_TRUE(tri->At(6).restart);
  auto tri2 = CompileText(
      "{max_lr: 1.0, cyclic: {step_size_up: 2, mode: triangular2}}");
  EXPECT_EQ(tri2->At(2).lr, 1.0);
  EXPECT_EQ(tri2->At(6).lr, 0.5);
  EXPECT_EQ(tri2->At(10).lr, 0.25);
  auto exp = CompileText(
      "{max_lr: 1.0, cyclic: {step_size_up: 2, mode: EXP_RANGE, gamma: 0.9}}");
  EXPECT_EQ(exp->At(2).lr, std::pow(0.9, 2.0));
  EXPECT_EQ(exp->At(kMaxStep).lr, 0.0);
}

TEST(FamiliesTest, OneCycleHoldsAfterTotalSteps) {
  auto s = CompileText("{max_lr: 1.0, one_cycle: {total_steps: 100}}");
  EXPECT_NEAR(s->At(0).lr, 0.04, 1e-15);  // PyTorch: 0.040000000000000036 too
  EXPECT_EQ(s->At(29).lr, 1.0);
  EXPECT_NEAR(s->At(99).lr, 4e-6, 1e-18);
  EXPECT_TRUE(s->At(99).snapshot);
  EXPECT_EQ(s->At(100).lr, s->At(99).lr);  // PyTorch: 5.07e-4 (overshoot)
  EXPECT_EQ(s->At(100).phase, v1::HOLD);
  auto three = CompileText(
      "{max_lr: 1.0, one_cycle: {total_steps: 100, three_phase: true}}");
  EXPECT_EQ(three->At(29).lr, 1.0);
  EXPECT_DOUBLE_EQ(three->At(58).lr, 0.04);
}

double HfWsd(int64_t t, int64_t w, int64_t s, int64_t d, double r,
             const std::string& wt, const std::string& dt) {
  if (t < w) {
    double p = static_cast<double>(t) / w;
    double f = wt == "linear"   ? p
               : wt == "cosine" ? 0.5 * (1.0 - std::cos(kPi * p))
                                : 1.0 - std::sqrt(1.0 - p);
    return std::max(0.0, f * (1.0 - r) + r);
  }
  if (t < w + s) return 1.0;
  if (t < w + s + d) {
    double p = static_cast<double>(t - w - s) / d;
    double f = dt == "linear"   ? 1.0 - p
               : dt == "cosine" ? 0.5 * (1.0 + std::cos(kPi * 0.5 * 2.0 * p))
                                : 1.0 - std::sqrt(p);
    return std::max(0.0, f * (1.0 - r) + r);
  }
  return r;
}

TEST(FamiliesTest, WsdMatchesHuggingFaceFormula) {
  for (std::string wt : {"linear", "cosine", "sqrt"}) {
    for (std::string dt : {"linear", "cosine", "sqrt"}) {
      auto s = CompileText(
          "{max_lr: 1.0, min_lr: 0.1, wsd: {warmup_steps: 10, "
          "stable_steps: 20, decay_steps: 30, warmup_shape: " +
          wt + ", decay_shape: " + dt + "}}");
      for (int64_t t = 0; t < 80; ++t) {
        ASSERT_NEAR(s->At(t).lr, HfWsd(t, 10, 20, 30, 0.1, wt, dt), 1e-15)
            << wt << "/" << dt << " t=" << t;
      }
      // The snapshot is the floor step W+S+D, as cosine's t = period.
      EXPECT_FALSE(s->At(59).snapshot);
      EXPECT_TRUE(s->At(60).snapshot);
      EXPECT_EQ(s->At(60).lr, 0.1);
      EXPECT_EQ(s->At(60).cycle_length, 61);
      EXPECT_EQ(s->At(61).phase, v1::HOLD);
    }
  }
}

TEST(FamiliesTest, SequenceRunsPhasesOnLocalTimeWithRestartsWhereAsked) {
  auto s = CompileText(R"({
    max_lr: 1.0,
    sequence: {phases: [
      {steps: 10, spec: {constant: {}}},
      {steps: 20, spec: {min_lr: 0.0, cosine: {period: 20}}},
      {steps: 0, restart: true, spec: {max_lr: 0.5, cosine: {period: 10}}}]}})");
  EXPECT_EQ(s->At(9).lr, 1.0);
  EXPECT_EQ(s->At(10).lr, 1.0);  // cosine local t = 0
  EXPECT_FALSE(s->At(10).restart);
  EXPECT_EQ(s->At(10).cycle, 0);
  EXPECT_EQ(s->At(10).step_in_cycle, 10);  // the cycle continues
  EXPECT_TRUE(s->At(29).snapshot);
  StepResult third = s->At(30);
  EXPECT_EQ(third.lr, 0.5);
  EXPECT_TRUE(third.restart);
  EXPECT_EQ(third.cycle, 1);
  EXPECT_EQ(third.step_in_cycle, 0);
  EXPECT_EQ(s->At(kMaxStep).lr, 0.0);
}

TEST(FamiliesTest, MomentumMovesInverselyAndBiasCorrectionIsExactProduct) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.0, warm_restarts: {period: 8, period_mult: 2}, "
      "momentum: {base: 0.85, max: 0.95}}");
  EXPECT_EQ(s->At(0).momentum, 0.85);  // LR at peak: momentum at base
  EXPECT_NEAR(s->At(7).momentum, 0.95, 0.01);
  EXPECT_EQ(s->At(8).momentum, 0.85);
  double product = 1.0;
  for (int64_t t = 0; t < 2000; ++t) {
    StepResult r = s->At(t);
    product *= r.momentum;
    ASSERT_EQ(r.beta1_bias_correction, 1.0 - product) << t;
    // The naive 1 - beta1^(t+1) with the current beta1 is wrong at restarts.
  }
  EXPECT_NE(s->At(8).beta1_bias_correction, 1 - std::pow(0.85, 9));
  EXPECT_EQ(s->At(kMaxStep).beta1_bias_correction, 1.0);
}

TEST(FamiliesTest, BiasCorrectionWithMomentumCloseToOneUsesStride) {
  auto s = CompileText(
      "{max_lr: 1.0, cyclic: {step_size_up: 50}, momentum: {base: 0.99, max: "
      "0.9999}}");
  double product = 1.0;
  for (int64_t t = 0; t < 20000; ++t) {
    StepResult r = s->At(t);
    product *= r.momentum;
    ASSERT_EQ(r.beta1_bias_correction, 1.0 - product) << t;
  }
}

TEST(FamiliesTest, BatchScalingLinearAndSqrt) {
  auto lin = CompileText(
      "{max_lr: 0.1, constant: {}, batch_scaling: {reference_batch_size: "
      "256}}");
  StepQuery q;
  q.batch_size = 1024;
  EXPECT_DOUBLE_EQ(lin->Evaluate(q)->lr, 0.4);
  auto sq = CompileText(
      "{max_lr: 0.1, constant: {}, batch_scaling: {reference_batch_size: 256, "
      "rule: SQRT}}");
  EXPECT_DOUBLE_EQ(sq->Evaluate(q)->lr, 0.2);
  EXPECT_EQ(sq->Evaluate(StepQuery{})->lr, 0.1);  // no batch size: reference
}

TEST(FamiliesTest, ThermostatKeepsTheExpectedStepNorm) {
  auto s = CompileText(
      "{max_lr: 0.1, constant: {}, thermostat: {target_update_norm_sq: 0.04}}");
  StepQuery q;
  q.grad_norm_sq = 1.0;
  q.num_params = 3;
  StepResult r = *s->Evaluate(q);
  ASSERT_TRUE(r.has_noise_std);
  // E|lr (g + xi)|^2 = lr^2 (|g|^2 + d sigma^2) = K.
  EXPECT_NEAR(r.lr * r.lr * (1.0 + 3 * r.noise_std * r.noise_std), 0.04, 1e-15);
  q.grad_norm_sq = 100.0;  // gradient alone overshoots K: no noise
  EXPECT_EQ(s->Evaluate(q)->noise_std, 0.0);
  EXPECT_FALSE(s->Evaluate(StepQuery{})->has_noise_std);
  auto zero = CompileText(
      "{max_lr: 0.1, warmup: {steps: 5}, constant: {}, thermostat: "
      "{target_update_norm_sq: 1}}");
  q.step = 0;  // lr 0: nothing moves, noise 0 rather than infinity
  EXPECT_EQ(zero->Evaluate(q)->noise_std, 0.0);
}

TEST(FamiliesTest, BadQueriesAreInvalidArgumentNamingTheField) {
  auto s = CompileText("{max_lr: 0.1, constant: {}}");
  StepQuery q;
  q.step = -1;
  EXPECT_EQ(s->Evaluate(q).status().message(),
            "step: must be in [0, 2^62], got -1");
  q.step = kMaxStep + 1;
  EXPECT_FALSE(s->Evaluate(q).ok());
  q.step = 0;
  q.batch_size = 0;
  EXPECT_EQ(s->Evaluate(q).status().message(),
            "batch_size: must be >= 1, got 0");
  q.batch_size.reset();
  q.grad_norm_sq = std::nan("");
  EXPECT_EQ(s->Evaluate(q).status().message(),
            "grad_norm_sq: must be a finite number >= 0, got nan");
  EXPECT_FALSE(
      s->EvaluateRange(kMaxStep, 2, StepQuery{}, [](const StepResult&) {
       }).ok());
}

TEST(FamiliesTest, EveryFamilyIsFiniteAndBoundedAtHugeSteps) {
  const std::vector<std::string> specs = {
      "{max_lr: 1, constant: {}}",
      "{max_lr: 1, step_decay: {step_size: 1}}",
      "{max_lr: 1, step_decay: {milestones: [1, 4611686018427387904]}}",
      "{max_lr: 1, exponential_decay: {gamma: 0.999999}}",
      "{max_lr: 1, polynomial_decay: {total_steps: 4611686018427387904}}",
      "{max_lr: 1, inverse_time_decay: {t0: 1e-300, power: 3}}",
      "{max_lr: 1, linear: {total_steps: 4611686018427387904}}",
      "{max_lr: 1, cosine: {period: 4611686018427387904}}",
      "{max_lr: 1, warm_restarts: {period: 4611686018427387904, period_mult: "
      "2}}",
      "{max_lr: 1, cyclic: {step_size_up: 2305843009213693952, step_size_down: "
      "2305843009213693952}}",
      "{max_lr: 1, cyclic: {step_size_up: 1, mode: TRIANGULAR2}}",
      "{max_lr: 1, one_cycle: {total_steps: 4611686018427387904}}",
      "{max_lr: 1, wsd: {warmup_steps: 1537228672809129301, stable_steps: "
      "1537228672809129301, decay_steps: 1537228672809129301}}",
      "{max_lr: 1, warmup: {steps: 4611686018427387904}, constant: {}}",
      "{max_lr: 1, sequence: {phases: [{steps: 4611686018427387903, spec: "
      "{constant: {}}}, {spec: {cosine: {period: 3}}}]}}",
      "{max_lr: 1, cosine: {period: 3}, momentum: {base: 0.5, max: 0.9}}",
  };
  for (const std::string& text : specs) {
    auto s = CompileText(text);
    ASSERT_NE(s, nullptr) << text;
    for (int64_t t :
         {int64_t{0}, int64_t{1}, int64_t{1} << 31, int64_t{1} << 53,
          (int64_t{1} << 53) + 1, kMaxStep / 2, kMaxStep - 1, kMaxStep}) {
      StepResult r = s->At(t);
      ASSERT_TRUE(std::isfinite(r.lr)) << text << " t=" << t;
      ASSERT_GE(r.lr, 0) << text << " t=" << t;
      ASSERT_LE(r.lr, 1.0) << text << " t=" << t;
      ASSERT_GE(r.step_in_cycle, 0) << text << " t=" << t;
      ASSERT_GE(r.cycle, 0) << text << " t=" << t;
      if (r.has_momentum) {
        ASSERT_TRUE(std::isfinite(r.beta1_bias_correction));
      }
    }
  }
}

}  // namespace
}  // namespace anneal
