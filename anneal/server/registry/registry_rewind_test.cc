// RewindSchedule: the new lineage serves the old one's LRs below to_step and
// then the old timeline or the request's spec (checked against a twin given
// the same UPDATE before anything was served); the old lineage's segments
// and served mark are kept in the record; jobs on the old lineage are
// refused on every read and write they make; the served mark drops to
// to_step - 1, durably (changes may start there again, after a reload too);
// and bad requests are refused naming the field. Over both stores.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/store/sqlite/sqlite_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;

constexpr char kName[] = "schedules/job";
constexpr char kSpec[] = "{max_lr: 0.1, warm_restarts: {period: 30}}";
constexpr char kLower[] = "{max_lr: 0.03, warm_restarts: {period: 30}}";

class RegistryRewindTest : public testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::string test =
        testing::UnitTest::GetInstance()->current_test_info()->name();
    std::replace(test.begin(), test.end(), '/', '-');
    path_ = testing::TempDir() + "/rewind-" + test + ".db";
    std::remove(path_.c_str());
    Open();
  }
  void TearDown() override {
    registry_.reset();
    store_.reset();
    std::remove(path_.c_str());
  }
  bool sqlite() const { return GetParam(); }
  // A restart without a clean stop: the durable served marks keep their
  // headroom (what a kill -9 leaves).
  void Open() {
    registry_.reset();
    if (sqlite()) {
      store_.reset();
      auto opened = OpenSqliteStore(path_);
      ASSERT_TRUE(opened.ok()) << opened.status();
      store_ = *std::move(opened);
    } else if (store_ == nullptr) {
      store_ = NewMemoryStore();
    }
    registry_ = std::make_unique<TestRegistry>(store_.get());
    ASSERT_TRUE((*registry_)->Load().ok());
  }

  absl::StatusOr<v1::Schedule> Create(const std::string& id,
                                      const std::string& spec) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    return Wait<v1::Schedule>(**registry_, &Registry::Create, req);
  }
  absl::StatusOr<v1::Schedule> Update(const std::string& name,
                                      const std::string& spec, int64_t step) {
    v1::UpdateScheduleRequest req;
    req.mutable_schedule()->set_name(name);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    req.mutable_update_mask()->add_paths("spec");
    req.set_effective_step(step);
    return Wait<v1::Schedule>(**registry_, &Registry::Update, req);
  }
  absl::StatusOr<v1::Schedule> Rewind(int64_t to_step,
                                      const std::string& spec = "",
                                      const std::string& etag = "") {
    v1::RewindScheduleRequest req;
    req.set_name(kName);
    req.set_to_step(to_step);
    req.set_etag(etag);
    req.set_actor("oncall");
    req.set_reason("loss spike");
    if (!spec.empty()) *req.mutable_spec() = SpecFromText(spec);
    return Wait<v1::Schedule>(**registry_, &Registry::Rewind, req);
  }
  absl::StatusOr<v1::Schedule> Get(const std::string& name = kName) {
    v1::GetScheduleRequest req;
    req.set_name(name);
    return (*registry_)->Get(req);
  }
  absl::StatusOr<v1::EvaluateResponse> Evaluate(
      const std::string& name, int64_t step,
      std::optional<int64_t> lineage = std::nullopt) {
    v1::EvaluateRequest req;
    req.set_name(name);
    req.set_step(step);
    if (lineage) req.set_lineage(*lineage);
    return EvaluateNow(**registry_, req);
  }
  double Lr(const std::string& name, int64_t step) {
    auto r = Evaluate(name, step);
    EXPECT_TRUE(r.ok()) << name << " @" << step << ": " << r.status();
    return r.ok() ? r->result().lr() : -1;
  }
  // Serves steps [0, last] as a prefetching job does.
  void Serve(int64_t last) {
    v1::EvaluateRangeRequest req;
    req.set_name(kName);
    req.set_start_step(0);
    req.set_count(last + 1);
    ASSERT_TRUE(EvaluateRangeNow(**registry_, req).ok());
  }

  std::string path_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<TestRegistry> registry_;
};

