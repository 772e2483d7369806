// Durability of the real server: a clean stop and start keeps every schedule
// and every LR bit for bit; kill -9 during many concurrent Advance calls loses
// no acknowledged advance and applies no request twice.
#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/store/store.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

constexpr char kSpec[] =
    "{max_lr: 0.1, min_lr: 0.001, warmup: {steps: 5}, warm_restarts: {period: "
    "10, period_mult: 2, peak_decay: 0.9}, momentum: {base: 0.85, max: 0.95}}";

v1::Schedule Get(ServerProcess& server, const std::string& name) {
  v1::GetScheduleRequest req;
  req.set_name(name);
  v1::Schedule out;
  grpc::Status s = server.stub()->GetSchedule(Ctx().get(), req, &out);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return out;
}

v1::StepRange Range(ServerProcess& server, const std::string& name,
                    int64_t count) {
  v1::EvaluateRangeRequest req;
  req.set_name(name);
  req.set_count(count);
  v1::EvaluateRangeResponse out;
  grpc::Status s = server.stub()->EvaluateRange(Ctx().get(), req, &out);
  EXPECT_TRUE(s.ok()) << s.error_message();
  return out.range();
}

TEST(PersistenceTest, StopAndStartKeepsStateAndEveryLr) {
  ServerProcess server(TempDb("db"));
  server.Start();
  v1::CreateScheduleRequest create;
  create.set_schedule_id("p");
  *create.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
  (*create.mutable_schedule()->mutable_labels())["team"] = "vision";
  create.mutable_schedule()->set_display_name("persisted");
  v1::Schedule out;
  ASSERT_TRUE(server.stub()->CreateSchedule(Ctx().get(), create, &out).ok());
  v1::AdvanceRequest advance;
  advance.set_name("schedules/p");
  v1::AdvanceResponse advanced;
  for (int i = 0; i < 7; ++i) {
    advance.set_request_id("adv-" + std::to_string(i));
    ASSERT_TRUE(server.stub()->Advance(Ctx().get(), advance, &advanced).ok());
  }
  v1::UpdateScheduleRequest update;
  update.mutable_schedule()->set_name("schedules/p");
  *update.mutable_schedule()->mutable_spec() = SpecFromText(
      "{max_lr: 0.05, warm_restarts: {period: 10, period_mult: 2}}");
  update.mutable_update_mask()->add_paths("spec");
  update.set_effective_step(40);
  ASSERT_TRUE(server.stub()->UpdateSchedule(Ctx().get(), update, &out).ok());
  v1::RestartScheduleRequest restart;
  restart.set_name("schedules/p");
  restart.set_at_step(100);
  ASSERT_TRUE(server.stub()->RestartSchedule(Ctx().get(), restart, &out).ok());

  const v1::StepRange lrs_before = Range(server, "schedules/p", 3000);
  const v1::Schedule before = Get(server, "schedules/p");
  ASSERT_EQ(server.Stop(), 0);

  server.Start();
  const v1::Schedule after = Get(server, "schedules/p");
  EXPECT_EQ(after.SerializeAsString(), before.SerializeAsString())
      << before.DebugString() << "\nvs\n"
      << after.DebugString();
  EXPECT_EQ(after.max_step_served(), 2999);
  EXPECT_EQ(Range(server, "schedules/p", 3000).SerializeAsString(),
            lrs_before.SerializeAsString());
  // A retried advance is still recognised after the restart.
  advance.set_request_id("adv-3");
  ASSERT_TRUE(server.stub()->Advance(Ctx().get(), advance, &advanced).ok());
  EXPECT_EQ(advanced.position(), 4);
  EXPECT_EQ(Get(server, "schedules/p").position(), 7);
  ASSERT_EQ(server.Stop(), 0);
}

