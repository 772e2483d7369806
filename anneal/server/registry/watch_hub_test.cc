// WatchHub alone: catch-up then SYNCED then live events; live events of a
// revision the catch-up already showed are skipped; DELETED reaches
// watchers that knew the name; a watcher more than max_queue behind is
// ended with RESOURCE_EXHAUSTED and its queue dropped; the cap; EndAll.
#include "anneal/server/registry/watch_hub.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::ElementsAre;
using testing::HasSubstr;
using Kind = v1::WatchEvent;

v1::WatchEvent Event(v1::WatchEvent::Kind kind, const std::string& name,
                     int64_t revision) {
  v1::WatchEvent e;
  e.set_kind(kind);
  e.set_name(name);
  e.set_revision(revision);
  return e;
}

// A registry stand-in: name -> revision.
struct Schedules {
  std::map<std::string, int64_t> revisions;
  auto Current() {
    return [this](const std::string& name) -> std::optional<v1::WatchEvent> {
      auto it = revisions.find(name);
      if (it == revisions.end()) return std::nullopt;
      return Event(Kind::CURRENT, name, it->second);
    };
  }
};

std::vector<std::string> Drain(WatchHub::Watcher& w) {
  std::vector<std::string> out;
  while (auto e = w.Pop()) {
    out.push_back(absl::StrCat(Kind::Kind_Name(e->kind()), " ", e->name(), " ",
                               e->revision()));
  }
  return out;
}

TEST(WatchHubTest, CatchUpSyncedThenLiveWithoutRepeats) {
  WatchHub hub({4, 16});
  Schedules s{{{"schedules/a", 3}, {"schedules/b", 1}}};
  int wakes = 0;
  v1::WatchSchedulesRequest request;
  (*request.mutable_since_revisions())["schedules/b"] = 1;  // has it
  (*request.mutable_since_revisions())["schedules/gone"] = 7;
  auto w = hub.Add(request, s.Current(), [&] { ++wakes; });
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(hub.watched());
  EXPECT_FALSE((*w)->Pop());  // nothing before Start
  // Published between Add and the listing: a's revision 3 is also current.
  hub.Publish(Event(Kind::UPDATED, "schedules/a", 3), nullptr);
  (*w)->Start({"schedules/a", "schedules/b"});
  hub.Publish(Event(Kind::UPDATED, "schedules/a", 4), nullptr);
  EXPECT_THAT(Drain(**w),
              ElementsAre("CURRENT schedules/a 3", "DELETED schedules/gone 7",
                          "SYNCED  0", "UPDATED schedules/a 4"));
  EXPECT_GE(wakes, 2);
  // A delete reaches a watcher that knew the schedule, with its revision.
  hub.Publish(Event(Kind::DELETED, "schedules/a", 0), nullptr);
  EXPECT_THAT(Drain(**w), ElementsAre("DELETED schedules/a 4"));
  hub.Remove(*w);
  EXPECT_FALSE(hub.watched());
}

// A schedule that leaves a filter is DELETED to its watchers, live and at
// a resume's catch-up; one that enters it is UPDATED.
TEST(WatchHubTest, LeavingTheFilterIsADelete) {
  WatchHub hub({4, 16});
  google::protobuf::Map<std::string, std::string> vision, nlp;
  vision["team"] = "vision";
  nlp["team"] = "nlp";
  std::map<std::string, const google::protobuf::Map<std::string, std::string>*>
      labels = {{"schedules/a", &vision}, {"schedules/b", &nlp}};
  auto current = [&](const std::string& name) -> std::optional<v1::WatchEvent> {
    auto it = labels.find(name);
    if (it == labels.end()) return std::nullopt;
    v1::WatchEvent e = Event(Kind::CURRENT, name, 2);
    *e.mutable_schedule()->mutable_labels() = *it->second;
    return e;
  };
  v1::WatchSchedulesRequest request;
  request.set_filter("labels.team = \"vision\"");
  (*request.mutable_since_revisions())["schedules/b"] = 1;  // left meanwhile
  auto w = hub.Add(request, current, [] {});
  ASSERT_TRUE(w.ok());
  (*w)->Start({"schedules/a"});
  EXPECT_THAT(Drain(**w), ElementsAre("CURRENT schedules/a 2",
                                      "DELETED schedules/b 1", "SYNCED  0"));
  hub.Publish(Event(Kind::UPDATED, "schedules/a", 3), &nlp);
  hub.Publish(Event(Kind::UPDATED, "schedules/a", 4), &nlp);  // still out
  hub.Publish(Event(Kind::CYCLE, "schedules/a", 4), &nlp);
  hub.Publish(Event(Kind::DELETED, "schedules/a", 0), nullptr);
  EXPECT_THAT(Drain(**w), ElementsAre("DELETED schedules/a 2"));
  hub.Publish(Event(Kind::UPDATED, "schedules/b", 5), &vision);  // enters
  hub.Publish(Event(Kind::UPDATED, "schedules/b", 6), &nlp);     // leaves
  EXPECT_THAT(Drain(**w),
              ElementsAre("UPDATED schedules/b 5", "DELETED schedules/b 5"));
}

TEST(WatchHubTest, AWatcherTooFarBehindIsEnded) {
  WatchHub hub({4, 16});
  Schedules s;
  v1::WatchSchedulesRequest request;
  auto w = hub.Add(request, s.Current(), [] {});
  ASSERT_TRUE(w.ok());
  (*w)->Start({});
  google::protobuf::Map<std::string, std::string> labels;
  for (int i = 1; i <= 17; ++i) {
    hub.Publish(Event(Kind::UPDATED, "schedules/x", i), &labels);
  }
  EXPECT_FALSE((*w)->Pop());  // the queue went with the cut
  ASSERT_TRUE((*w)->ended().has_value());
  EXPECT_TRUE(absl::IsResourceExhausted(*(*w)->ended()));
  EXPECT_THAT((*w)->ended()->message(), HasSubstr("more than 16 events"));
}

TEST(WatchHubTest, TheCapAndEndAll) {
  WatchHub hub({1, 16});
  Schedules s;
  v1::WatchSchedulesRequest request;
  auto first = hub.Add(request, s.Current(), [] {});
  ASSERT_TRUE(first.ok());
  auto second = hub.Add(request, s.Current(), [] {});
  EXPECT_TRUE(absl::IsResourceExhausted(second.status()));
  EXPECT_THAT(second.status().message(), HasSubstr("max_watchers"));
  (*first)->Start({});
  hub.EndAll(absl::UnavailableError("shutting down"));
  EXPECT_TRUE(absl::IsUnavailable(*(*first)->ended()));
  EXPECT_TRUE(
      absl::IsUnavailable(hub.Add(request, s.Current(), [] {}).status()));
}

TEST(WatchHubTest, ABadFilterIsRefused) {
  WatchHub hub({1, 16});
  Schedules s;
  v1::WatchSchedulesRequest request;
  request.set_filter("labels.");
  EXPECT_TRUE(
      absl::IsInvalidArgument(hub.Add(request, s.Current(), [] {}).status()));
}

}  // namespace
}  // namespace anneal