TEST_P(RegistryRewindTest, ANewSpecTakesOverAtToStepOnTheOldClock) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  // The oracle: a twin given the same change before anything was served.
  ASSERT_TRUE(Create("twin", kSpec).ok());
  ASSERT_TRUE(Update("schedules/twin", kLower, 60).ok());
  Serve(99);
  std::vector<double> old_lineage;
  for (int64_t t = 0; t < 100; ++t) old_lineage.push_back(Lr(kName, t));

  auto rewound = Rewind(60, kLower);
  ASSERT_TRUE(rewound.ok()) << rewound.status();
  EXPECT_EQ(rewound->lineage(), 1);
  EXPECT_EQ(rewound->max_step_served(), 59);
  ASSERT_EQ(rewound->timeline_size(), 2);
  EXPECT_EQ(rewound->timeline(1).from_step(), 60);
  EXPECT_EQ(rewound->timeline(1).kind(), v1::Segment::UPDATE);
  EXPECT_EQ(rewound->timeline(1).actor(), "oncall");
  EXPECT_EQ(rewound->superseded_size(), 0);  // they were served: see rewinds
  ASSERT_EQ(rewound->rewinds_size(), 1);
  const v1::Rewind& r = rewound->rewinds(0);
  EXPECT_EQ(r.lineage(), 1);
  EXPECT_EQ(r.to_step(), 60);
  EXPECT_EQ(r.revision(), rewound->revision());
  EXPECT_EQ(r.abandoned_max_step_served(), 99);
  EXPECT_EQ(r.actor(), "oncall");
  EXPECT_EQ(r.reason(), "loss spike");
  // The old lineage's segment in force at 60, with its spec.
  ASSERT_EQ(r.abandoned_size(), 1);
  EXPECT_EQ(r.abandoned(0).kind(), v1::Segment::CREATE);
  EXPECT_EQ(r.abandoned(0).spec().max_lr(), 0.1);

  for (int64_t t = 0; t < 200; ++t) {
    const double got = Lr(kName, t);
    EXPECT_EQ(got, Lr("schedules/twin", t)) << t;  // bit for bit
    if (t < 60) EXPECT_EQ(got, old_lineage[t]) << t;
  }
  EXPECT_NE(Lr(kName, 75), old_lineage[75]);
}

TEST_P(RegistryRewindTest, WithoutASpecTheTimelineIsKeptAndOpenFromToStep) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  Serve(99);
  std::vector<double> old_lineage;
  for (int64_t t = 0; t < 100; ++t) old_lineage.push_back(Lr(kName, t));
  auto rewound = Rewind(50);
  ASSERT_TRUE(rewound.ok()) << rewound.status();
  EXPECT_EQ(rewound->timeline_size(), 1);
  EXPECT_EQ(rewound->max_step_served(), 49);
  for (int64_t t = 0; t < 100; ++t) {
    EXPECT_EQ(Lr(kName, t), old_lineage[t]) << t;
  }
  // Step 55 was served, but only by the old lineage: the new one may change.
  auto lowered = Update(kName, kLower, 80);
  EXPECT_EQ(lowered.status().code(), absl::StatusCode::kFailedPrecondition)
      << "the reads above served the new lineage to 99";
  ASSERT_TRUE(Rewind(50).ok());
  auto changed = Update(kName, kLower, 55);
  ASSERT_TRUE(changed.ok()) << changed.status();
  auto now = Get();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->lineage(), 2);
  // The replaced segment is in the history with its spec, as served.
  ASSERT_EQ(now->rewinds_size(), 2);
  EXPECT_EQ(now->rewinds(1).abandoned(0).spec().max_lr(), 0.1);
}

