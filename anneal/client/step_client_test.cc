// anneal::StepClient over its transport seam, with a scripted in-process
// server: prefetching, background refresh, revision pickup within the window,
// retry with backoff, blocking with a clear error, offline fallback
// bit-identical to the engine. The run against a real server is
// tests/step_client_server_test.cc.
#include "anneal/client/step_client.h"

#include <atomic>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "anneal/client/testing/fake_schedule_server.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/model/step_range.h"
#include "anneal/model/timeline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::ContainsRegex;
using testing::HasSubstr;

constexpr const char* kSgdr = kFakeSgdrSpec;

class StepClientTest : public testing::Test {
 protected:
  StepClient::Options BaseOptions(int64_t window) {
    StepClient::Options o;
    o.schedule = "job";
    o.window = window;
    o.initial_backoff = absl::Milliseconds(5);
    o.max_backoff = absl::Milliseconds(40);
    o.jitter = 0;
    o.connect_timeout = absl::Seconds(5);
    o.block_timeout = absl::Seconds(10);
    o.log = log_.Fn();
    return o;
  }
  std::unique_ptr<StepClient> Make(StepClient::Options options) {
    auto client = StepClient::Create(std::move(options),
                                     std::make_unique<FakeTransport>(server_));
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  std::shared_ptr<FakeScheduleServer> server_ =
      std::make_shared<FakeScheduleServer>(SpecFromText(kSgdr));
  LogSink log_;
};

TEST_F(StepClientTest, PrefetchServesManyStepsWithFewCalls) {
  auto client = Make(BaseOptions(100));
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(server_->range_calls(), 1);  // Connect's window [0, 100)
  const auto timeline = server_->timeline();
  for (int64_t t = 0; t < 1000; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSameStep(*r, timeline->At(t));
    EXPECT_FALSE(client->offline());
  }
  // One refetch per half window: about 1000 / 50.
  EXPECT_LE(server_->range_calls(), 1000 / 50 + 2);
  for (const FakeScheduleServer::Call& c : server_->calls()) {
    EXPECT_FALSE(c.inspect_only);  // a job's prefetch is serving
    EXPECT_EQ(c.count, 100);
  }
  EXPECT_EQ(client->stats().steps, 1000);
  EXPECT_EQ(client->stats().offline_steps, 0);
  // The server knows every step the job may take from the window.
  EXPECT_GE(server_->max_step_served(), 999);
  EXPECT_EQ(log_.Count(LogLevel::kWarning), 0) << log_.All();
}

TEST_F(StepClientTest, StartStepAndSchedulesPrefix) {
  StepClient::Options o = BaseOptions(10);
  o.schedule = "schedules/job";
  o.start_step = 500;
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  ASSERT_EQ(server_->calls().size(), 1u);
  EXPECT_EQ(server_->calls()[0].start, 500);
  auto r = client->Step(500);
  ASSERT_TRUE(r.ok());
  ExpectSameStep(*r, server_->timeline()->At(500));
  EXPECT_EQ(server_->range_calls(), 1);
}

TEST_F(StepClientTest, RefreshesInTheBackgroundBeforeTheWindowRunsOut) {
  auto client = Make(BaseOptions(10));  // window [0, 10), refresh at 5 left
  ASSERT_NE(client, nullptr);
  server_->Hold(true);  // the refetch will hang until released
  for (int64_t t = 0; t <= 4; ++t) ASSERT_TRUE(client->Step(t).ok());
  EXPECT_EQ(server_->range_calls(), 1);
  ASSERT_TRUE(client->Step(5).ok());  // 4 left: asks the refresher
  ASSERT_TRUE(server_->AwaitCalls(2));
  // The refetch is still in flight, yet the steps keep coming.
  for (int64_t t = 6; t <= 9; ++t) ASSERT_TRUE(client->Step(t).ok());
  EXPECT_EQ(client->stats().blocked_steps, 0);
  EXPECT_EQ(client->stats().windows, 1);
  // It starts at the step the job was at when it was sent (5, or a little
  // later), so the window ends at most `window` steps after that.
  const FakeScheduleServer::Call refetch = server_->calls()[1];
  EXPECT_GE(refetch.start, 5);
  EXPECT_LE(refetch.start, 9);
  server_->Hold(false);
  // The new window arrives without the job asking for a step outside it.
  Eventually([&] { return client->stats().windows >= 2; });
  ASSERT_EQ(client->stats().windows, 2);
  for (int64_t t = 10; t < refetch.start + 10; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok());
    ExpectSameStep(*r, server_->timeline()->At(t));
  }
  EXPECT_EQ(client->stats().blocked_steps, 0);
}

