// A plateau policy's reports and decisions on a schedule: counting into the
// stored state, the PLATEAU segment that scales the curve from its step on
// (constant LRs exactly at the level, the cosine's shape kept, restarts and
// cycles untouched), the RESTART action, and a cut under eps making none.
#include "anneal/model/plateau_change.h"

#include <memory>
#include <string>

#include "anneal/model/testing/created_schedule.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

v1::MetricReport Report(int64_t step, const std::string& metric, double v) {
  v1::MetricReport r;
  r.set_step(step);
  (*r.mutable_metrics())[metric] = v;
  return r;
}

// Feeds `values` (one report a step from 0) and applies each decision at
// the step after its report, as the registry does when nothing past the
// report was served.
void Feed(const std::vector<double>& values, v1::Schedule* s) {
  for (size_t i = 0; i < values.size(); ++i) {
    PlateauCount c = CountPlateauReport(
        Report(static_cast<int64_t>(i), "val_loss", values[i]), s);
    ASSERT_TRUE(c.counted);
    if (!c.decision) continue;
    auto timeline = CompiledTimeline(*s);
    auto segment = PlateauDecisionSegment(
        *s, *timeline, static_cast<int64_t>(i) + 1, *c.decision, ChangeStamp{});
    if (segment) ApplySegment(*std::move(segment), s);
  }
}

TEST(PlateauChangeTest, ConstantServesTheLevelExactly) {
  v1::Schedule s = CreatedSchedule(
      "{max_lr: 0.1, constant: {}, plateau: {metric: \"val_loss\", patience: "
      "0}}");
  Feed({1.0, 1.0, 1.0, 1.0}, &s);
  ASSERT_EQ(s.timeline_size(), 4);
  EXPECT_EQ(s.timeline(1).kind(), v1::Segment::PLATEAU);
  EXPECT_EQ(s.timeline(1).from_step(), 2);
  auto t = CompiledTimeline(s);
  EXPECT_EQ(t->At(1).lr, 0.1);
  // PyTorch: 0.1 * 0.1, then that * 0.1: each the product of the one before.
  EXPECT_EQ(t->At(2).lr, 0.1 * 0.1);
  EXPECT_EQ(t->At(3).lr, 0.1 * 0.1 * 0.1);
  EXPECT_EQ(t->At(4).lr, 0.1 * 0.1 * 0.1 * 0.1);
  const v1::PlateauDecision& why = s.timeline(1).plateau();
  EXPECT_EQ(why.metric(), "val_loss");
  EXPECT_EQ(why.report_step(), 1);
  EXPECT_EQ(why.best(), 1.0);
  EXPECT_EQ(why.old_level(), 0.1);
  EXPECT_EQ(why.new_level(), 0.1 * 0.1);
  EXPECT_EQ(s.timeline(1).reason(),
            "plateau: val_loss did not improve on 1 for 1 reports (steps 1 to "
            "1: 1) > patience 0; peak LR 0.1 -> 0.01");
  EXPECT_EQ(s.plateau_state().decisions(), 3);
  EXPECT_EQ(s.plateau_state().last_step(), 3);
}

TEST(PlateauChangeTest, ScalesTheWholeCurveAndKeepsItsCycles) {
  const std::string spec =
      "{max_lr: 1, min_lr: 0.1, warm_restarts: {period: 10}, plateau: "
      "{metric: \"val_loss\", patience: 0, factor: 0.5}}";
  v1::Schedule s = CreatedSchedule(spec);
  Feed({1.0, 2.0}, &s);  // a cut from step 2
  ASSERT_EQ(s.timeline_size(), 2);
  auto scaled = CompiledTimeline(s);
  auto plain = CompiledTimeline(CreatedSchedule(spec));
  for (int64_t t = 0; t < 40; ++t) {
    const StepResult a = plain->At(t), b = scaled->At(t);
    EXPECT_EQ(b.lr, t < 2 ? a.lr : a.lr / 1.0 * 0.5) << t;
    EXPECT_EQ(b.cycle, a.cycle) << t;
    EXPECT_EQ(b.restart, a.restart) << t;
    EXPECT_EQ(b.snapshot, a.snapshot) << t;
  }
  // The peak of the next cycle is the level, exactly.
  EXPECT_EQ(scaled->At(10).lr, 0.5);
}

TEST(PlateauChangeTest, RestartActionKeepsTheLevel) {
  v1::Schedule s = CreatedSchedule(
      "{max_lr: 1, cosine: {period: 100}, plateau: {metric: \"val_loss\", "
      "patience: 1, action: RESTART}}");
  Feed({1.0, 1.0, 1.0}, &s);  // the third report decides: restart at 3
  ASSERT_EQ(s.timeline_size(), 2);
  EXPECT_EQ(s.timeline(1).kind(), v1::Segment::RESTART);
  EXPECT_EQ(s.timeline(1).from_step(), 3);
  EXPECT_EQ(s.timeline(1).lr_level(), 0);
  EXPECT_EQ(s.timeline(1).plateau().new_level(), 1.0);
  auto t = CompiledTimeline(s);
  EXPECT_TRUE(t->At(3).restart);
  EXPECT_EQ(t->At(3).lr, 1.0);
  EXPECT_TRUE(t->At(2).snapshot);
}

TEST(PlateauChangeTest, ARestartAfterACutKeepsTheCut) {
  v1::Schedule s = CreatedSchedule(
      "{max_lr: 1, cosine: {period: 100}, plateau: {metric: \"val_loss\", "
      "patience: 0, factor: 0.5}}");
  Feed({1.0, 1.0}, &s);
  auto t = CompiledTimeline(s);
  v1::Segment restart = RestartSegment(s, *t, 50, ChangeStamp{});
  EXPECT_EQ(restart.lr_level(), 0.5);
  ApplySegment(std::move(restart), &s);
  EXPECT_EQ(CompiledTimeline(s)->At(50).lr, 0.5);
}

TEST(PlateauChangeTest, ACutUnderEpsMakesNoSegment) {
  v1::Schedule s = CreatedSchedule(
      "{max_lr: 0.1, constant: {}, plateau: {metric: \"val_loss\", patience: "
      "0, min_lr: 0.1}}");
  Feed({1.0, 1.0, 1.0}, &s);
  EXPECT_EQ(s.timeline_size(), 1);
  EXPECT_EQ(s.plateau_state().decisions(), 2);  // decided, nothing to cut
}

TEST(PlateauChangeTest, OnlyNewStepsWithTheMetricCount) {
  v1::Schedule s = CreatedSchedule(
      "{max_lr: 0.1, constant: {}, plateau: {metric: \"val_loss\"}}");
  EXPECT_FALSE(CountPlateauReport(Report(5, "loss", 1.0), &s).counted);
  EXPECT_FALSE(s.has_plateau_state());
  EXPECT_TRUE(CountPlateauReport(Report(0, "val_loss", 1.0), &s).counted);
  EXPECT_FALSE(CountPlateauReport(Report(0, "val_loss", 9.0), &s).counted);
  EXPECT_EQ(s.plateau_state().best(), 1.0);
  EXPECT_EQ(s.plateau_state().last_step(), 0);
  v1::Schedule plain = CreatedSchedule("{max_lr: 0.1, constant: {}}");
  EXPECT_FALSE(CountPlateauReport(Report(0, "val_loss", 1.0), &plain).counted);
}

}  // namespace
}  // namespace anneal
