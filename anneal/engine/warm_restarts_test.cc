// SGDR geometry: restart and snapshot positions against PyTorch's exact
// incremental bookkeeping, the cases where a floor(log) cycle index fails,
// huge steps, huge and shrinking period_mult, cycle limits, peak decay and
// per-cycle warmup.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "anneal/engine/schedule.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

std::string Sgdr(int64_t period, double mult, const std::string& extra = "") {
  return absl::StrCat("{max_lr: 1.0, warm_restarts: {period: ", period,
                      ", period_mult: ", mult, extra, "}}");
}

// CosineAnnealingWarmRestarts' implicit step(): T_cur += 1; if T_cur >= T_i:
// T_cur -= T_i, T_i *= T_mult. Exact integer bookkeeping.
TEST(WarmRestartsTest, MatchesPyTorchIncrementalBookkeepingEverywhere) {
  int floor_log_misses = 0;
  for (int64_t t0 = 1; t0 <= 39; ++t0) {
    for (int64_t mult = 2; mult <= 11; ++mult) {
      auto s = CompileText(Sgdr(t0, static_cast<double>(mult)));
      ASSERT_NE(s, nullptr);
      int64_t t_cur = 0, t_i = t0, cycle = 0;
      for (int64_t t = 0; t < 3000; ++t) {
        if (t > 0) {
          ++t_cur;
          if (t_cur >= t_i) {
            t_cur -= t_i;
            t_i *= mult;
            ++cycle;
          }
        }
        StepResult r = s->At(t);
        ASSERT_EQ(r.cycle, cycle)
            << "T0=" << t0 << " Tmult=" << mult << " t=" << t;
        ASSERT_EQ(r.step_in_cycle, t_cur)
            << "T0=" << t0 << " Tmult=" << mult << " t=" << t;
        ASSERT_EQ(r.cycle_length, t_i);
        ASSERT_EQ(r.restart, t_cur == 0 && cycle > 0);
        ASSERT_EQ(r.snapshot, t_cur == t_i - 1);
        // PyTorch's explicit step(epoch) uses int(log(...)): count its misses
        // to show the hazard the table avoids.
        if (t >= t0) {
          auto n = static_cast<int64_t>(
              std::log(static_cast<double>(t) * (mult - 1) / t0 + 1) /
              std::log(static_cast<double>(mult)));
          floor_log_misses += n != cycle;
        }
      }
    }
  }
  // The reference text measured 51 such cases with Python's math.log.
  EXPECT_GT(floor_log_misses, 0);
}

TEST(WarmRestartsTest, ExactCycleIndexWhereFloorLogFails) {
  // T_0=1, T_mult=3: cycles start at (3^n - 1)/2; t=121 starts cycle 5 (81 <
  // 121 is cycle 4's start 40 + 81 = 121), so the LR is the peak, not eta_min.
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.01, warm_restarts: {period: 1, period_mult: "
      "3}}");
  StepResult r = s->At(121);
  EXPECT_TRUE(r.restart);
  EXPECT_EQ(r.cycle, 5);
  EXPECT_EQ(r.step_in_cycle, 0);
  EXPECT_EQ(r.cycle_length, 243);
  EXPECT_EQ(r.lr, 1.0);
  EXPECT_TRUE(s->At(120).snapshot);
  // T_0=1, T_mult=10: cycle 3 starts at 1 + 10 + 100 = 111.
  auto ten =
      CompileText("{max_lr: 1.0, warm_restarts: {period: 1, period_mult: 10}}");
  EXPECT_TRUE(ten->At(111).restart);
  EXPECT_EQ(ten->At(111).lr, 1.0);
}