TEST_F(StepClientTest, RevisionChangeReachesTheJobWithinTheWindow) {
  constexpr int64_t kWindow = 20;
  auto client = Make(BaseOptions(kWindow));
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->revision(), 1);
  std::vector<StepResult> served;
  int64_t changed_at = -1, from = -1;
  const v1::ScheduleSpec lower = SpecFromText("max_lr: 0.01\nconstant: {}");
  for (int64_t t = 0; t < 200; ++t) {
    if (t == 33) {
      from = server_->Update(lower);  // while the job is at step 33
      // Default effective step: after everything the job may have cached.
      EXPECT_GT(from, 33);
      EXPECT_LE(from, 33 + kWindow);
    }
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    served.push_back(*r);
    if (changed_at < 0 && r->lr == 0.01) changed_at = t;
  }
  EXPECT_EQ(changed_at, from);
  EXPECT_LE(changed_at, 33 + kWindow);
  EXPECT_EQ(client->revision(), 2);
  EXPECT_EQ(client->stats().revision_changes, 1);
  EXPECT_EQ(log_.Count(LogLevel::kError), 0) << log_.All();
  // Nothing served was ever rewritten: every step equals the final timeline.
  const auto timeline = server_->timeline();
  for (const StepResult& r : served) ExpectSameStep(r, timeline->At(r.step));
}

// The API promises that served steps are never rewritten; should a server
// break that promise, the client says so rather than train on silently.
TEST_F(StepClientTest, ReportsServedStepsTheServerRewrote) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  for (int64_t t = 0; t <= 4; ++t) ASSERT_TRUE(client->Step(t).ok());
  std::vector<v1::Segment> rewritten(1);
  rewritten[0].set_kind(v1::Segment::CREATE);
  *rewritten[0].mutable_spec() = SpecFromText("max_lr: 0.5\nconstant: {}");
  server_->SetTimeline(rewritten);    // as if steps 0..9 had not been served
  ASSERT_TRUE(client->Step(5).ok());  // served from [0, 10)
  Eventually([&] { return client->stats().windows >= 2; });
  EXPECT_EQ(log_.Count(LogLevel::kError), 1) << log_.All();
  // The refetch starts at the job's step: 5, or 4 when the watch's change
  // event reached the client before Step(5) did.
  EXPECT_THAT(log_.All(),
              ContainsRegex("differs at step [45] from what was already "
                            "served \\(revision 1\\)"));
}

TEST_F(StepClientTest, RetriesTransientFailuresWithBackoffAndWarnsOnce) {
  StepClient::Options o = BaseOptions(10);
  o.initial_backoff = absl::Milliseconds(20);
  o.max_backoff = absl::Milliseconds(60);
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  server_->FailNext(4, absl::UnavailableError("connection refused"));
  for (int64_t t = 0; t < 40; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSameStep(*r, server_->timeline()->At(t));
  }
  const std::vector<FakeScheduleServer::Call> calls = server_->calls();
  ASSERT_GE(calls.size(), 6u);  // connect, 4 failures, the success, ...
  // Delays after failures 1..4: 20, 40, 60 (capped), 60 ms.
  const absl::Duration want[] = {absl::Milliseconds(20), absl::Milliseconds(40),
                                 absl::Milliseconds(60),
                                 absl::Milliseconds(60)};
  for (int i = 0; i < 4; ++i) {
    EXPECT_GE(calls[i + 2].time - calls[i + 1].time, want[i]) << i;
  }
  EXPECT_EQ(client->stats().failed_calls, 4);
  // Fail fast until a failure, then wait for a connection while retrying.
  EXPECT_FALSE(calls[1].wait_for_ready);
  for (int i = 2; i <= 5; ++i) EXPECT_TRUE(calls[i].wait_for_ready) << i;
  EXPECT_FALSE(calls.back().wait_for_ready);
  EXPECT_EQ(calls[1].timeout, absl::Seconds(5));  // rpc_timeout
  EXPECT_EQ(log_.Count(LogLevel::kWarning), 1) << log_.All();
  EXPECT_THAT(log_.All(), HasSubstr("connection refused"));
  EXPECT_THAT(log_.All(), HasSubstr("reachable again after 4 failed attempts"));
}