TEST(PersistenceTest,
     KillNineDuringConcurrentAdvancesLosesNoAcknowledgedAdvance) {
  ServerProcess server(TempDb("db"));
  server.Start();
  v1::CreateScheduleRequest create;
  create.set_schedule_id("k");
  *create.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
  v1::Schedule out;
  ASSERT_TRUE(server.stub()->CreateSchedule(Ctx().get(), create, &out).ok());

  std::mutex mu;
  std::map<std::string, int64_t> acked;  // request_id -> position
  std::atomic<bool> stop{false};
  std::atomic<int64_t> attempts{0};
  std::vector<std::thread> clients;
  auto channel = server.channel();
  for (int c = 0; c < 8; ++c) {
    clients.emplace_back([&, c] {
      auto stub = v1::ScheduleService::NewStub(channel);
      for (int i = 0; !stop && i < 100000; ++i) {
        v1::AdvanceRequest req;
        req.set_name("schedules/k");
        req.set_request_id("c" + std::to_string(c) + "-" + std::to_string(i));
        v1::AdvanceResponse resp;
        ++attempts;
        grpc::Status s = stub->Advance(Ctx(2).get(), req, &resp);
        if (!s.ok()) break;  // the server died
        std::lock_guard<std::mutex> lock(mu);
        acked[req.request_id()] = resp.position();
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  server.Kill();
  stop = true;
  for (auto& t : clients) t.join();
  ASSERT_GT(acked.size(), 50u) << "too few advances to test anything";

  server.Start();
  const int64_t position = Get(server, "schedules/k").position();
  std::cout << "kill -9: " << acked.size() << " acknowledged, " << attempts
            << " attempted, " << position << " durable\n";
  EXPECT_GE(position, static_cast<int64_t>(acked.size()));
  EXPECT_LE(position, attempts.load());
  // Every acknowledged advance got its own position.
  std::set<int64_t> positions;
  for (const auto& [id, p] : acked) positions.insert(p);
  EXPECT_EQ(positions.size(), acked.size());
  EXPECT_LE(*positions.rbegin(), position);
  // Retrying acknowledged requests (those still in the dedup window) returns
  // their first answer and never advances again.
  int retried = 0;
  for (const auto& [id, p] : acked) {
    if (p <= position - kAdvanceDedupWindow) continue;
    v1::AdvanceRequest req;
    req.set_name("schedules/k");
    req.set_request_id(id);
    v1::AdvanceResponse resp;
    ASSERT_TRUE(server.stub()->Advance(Ctx().get(), req, &resp).ok());
    EXPECT_EQ(resp.position(), p) << id;
    ++retried;
  }
  EXPECT_GT(retried, 0);
  EXPECT_EQ(Get(server, "schedules/k").position(), position);
  ASSERT_EQ(server.Stop(), 0);
}

TEST(PersistenceTest, AServedStepIsDurableWhenAnswered) {
  ServerProcess server(TempDb("db"), {"--served_headroom=100"});
  server.Start();
  v1::CreateScheduleRequest create;
  create.set_schedule_id("s");
  *create.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
  v1::Schedule out;
  ASSERT_TRUE(server.stub()->CreateSchedule(Ctx().get(), create, &out).ok());
  v1::EvaluateRequest eval;
  eval.set_name("schedules/s");
  eval.set_step(500);
  v1::EvaluateResponse resp;
  ASSERT_TRUE(server.stub()->Evaluate(Ctx().get(), eval, &resp).ok());
  server.Kill();  // at once: nothing but the answer's own write is durable
  server.Start();
  // The durable mark, with its headroom.
  EXPECT_EQ(Get(server, "schedules/s").max_step_served(), 600);
  // A clean stop stores the exact mark.
  ASSERT_TRUE(server.stub()->Evaluate(Ctx().get(), eval, &resp).ok());
  ASSERT_EQ(server.Stop(), 0);
  server.Start();
  EXPECT_EQ(Get(server, "schedules/s").max_step_served(), 600);
  ASSERT_EQ(server.Stop(), 0);
}

TEST(PersistenceTest, ANeverServedScheduleStaysUnservedAcrossRestarts) {
  ServerProcess server(TempDb("db"));
  server.Start();
  v1::CreateScheduleRequest create;
  create.set_schedule_id("idle");
  *create.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
  v1::Schedule out;
  ASSERT_TRUE(server.stub()->CreateSchedule(Ctx().get(), create, &out).ok());
  ASSERT_EQ(out.max_step_served(), -1);
  ASSERT_EQ(server.Stop(), 0);
  server.Start();
  EXPECT_EQ(Get(server, "schedules/idle").max_step_served(), -1);
  server.Kill();
  server.Start();
  EXPECT_EQ(Get(server, "schedules/idle").max_step_served(), -1);
  // So an update with no effective step still takes effect from step 0.
  v1::UpdateScheduleRequest update;
  update.mutable_schedule()->set_name("schedules/idle");
  *update.mutable_schedule()->mutable_spec() =
      SpecFromText("{max_lr: 0.5, constant: {}}");
  update.mutable_update_mask()->add_paths("spec");
  grpc::Status updated =
      server.stub()->UpdateSchedule(Ctx().get(), update, &out);
  ASSERT_TRUE(updated.ok()) << updated.error_message();
  EXPECT_EQ(Range(server, "schedules/idle", 1).lr(0), 0.5);
  // One Advance serves step 1, and that is what a restart keeps.
  v1::AdvanceRequest advance;
  advance.set_name("schedules/idle");
  v1::AdvanceResponse advanced;
  ASSERT_TRUE(server.stub()->Advance(Ctx().get(), advance, &advanced).ok());
  ASSERT_EQ(server.Stop(), 0);
  server.Start();
  EXPECT_GE(Get(server, "schedules/idle").max_step_served(), 1);
  ASSERT_EQ(server.Stop(), 0);
}

// A schedule created again under a deleted one's name continues its
// revisions, across kill -9 too, so a watcher resuming with the old
// revision is sent the new schedule.
TEST(PersistenceTest, ARecreatedNameContinuesItsRevisions) {
  ServerProcess server(TempDb("db"), {"--max_tombstones=1"});
  server.Start();
  auto create = [&](const std::string& id) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
    v1::Schedule out;
    grpc::Status s = server.stub()->CreateSchedule(Ctx().get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  };
  auto remove = [&](const std::string& id) {
    v1::DeleteScheduleRequest req;
    req.set_name("schedules/" + id);
    google::protobuf::Empty out;
    EXPECT_TRUE(server.stub()->DeleteSchedule(Ctx().get(), req, &out).ok());
  };
  create("job");
  v1::RestartScheduleRequest restart;
  restart.set_name("schedules/job");
  v1::Schedule restarted;
  ASSERT_TRUE(
      server.stub()->RestartSchedule(Ctx().get(), restart, &restarted).ok());
  ASSERT_EQ(restarted.revision(), 2);
  remove("job");
  server.Kill();
  server.Start();
  const v1::Schedule again = create("job");
  EXPECT_EQ(again.revision(), 3);
  EXPECT_EQ(again.timeline(0).revision(), 3);
  EXPECT_EQ(again.timeline_size(), 1);
  // The watcher that knew revision 2 gets the new schedule.
  v1::WatchSchedulesRequest watch;
  watch.add_names("schedules/job");
  (*watch.mutable_since_revisions())["schedules/job"] = 2;
  auto ctx = Ctx();
  auto reader = server.stub()->WatchSchedules(ctx.get(), watch);
  v1::WatchEvent event;
  ASSERT_TRUE(reader->Read(&event));
  EXPECT_EQ(event.kind(), v1::WatchEvent::CURRENT);
  EXPECT_EQ(event.revision(), 3);
  ctx->TryCancel();
  reader->Finish();
  // With --max_tombstones=1, the oldest deleted name is forgotten.
  remove("job");
  create("other");
  remove("other");
  server.Kill();
  server.Start();
  EXPECT_EQ(create("job").revision(), 1);
  EXPECT_EQ(create("other").revision(), 2);
  ASSERT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace anneal