TEST(WarmRestartsTest, HugeStepsAreExact) {
  const int64_t max = kMaxStep;
  // period 1, mult 2: cycle k starts at 2^k - 1.
  auto s =
      CompileText("{max_lr: 0.5, warm_restarts: {period: 1, period_mult: 2}}");
  StepResult r = s->At(max);
  EXPECT_EQ(r.cycle, 62);
  EXPECT_EQ(r.step_in_cycle, 1);
  EXPECT_TRUE(s->At((int64_t{1} << 62) - 1).restart);
  EXPECT_TRUE(std::isfinite(r.lr));
  // mult 1: closed form k = t / period.
  auto even = CompileText("{max_lr: 0.5, warm_restarts: {period: 7}}");
  EXPECT_EQ(even->At(max).cycle, max / 7);
  EXPECT_EQ(even->At(max).step_in_cycle, max % 7);
  // Every step near the top of the range evaluates to a finite LR in bounds.
  for (const char* extra : {"", ", peak_decay: 0.5", ", max_cycles: 3"}) {
    for (double mult : {0.3, 0.9, 1.0, 1.5, 2.0, 3.0, 1e6}) {
      auto x = CompileText(Sgdr(13, mult, extra));
      ASSERT_NE(x, nullptr);
      for (int64_t t : {max, max - 1, max / 2, max / 3 + 1}) {
        StepResult y = x->At(t);
        ASSERT_TRUE(std::isfinite(y.lr)) << mult << extra << " t=" << t;
        ASSERT_GE(y.lr, 0);
        ASSERT_LE(y.lr, 1.0);
        ASSERT_GE(y.step_in_cycle, 0);
      }
    }
  }
}

TEST(WarmRestartsTest, HugePeriodMultSaturates) {
  auto s = CompileText(
      "{max_lr: 1.0, warm_restarts: {period: 10, period_mult: 1e6}}");
  EXPECT_TRUE(s->At(10).restart);
  EXPECT_EQ(s->At(10).cycle_length, 10'000'000);
  EXPECT_TRUE(s->At(10'000'010).restart);
  EXPECT_EQ(s->At(10'000'010).cycle, 2);
  EXPECT_EQ(s->At(kMaxStep).cycle, 3);
}

TEST(WarmRestartsTest, ShrinkingPeriodsReachOneAndStay) {
  // Lengths round(100 * 0.5^k): 100 50 25 13 6 3 2 1 1 1 ...
  auto s = CompileText(
      "{max_lr: 1.0, warm_restarts: {period: 100, period_mult: 0.5}}");
  const int64_t lengths[] = {100, 50, 25, 13, 6, 3, 2};
  int64_t start = 0;
  for (int k = 0; k < 7; ++k) {
    StepResult r = s->At(start);
    EXPECT_EQ(r.cycle, k);
    EXPECT_EQ(r.cycle_length, lengths[k]) << k;
    EXPECT_EQ(r.restart, k > 0);
    EXPECT_TRUE(s->At(start + lengths[k] - 1).snapshot);
    start += lengths[k];
  }
  EXPECT_EQ(start, 199);
  for (int64_t t : {int64_t{199}, int64_t{200}, int64_t{5000}, kMaxStep}) {
    StepResult r = s->At(t);
    EXPECT_EQ(r.cycle, 7 + (t - 199));
    EXPECT_EQ(r.cycle_length, 1);
    EXPECT_TRUE(r.restart);
    EXPECT_TRUE(r.snapshot);
    EXPECT_EQ(r.lr, 1.0);
  }
}

TEST(WarmRestartsTest, RealPeriodMultRoundsEachCycle) {
  // timm/Keras accept real multipliers; cycle k lasts round(10 * 1.5^k).
  auto s = CompileText(
      "{max_lr: 1.0, warm_restarts: {period: 10, period_mult: 1.5}}");
  int64_t start = 0;
  for (int k = 0; k < 20; ++k) {
    auto len = static_cast<int64_t>(std::llround(10 * std::pow(1.5, k)));
    EXPECT_EQ(s->At(start).cycle, k);
    EXPECT_EQ(s->At(start).cycle_length, len);
    start += len;
  }
}