TEST_F(StepClientTest, DeadlineFailuresAreRetriedToo) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  server_->FailNext(2, absl::DeadlineExceededError("Deadline Exceeded"));
  for (int64_t t = 0; t < 30; ++t) ASSERT_TRUE(client->Step(t).ok());
  EXPECT_EQ(client->stats().failed_calls, 2);
}

// A server shutting down cancels the calls in flight: an outage, not an
// answer, even for a Step that waits on that call.
TEST_F(StepClientTest, CallsCancelledByTheServerAreRetried) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  for (int64_t t = 0; t < 10; ++t) ASSERT_TRUE(client->Step(t).ok());
  server_->FailNext(1, absl::CancelledError("CANCELLED"));
  auto r = client->Step(20);  // outside the window: waits on the refetch
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectSameStep(*r, server_->timeline()->At(20));
  EXPECT_GE(client->stats().failed_calls, 1);
  EXPECT_EQ(log_.Count(LogLevel::kError), 0) << log_.All();
}

// An overloaded server's RESOURCE_EXHAUSTED carries a retry delay: retried.
// Without one it is the server's answer (a request too large): not retried.
TEST_F(StepClientTest, OverloadedServersAreRetriedTooLargeRequestsAreNot) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  for (int64_t t = 0; t < 10; ++t) ASSERT_TRUE(client->Step(t).ok());
  absl::Status busy = absl::ResourceExhaustedError(
      "count: the server is serving its limit of range steps; retry shortly");
  busy.SetPayload(kRetryInfoTypeUrl, absl::Cord(""));
  server_->FailNext(2, busy);
  auto r = client->Step(20);
  ASSERT_TRUE(r.ok()) << r.status();
  ExpectSameStep(*r, server_->timeline()->At(20));
  EXPECT_EQ(client->stats().failed_calls, 2);
  server_->SetError(absl::ResourceExhaustedError("count: must be <= 10"));
  auto refused = client->Step(40);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
}

TEST_F(StepClientTest, BlocksWhenExhaustedThenFailsClearly) {
  StepClient::Options o = BaseOptions(10);
  o.block_timeout = absl::Milliseconds(300);
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  server_->SetDown(true);
  for (int64_t t = 0; t < 10; ++t) {
    ASSERT_TRUE(client->Step(t).ok()) << "the window outlives the outage";
  }
  const absl::Time start = absl::Now();
  auto r = client->Step(10);
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(300));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("no learning rate for step 10"));
  EXPECT_THAT(r.status().message(), HasSubstr("[0, 10)"));
  EXPECT_THAT(r.status().message(), HasSubstr("failed to connect"));
  EXPECT_THAT(r.status().message(), HasSubstr("block_timeout"));
  EXPECT_EQ(log_.Count(LogLevel::kWarning), 1) << log_.All();
  // The server comes back: the same step now succeeds.
  server_->SetDown(false);
  auto again = client->Step(10);
  ASSERT_TRUE(again.ok()) << again.status();
  ExpectSameStep(*again, server_->timeline()->At(10));
}

TEST_F(StepClientTest, ServerErrorsAreNotRetriedAndSurfaceWhenNeeded) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  server_->SetError(absl::NotFoundError("schedules/job: not found"));
  for (int64_t t = 0; t < 10; ++t) ASSERT_TRUE(client->Step(t).ok());
  auto r = client->Step(10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kNotFound);
  const int64_t calls = server_->range_calls();
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(server_->range_calls(), calls) << "no retry loop on NOT_FOUND";
}

