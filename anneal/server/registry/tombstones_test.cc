// Tombstones alone: names map to and from their stored form, the newest
// are kept within capacity, and a name removed or deleted again is not
// forgotten for its older entry.
#include "anneal/server/registry/tombstones.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::ElementsAre;
using testing::IsEmpty;

TEST(TombstonesTest, StoredNamesAreNoSchedulesNames) {
  EXPECT_EQ(Tombstones::StoredName("schedules/run-1"), "tombstones/run-1");
  EXPECT_EQ(Tombstones::ScheduleOf("tombstones/run-1"), "schedules/run-1");
  EXPECT_EQ(Tombstones::ScheduleOf("schedules/run-1"), std::nullopt);
  google::protobuf::Timestamp when;
  when.set_seconds(7);
  const v1::Schedule record = Tombstones::Record("schedules/a", 4, when);
  EXPECT_EQ(record.name(), "tombstones/a");
  EXPECT_EQ(record.revision(), 4);
  EXPECT_EQ(record.update_time().seconds(), 7);
  EXPECT_EQ(record.timeline_size(), 0);
}

TEST(TombstonesTest, TheOldestAreForgottenPastCapacity) {
  Tombstones t(2);
  EXPECT_THAT(t.Add("schedules/a", 1), IsEmpty());
  EXPECT_THAT(t.Add("schedules/b", 2), IsEmpty());
  EXPECT_THAT(t.Add("schedules/c", 3), ElementsAre("schedules/a"));
  EXPECT_EQ(t.Revision("schedules/a"), std::nullopt);
  EXPECT_EQ(t.Revision("schedules/c"), 3);
  // b deleted again is the newest now: c goes first.
  EXPECT_THAT(t.Add("schedules/b", 5), IsEmpty());
  EXPECT_THAT(t.Add("schedules/d", 1), ElementsAre("schedules/c"));
  EXPECT_EQ(t.Revision("schedules/b"), 5);
  // A removed name (re-created) is not forgotten again.
  t.Remove("schedules/b");
  EXPECT_THAT(t.Add("schedules/e", 1), IsEmpty());
  EXPECT_EQ(t.size(), 2);
}

TEST(TombstonesTest, ManyRecreatesKeepItSmall) {
  Tombstones t(1);
  for (int i = 0; i < 10'000; ++i) {
    t.Add("schedules/a", i);
    t.Remove("schedules/a");
  }
  EXPECT_EQ(t.size(), 0);
  EXPECT_THAT(t.Add("schedules/b", 1), IsEmpty());
  EXPECT_EQ(t.Revision("schedules/b"), 1);
}

TEST(TombstonesTest, ZeroCapacityRemembersNothing) {
  Tombstones t(0);
  EXPECT_THAT(t.Add("schedules/a", 1), ElementsAre("schedules/a"));
  EXPECT_EQ(t.Revision("schedules/a"), std::nullopt);
}

}  // namespace
}  // namespace anneal
