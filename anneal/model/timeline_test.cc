// Timelines and their edits: an edit reuses the compiled parts before it
// (so its cost does not grow with history, even with momentum, whose
// bias-correction table is the costly part of a compile), a RESTART shares
// the compiled spec it restarts, and an appended timeline evaluates exactly
// as one built from scratch.
#include "anneal/model/timeline.h"

#include <memory>
#include <string>

#include "anneal/model/testing/created_schedule.h"
#include "anneal/model/timeline_edit.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

constexpr char kMomentumSpec[] =
    "{max_lr: 0.1, min_lr: 0.001, warm_restarts: {period: 10}, momentum: "
    "{base: 0.85, max: 0.9999}}";

void ExpectSameLrs(const Timeline& a, const Timeline& b, int64_t count) {
  std::vector<double> lrs;
  ASSERT_TRUE(a.EvaluateRange(0, count, StepQuery{}, [&](const StepResult& r) {
                 lrs.push_back(r.lr);
               }).ok());
  size_t i = 0;
  ASSERT_TRUE(b.EvaluateRange(0, count, StepQuery{}, [&](const StepResult& r) {
                 EXPECT_EQ(r.lr, lrs[i]) << "step " << i;
                 ++i;
               }).ok());
}

TEST(TimelineTest, RestartsShareTheCompiledSpecTheyRestart) {
  v1::Schedule s = CreatedSchedule(kMomentumSpec);
  auto timeline = CompiledTimeline(s);
  const int64_t one = timeline->table_bytes();
  for (int64_t at = 5; at <= 500; at += 5) {
    ChangeStamp stamp;
    ApplySegment(RestartSegment(s, *timeline, at, stamp), &s);
    timeline = Timeline::Append(*timeline, s.timeline(s.timeline_size() - 1),
                                timeline->compiled(timeline->SegmentAt(at)));
  }
  ASSERT_EQ(timeline->size(), 101u);
  for (size_t i = 1; i < timeline->size(); ++i) {
    EXPECT_EQ(timeline->compiled(i), timeline->compiled(0)) << i;
  }
  EXPECT_EQ(timeline->table_bytes(), one);  // 101 segments, one table
  // Built from the protos, the sharing is found again.
  auto rebuilt = CompiledTimeline(s);
  EXPECT_EQ(rebuilt->table_bytes(), one);
  ExpectSameLrs(*timeline, *rebuilt, 2000);
}

TEST(TimelineTest, AnEditKeepsTheCompiledPartsBeforeIt) {
  v1::Schedule s = CreatedSchedule(kMomentumSpec);
  auto timeline = CompiledTimeline(s);
  for (int i = 1; i <= 50; ++i) {
    const std::string spec =
        "{max_lr: " + std::to_string(0.1 + 0.001 * i) +
        ", warm_restarts: {period: 10}, momentum: {base: 0.85, max: 0.9999}}";
    auto compiled = Schedule::Compile(SpecFromText(spec));
    ASSERT_TRUE(compiled.ok());
    ChangeStamp stamp;
    const int64_t from = 20 * i;
    v1::Segment segment = UpdateSegment(s, *timeline, from, SpecFromText(spec),
                                        **compiled, stamp);
    ApplySegment(segment, &s);
    auto next = Timeline::Append(*timeline, segment, *compiled);
    ASSERT_EQ(next->size(), timeline->size() + 1);
    for (size_t k = 0; k < timeline->size(); ++k) {
      EXPECT_EQ(next->compiled(k), timeline->compiled(k));  // not recompiled
    }
    timeline = next;
  }
  ExpectSameLrs(*timeline, *CompiledTimeline(s), 3000);
}

TEST(TimelineTest, AnEditReplacesTheSegmentsFromItsStepOn) {
  v1::Schedule s = CreatedSchedule("{max_lr: 0.1, cosine: {period: 100}}");
  auto timeline = CompiledTimeline(s);
  ChangeStamp stamp;
  for (int64_t at : {30, 60, 90}) {
    ApplySegment(RestartSegment(s, *timeline, at, stamp), &s);
    timeline = CompiledTimeline(s);
  }
  ASSERT_EQ(s.timeline_size(), 4);
  // A restart at 50 drops the ones at 60 and 90 (not served yet).
  v1::Segment at50 = RestartSegment(s, *timeline, 50, stamp);
  ApplySegment(at50, &s);
  auto appended = Timeline::Append(*timeline, at50, timeline->compiled(0));
  ASSERT_EQ(s.timeline_size(), 3);
  EXPECT_EQ(s.timeline(2).from_step(), 50);
  EXPECT_EQ(appended->size(), 3u);
  EXPECT_EQ(appended->At(50).cycle, 2);  // the restarts at 30 and 50
  EXPECT_TRUE(appended->At(50).restart);
  EXPECT_TRUE(appended->At(49).snapshot);
  ExpectSameLrs(*appended, *CompiledTimeline(s), 500);
}

