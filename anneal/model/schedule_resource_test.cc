// The Schedule resource's rules alone: etags follow revisions (not
// positions), update masks select fields or name the bad path, and a new
// schedule holds one CREATE segment.
#include "anneal/model/schedule_resource.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

google::protobuf::Timestamp At(int64_t seconds) {
  google::protobuf::Timestamp t;
  t.set_seconds(seconds);
  return t;
}

v1::Schedule Input() {
  v1::Schedule in;
  in.mutable_spec()->set_max_lr(0.1);
  in.mutable_spec()->mutable_constant();
  in.set_display_name("run 1");
  (*in.mutable_labels())["team"] = "vision";
  return in;
}

TEST(ScheduleResourceTest, ANewScheduleHasOneCreateSegmentAndNothingServed) {
  const v1::Schedule s = NewSchedule("run-1", Input(), "ops", "first", At(7));
  EXPECT_EQ(s.name(), "schedules/run-1");
  EXPECT_EQ(s.revision(), 1);
  EXPECT_EQ(s.max_step_served(), -1);
  EXPECT_EQ(s.state(), v1::Schedule::ACTIVE);
  EXPECT_EQ(s.create_time().seconds(), 7);
  ASSERT_EQ(s.timeline_size(), 1);
  EXPECT_EQ(s.timeline(0).kind(), v1::Segment::CREATE);
  EXPECT_EQ(s.timeline(0).from_step(), 0);
  EXPECT_EQ(s.timeline(0).actor(), "ops");
  EXPECT_EQ(s.timeline(0).reason(), "first");
  EXPECT_EQ(s.timeline(0).revision(), 1);
  EXPECT_EQ(s.labels().at("team"), "vision");
  EXPECT_EQ(s.etag(), Etag(s));
}

TEST(ScheduleResourceTest, EtagsFollowRevisionsNotPositions) {
  v1::Schedule s = NewSchedule("run-1", Input(), "", "", At(7));
  const std::string first = s.etag();
  s.set_position(100);
  EXPECT_EQ(Etag(s), first);
  NextRevision(At(8), &s);
  EXPECT_EQ(s.revision(), 2);
  EXPECT_EQ(s.update_time().seconds(), 8);
  EXPECT_NE(s.etag(), first);
  EXPECT_TRUE(CheckEtag("", s).ok());
  EXPECT_TRUE(CheckEtag(s.etag(), s).ok());
  absl::Status stale = CheckEtag(first, s);
  EXPECT_EQ(stale.code(), absl::StatusCode::kAborted);
  EXPECT_THAT(std::string(stale.message()),
              testing::StartsWith("etag: " + first + " does not match"));
}

TEST(ScheduleResourceTest, UpdateMasksSelectFields) {
  google::protobuf::FieldMask mask;
  auto all_set = FieldsToUpdate(mask, Input());  // empty: what is set
  ASSERT_TRUE(all_set.ok());
  EXPECT_TRUE(all_set->spec && all_set->display_name && all_set->labels);
  v1::Schedule only_name;
  only_name.set_display_name("x");
  auto one = FieldsToUpdate(mask, only_name);
  ASSERT_TRUE(one.ok());
  EXPECT_TRUE(one->display_name && !one->spec && !one->labels);

  mask.add_paths("labels");
  auto labels = FieldsToUpdate(mask, only_name);  // clears the labels
  ASSERT_TRUE(labels.ok());
  EXPECT_TRUE(labels->labels && !labels->display_name);

  mask.add_paths("spec");
  EXPECT_EQ(FieldsToUpdate(mask, only_name).status().message(),
            "schedule.spec: is required when the mask names spec");
  mask.Clear();
  mask.add_paths("*");
  mask.add_paths("position");
  EXPECT_EQ(FieldsToUpdate(mask, Input()).status().message(),
            "update_mask.paths[1]: \"position\" is not updatable (allowed: "
            "spec, display_name, labels, *)");
}

}  // namespace
}  // namespace anneal
