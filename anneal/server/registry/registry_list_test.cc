// ListSchedules with label filters, through the label index, against a model
// of what every schedule's labels are: after creates, label updates and
// deletes, over every page, and after the registry is reloaded from its
// store.
#include <map>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using Labels = std::map<std::string, std::string>;

class RegistryListTest : public testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    registry_ = std::make_unique<TestRegistry>(store_.get());
    ASSERT_TRUE((*registry_)->Load().ok());
  }

  void Create(const std::string& id, const Labels& labels) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.1, constant: {}}");
    for (const auto& [k, v] : labels) {
      (*req.mutable_schedule()->mutable_labels())[k] = v;
    }
    ASSERT_TRUE((Wait<v1::Schedule>(**registry_, &Registry::Create, req)).ok());
    model_["schedules/" + id] = labels;
  }
  void SetLabels(const std::string& name, const Labels& labels) {
    v1::UpdateScheduleRequest req;
    req.mutable_schedule()->set_name(name);
    for (const auto& [k, v] : labels) {
      (*req.mutable_schedule()->mutable_labels())[k] = v;
    }
    req.mutable_update_mask()->add_paths("labels");
    ASSERT_TRUE((Wait<v1::Schedule>(**registry_, &Registry::Update, req)).ok());
    model_[name] = labels;
  }
  void Delete(const std::string& name) {
    v1::DeleteScheduleRequest req;
    req.set_name(name);
    ASSERT_TRUE(
        (Wait<google::protobuf::Empty>(**registry_, &Registry::Delete, req))
            .ok());
    model_.erase(name);
  }

  // Every page of the filter, in order.
  std::vector<std::string> List(const std::string& filter, int page_size) {
    std::vector<std::string> names;
    v1::ListSchedulesRequest req;
    req.set_filter(filter);
    req.set_page_size(page_size);
    for (int pages = 0; pages < 10000; ++pages) {
      auto page = (*registry_)->List(req, int64_t{1} << 30);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      for (const v1::Schedule& s : page->schedules()) {
        names.push_back(s.name());
      }
      if (page->next_page_token().empty()) break;
      req.set_page_token(page->next_page_token());
    }
    return names;
  }

  // What the model says the filter matches: key -> value ("*": any).
  std::vector<std::string> Expected(const Labels& terms) {
    std::vector<std::string> names;
    for (const auto& [name, labels] : model_) {
      bool all = true;
      for (const auto& [k, v] : terms) {
        auto it = labels.find(k);
        all = all && it != labels.end() && (v == "*" || it->second == v);
      }
      if (all) names.push_back(name);
    }
    return names;
  }

  void ExpectEveryFilterRight() {
    for (int page_size : {1, 7, 1000}) {
      EXPECT_EQ(List("", page_size), Expected({}));
      for (const std::string team : {"t0", "t1", "t2", "nobody"}) {
        EXPECT_EQ(List("labels.team = \"" + team + "\"", page_size),
                  Expected({{"team", team}}))
            << team << " page " << page_size;
        EXPECT_EQ(
            List("labels.team = \"" + team + "\" AND labels.env:*", page_size),
            Expected({{"team", team}, {"env", "*"}}))
            << team << " page " << page_size;
      }
      EXPECT_EQ(List("labels.env:*", page_size), Expected({{"env", "*"}}));
      EXPECT_EQ(List("labels.missing:*", page_size),
                Expected({{"missing", "*"}}));
    }
  }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  std::unique_ptr<TestRegistry> registry_;
  std::map<std::string, Labels> model_;
};

Labels RandomLabels(std::mt19937& rng) {
  Labels l;
  if (rng() % 5 != 0) l["team"] = "t" + std::to_string(rng() % 3);
  if (rng() % 2 == 0) l["env"] = rng() % 2 ? "prod" : "dev";
  return l;
}

TEST_F(RegistryListTest, FiltersMatchTheModelThroughChangesAndAReload) {
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i)
    Create("s" + std::to_string(i), RandomLabels(rng));
  ExpectEveryFilterRight();
  for (int round = 0; round < 300; ++round) {
    auto it = model_.begin();
    std::advance(it, rng() % model_.size());
    const std::string name = it->first;
    if (rng() % 4 == 0) {
      Delete(name);
    } else {
      SetLabels(name, RandomLabels(rng));
    }
  }
  ExpectEveryFilterRight();
  registry_.reset();
  Open();  // the index is rebuilt from the store
  ExpectEveryFilterRight();
}

}  // namespace
}  // namespace anneal
