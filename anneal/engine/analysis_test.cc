// Robbins-Monro verdicts per family (the seed text's table and its
// extensions) and the stability bound: 2/L for a constant LR, 4/L for one
// long cosine cycle, 4.59/L for one long linear decay.
#include "anneal/engine/analysis.h"

#include <cmath>
#include <string>
#include <vector>

#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

AnalysisOptions Horizon(int64_t h) {
  AnalysisOptions o;
  o.horizon = h;
  return o;
}

AnalysisOptions Curvature(double l) {
  AnalysisOptions o;
  o.max_curvature = l;
  return o;
}

struct Verdict {
  std::string spec;
  bool sum_diverges;
  bool sum_squares_converges;
};

class RobbinsMonroTest : public testing::TestWithParam<Verdict> {};

TEST_P(RobbinsMonroTest, VerdictMatchesTheFamilyRule) {
  auto s = CompileText(GetParam().spec);
  ASSERT_NE(s, nullptr);
  auto a = Analyze(*s, Horizon(2000));
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->robbins_monro().sum_diverges(), GetParam().sum_diverges)
      << a->robbins_monro().reason();
  EXPECT_EQ(a->robbins_monro().sum_squares_converges(),
            GetParam().sum_squares_converges)
      << a->robbins_monro().reason();
  EXPECT_EQ(a->robbins_monro().satisfied(),
            GetParam().sum_diverges && GetParam().sum_squares_converges);
  EXPECT_FALSE(a->robbins_monro().reason().empty());
}

INSTANTIATE_TEST_SUITE_P(
    Families, RobbinsMonroTest,
    testing::Values(
        // The seed: constant violates 2, exponential violates 1, inverse time
        // satisfies both, restarts without peak decay violate 2.
        Verdict{"{max_lr: 0.1, constant: {}}", true, false},
        Verdict{"{max_lr: 0.1, exponential_decay: {gamma: 0.99}}", false, true},
        Verdict{"{max_lr: 0.1, inverse_time_decay: {t0: 10}}", true, true},
        Verdict{"{max_lr: 0.1, warm_restarts: {period: 10}}", true, false},
        Verdict{"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 2}}",
                true, false},
        // Extensions derived in docs/analysis.md.
        Verdict{"{max_lr: 0.1, inverse_time_decay: {t0: 10, power: 0.4}}", true,
                false},
        Verdict{"{max_lr: 0.1, inverse_time_decay: {t0: 10, power: 2}}", false,
                true},
        Verdict{"{max_lr: 0.1, min_lr: 0.01, exponential_decay: {gamma: 0.9}}",
                true, false},
        Verdict{"{max_lr: 0.1, step_decay: {step_size: 30}}", false, true},
        Verdict{"{max_lr: 0.1, step_decay: {milestones: [30, 60]}}", true,
                false},
        Verdict{"{max_lr: 0.1, cosine: {period: 100}}", false, true},
        Verdict{"{max_lr: 0.1, min_lr: 0.001, cosine: {period: 100}}", true,
                false},
        Verdict{"{max_lr: 0.1, polynomial_decay: {total_steps: 100}}", false,
                true},
        // Growing cycles with peak decay d: sum ~ (m d)^k, squares ~ (m d^2)^k.
        Verdict{"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 2, "
                "peak_decay: 0.6}}",
                true, true},
        Verdict{"{max_lr: 0.1, warm_restarts: {period: 10, period_mult: 2, "
                "peak_decay: 0.4}}",
                false, true},
        Verdict{"{max_lr: 0.1, warm_restarts: {period: 10, peak_decay: 0.9}}",
                false, true},
        Verdict{"{max_lr: 0.1, warm_restarts: {period: 10, max_cycles: 3}}",
                false, true},
        Verdict{"{max_lr: 0.1, cyclic: {step_size_up: 10}}", true, false},
        Verdict{"{max_lr: 0.1, cyclic: {step_size_up: 10, mode: TRIANGULAR2}}",
                false, true},
        Verdict{"{max_lr: 0.1, one_cycle: {total_steps: 100}}", true, false},
        Verdict{"{max_lr: 0.1, wsd: {decay_steps: 100}}", false, true},
        Verdict{"{max_lr: 0.1, sequence: {phases: [{steps: 100, spec: "
                "{constant: {}}}, "
                "{spec: {inverse_time_decay: {t0: 100}}}]}}",
                true, true},
        // A warmup in every cycle from start_lr > 0 adds at least start_lr
        // per cycle to both sums, whatever the peaks do (R1 in the anchor
        // measurements): condition 1 yes, condition 2 no.
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, start_lr: 0.01, every_cycle: "
                "true}, warm_restarts: {period: 10, period_mult: 2, "
                "peak_decay: 0.4}}",
                true, false},
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, start_lr: 0.01, every_cycle: "
                "true}, warm_restarts: {period: 10, peak_decay: 0.9}}",
                true, false},
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, start_lr: 0.01, every_cycle: "
                "true}, warm_restarts: {period: 10, period_mult: 2, "
                "peak_decay: 0.6}}",
                true, false},
        // ... also as the last phase of a sequence, ...
        Verdict{"{max_lr: 0.1, sequence: {phases: [{steps: 100, spec: "
                "{constant: {}}}, {spec: {warmup: {steps: 5, start_lr: 0.01, "
                "every_cycle: true}, warm_restarts: {period: 10, "
                "period_mult: 2, peak_decay: 0.6}}}]}}",
                true, false},
        // ... while start_lr = 0, or finitely many cycles, keep the
        // restarts' own verdicts.
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, every_cycle: true}, "
                "warm_restarts: {period: 10, period_mult: 2, peak_decay: 0.4}}",
                false, true},
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, every_cycle: true}, "
                "warm_restarts: {period: 10, peak_decay: 0.9}}",
                false, true},
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, every_cycle: true}, "
                "warm_restarts: {period: 10, period_mult: 2, peak_decay: 0.6}}",
                true, true},
        Verdict{"{max_lr: 0.1, warmup: {steps: 5, start_lr: 0.01, every_cycle: "
                "true}, warm_restarts: {period: 10, peak_decay: 0.9, "
                "max_cycles: 4}}",
                false, true}));