TEST(WarmRestartsTest, RealLengthsKeepRealCycleStarts) {
  // timm cycle_mul / Keras t_mul: cycles of 10, 15, 22.5, 33.75 steps
  // starting at 0, 10, 25, 47.5, 81.25; a cycle owns the steps at or after
  // its real start, and the position in it is real (timm's t_cur / t_i).
  auto s = CompileText(
      "{max_lr: 1.0, warm_restarts: {period: 10, period_mult: 1.5, "
      "cycle_lengths: REAL}}");
  const int64_t starts[] = {0, 10, 25, 48, 82};
  const int64_t lengths[] = {10, 15, 23, 34};
  for (int k = 0; k < 4; ++k) {
    StepResult first = s->At(starts[k]);
    EXPECT_EQ(first.cycle, k);
    EXPECT_EQ(first.step_in_cycle, 0);
    EXPECT_EQ(first.cycle_length, lengths[k]);
    EXPECT_EQ(first.restart, k > 0);
    EXPECT_TRUE(s->At(starts[k + 1] - 1).snapshot);
  }
  // The reproducer: step 47 is 0.00122 in timm (0.00466 rounded).
  const double x = 47 - 25.0, len = 22.5;
  EXPECT_EQ(s->At(47).lr, (1 + std::cos(M_PI * x / len)) / 2);
  EXPECT_NEAR(s->At(47).lr, 0.0012179748700879, 1e-15);
  // Starting mid-way (47.5), cycle 3 is not at its peak on its first step.
  EXPECT_NEAR(s->At(48).lr, 0.99945855566926, 1e-13);
  // The integer law, the default, is unchanged.
  auto rounded = CompileText(
      "{max_lr: 1.0, warm_restarts: {period: 10, period_mult: 1.5}}");
  EXPECT_NEAR(rounded->At(47).lr, 0.004657, 1e-6);
}

TEST(WarmRestartsTest, RealLengthsShrinkingNeedMaxCycles) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, warm_restarts: {period: 20, period_mult: "
      "0.5, cycle_lengths: REAL, max_cycles: 4}}");
  // 20, 10, 5, 2.5 steps: starts 0, 20, 30, 35, hold from 37.5 -> 38.
  EXPECT_TRUE(s->At(30).restart);
  EXPECT_TRUE(s->At(35).restart);
  EXPECT_EQ(s->At(37).cycle_length, 3);
  EXPECT_EQ(s->At(38).phase, v1::HOLD);
  EXPECT_EQ(s->At(38).lr, 0.1);
  EXPECT_EQ(s->SettlesAt(), 38);
}

TEST(WarmRestartsTest, AmplitudeLawDecaysTheCosineNotThePeak) {
  // Keras CosineDecayRestarts(1.0, 10, t_mul=2, m_mul=0.5, alpha=0.1):
  // lr = (1 - alpha) * m_mul^i * c + alpha. The example: 0.55 at
  // step 10 (the peak law gives 0.5) and 0.325 at step 30.
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, warm_restarts: {period: 10, period_mult: "
      "2, peak_decay: 0.5, decay_law: AMPLITUDE}}");
  EXPECT_DOUBLE_EQ(s->At(10).lr, 0.55);
  EXPECT_DOUBLE_EQ(s->At(30).lr, 0.325);
  EXPECT_NEAR(s->At(29).lr, 0.102770123366094, 1e-14);
  auto peak = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, warm_restarts: {period: 10, period_mult: "
      "2, peak_decay: 0.5}}");
  EXPECT_EQ(peak->At(10).lr, 0.5);
}

TEST(WarmRestartsTest, GrowingPeaksNeedMaxCycles) {
  // Keras m_mul > 1: each cycle's amplitude grows; bounded by max_cycles.
  auto s = CompileText(
      "{max_lr: 0.1, min_lr: 0.01, warm_restarts: {period: 5, peak_decay: "
      "1.5, max_cycles: 3, decay_law: AMPLITUDE}}");
  EXPECT_DOUBLE_EQ(s->At(0).lr, 0.1);
  EXPECT_DOUBLE_EQ(s->At(5).lr, 0.01 + 0.09 * 1.5);
  EXPECT_DOUBLE_EQ(s->At(10).lr, 0.01 + 0.09 * 2.25);
  EXPECT_EQ(s->At(15).lr, 0.01);  // max_cycles reached: holds min_lr
  for (int64_t t = 0; t < 20; ++t) EXPECT_LE(s->At(t).lr, s->At(10).lr);
}

TEST(WarmRestartsTest, MaxCyclesThenHoldMinLr) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, warm_restarts: {period: 10, period_mult: 2, "
      "max_cycles: 2}}");
  EXPECT_EQ(s->At(29).phase, v1::ANNEAL);
  EXPECT_TRUE(s->At(29).snapshot);
  StepResult hold = s->At(30);
  EXPECT_EQ(hold.phase, v1::HOLD);
  EXPECT_EQ(hold.lr, 0.1);
  EXPECT_FALSE(hold.restart);
  EXPECT_EQ(hold.cycle, 1);
  EXPECT_EQ(s->At(kMaxStep).lr, 0.1);
  EXPECT_EQ(s->SettlesAt(), 30);
}

