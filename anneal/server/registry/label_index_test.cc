// LabelIndex: postings by key and by key and value, in name order; Add is a
// union, Retain drops what no kept label set implies, Remove drops a name.
#include "anneal/server/registry/label_index.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using Labels = LabelIndex::Labels;

Labels Of(std::vector<std::pair<std::string, std::string>> pairs) {
  Labels l;
  for (auto& [k, v] : pairs) l[k] = v;
  return l;
}

std::vector<std::string> Names(const LabelIndex& index, const std::string& key,
                               const std::string* value) {
  std::vector<std::string> out;
  if (const LabelIndex::Postings* p = index.Find(key, value)) {
    for (const auto& [name, v] : *p) out.emplace_back(name);
  }
  return out;
}

TEST(LabelIndexTest, FindsByKeyAndByValueInNameOrder) {
  LabelIndex index;
  auto v = std::make_shared<int>(1);
  index.Add("schedules/b", v, Of({{"team", "vision"}, {"env", "prod"}}));
  index.Add("schedules/a", v, Of({{"team", "vision"}}));
  index.Add("schedules/c", v, Of({{"team", "nlp"}}));
  const std::string vision = "vision", nlp = "nlp", other = "x";
  EXPECT_THAT(Names(index, "team", &vision),
              testing::ElementsAre("schedules/a", "schedules/b"));
  EXPECT_THAT(Names(index, "team", &nlp), testing::ElementsAre("schedules/c"));
  EXPECT_THAT(
      Names(index, "team", nullptr),
      testing::ElementsAre("schedules/a", "schedules/b", "schedules/c"));
  EXPECT_THAT(Names(index, "env", nullptr),
              testing::ElementsAre("schedules/b"));
  EXPECT_EQ(index.Find("team", &other), nullptr);
  EXPECT_EQ(index.Find("missing", nullptr), nullptr);
  // A key that is a prefix of another, or a value that looks like a key.
  index.Add("schedules/d", v, Of({{"te", "amvision"}}));
  EXPECT_THAT(Names(index, "team", &vision),
              testing::ElementsAre("schedules/a", "schedules/b"));
  EXPECT_EQ(index.Find("te", &vision), nullptr);
  EXPECT_EQ(index.Find("team", static_cast<std::string*>(nullptr))->size(), 3u);
  EXPECT_EQ(index.Find("te", nullptr)->begin()->second, v);
}

TEST(LabelIndexTest, RetainKeepsWhatMayStillBePublished) {
  LabelIndex index;
  auto v = std::make_shared<int>(1);
  const Labels old_labels = Of({{"team", "a"}, {"round", "1"}});
  index.Add("schedules/x", v, old_labels);
  const Labels pending = Of({{"team", "b"}});
  index.Add("schedules/x", v, pending);  // accepted, not published yet
  const std::string a = "a", b = "b", one = "1";
  EXPECT_EQ(Names(index, "team", &a).size(), 1u);
  EXPECT_EQ(Names(index, "team", &b).size(), 1u);
  // Another change: keep the published and the pending labels, add new.
  const Labels next = Of({{"team", "c"}});
  index.Retain("schedules/x", {&old_labels, &pending, nullptr});
  index.Add("schedules/x", v, next);
  EXPECT_EQ(Names(index, "round", &one).size(), 1u);
  // Once `next` is all there is to publish, the rest goes.
  index.Retain("schedules/x", {&next});
  const std::string c = "c";
  EXPECT_EQ(index.Find("team", &a), nullptr);
  EXPECT_EQ(index.Find("team", &b), nullptr);
  EXPECT_EQ(index.Find("round", nullptr), nullptr);
  EXPECT_EQ(Names(index, "team", &c).size(), 1u);
  EXPECT_EQ(index.size(), 2);  // team:*, team=c
  index.Remove("schedules/x");
  EXPECT_EQ(index.size(), 0);
  EXPECT_EQ(index.Find("team", nullptr), nullptr);
}

TEST(LabelIndexTest, ManyLabelChangesStayBounded) {
  LabelIndex index;
  auto v = std::make_shared<int>(1);
  Labels published = Of({{"round", "0"}});
  index.Add("schedules/x", v, published);
  Labels head = published;
  for (int i = 1; i <= 1000; ++i) {
    Labels next = Of({{"round", std::to_string(i)}});
    index.Retain("schedules/x", {&head, &published});
    index.Add("schedules/x", v, next);
    published = head;  // the previous change is published by now
    head = next;
  }
  EXPECT_LE(index.size(), 5);  // round:*, and at most three values
}

// The index keeps views of names; a name indexed again with another value
// (a reload's new owner) must then view the new owner's copy.
TEST(LabelIndexTest, ANameIndexedAgainViewsItsNewOwner) {
  LabelIndex index;
  auto first = std::make_shared<std::string>("schedules/a-long-name-on-heap");
  index.Add(*first, first, Of({{"team", "a"}, {"env", "prod"}}));
  auto second = std::make_shared<std::string>(*first);
  index.Add(*second, second, Of({{"team", "b"}}));
  first.reset();
  // Likely to reuse the freed copy: a stale view would read x's.
  auto reuse = std::make_shared<std::string>(second->size(), 'x');
  const std::string a = "a", b = "b";
  EXPECT_THAT(Names(index, "team", &a),
              testing::ElementsAre("schedules/a-long-name-on-heap"));
  EXPECT_THAT(Names(index, "team", &b),
              testing::ElementsAre("schedules/a-long-name-on-heap"));
  EXPECT_EQ(index.Find("env", nullptr)->begin()->second, second);
  index.Retain(*second, {});  // keep nothing
  EXPECT_EQ(index.size(), 0);
}

}  // namespace
}  // namespace anneal
