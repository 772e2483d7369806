// RecentAdvances: remembers the last `window` answers, a reused request id
// keeps its newer answer and is not forgotten early, Clear forgets all.
#include "anneal/server/registry/recent_advances.h"

#include <string>

#include "gtest/gtest.h"

namespace anneal {
namespace {

TEST(RecentAdvancesTest, RemembersTheLastWindow) {
  RecentAdvances recent(3);
  EXPECT_EQ(recent.Find("a"), nullptr);
  EXPECT_EQ(recent.size(), 0);
  for (const char* id : {"a", "b", "c", "d"}) {
    recent.Remember(id, std::string("answer-") + id);
  }
  EXPECT_EQ(recent.Find("a"), nullptr);
  ASSERT_NE(recent.Find("b"), nullptr);
  EXPECT_EQ(*recent.Find("b"), "answer-b");
  EXPECT_EQ(*recent.Find("d"), "answer-d");
  EXPECT_EQ(recent.size(), 3);
}

TEST(RecentAdvancesTest, AReusedIdKeepsItsNewerAnswerUntilThatAges) {
  RecentAdvances recent(3);
  recent.Remember("a", "first");
  recent.Remember("b", "b");
  recent.Remember("a", "second");  // the client reused an id
  recent.Remember("c", "c");       // ages the first "a" out, not the second
  ASSERT_NE(recent.Find("a"), nullptr);
  EXPECT_EQ(*recent.Find("a"), "second");
  EXPECT_NE(recent.Find("b"), nullptr);  // b, a, c are the last three
  recent.Remember("d", "d");
  EXPECT_EQ(recent.Find("b"), nullptr);
  EXPECT_NE(recent.Find("a"), nullptr);
  recent.Remember("e", "e");
  EXPECT_EQ(recent.Find("a"), nullptr);
  EXPECT_EQ(recent.size(), 3);
}

TEST(RecentAdvancesTest, OneIdUsedForeverStaysBounded) {
  RecentAdvances recent(4);
  for (int i = 0; i < 1000; ++i) recent.Remember("same", std::to_string(i));
  EXPECT_EQ(recent.size(), 1);
  EXPECT_EQ(*recent.Find("same"), "999");
}

TEST(RecentAdvancesTest, ClearForgetsEverything) {
  RecentAdvances recent(4);
  recent.Remember("a", "a");
  recent.Clear();
  EXPECT_EQ(recent.Find("a"), nullptr);
  EXPECT_EQ(recent.size(), 0);
}

}  // namespace
}  // namespace anneal
