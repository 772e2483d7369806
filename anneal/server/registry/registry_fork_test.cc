// ForkSchedule: the fork serves exactly the source's LRs below at_step,
// then the source's timeline as it was or the request's spec on the copied
// clock (checked against the same UPDATE applied to a twin of the source);
// the copied steps are fenced; the source is only read; a fork is durable
// across a reload; and bad requests are refused naming the field.
#include <memory>
#include <optional>
#include <string>

#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;

constexpr char kSource[] = "{max_lr: 0.1, warm_restarts: {period: 30}}";
constexpr char kExplore[] = "{max_lr: 0.04, warm_restarts: {period: 30}}";

class RegistryForkTest : public testing::Test {
 protected:
  void SetUp() override { Open(); }
  void Open() {
    registry_.reset();
    registry_ = std::make_unique<TestRegistry>(store_.get());
    ASSERT_TRUE((*registry_)->Load().ok());
  }

  absl::StatusOr<v1::Schedule> Create(const std::string& id,
                                      const std::string& spec) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    (*req.mutable_schedule()->mutable_labels())["team"] = "vision";
    return Wait<v1::Schedule>(**registry_, &Registry::Create, req);
  }
  absl::StatusOr<v1::Schedule> Update(const std::string& name,
                                      const std::string& spec,
                                      std::optional<int64_t> step) {
    v1::UpdateScheduleRequest req;
    req.mutable_schedule()->set_name(name);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    req.mutable_update_mask()->add_paths("spec");
    if (step) req.set_effective_step(*step);
    return Wait<v1::Schedule>(**registry_, &Registry::Update, req);
  }
  absl::StatusOr<v1::Schedule> Fork(const std::string& source,
                                    const std::string& id, int64_t at_step,
                                    const std::string& spec = "") {
    v1::ForkScheduleRequest req;
    req.set_source(source);
    req.set_schedule_id(id);
    req.set_at_step(at_step);
    req.set_actor("pbt");
    req.set_reason("exploit");
    if (!spec.empty()) {
      *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    }
    return Wait<v1::Schedule>(**registry_, &Registry::Fork, req);
  }
  absl::StatusOr<v1::Schedule> Get(const std::string& name) {
    v1::GetScheduleRequest req;
    req.set_name(name);
    return (*registry_)->Get(req);
  }
  v1::StepResult At(const std::string& name, int64_t step) {
    v1::EvaluateRequest req;
    req.set_name(name);
    req.set_step(step);
    auto r = EvaluateNow(**registry_, req);
    EXPECT_TRUE(r.ok()) << name << " @" << step << ": " << r.status();
    return r.ok() ? r->result() : v1::StepResult();
  }
  // A source with a history: an update at 45, every step to 99 served, and
  // a later update at 100 that a fork at 70 must not copy.
  void MakeSource(const std::string& id) {
    ASSERT_TRUE(Create(id, kSource).ok());
    ASSERT_TRUE(Update("schedules/" + id,
                       "{max_lr: 0.07, warm_restarts: "
                       "{period: 30}}",
                       45)
                    .ok());
    for (int64_t t = 0; t < 100; ++t) At("schedules/" + id, t);
    ASSERT_TRUE(
        Update("schedules/" + id, "{max_lr: 0.01, constant: {}}", std::nullopt)
            .ok());
  }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  std::unique_ptr<TestRegistry> registry_;
};

TEST_F(RegistryForkTest, ServesTheSourcesPastAndItsTimelineAsOfTheStep) {
  MakeSource("donor");
  auto fork = Fork("schedules/donor", "trial", 70);
  ASSERT_TRUE(fork.ok()) << fork.status();
  EXPECT_EQ(fork->name(), "schedules/trial");
  EXPECT_EQ(fork->forked_from().source(), "schedules/donor");
  EXPECT_EQ(fork->forked_from().at_step(), 70);
  EXPECT_EQ(fork->labels().at("team"), "vision");
  ASSERT_EQ(fork->timeline_size(), 2);  // the update at 100 is not copied
  EXPECT_EQ(fork->timeline(1).from_step(), 45);
  for (int64_t t = 0; t < 100; ++t) {
    const v1::StepResult want = At("schedules/donor", t);
    const v1::StepResult got = At("schedules/trial", t);
    EXPECT_EQ(got.lr(), want.lr()) << t;  // bit for bit
    EXPECT_EQ(got.cycle(), want.cycle()) << t;
    EXPECT_EQ(got.restart(), want.restart()) << t;
  }
  // Past the donor's later update, the fork keeps the timeline it copied.
  EXPECT_NE(At("schedules/trial", 130).lr(), At("schedules/donor", 130).lr());
}