TEST(TimelineTest, ReplacedSegmentsStayInTheHistoryWithoutTheirSpecs) {
  v1::Schedule s = CreatedSchedule("{max_lr: 0.1, cosine: {period: 100}}");
  auto timeline = CompiledTimeline(s);
  ChangeStamp update{2, "alice", "smaller", {}};
  auto compiled =
      Schedule::Compile(SpecFromText("{max_lr: 0.05, constant: {}}"));
  ASSERT_TRUE(compiled.ok());
  ApplySegment(UpdateSegment(s, *timeline, 40,
                             SpecFromText("{max_lr: 0.05, constant: {}}"),
                             **compiled, update),
               &s);
  timeline = CompiledTimeline(s);
  // A restart at the same step (nothing served in between) replaces the
  // UPDATE's segment, and takes its spec; the history keeps who changed it.
  ChangeStamp restart{3, "bob", "plateau", {}};
  ApplySegment(RestartSegment(s, *timeline, 40, restart), &s);
  ASSERT_EQ(s.timeline_size(), 2);
  EXPECT_EQ(s.timeline(1).kind(), v1::Segment::RESTART);
  EXPECT_EQ(s.timeline(1).spec().max_lr(), 0.05);
  ASSERT_EQ(s.superseded_size(), 1);
  const v1::Segment& gone = s.superseded(0);
  EXPECT_EQ(gone.kind(), v1::Segment::UPDATE);
  EXPECT_EQ(gone.from_step(), 40);
  EXPECT_EQ(gone.revision(), 2);
  EXPECT_EQ(gone.actor(), "alice");
  EXPECT_EQ(gone.reason(), "smaller");
  EXPECT_EQ(gone.replaced_by_revision(), 3);
  EXPECT_FALSE(gone.has_spec());
  // Only the latest kMaxSupersededSegments are kept, oldest dropped first.
  for (int i = 0; i < kMaxSupersededSegments + 5; ++i) {
    timeline = CompiledTimeline(s);
    ChangeStamp again{4 + i, "carol", std::to_string(i), {}};
    ApplySegment(RestartSegment(s, *timeline, 40, again), &s);
  }
  ASSERT_EQ(s.superseded_size(), kMaxSupersededSegments);
  EXPECT_EQ(s.superseded(kMaxSupersededSegments - 1).reason(),
            std::to_string(kMaxSupersededSegments + 3));
  EXPECT_EQ(s.timeline_size(), 2);
}

TEST(TimelineTest, UpdatesContinueTheCycleInProgress) {
  v1::Schedule s =
      CreatedSchedule("{max_lr: 0.1, warm_restarts: {period: 10}}");
  auto timeline = CompiledTimeline(s);
  ChangeStamp stamp;
  const v1::ScheduleSpec spec =
      SpecFromText("{max_lr: 0.05, warm_restarts: {period: 10}}");
  auto compiled = Schedule::Compile(spec);
  ASSERT_TRUE(compiled.ok());
  // Mid-cycle (step 25 is in cycle 2): same clock, same cycle.
  v1::Segment mid = UpdateSegment(s, *timeline, 25, spec, **compiled, stamp);
  EXPECT_EQ(mid.time_origin(), 0);
  EXPECT_EQ(mid.cycle_offset(), 0);
  ApplySegment(mid, &s);
  auto t = CompiledTimeline(s);
  EXPECT_EQ(t->At(25).cycle, 2);
  EXPECT_FALSE(t->At(25).restart);
  EXPECT_EQ(t->At(25).lr, (*compiled)->At(25).lr);
}

TEST(TimelineTest, ChangesNeverTouchAServedStep) {
  EXPECT_TRUE(CheckFutureStep("at_step", 11, 10).ok());
  absl::Status served = CheckFutureStep("at_step", 10, 10);
  EXPECT_EQ(served.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(served.message(),
            "at_step: must be > max_step_served (10) so no LR already served "
            "is rewritten, got 10");
  EXPECT_EQ(CheckFutureStep("at_step", kMaxStep + 1, 10).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace anneal