TEST_F(StepClientTest, ARewindStopsAJobOnTheOldLineage) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  EXPECT_EQ(client->lineage(), 0);
  for (int64_t t = 0; t < 5; ++t) ASSERT_TRUE(client->Step(t).ok());
  server_->Rewind(3);
  // The window is the old lineage's, as served; no step past it is.
  for (int64_t t = 5; t < 10; ++t) ASSERT_TRUE(client->Step(t).ok());
  auto r = client->Step(10);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(r.status().message(),
              HasSubstr("this job runs lineage 0 of schedules/job, which was "
                        "rewound to step 3"));
  EXPECT_THAT(r.status().message(),
              HasSubstr("resume from a checkpoint below step 3"));

  // A job resumed from its checkpoint below step 3 runs on lineage 1.
  StepClient::Options resumed = BaseOptions(10);
  resumed.start_step = 2;
  auto again = Make(resumed);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(again->lineage(), 1);
  EXPECT_TRUE(again->Step(12).ok());
  StepClient::Options pinned = BaseOptions(10);
  pinned.lineage = 0;
  auto stale =
      StepClient::Create(pinned, std::make_unique<FakeTransport>(server_));
  EXPECT_EQ(stale.status().code(), absl::StatusCode::kFailedPrecondition);
  pinned.lineage = -1;
  EXPECT_EQ(StepClient::Create(pinned, std::make_unique<FakeTransport>(server_))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StepClientTest, ConnectErrors) {
  StepClient::Options o = BaseOptions(10);
  o.schedule = "other";
  auto missing =
      StepClient::Create(o, std::make_unique<FakeTransport>(server_));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);

  server_->SetDown(true);
  o = BaseOptions(10);
  o.connect_timeout = absl::Milliseconds(100);
  auto down = StepClient::Create(o, std::make_unique<FakeTransport>(server_));
  EXPECT_EQ(down.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(down.status().message(), HasSubstr("schedules/job"));

  o.window = 0;
  EXPECT_EQ(StepClient::Create(o, std::make_unique<FakeTransport>(server_))
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  o = BaseOptions(10);
  o.offline_spec = SpecFromText("max_lr: -1\nconstant: {}");
  auto bad = StepClient::Create(o, std::make_unique<FakeTransport>(server_));
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("offline_spec"));
}

// A timeline with every kind of segment: the SGDR spec, a warm restart at 37
// and an update to a cosine from 80 on the restarted clock.
std::vector<v1::Segment> ThreeSegments() {
  std::vector<v1::Segment> segments(3);
  segments[0].set_kind(v1::Segment::CREATE);
  *segments[0].mutable_spec() = SpecFromText(kSgdr);
  auto first = Schedule::Compile(segments[0].spec());
  segments[1].set_kind(v1::Segment::RESTART);
  segments[1].set_from_step(37);
  segments[1].set_time_origin(37);
  segments[1].set_cycle_offset((*first)->At(36).cycle + 1);
  *segments[1].mutable_spec() = segments[0].spec();
  segments[2].set_kind(v1::Segment::UPDATE);
  segments[2].set_from_step(80);
  segments[2].set_time_origin(37);
  segments[2].set_cycle_offset(segments[1].cycle_offset());
  *segments[2].mutable_spec() = SpecFromText(
      "max_lr: 0.05\nmin_lr: 0.001\ncosine: {period: 500}\n"
      "momentum: {base: 0.8, max: 0.9}");
  return segments;
}

