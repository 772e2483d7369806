// The side channels a step carries besides its LR: the bias correction that
// restarts with the client's exp_avg, the thermostat's noise (no overflow,
// the momentum-SGD form), the wsd snapshot on its floor step, and sequence
// boundaries (implicit warm restarts, one cycle_length per cycle).
#include <cmath>
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "anneal/engine/schedule.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

constexpr char kSgdr[] =
    "{max_lr: 1.0, warm_restarts: {period: 10, period_mult: 2}, momentum: "
    "{base: 0.85, max: 0.99";

// What a training loop that zeros exp_avg on `restart` accumulates.
std::vector<double> RestartingCorrections(const Schedule& s, int64_t steps) {
  std::vector<double> out;
  double product = 1.0;
  for (int64_t t = 0; t < steps; ++t) {
    StepResult r = s.At(t);
    if (r.restart) product = 1.0;
    product *= r.momentum;
    out.push_back(1.0 - product);
  }
  return out;
}

TEST(BiasCorrectionTest, RestartsWithTheClientsExpAvgWhenAsked) {
  auto kept = CompileText(std::string(kSgdr) + "}}");
  auto reset =
      CompileText(std::string(kSgdr) + ", restart_bias_correction: true}}");
  // t = 630 starts cycle 5: the reset exp_avg needs 1 - 0.85.
  ASSERT_TRUE(reset->At(630).restart);
  EXPECT_EQ(kept->At(630).beta1_bias_correction, 1.0);
  EXPECT_EQ(reset->At(630).beta1_bias_correction, 1.0 - 0.85);
  EXPECT_NEAR(reset->At(630).beta1_bias_correction, 0.15, 1e-15);
  EXPECT_EQ(reset->At(631).beta1_bias_correction,
            1.0 - 0.85 * reset->At(631).momentum);
  // Cycle 0 is the same either way.
  for (int64_t t = 0; t < 10; ++t) {
    EXPECT_EQ(reset->At(t).beta1_bias_correction,
              kept->At(t).beta1_bias_correction);
  }
}

TEST(BiasCorrectionTest, RestartingProductIsTheLoopsBitForBit) {
  for (const std::string& spec :
       {std::string(kSgdr) + ", restart_bias_correction: true}}",
        std::string("{max_lr: 1.0, cyclic: {step_size_up: 20}, momentum: "
                    "{base: 0.8, max: 0.95, restart_bias_correction: true}}"),
        std::string("{max_lr: 1.0, sequence: {phases: [{steps: 300, spec: "
                    "{cosine: {period: 300}}}, {steps: 0, restart: true, "
                    "spec: {cosine: {period: 5000}}}]}, momentum: {base: 0.9, "
                    "max: 0.99, restart_bias_correction: true}}")}) {
    auto s = CompileText(spec);
    const int64_t n = 6000;
    const std::vector<double> want = RestartingCorrections(*s, n);
    for (int64_t t = 0; t < n; ++t) {
      ASSERT_EQ(s->At(t).beta1_bias_correction, want[t]) << spec << " t=" << t;
    }
    // Ranges from any start, mid-cycle or on a restart, agree too.
    for (int64_t start : {0, 1, 9, 10, 11, 629, 630, 631, 1000, 4000}) {
      int64_t t = start;
      ASSERT_TRUE(
          s->EvaluateRange(start, 700, StepQuery{}, [&](const StepResult& r) {
             ASSERT_EQ(r.beta1_bias_correction, want[t])
                 << spec << " start=" << start << " t=" << t;
             ++t;
           }).ok());
    }
  }
}

TEST(BiasCorrectionTest, DefaultStillRunsTheProductFromStepZero) {
  auto s = CompileText(std::string(kSgdr) + "}}");
  double product = 1.0;
  for (int64_t t = 0; t < 3000; ++t) {
    StepResult r = s->At(t);
    product *= r.momentum;
    ASSERT_EQ(r.beta1_bias_correction, 1.0 - product) << t;
  }
}

StepQuery ThermostatQuery(double grad_norm_sq, int64_t d, int64_t step = 0) {
  StepQuery q;
  q.step = step;
  q.grad_norm_sq = grad_norm_sq;
  q.num_params = d;
  return q;
}

TEST(ThermostatTest, NoOverflowWhereSigmaIsRepresentable) {
  // lr = 1e-300, K = 1: K/lr^2 overflows, sigma = 1e300 does not.
  auto tiny = CompileText(
      "{max_lr: 1e-300, constant: {}, thermostat: {target_update_norm_sq: "
      "1}}");
  EXPECT_NEAR(tiny->Evaluate(ThermostatQuery(0, 1))->noise_std / 1e300, 1.0,
              1e-15);
  EXPECT_NEAR(tiny->Evaluate(ThermostatQuery(1, 1))->noise_std / 1e300, 1.0,
              1e-15);
  // The largest K: sigma = sqrt(1e300) / 0.1 = 1e151.
  auto big = CompileText(
      "{max_lr: 0.1, constant: {}, thermostat: {target_update_norm_sq: "
      "1e300}}");
  EXPECT_NEAR(big->Evaluate(ThermostatQuery(1, 1))->noise_std / 1e151, 1.0,
              1e-15);
  // Beyond DBL_MAX it saturates (lr = 1e-300, K = 1e300, d = 1: 1e450).
  auto huge = CompileText(
      "{max_lr: 1e-300, constant: {}, thermostat: {target_update_norm_sq: "
      "1e300}}");
  EXPECT_EQ(huge->Evaluate(ThermostatQuery(0, 1))->noise_std,
            std::numeric_limits<double>::max());
  // A gradient whose lr^2 |g|^2 overflows overshoots any K: no noise.
  auto large_lr = CompileText(
      "{max_lr: 1e6, constant: {}, thermostat: {target_update_norm_sq: 1}}");
  EXPECT_EQ(large_lr->Evaluate(ThermostatQuery(1e300, 1))->noise_std, 0.0);
}