TEST_F(RegistryForkTest, TheSpecTakesOverAtTheStepAsAnUpdateWould) {
  MakeSource("donor");
  // The oracle: a twin of the donor's history to 69, updated at 70.
  ASSERT_TRUE(Create("twin", kSource).ok());
  ASSERT_TRUE(Update("schedules/twin",
                     "{max_lr: 0.07, warm_restarts: "
                     "{period: 30}}",
                     45)
                  .ok());
  ASSERT_TRUE(Update("schedules/twin", kExplore, 70).ok());
  auto fork = Fork("schedules/donor", "trial", 70, kExplore);
  ASSERT_TRUE(fork.ok()) << fork.status();
  ASSERT_EQ(fork->timeline_size(), 3);
  EXPECT_EQ(fork->timeline(2).from_step(), 70);
  EXPECT_EQ(fork->timeline(2).actor(), "pbt");
  EXPECT_EQ(fork->timeline(2).reason(), "exploit");
  for (int64_t t = 0; t < 200; ++t) {
    EXPECT_EQ(At("schedules/trial", t).lr(), At("schedules/twin", t).lr()) << t;
  }
  EXPECT_NE(At("schedules/trial", 75).lr(), At("schedules/donor", 75).lr());
}

TEST_F(RegistryForkTest, TheSourceIsOnlyRead) {
  MakeSource("donor");
  auto before = Get("schedules/donor");
  ASSERT_TRUE(before.ok());
  ASSERT_TRUE(Fork("schedules/donor", "trial", 70, kExplore).ok());
  auto after = Get("schedules/donor");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->SerializeAsString(), before->SerializeAsString());
}

TEST_F(RegistryForkTest, TheCopiedStepsAreFencedAndAdvanceGoesOnFromTheStep) {
  MakeSource("donor");
  auto fork = Fork("schedules/donor", "trial", 70);
  ASSERT_TRUE(fork.ok());
  EXPECT_EQ(fork->max_step_served(), 69);
  EXPECT_EQ(fork->position(), 69);
  auto late = Update("schedules/trial", kExplore, 60);
  EXPECT_EQ(late.status().code(), absl::StatusCode::kFailedPrecondition)
      << late.status();
  // PBT's mutation as an UPDATE with the default step lands at the fork.
  auto mutated = Update("schedules/trial", kExplore, std::nullopt);
  ASSERT_TRUE(mutated.ok()) << mutated.status();
  EXPECT_EQ(mutated->timeline(mutated->timeline_size() - 1).from_step(), 70);

  v1::AdvanceRequest advance;
  advance.set_name("schedules/trial");
  auto next =
      Wait<v1::AdvanceResponse>(**registry_, &Registry::Advance, advance);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->position(), 70);
}

TEST_F(RegistryForkTest, AForkAtZeroIsAFreshCopyOfTheFirstSegment) {
  MakeSource("donor");
  auto fork = Fork("schedules/donor", "trial", 0);
  ASSERT_TRUE(fork.ok()) << fork.status();
  EXPECT_EQ(fork->timeline_size(), 1);
  EXPECT_EQ(fork->max_step_served(), -1);
  EXPECT_EQ(fork->position(), 0);
  EXPECT_EQ(At("schedules/trial", 0).lr(), 0.1);
}

TEST_F(RegistryForkTest, SurvivesAReload) {
  MakeSource("donor");
  auto fork = Fork("schedules/donor", "trial", 70, kExplore);
  ASSERT_TRUE(fork.ok());
  Open();
  auto loaded = Get("schedules/trial");
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->revision(), fork->revision());
  EXPECT_EQ(loaded->timeline_size(), 3);
  EXPECT_EQ(loaded->max_step_served(), 69);
  EXPECT_EQ(loaded->forked_from().source(), "schedules/donor");
  EXPECT_EQ(Update("schedules/trial", kSource, 69).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(RegistryForkTest, RefusesBadRequestsNamingTheField) {
  MakeSource("donor");
  auto missing = Fork("schedules/nobody", "trial", 10);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("source: "));

  auto negative = Fork("schedules/donor", "trial", -1);
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(negative.status().message(), HasSubstr("at_step"));

  auto bad_id = Fork("schedules/donor", "Not An Id", 10);
  EXPECT_EQ(bad_id.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_id.status().message(), HasSubstr("schedule_id"));

  auto taken = Fork("schedules/donor", "donor", 10);
  EXPECT_EQ(taken.status().code(), absl::StatusCode::kAlreadyExists);

  v1::ForkScheduleRequest bad_spec;
  bad_spec.set_source("schedules/donor");
  bad_spec.set_schedule_id("trial");
  bad_spec.set_at_step(10);
  bad_spec.mutable_schedule()->mutable_spec()->set_max_lr(-1);
  auto refused = Wait<v1::Schedule>(**registry_, &Registry::Fork, bad_spec);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refused.status().message(), HasSubstr("schedule.spec."));
  EXPECT_FALSE(Get("schedules/trial").ok());  // nothing half made
}

}  // namespace
}  // namespace anneal
