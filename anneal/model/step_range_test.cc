// The step-range codec: every field of every step survives packing and
// unpacking, bit for bit, in both encodings (repeated fields, and the raw
// little-endian bytes a request with raw_arrays gets, and the runs of one
// with compact); malformed raw arrays and runs
// are an error, not a crash.
#include "anneal/model/step_range.h"

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "anneal/engine/schedule.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

std::vector<StepResult> Evaluate(const char* spec, int64_t start, int64_t count,
                                 v1::StepRange* range) {
  auto schedule = Schedule::Compile(SpecFromText(spec));
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  std::vector<StepResult> steps;
  StepRangeBuilder builder(start, count, range);
  EXPECT_TRUE((*schedule)
                  ->EvaluateRange(start, count, StepQuery(),
                                  [&](const StepResult& r) {
                                    steps.push_back(r);
                                    builder.Add(r);
                                  })
                  .ok());
  return steps;
}

void ExpectSame(const std::vector<StepResult>& got,
                const std::vector<StepResult>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].step, want[i].step);
    EXPECT_EQ(got[i].lr, want[i].lr) << i;
    EXPECT_EQ(got[i].cycle, want[i].cycle) << i;
    EXPECT_EQ(got[i].step_in_cycle, want[i].step_in_cycle) << i;
    EXPECT_EQ(got[i].cycle_length, want[i].cycle_length) << i;
    EXPECT_EQ(got[i].phase, want[i].phase) << i;
    EXPECT_EQ(got[i].restart, want[i].restart) << i;
    EXPECT_EQ(got[i].snapshot, want[i].snapshot) << i;
    EXPECT_EQ(got[i].has_momentum, want[i].has_momentum) << i;
    if (want[i].has_momentum) {
      EXPECT_EQ(got[i].momentum, want[i].momentum) << i;
      EXPECT_EQ(got[i].beta1_bias_correction, want[i].beta1_bias_correction)
          << i;
    }
  }
}

TEST(StepRangeTest, BothEncodingsCarryEveryFieldBitForBit) {
  for (const char* spec :
       {"{max_lr: 0.1, min_lr: 1e-4, warm_restarts: {period: 10, "
        "period_mult: 2}}",
        "{max_lr: 0.1, warmup: {steps: 5}, warm_restarts: {period: 7}, "
        "momentum: {base: 0.85, max: 0.95}}"}) {
    v1::StepRange range;
    const std::vector<StepResult> want = Evaluate(spec, 3, 500, &range);
    auto packed = UnpackStepRange(range);
    ASSERT_TRUE(packed.ok()) << packed.status();
    ExpectSame(*packed, want);

    MoveToRawArrays(&range);
    EXPECT_EQ(range.lr_size(), 0);
    EXPECT_EQ(range.flags_size(), 0);
    EXPECT_EQ(range.lr_raw().size(), 500 * sizeof(double));
    EXPECT_EQ(range.flags_raw().size(), 500 * sizeof(uint32_t));
    EXPECT_EQ(range.momentum_raw().empty(), !want[0].has_momentum);
    v1::StepRange wire;
    ASSERT_TRUE(wire.ParseFromString(range.SerializeAsString()));
    auto raw = UnpackStepRange(wire);
    ASSERT_TRUE(raw.ok()) << raw.status();
    ExpectSame(*raw, want);
  }
}