TEST(ThermostatTest, KeepsTheStepNormAndGrowsAsLrGoesToZero) {
  auto s = CompileText(
      "{max_lr: 0.1, cosine: {period: 10000}, thermostat: "
      "{target_update_norm_sq: 0.04}}");
  const double d = 1e6;
  double last = 0;
  for (int64_t t : {0, 5000, 9990, 9999}) {
    StepResult r = *s->Evaluate(ThermostatQuery(1, 1000000, t));
    EXPECT_NEAR(r.lr * r.lr * (1 + d * r.noise_std * r.noise_std), 0.04, 1e-15);
    EXPECT_GT(r.noise_std, last);
    last = r.noise_std;
  }
  // At lr = 0 no noise can move theta: 0, the documented end of the domain.
  EXPECT_EQ(s->Evaluate(ThermostatQuery(1, 1000000, 10000))->noise_std, 0.0);
}

TEST(ThermostatTest, MomentumSgdScalesSigmaBySqrtOneMinusBetaSquared) {
  const char* plain_text =
      "{max_lr: 0.1, constant: {}, thermostat: {target_update_norm_sq: 0.04}}";
  auto plain = CompileText(plain_text);
  auto constant = CompileText(
      "{max_lr: 0.1, constant: {}, thermostat: {target_update_norm_sq: 0.04, "
      "momentum: 0.9}}");
  const double sigma = plain->Evaluate(ThermostatQuery(1, 3))->noise_std;
  const double with_beta = constant->Evaluate(ThermostatQuery(1, 3))->noise_std;
  EXPECT_NEAR(with_beta, sigma * std::sqrt(1 - 0.81), 1e-15);
  // The noise share of E|delta theta|^2 in steady state, lr^2 d s^2/(1-b^2),
  // is what plain SGD's lr^2 d sigma^2 was.
  EXPECT_NEAR(0.01 * 3 * with_beta * with_beta / (1 - 0.81),
              0.01 * 3 * sigma * sigma, 1e-15);
  // A scheduled momentum uses the step's own beta.
  auto scheduled = CompileText(
      "{max_lr: 0.1, cosine: {period: 100}, momentum: {base: 0.85, max: "
      "0.95}, thermostat: {target_update_norm_sq: 0.04}}");
  StepResult r = *scheduled->Evaluate(ThermostatQuery(1, 3, 50));
  const double lr = r.lr;
  EXPECT_NEAR(r.noise_std,
              std::sqrt((0.04 / (lr * lr) - 1) / 3) *
                  std::sqrt(1 - r.momentum * r.momentum),
              1e-12);
}

TEST(WsdTest, SnapshotOnTheFloorStep) {
  auto s = CompileText(
      "{max_lr: 0.1, min_lr: 0.001, wsd: {warmup_steps: 10, stable_steps: 20, "
      "decay_steps: 5, decay_shape: SQRT}}");
  EXPECT_FALSE(s->At(34).snapshot);
  EXPECT_NEAR(s->At(34).lr, 0.01145, 1e-5);
  EXPECT_TRUE(s->At(35).snapshot);
  EXPECT_NEAR(s->At(35).lr, 0.001, 1e-18);
  EXPECT_EQ(s->At(35).cycle_length, 36);
  EXPECT_EQ(s->At(35).step_in_cycle, 35);
  EXPECT_EQ(s->At(36).phase, v1::HOLD);
  EXPECT_EQ(s->At(36).cycle_length, 0);
  EXPECT_EQ(s->SettlesAt(), 35);
}

TEST(WsdTest, NoDecayStepsDropsStraightToTheFloor) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, wsd: {warmup_steps: 5, stable_steps: 10, "
      "decay_steps: 0}}");
  EXPECT_EQ(s->At(14).lr, 1.0);
  EXPECT_EQ(s->At(14).phase, v1::STABLE);
  EXPECT_EQ(s->At(15).lr, 0.1);
  EXPECT_TRUE(s->At(15).snapshot);
  EXPECT_EQ(s->At(16).phase, v1::HOLD);
}

