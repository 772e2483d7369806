// PlateauPolicy against PyTorch's ReduceLROnPlateau: the LR sequences below
// were printed by torch 1.13 (torch.optim.lr_scheduler.ReduceLROnPlateau,
// SGD lr=0.1, one step(value) per value) and must match bit for bit. The
// end-to-end comparison with torch itself, through a server, is
// tests/python/test_plateau.py.
#include "anneal/engine/plateau.h"

#include <cmath>
#include <limits>
#include <vector>

#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

const double kNan = std::numeric_limits<double>::quiet_NaN();
const std::vector<double> kValues = {0.9,  0.95, 0.9,  0.91, 0.92, 0.89,
                                     0.93, 0.94, 0.95, 0.96, 0.5,  0.6,
                                     0.7,  0.8,  0.9,  kNan, 0.45};

PlateauPolicy PolicyOf(const std::string& text) {
  v1::ScheduleSpec spec = SpecFromText(
      "{max_lr: 0.1, constant: {}, plateau: {metric: \"val_loss\", " + text +
      "}}");
  auto policy = PlateauPolicy::Build(spec.plateau(), spec.max_lr());
  EXPECT_TRUE(policy.ok()) << policy.status();
  return *policy;
}

// The LR after each value (PyTorch: param_groups[0]['lr'] after step(v)),
// starting from 1.0 then kValues.
std::vector<double> LrsOf(const PlateauPolicy& policy) {
  PlateauCounters counters;
  double level = 0.1;
  std::vector<double> lrs;
  int64_t step = 0;
  std::vector<double> values = {1.0};
  values.insert(values.end(), kValues.begin(), kValues.end());
  for (double v : values) {
    if (policy.Count(step++, v, &counters)) {
      if (auto next = policy.Cut(level)) level = *next;
    }
    lrs.push_back(level);
  }
  return lrs;
}

void ExpectBits(const std::vector<double>& got,
                const std::vector<double>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "after value " << i;
  }
}

TEST(PlateauPolicyTest, PatienceAsPyTorch) {
  const double a = 0.1, b = 0.010000000000000002, c = 0.0010000000000000002,
               d = 0.00010000000000000003;
  ExpectBits(LrsOf(PolicyOf("patience: 2")),
             {a, a, a, a, b, b, b, b, b, c, c, c, c, c, d, d, d, d});
}

TEST(PlateauPolicyTest, CooldownAsPyTorch) {
  const double a = 0.1, b = 0.010000000000000002, c = 0.0010000000000000002,
               d = 0.00010000000000000003;
  ExpectBits(LrsOf(PolicyOf("patience: 1, cooldown: 2")),
             {a, a, a, b, b, b, b, b, c, c, c, c, c, d, d, d, d, d});
}

TEST(PlateauPolicyTest, MinLrAsPyTorch) {
  ExpectBits(LrsOf(PolicyOf("patience: 0, factor: 0.5, min_lr: 0.02")),
             {0.1, 0.1, 0.05, 0.025, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02,
              0.02, 0.02, 0.02, 0.02, 0.02, 0.02, 0.02});
}

// Mode MAX with an absolute threshold, down to where eps stops the cuts:
// 1e-8 - 1e-9 is not more than eps = 1e-8.
TEST(PlateauPolicyTest, MaxAbsAndEpsAsPyTorch) {
  const double a = 0.1, b = 0.010000000000000002, c = 0.0010000000000000002,
               d = 0.00010000000000000003, e = 1.0000000000000004e-05,
               f = 1.0000000000000004e-06, g = 1.0000000000000005e-07,
               h = 1.0000000000000005e-08;
  ExpectBits(LrsOf(PolicyOf("mode: MAX, patience: 1, threshold_mode: ABS, "
                            "threshold: 0.01")),
             {a, a, b, b, c, c, d, d, e, e, f, f, g, g, h, h, h, h});
}

TEST(PlateauPolicyTest, AStepIsCountedOnce) {
  PlateauPolicy policy = PolicyOf("patience: 0");
  PlateauCounters counters;
  EXPECT_FALSE(policy.Count(10, 1.0, &counters));
  // The same step again (a retry, another rank) and an older one: ignored.
  EXPECT_FALSE(policy.Count(10, 2.0, &counters));
  EXPECT_FALSE(policy.Count(3, 2.0, &counters));
  EXPECT_EQ(counters.reports, 1);
  EXPECT_EQ(counters.bad_reports, 0);
  auto why = policy.Count(11, 2.0, &counters);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->report_step, 11);
  EXPECT_EQ(why->best, 1.0);
  EXPECT_EQ(why->bad_reports, 1);
  EXPECT_EQ(why->first_bad_step, 11);
  EXPECT_EQ(why->bad_values, std::vector<double>{2.0});
  EXPECT_EQ(counters.decisions, 1);
  EXPECT_EQ(counters.last_step, 11);
}

TEST(PlateauPolicyTest, EvidenceKeepsTheBadRun) {
  PlateauPolicy policy = PolicyOf("patience: 3");
  PlateauCounters counters;
  policy.Count(0, 1.0, &counters);
  policy.Count(1, 1.5, &counters);  // bad
  policy.Count(2, 0.5, &counters);  // better: the run restarts
  EXPECT_TRUE(counters.bad_values.empty());
  EXPECT_EQ(counters.first_bad_step, -1);
  policy.Count(5, 0.6, &counters);
  policy.Count(6, kNan, &counters);  // NaN is never better
  policy.Count(7, 0.7, &counters);
  EXPECT_EQ(counters.first_bad_step, 5);
  auto why = policy.Count(9, 0.8, &counters);
  ASSERT_TRUE(why.has_value());
  EXPECT_EQ(why->best, 0.5);
  EXPECT_EQ(why->bad_reports, 4);
  EXPECT_EQ(why->first_bad_step, 5);
  ASSERT_EQ(why->bad_values.size(), 4u);
  EXPECT_TRUE(std::isnan(why->bad_values[1]));
  EXPECT_TRUE(counters.bad_values.empty());
  EXPECT_EQ(counters.bad_reports, 0);
}

TEST(PlateauPolicyTest, EvidenceIsBounded) {
  PlateauPolicy policy = PolicyOf("patience: 1000");
  PlateauCounters counters;
  policy.Count(0, 0.0, &counters);
  for (int64_t t = 1; t <= 500; ++t) policy.Count(t, 1.0, &counters);
  EXPECT_EQ(counters.bad_reports, 500);
  EXPECT_EQ(counters.bad_values.size(), PlateauPolicy::kMaxBadValues);
  EXPECT_EQ(counters.first_bad_step, 1);
}

TEST(PlateauPolicyTest, RestartAction) {
  EXPECT_FALSE(PolicyOf("").restarts());
  EXPECT_TRUE(PolicyOf("action: RESTART").restarts());
  EXPECT_EQ(PolicyOf("").metric(), "val_loss");
}

}  // namespace
}  // namespace anneal