TEST_P(RegistryRewindTest, JobsOnTheOldLineageAreRefusedEverywhere) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  Serve(99);
  ASSERT_TRUE(Rewind(60, kLower).ok());

  auto stale = Evaluate(kName, 61, 0);
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(stale.status().message(),
              HasSubstr("lineage: this job runs lineage 0 of schedules/job, "
                        "which was rewound to step 60"));
  EXPECT_THAT(stale.status().message(), HasSubstr("\"loss spike\""));
  EXPECT_THAT(stale.status().message(),
              HasSubstr("resume from a checkpoint below step 60"));
  // Below to_step too: the job must say which lineage it resumed on.
  EXPECT_EQ(Evaluate(kName, 10, 0).status().code(),
            absl::StatusCode::kFailedPrecondition);

  v1::EvaluateRangeRequest range;
  range.set_name(kName);
  range.set_start_step(60);
  range.set_count(8);
  range.set_lineage(0);
  EXPECT_EQ(EvaluateRangeNow(**registry_, range).status().code(),
            absl::StatusCode::kFailedPrecondition);
  v1::AdvanceRequest advance;
  advance.set_name(kName);
  advance.set_lineage(0);
  EXPECT_EQ(Wait<v1::AdvanceResponse>(**registry_, &Registry::Advance, advance)
                .status()
                .code(),
            absl::StatusCode::kFailedPrecondition);
  v1::ReportMetricsRequest report;
  report.set_name(kName);
  report.set_step(61);
  (*report.mutable_metrics())["loss"] = 1.5;
  report.set_lineage(0);
  EXPECT_EQ(
      Wait<v1::MetricReport>(**registry_, &Registry::ReportMetrics, report)
          .status()
          .code(),
      absl::StatusCode::kFailedPrecondition);

  // The current lineage, or none, is served and told which it is.
  auto current = Evaluate(kName, 61, 1);
  ASSERT_TRUE(current.ok()) << current.status();
  EXPECT_EQ(current->lineage(), 1);
  range.set_lineage(1);
  auto served = EvaluateRangeNow(**registry_, range);
  ASSERT_TRUE(served.ok()) << served.status();
  EXPECT_EQ(served->lineage(), 1);
  advance.set_lineage(1);
  auto advanced =
      Wait<v1::AdvanceResponse>(**registry_, &Registry::Advance, advance);
  ASSERT_TRUE(advanced.ok()) << advanced.status();
  EXPECT_EQ(advanced->lineage(), 1);
  report.set_lineage(1);
  auto reported =
      Wait<v1::MetricReport>(**registry_, &Registry::ReportMetrics, report);
  ASSERT_TRUE(reported.ok()) << reported.status();
  EXPECT_EQ(reported->lineage(), 1);

  auto unknown = Evaluate(kName, 61, 2);
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(unknown.status().message(),
              HasSubstr("2 is not a lineage of schedules/job"));
  EXPECT_EQ(Evaluate(kName, 61, -1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(RegistryRewindTest, ALaterRewindFurtherBackSetsTheCheckpointBound) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  Serve(99);
  ASSERT_TRUE(Rewind(60, kLower).ok());
  Serve(90);
  auto again = Rewind(40);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->lineage(), 2);
  EXPECT_EQ(again->rewinds(1).abandoned_max_step_served(), 90);
  auto stale = Evaluate(kName, 10, 0);
  EXPECT_THAT(stale.status().message(), HasSubstr("rewound to step 60"));
  EXPECT_THAT(stale.status().message(), HasSubstr("checkpoint below step 40"));
}

TEST_P(RegistryRewindTest, AdvanceGoesOnFromToStepOnTheNewLineage) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  ASSERT_TRUE(Create("twin", kSpec).ok());
  ASSERT_TRUE(Update("schedules/twin", kLower, 50).ok());
  v1::AdvanceRequest advance;
  advance.set_name(kName);
  for (int i = 0; i < 80; ++i) {
    ASSERT_TRUE(
        Wait<v1::AdvanceResponse>(**registry_, &Registry::Advance, advance)
            .ok());
  }
  auto rewound = Rewind(50, kLower);
  ASSERT_TRUE(rewound.ok()) << rewound.status();
  EXPECT_EQ(rewound->position(), 49);
  auto next =
      Wait<v1::AdvanceResponse>(**registry_, &Registry::Advance, advance);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_EQ(next->position(), 50);
  EXPECT_EQ(next->result().lr(), Lr("schedules/twin", 50));
}