TEST_F(StepClientTest, OfflineFallbackIsExactForTheFetchedTimeline) {
  server_->SetTimeline(ThreeSegments());
  StepClient::Options o = BaseOptions(20);
  o.offline_fallback = true;
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  server_->SetDown(true);
  std::vector<v1::Segment> segments = ThreeSegments();
  google::protobuf::RepeatedPtrField<v1::Segment> field(segments.begin(),
                                                        segments.end());
  auto reference = Timeline::Build(field);
  ASSERT_TRUE(reference.ok());
  for (int64_t t = 0; t < 300; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSameStep(*r, (*reference)->At(t));
    EXPECT_EQ(client->offline(), t >= 20) << t;
  }
  EXPECT_EQ(client->stats().offline_steps, 280);
  EXPECT_EQ(client->stats().offline_revision, 2);
  EXPECT_THAT(log_.All(), HasSubstr("evaluating timeline revision 2 offline"));
  EXPECT_EQ(log_.Count(LogLevel::kWarning), 2)
      << log_.All();  // outage, offline

  // Back online: the server's windows again, and a note of the offline span.
  server_->SetDown(false);
  int64_t t = 300;
  for (; t < 5000 && client->offline(); ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok());
    ExpectSameStep(*r, (*reference)->At(t));
    absl::SleepFor(absl::Milliseconds(1));
  }
  auto r = client->Step(t);
  ASSERT_TRUE(r.ok());
  EXPECT_FALSE(client->offline());
  EXPECT_THAT(log_.All(), HasSubstr("were evaluated offline"));
  EXPECT_THAT(log_.All(), testing::Not(HasSubstr("may differ")));
}

TEST_F(StepClientTest, OfflineFallbackFollowsRevisions) {
  StepClient::Options o = BaseOptions(10);
  o.offline_fallback = true;
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Step(0).ok());
  const int64_t from =
      server_->Update(SpecFromText("max_lr: 0.02\nconstant: {}"));
  for (int64_t t = 1; t < 8; ++t) ASSERT_TRUE(client->Step(t).ok());
  // The refetch at 5 brought revision 2, and with it the new timeline.
  Eventually([&] { return client->stats().offline_revision == 2; });
  server_->SetDown(true);
  const auto timeline = server_->timeline();
  for (int64_t t = 8; t < 60; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok());
    ExpectSameStep(*r, timeline->At(t));
  }
  auto r = client->Step(from + 20);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->lr, 0.02);
  EXPECT_TRUE(client->offline());
}

TEST_F(StepClientTest, OfflineFromTheUserSpecWhenNeverReachable) {
  server_->SetDown(true);
  StepClient::Options o = BaseOptions(10);
  o.connect_timeout = absl::Milliseconds(50);
  o.offline_fallback = true;
  o.offline_spec = SpecFromText(kSgdr);
  o.batch_size = 256;
  o.offline_spec->mutable_batch_scaling()->set_reference_batch_size(128);
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  auto schedule = Schedule::Compile(*o.offline_spec);
  ASSERT_TRUE(schedule.ok());
  for (int64_t t = 0; t < 100; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    StepQuery query;
    query.step = t;
    query.batch_size = 256;
    auto want = (*schedule)->Evaluate(query);
    ASSERT_TRUE(want.ok());
    ExpectSameStep(*r, *want);
    EXPECT_TRUE(client->offline());
  }
  EXPECT_EQ(client->stats().offline_revision, 0);
  EXPECT_THAT(log_.All(), HasSubstr("starting offline"));
  EXPECT_THAT(log_.All(), HasSubstr("the spec given in the options"));
}

TEST_F(StepClientTest, WarnsWhenTheScheduleChangedDuringAnOutage) {
  StepClient::Options o = BaseOptions(10);
  o.offline_fallback = true;
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  server_->SetDown(true);
  for (int64_t t = 0; t < 30; ++t) ASSERT_TRUE(client->Step(t).ok());
  ASSERT_TRUE(client->offline());
  server_->Update(SpecFromText("max_lr: 0.02\nconstant: {}"));  // from 10
  server_->SetDown(false);
  for (int64_t t = 30; t < 5000 && client->offline(); ++t) {
    ASSERT_TRUE(client->Step(t).ok());
    absl::SleepFor(absl::Milliseconds(1));
  }
  EXPECT_FALSE(client->offline());
  EXPECT_THAT(log_.All(), HasSubstr("may differ"));
}

