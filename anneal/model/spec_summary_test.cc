// SpecSummary and SpecFamily: the family first with its fields, the LR
// range, the other parts; numbers exact; an empty spec.
#include "anneal/model/spec_summary.h"

#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

TEST(SpecSummaryTest, FamilyRangeAndParts) {
  const v1::ScheduleSpec spec = SpecFromText(
      "{max_lr: 0.1, min_lr: 1e-4, warmup: {steps: 100},"
      " warm_restarts: {period: 10, period_mult: 2}}");
  EXPECT_EQ(SpecFamily(spec), "warm_restarts");
  EXPECT_EQ(SpecSummary(spec),
            "warm_restarts(period 10, period_mult 2), lr 0.1 to 1e-04, "
            "warmup(steps 100)");
}

TEST(SpecSummaryTest, RepeatedFieldsAndExactNumbers) {
  const v1::ScheduleSpec spec = SpecFromText(
      "{max_lr: 0.30000000000000004, step_decay: {milestones: [30, 60],"
      " gamma: 0.5}}");
  EXPECT_EQ(SpecSummary(spec),
            "step_decay(milestones [30 60], gamma 0.5), "
            "lr 0.30000000000000004");
}

TEST(SpecSummaryTest, NoCurve) {
  EXPECT_EQ(SpecFamily(v1::ScheduleSpec()), "none");
  EXPECT_EQ(SpecSummary(v1::ScheduleSpec()), "none");
}

}  // namespace
}  // namespace anneal