TEST(StepRangeTest, CompactRunsCarryEveryFieldBitForBit) {
  // Long cycles: runs are the smaller encoding. Period 1 with momentum:
  // every step is a run of its own, so the arrays are kept.
  for (const char* spec :
       {"{max_lr: 0.1, min_lr: 1e-4, warm_restarts: {period: 10, "
        "period_mult: 2}}",
        "{max_lr: 0.1, warmup: {steps: 5}, warm_restarts: {period: 7}, "
        "momentum: {base: 0.85, max: 0.95}}",
        "{max_lr: 0.1, one_cycle: {total_steps: 300}}",
        "{max_lr: 0.1, warm_restarts: {period: 1}, "
        "momentum: {base: 0.85, max: 0.95}}"}) {
    SCOPED_TRACE(spec);
    v1::StepRange range;
    const std::vector<StepResult> want = Evaluate(spec, 3, 500, &range);
    MoveToCompactArrays(&range);
    EXPECT_EQ(range.lr_size(), 0);
    EXPECT_EQ(range.lr_raw().size(), 500 * sizeof(double));
    const bool runs = !range.runs_raw().empty();
    EXPECT_EQ(runs, range.flags_raw().empty());
    EXPECT_EQ(runs, range.cycle_raw().empty());
    if (runs) {
      EXPECT_LT(range.runs_raw().size(), 500 * 28);
      EXPECT_EQ(range.runs_raw().size() % 40, 0);
    }
    v1::StepRange wire;
    ASSERT_TRUE(wire.ParseFromString(range.SerializeAsString()));
    auto unpacked = UnpackStepRange(wire);
    ASSERT_TRUE(unpacked.ok()) << unpacked.status();
    ExpectSame(*unpacked, want);
  }
  // Momentum cycled over a long range: the bias correction reaches 1 and
  // stays there, so it goes as runs; the momentum itself cycles with the
  // LR and stays an array.
  v1::StepRange long_range;
  const std::vector<StepResult> want = Evaluate(
      "{max_lr: 0.1, one_cycle: {total_steps: 5000}, "
      "momentum: {base: 0.85, max: 0.95}}",
      0, 5000, &long_range);
  MoveToCompactArrays(&long_range);
  EXPECT_TRUE(long_range.beta1_bias_correction_raw().empty());
  EXPECT_FALSE(long_range.beta1_bias_correction_runs_raw().empty());
  EXPECT_LT(long_range.beta1_bias_correction_runs_raw().size(), 5000 * 8 / 2);
  EXPECT_TRUE(long_range.momentum_runs_raw().empty());
  EXPECT_EQ(long_range.momentum_raw().size(), 5000 * 8);
  v1::StepRange wire;
  ASSERT_TRUE(wire.ParseFromString(long_range.SerializeAsString()));
  auto unpacked = UnpackStepRange(wire);
  ASSERT_TRUE(unpacked.ok()) << unpacked.status();
  ExpectSame(*unpacked, want);
  v1::StepRange bad = wire;
  bad.mutable_beta1_bias_correction_runs_raw()->resize(16);  // one run only
  EXPECT_EQ(UnpackStepRange(bad).status().code(), absl::StatusCode::kInternal);

  v1::StepRange per_step;
  Evaluate("{max_lr: 0.1, warm_restarts: {period: 1}}", 0, 50, &per_step);
  MoveToCompactArrays(&per_step);
  EXPECT_TRUE(per_step.runs_raw().empty());  // 50 runs: bigger than arrays
}

TEST(StepRangeTest, RunsThatDoNotCoverTheRangeAreAnError) {
  v1::StepRange range;
  Evaluate("{max_lr: 0.1, cosine: {period: 100}}", 0, 100, &range);
  MoveToCompactArrays(&range);
  ASSERT_FALSE(range.runs_raw().empty());
  v1::StepRange partial = range;
  partial.mutable_runs_raw()->pop_back();  // not a whole run
  EXPECT_EQ(UnpackStepRange(partial).status().code(),
            absl::StatusCode::kInternal);
  v1::StepRange longer = range;
  int64_t steps = 0;
  std::memcpy(&steps, longer.runs_raw().data(), sizeof(steps));
  steps += 1;  // one step past the range's learning rates
  std::memcpy(longer.mutable_runs_raw()->data(), &steps, sizeof(steps));
  EXPECT_EQ(UnpackStepRange(longer).status().code(),
            absl::StatusCode::kInternal);
  v1::StepRange huge = range;
  steps = INT64_MAX;  // a hostile length must not allocate
  std::memcpy(huge.mutable_runs_raw()->data(), &steps, sizeof(steps));
  EXPECT_EQ(UnpackStepRange(huge).status().code(), absl::StatusCode::kInternal);
  v1::StepRange both = range;
  both.set_flags_raw(std::string(400, '\0'));
  EXPECT_EQ(UnpackStepRange(both).status().code(), absl::StatusCode::kInternal);
}

TEST(StepRangeTest, MalformedRawArraysAreAnError) {
  v1::StepRange range;
  Evaluate("{max_lr: 0.1, cosine: {period: 10}}", 0, 10, &range);
  MoveToRawArrays(&range);
  v1::StepRange partial = range;
  partial.mutable_lr_raw()->pop_back();  // not a whole double
  EXPECT_EQ(UnpackStepRange(partial).status().code(),
            absl::StatusCode::kInternal);
  v1::StepRange short_one = range;
  short_one.mutable_cycle_raw()->resize(8 * 9);  // one step short
  EXPECT_EQ(UnpackStepRange(short_one).status().code(),
            absl::StatusCode::kInternal);
  v1::StepRange both = range;
  both.add_lr(0.1);
  EXPECT_EQ(UnpackStepRange(both).status().code(), absl::StatusCode::kInternal);
}

}  // namespace
}  // namespace anneal