TEST_F(StepClientTest, JumpsAndRollbacksFetchTheStepAsked) {
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  const auto timeline = server_->timeline();
  for (int64_t t : {int64_t{0}, int64_t{1}, int64_t{5000}, int64_t{5001},
                    int64_t{3}, kMaxStep}) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << t << ": " << r.status();
    ExpectSameStep(*r, timeline->At(t));
  }
  EXPECT_EQ(client->Step(-1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(StepClientTest, ConcurrentStepsFromManyThreads) {
  auto client = Make(BaseOptions(16));
  ASSERT_NE(client, nullptr);
  const auto timeline = server_->timeline();
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&] {
      for (int64_t t = 0; t < 500; ++t) {
        auto r = client->Step(t);
        if (!r.ok() || r->lr != timeline->At(t).lr) ++bad;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(StepClientTest, WatchBringsAChangeWithoutWaitingForTheRefresh) {
  auto client = Make(BaseOptions(100));
  ASSERT_NE(client, nullptr);
  for (int64_t t = 0; t < 5; ++t) ASSERT_TRUE(client->Step(t).ok());
  ASSERT_TRUE(server_->AwaitWatchers(1));
  EXPECT_TRUE(client->stats().watching);
  // The stream starts at the window's revision: no catch-up fetch.
  EXPECT_EQ(server_->watch_calls(), std::vector<int64_t>{1});
  EXPECT_EQ(server_->range_calls(), 1);

  const int64_t from =
      server_->Update(SpecFromText("max_lr: 0.01\nconstant: {}"));
  EXPECT_EQ(from, 100);  // after the window the job holds
  // No Step is taken, yet the new window arrives: the watch asked for it.
  ASSERT_TRUE(Eventually([&] { return client->revision() == 2; }));
  EXPECT_EQ(client->stats().watch_refreshes, 1);
  EXPECT_EQ(client->stats().revision_changes, 1);
  ASSERT_EQ(server_->range_calls(), 2);
  EXPECT_EQ(server_->calls()[1].start, 4);  // from the step the job is at
  // Every step is the timeline's: unchanged before the change, new from it.
  const auto timeline = server_->timeline();
  for (int64_t t = 4; t < 104; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSameStep(*r, timeline->At(t));
  }
  EXPECT_EQ(client->Step(99)->lr, timeline->At(99).lr);
  EXPECT_EQ(client->Step(100)->lr, 0.01);
  EXPECT_EQ(log_.Count(LogLevel::kError), 0) << log_.All();
}

TEST_F(StepClientTest, WithoutWatchAChangeWaitsForTheRefresh) {
  StepClient::Options o = BaseOptions(100);
  o.watch = false;
  auto client = Make(o);
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(client->Step(4).ok());
  server_->Update(SpecFromText("max_lr: 0.01\nconstant: {}"));
  // Nothing asks for a window until the job is half way through this one.
  absl::SleepFor(absl::Milliseconds(50));
  EXPECT_EQ(client->revision(), 1);
  EXPECT_EQ(server_->range_calls(), 1);
  EXPECT_TRUE(server_->watch_calls().empty());
  for (int64_t t = 5; t <= 50; ++t) ASSERT_TRUE(client->Step(t).ok());
  ASSERT_TRUE(Eventually([&] { return client->revision() == 2; }));
  EXPECT_EQ(client->stats().watch_calls, 0);
  EXPECT_FALSE(client->stats().watching);
}

TEST_F(StepClientTest, WatchResumesFromTheRevisionItLastSaw) {
  auto client = Make(BaseOptions(100));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(server_->AwaitWatchers(1));
  // A change is seen live; then the server goes away and, while the stream
  // is down, the schedule changes again.
  server_->Update(SpecFromText("max_lr: 0.05\nconstant: {}"));
  ASSERT_TRUE(Eventually([&] { return client->revision() == 2; }));
  server_->SetDown(true);
  ASSERT_TRUE(Eventually([&] { return !client->stats().watching; }));
  server_->Update(SpecFromText("max_lr: 0.02\nconstant: {}"));
  server_->SetDown(false);
  // The resumed stream names revision 2, so its catch-up sends revision 3:
  // the change made while it was down is not missed.
  ASSERT_TRUE(Eventually([&] { return client->revision() == 3; }));
  const std::vector<int64_t> since = server_->watch_calls();
  ASSERT_GE(since.size(), 2u);
  EXPECT_EQ(since.front(), 1);
  EXPECT_EQ(since.back(), 2);
  EXPECT_EQ(client->stats().watch_refreshes, 2);
  EXPECT_TRUE(Eventually([&] { return client->stats().watching; }));
}

TEST_F(StepClientTest, AWatchTheServerEndsIsToldOnceAndResumed) {
  auto client = Make(BaseOptions(100));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(server_->AwaitWatchers(1));
  // As a server ends a watcher that fell behind.
  server_->EndWatches(absl::ResourceExhaustedError("watch: fell behind"));
  ASSERT_TRUE(Eventually([&] { return server_->watch_calls().size() >= 2; }));
  ASSERT_TRUE(server_->AwaitWatchers(1));
  EXPECT_EQ(server_->watch_calls().back(), 1);
  EXPECT_THAT(log_.All(), HasSubstr("watch ended (RESOURCE_EXHAUSTED"));
  EXPECT_EQ(log_.Count(LogLevel::kInfo), 1) << log_.All();
  EXPECT_EQ(log_.Count(LogLevel::kWarning), 0) << log_.All();
}

TEST_F(StepClientTest, ServerWithoutWatchFallsBackToRefreshes) {
  server_->SetWatchUnimplemented(true);
  auto client = Make(BaseOptions(10));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(Eventually(
      [&] { return log_.All().find("no watch") != std::string::npos; }));
  // Backoff is 5-40 ms here: a retry loop would have called again by now.
  absl::SleepFor(absl::Milliseconds(100));
  EXPECT_EQ(server_->watch_calls().size(), 1u);
  EXPECT_EQ(log_.Count(LogLevel::kWarning), 0) << log_.All();
  const auto timeline = server_->timeline();
  for (int64_t t = 0; t < 100; ++t) {
    auto r = client->Step(t);
    ASSERT_TRUE(r.ok()) << r.status();
    ExpectSameStep(*r, timeline->At(t));
  }
  EXPECT_GE(client->stats().windows, 10);
}

TEST_F(StepClientTest, TransportWithoutStreamsStillServes) {
  // A custom transport that predates WatchSchedules.
  class UnaryOnly : public ScheduleTransport {
   public:
    explicit UnaryOnly(std::shared_ptr<FakeScheduleServer> s)
        : inner_(std::move(s)) {}
    absl::StatusOr<v1::EvaluateRangeResponse> EvaluateRange(
        const v1::EvaluateRangeRequest& r, const CallOptions& o) override {
      return inner_.EvaluateRange(r, o);
    }
    absl::StatusOr<v1::Schedule> GetSchedule(const v1::GetScheduleRequest& r,
                                             const CallOptions& o) override {
      return inner_.GetSchedule(r, o);
    }

   private:
    FakeTransport inner_;
  };
  auto client =
      StepClient::Create(BaseOptions(10), std::make_unique<UnaryOnly>(server_));
  ASSERT_TRUE(client.ok()) << client.status();
  for (int64_t t = 0; t < 30; ++t) ASSERT_TRUE((*client)->Step(t).ok());
  ASSERT_TRUE(Eventually(
      [&] { return log_.All().find("no watch") != std::string::npos; }));
  EXPECT_EQ((*client)->stats().watch_calls, 1);
}

TEST_F(StepClientTest, WatchedDeleteIsLoggedAtOnceAndTheWindowStillServes) {
  auto client = Make(BaseOptions(100));
  ASSERT_NE(client, nullptr);
  ASSERT_TRUE(server_->AwaitWatchers(1));
  server_->Delete();
  ASSERT_TRUE(Eventually([&] { return log_.Count(LogLevel::kError) == 1; }));
  EXPECT_THAT(log_.All(), HasSubstr("NOT_FOUND"));
  // The steps the job was served stay its to train on.
  ASSERT_TRUE(client->Step(50).ok());
  EXPECT_EQ(client->Step(100).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace anneal