TEST(WarmRestartsTest, PeakDecayScalesPeaksNotTheFloor) {
  // timm cycle_decay semantics: lr = min + (max*d^k - min) * cos-part.
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.1, warm_restarts: {period: 10, peak_decay: "
      "0.5}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_EQ(s->At(10).lr, 0.5);
  EXPECT_EQ(s->At(20).lr, 0.25);
  EXPECT_DOUBLE_EQ(s->At(15).lr, 0.1 + (0.5 - 0.1) * 0.5);
}

TEST(WarmRestartsTest, WarmupEveryCycleRampsToEachPeak) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.0, warmup: {steps: 4, start_lr: 0.0, "
      "every_cycle: "
      "true}, warm_restarts: {period: 10, period_mult: 2, peak_decay: 0.5}}");
  // Cycle 0: [0, 14), cycle 1: [14, 38): 4 warmup + 20 anneal steps.
  EXPECT_EQ(s->At(0).lr, 0.0);
  EXPECT_EQ(s->At(0).phase, v1::WARMUP);
  EXPECT_EQ(s->At(2).lr, 0.5);
  EXPECT_EQ(s->At(4).lr, 1.0);
  EXPECT_EQ(s->At(4).phase, v1::ANNEAL);
  EXPECT_TRUE(s->At(13).snapshot);
  StepResult r = s->At(14);
  EXPECT_TRUE(r.restart);
  EXPECT_EQ(r.cycle_length, 24);
  EXPECT_EQ(r.lr, 0.0);
  EXPECT_EQ(s->At(16).lr, 0.25);  // half way to the decayed peak 0.5
  EXPECT_EQ(s->At(18).lr, 0.5);
  EXPECT_TRUE(s->At(37).snapshot);
  EXPECT_TRUE(s->At(38).restart);
}

TEST(WarmRestartsTest, LinearShape) {
  auto s = CompileText(
      "{max_lr: 1.0, min_lr: 0.0, warm_restarts: {period: 4, shape: linear}}");
  EXPECT_EQ(s->At(0).lr, 1.0);
  EXPECT_EQ(s->At(1).lr, 0.75);
  EXPECT_EQ(s->At(3).lr, 0.25);
  EXPECT_EQ(s->At(4).lr, 1.0);
}

TEST(WarmRestartsTest, PeriodMultTooCloseToOneIsRejectedUnlessLimited) {
  std::string err = CompileError(Sgdr(100, 1.00001));
  EXPECT_NE(err.find("warm_restarts.period_mult:"), std::string::npos) << err;
  EXPECT_EQ(CompileError(Sgdr(100, 1.00001, ", max_cycles: 1000")), "");
}

TEST(WarmRestartsTest, RangeEqualsAtBitForBit) {
  std::mt19937_64 rng(7);
  for (const char* text :
       {"{max_lr: 0.3, min_lr: 0.001, warm_restarts: {period: 7, period_mult: "
        "1.7, "
        "peak_decay: 0.9}, momentum: {base: 0.8, max: 0.95}}",
        "{max_lr: 0.3, warmup: {steps: 3, every_cycle: true, shape: cosine}, "
        "warm_restarts: {period: 5, period_mult: 0.8, max_cycles: 9}}"}) {
    auto s = CompileText(text);
    for (int64_t start : {int64_t{0}, int64_t{13}, int64_t{997}}) {
      int64_t t = start;
      ASSERT_TRUE(
          s->EvaluateRange(start, 500, StepQuery{}, [&](const StepResult& r) {
             StepResult a = s->At(t++);
             ASSERT_EQ(r.lr, a.lr);
             ASSERT_EQ(r.momentum, a.momentum);
             ASSERT_EQ(r.beta1_bias_correction, a.beta1_bias_correction);
             ASSERT_EQ(r.cycle, a.cycle);
             ASSERT_EQ(r.restart, a.restart);
             ASSERT_EQ(r.snapshot, a.snapshot);
           }).ok());
    }
  }
}

}  // namespace
}  // namespace anneal