TEST(WsdTest, MoreThanHalfACosineWaveRisesOnTheWay) {
  auto s = CompileText(
      "{max_lr: 1.0, wsd: {stable_steps: 0, decay_steps: 100, num_cycles: "
      "1}}");
  EXPECT_EQ(s->At(25).phase, v1::ANNEAL);
  EXPECT_NEAR(s->At(50).lr, 0.0, 1e-15);
  EXPECT_EQ(s->At(75).phase, v1::RISE);
  EXPECT_NEAR(s->At(99).lr, 0.5 * (1 + std::cos(2 * 3.141592653589793 * 0.99)),
              1e-15);
  EXPECT_EQ(s->At(100).lr, 0.0);  // HF: min_lr_ratio from W+S+D on
}

// Every cycle that ends inside [0, n) reports one cycle_length, equal to
// the steps it really has, a snapshot on its last step only, and a restart
// on the step after; a cycle still running at n reports one length too.
void ExpectConsistentCycles(const Schedule& s, int64_t n,
                            const std::string& what) {
  std::map<int64_t, int64_t> length, begin, count;
  for (int64_t t = 0; t < n; ++t) {
    StepResult r = s.At(t);
    // A family's own HOLD, as the last thing it does, reports 0.
    if (r.phase == v1::HOLD && r.cycle_length == 0) continue;
    if (!length.count(r.cycle)) {
      length[r.cycle] = r.cycle_length;
      begin[r.cycle] = t - r.step_in_cycle;
    }
    ASSERT_EQ(r.cycle_length, length[r.cycle])
        << what << " t=" << t << " cycle " << r.cycle;
    ++count[r.cycle];
    ASSERT_EQ(r.snapshot,
              r.cycle_length > 0 && r.step_in_cycle == r.cycle_length - 1)
        << what << " t=" << t;
    if (r.cycle > 0 && r.step_in_cycle == 0) {
      ASSERT_TRUE(s.At(t - 1).snapshot) << what << " t=" << t;
    }
  }
  for (const auto& [cycle, steps] : count) {
    if (begin[cycle] + length[cycle] < n && length[cycle] > 0) {
      EXPECT_EQ(steps, length[cycle]) << what << " cycle " << cycle;
    }
  }
}

TEST(SequenceTest, JumpToAPeakWithoutRestartIsAWarmRestart) {
  auto s = CompileText(
      "{max_lr: 0.1, sequence: {phases: [{steps: 25, spec: {warm_restarts: "
      "{period: 10}}}, {steps: 0, spec: {warm_restarts: {period: 10}}}]}}");
  EXPECT_NEAR(s->At(24).lr, 0.0655, 1e-4);
  EXPECT_TRUE(s->At(24).snapshot);
  StepResult r = s->At(25);
  EXPECT_EQ(r.lr, 0.1);
  EXPECT_TRUE(r.restart);
  EXPECT_EQ(r.cycle, 3);
  EXPECT_EQ(s->At(20).cycle_length, 5);  // cycle 2 is cut at the boundary
  ExpectConsistentCycles(*s, 200, "E2");
}

TEST(SequenceTest, WarmupOrFlatPhasesBeforeADecayStayOneCycle) {
  // SequentialLR's warmup then cosine, as phases: no restart at the boundary.
  auto warm = CompileText(
      "{max_lr: 1.0, sequence: {phases: [{steps: 10, spec: {linear: "
      "{start_factor: 0.1, total_steps: 10}}}, {steps: 0, spec: {cosine: "
      "{period: 90}}}]}}");
  EXPECT_FALSE(warm->At(10).restart);
  EXPECT_EQ(warm->At(10).cycle, 0);
  auto flat = CompileText(R"({
    max_lr: 1.0,
    sequence: {phases: [
      {steps: 10, spec: {constant: {}}},
      {steps: 20, spec: {min_lr: 0.0, cosine: {period: 20}}},
      {steps: 0, restart: true, spec: {max_lr: 0.5, cosine: {period: 10}}}]}})");
  EXPECT_FALSE(flat->At(10).restart);
  // The constant phase's cycle does end, at the restart: 30 steps, on every
  // step of it (it reported 0, "never ends", and then 31).
  for (int64_t t = 0; t < 30; ++t) EXPECT_EQ(flat->At(t).cycle_length, 30) << t;
  EXPECT_TRUE(flat->At(29).snapshot);
  ExpectConsistentCycles(*flat, 100, "flat");
}

TEST(SequenceTest, CycleLengthDoesNotChangePartwayThroughACycle) {
  // A nested sequence whose cycles span boundaries without restarts.
  auto s = CompileText(R"({
    max_lr: 1.0,
    sequence: {phases: [
      {steps: 100, spec: {warm_restarts: {period: 16, period_mult: 2}}},
      {steps: 250, restart: true, spec: {sequence: {phases: [
        {steps: 40, spec: {warm_restarts: {period: 7, period_mult: 2}}},
        {steps: 60, restart: true, spec: {warm_restarts: {period: 112}}},
        {steps: 0, spec: {max_lr: 0.01, cosine: {period: 50}}}]}}},
      {steps: 0, spec: {max_lr: 0.001, warm_restarts: {period: 48}}}]}})");
  ExpectConsistentCycles(*s, 2000, "nested");
}

}  // namespace
}  // namespace anneal