TEST_P(RegistryRewindTest, IsDurableAndTheServedMarkStaysDown) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  Serve(99);  // the durable mark is raised with headroom past 99
  const double at59 = Lr(kName, 59);
  auto rewound = Rewind(60, kLower);
  ASSERT_TRUE(rewound.ok());
  Open();
  auto loaded = Get();
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_EQ(loaded->lineage(), 1);
  EXPECT_EQ(loaded->revision(), rewound->revision());
  EXPECT_EQ(loaded->max_step_served(), 59);
  ASSERT_EQ(loaded->rewinds_size(), 1);
  EXPECT_EQ(loaded->rewinds(0).abandoned_size(), 1);
  // A change below 60 is still refused; from 60 it is accepted.
  EXPECT_EQ(Update(kName, kSpec, 59).status().code(),
            absl::StatusCode::kFailedPrecondition);
  auto changed = Update(kName, kSpec, 60);
  EXPECT_TRUE(changed.ok()) << changed.status();
  EXPECT_EQ(Lr(kName, 59), at59);
}

TEST_P(RegistryRewindTest, RefusesBadRequestsNamingTheField) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  Serve(99);
  auto past = Rewind(101);
  EXPECT_EQ(past.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(past.status().message(),
              HasSubstr("to_step: must be in [0, max_step_served + 1 = 100], "
                        "got 101; a change past the served steps is an "
                        "UpdateSchedule"));
  EXPECT_EQ(Rewind(-1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rewind(10, "{max_lr: -1, constant: {}}").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(Rewind(10, "", "W/\"stale\"").status().code(),
            absl::StatusCode::kAborted);
  v1::RewindScheduleRequest missing;
  missing.set_name("schedules/nobody");
  EXPECT_EQ(Wait<v1::Schedule>(**registry_, &Registry::Rewind, missing)
                .status()
                .code(),
            absl::StatusCode::kNotFound);
  // Refused rewinds changed nothing.
  auto now = Get();
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->lineage(), 0);
  EXPECT_GE(now->max_step_served(), 99);
  // One past the served steps: only a new lineage, the same LRs.
  auto bump = Rewind(100);
  ASSERT_TRUE(bump.ok()) << bump.status();
  EXPECT_EQ(bump->lineage(), 1);
  EXPECT_EQ(bump->max_step_served(), 99);
  // To step 0, with a spec: everything from the first step is the new one.
  auto fresh = Rewind(0, kLower);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ(fresh->max_step_served(), -1);
  EXPECT_EQ(fresh->timeline_size(), 1);
  EXPECT_EQ(Lr(kName, 0), 0.03);
}

TEST_P(RegistryRewindTest, ReadsRacingARewindSeeOneLineageOrTheOther) {
  ASSERT_TRUE(Create("job", kSpec).ok());
  ASSERT_TRUE(Create("twin", kSpec).ok());
  ASSERT_TRUE(Update("schedules/twin", kLower, 40).ok());
  Serve(99);
  std::vector<double> old_lineage;
  for (int64_t t = 0; t < 100; ++t) old_lineage.push_back(Lr(kName, t));
  std::vector<double> twin;
  for (int64_t t = 0; t < 100; ++t) twin.push_back(Lr("schedules/twin", t));
  std::atomic<int> wrong{0};
  std::atomic<int> reads{0};
  std::atomic<bool> rewound{false};
  int after = 0;  // reads begun once the rewind was answered
  std::thread reader([&] {
    for (int64_t i = 0; i < 1'000'000 && after < 500; ++i) {
      const bool late = rewound.load();
      const int64_t t = 30 + i % 40;
      auto r = Evaluate(kName, t);
      ++reads;
      if (late) ++after;
      // Lineage 0 serves the old LRs, lineage 1 the twin's.
      if (!r.ok() ||
          r->result().lr() != (r->lineage() == 0 ? old_lineage : twin)[t]) {
        ++wrong;
      }
      if (late && r.ok() && r->lineage() != 1) ++wrong;
    }
  });
  while (reads.load() < 100) std::this_thread::yield();
  ASSERT_TRUE(Rewind(40, kLower).ok());
  rewound = true;
  reader.join();
  EXPECT_EQ(after, 500);
  EXPECT_EQ(wrong.load(), 0);
  for (int64_t t = 0; t < 100; ++t) {
    EXPECT_EQ(Lr(kName, t), Lr("schedules/twin", t)) << t;
  }
}

INSTANTIATE_TEST_SUITE_P(Stores, RegistryRewindTest, testing::Bool(),
                         [](const testing::TestParamInfo<bool>& info) {
                           return info.param ? "Sqlite" : "Memory";
                         });

}  // namespace
}  // namespace anneal