TEST(AnalysisTest, HorizonSums) {
  auto s = CompileText("{max_lr: 0.1, constant: {}}");
  auto a = Analyze(*s, Horizon(1000));
  ASSERT_TRUE(a.ok());
  EXPECT_NEAR(a->robbins_monro().horizon_sum(), 100.0, 1e-9);
  EXPECT_NEAR(a->robbins_monro().horizon_sum_squares(), 10.0, 1e-9);
  EXPECT_EQ(a->horizon(), 1000);
  EXPECT_FALSE(a->has_stability());
}

TEST(AnalysisTest, DefaultHorizonFollowsTheSchedulesEnd) {
  EXPECT_EQ(DefaultHorizon(*CompileText("{max_lr: 1, cosine: {period: 5000}}")),
            5001);
  EXPECT_EQ(DefaultHorizon(*CompileText("{max_lr: 1, cosine: {period: 5}}")),
            1000);
  EXPECT_EQ(
      DefaultHorizon(*CompileText("{max_lr: 1, warm_restarts: {period: 5}}")),
      kDefaultAnalysisHorizon);
}

double CriticalTimesCurvature(const std::string& spec, double curvature) {
  auto s = CompileText(spec);
  auto a = Analyze(*s, Curvature(curvature));
  EXPECT_TRUE(a.ok()) << a.status();
  return a->stability().critical_max_lr_times_curvature();
}

TEST(AnalysisTest, ConstantLrIsStableBelowTwoOverL) {
  EXPECT_NEAR(CriticalTimesCurvature("{max_lr: 0.1, constant: {}}", 10.0), 2.0,
              1e-12);
  auto s = CompileText("{max_lr: 0.19, constant: {}}");
  EXPECT_TRUE(Analyze(*s, Curvature(10.0))->stability().stable());
  s = CompileText("{max_lr: 0.21, constant: {}}");
  EXPECT_FALSE(Analyze(*s, Curvature(10.0))->stability().stable());
}

TEST(AnalysisTest, LongCosineCycleApproachesFourOverL) {
  EXPECT_NEAR(
      CriticalTimesCurvature("{max_lr: 0.1, cosine: {period: 100000}}", 3.0),
      4.0, 0.04);
}

TEST(AnalysisTest, LongLinearDecaySolvesItsIntegral) {
  // (a - 1) ln(a - 1) = a  =>  a = 4.5911...
  double y = 3.5;
  for (int i = 0; i < 60; ++i) y -= (y * std::log(y) - y - 1) / std::log(y);
  const double analytic = y + 1;
  EXPECT_NEAR(analytic, 4.5911, 1e-3);
  EXPECT_NEAR(
      CriticalTimesCurvature(
          "{max_lr: 0.1, polynomial_decay: {total_steps: 100000}}", 2.0),
      analytic, 0.01 * analytic);
}

TEST(AnalysisTest, RejectsBadOptions) {
  auto s = CompileText("{max_lr: 0.1, constant: {}}");
  EXPECT_EQ(Analyze(*s, Horizon(-5)).status().message(),
            "horizon: must be in [1, 10000000], got -5");
  EXPECT_EQ(Analyze(*s, Curvature(-1.0)).status().message(),
            "max_curvature: must be a finite number > 0, got -1");
}

}  // namespace
}  // namespace anneal
