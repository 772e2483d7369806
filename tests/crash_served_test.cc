// The headline promise under kill -9: no LR a caller was answered with is
// ever rewritten. Twenty rounds of prefetching jobs, a step-by-step job and
// an Advance loop, each cut by SIGKILL at a random moment; after each
// restart a default update and a default restart (which land at
// max_step_served + 1) are applied to every schedule, and every (step, lr)
// answered before any kill must still be what the schedule says.
#include <atomic>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

constexpr char kSpec[] =
    "{max_lr: 0.1, min_lr: 0.001, warmup: {steps: 3}, warm_restarts: {period: "
    "7, period_mult: 2, peak_decay: 0.8}, momentum: {base: 0.85, max: 0.95}}";

// Every (step, lr) answered for one schedule, as bits (steps are dense:
// each job goes forward from step 0). Used by one job thread at a time.
class Served {
 public:
  void Add(int64_t step, double lr) {
    uint64_t bits;
    std::memcpy(&bits, &lr, sizeof bits);
    const auto i = static_cast<size_t>(step);
    if (i >= bits_.size()) {
      bits_.resize(i + 1, 0);
      present_.resize(i + 1, false);
    }
    if (present_[i] && bits_[i] != bits) ++contradictions_;
    bits_[i] = bits;
    present_[i] = true;
  }
  // The number of steps that do not hold the LR they were served with.
  int64_t Rewritten(const v1::StepRange& now) const {
    int64_t bad = 0;
    for (size_t i = 0; i < bits_.size(); ++i) {
      if (!present_[i]) continue;
      uint64_t bits;
      const double lr = now.lr(static_cast<int>(i));
      std::memcpy(&bits, &lr, sizeof bits);
      if (bits != bits_[i]) ++bad;
    }
    return bad;
  }
  int64_t size() const {
    int64_t n = 0;
    for (bool p : present_) n += p ? 1 : 0;
    return n;
  }
  int64_t end() const { return static_cast<int64_t>(bits_.size()); }
  int contradictions() const { return contradictions_; }

 private:
  std::vector<uint64_t> bits_;
  std::vector<bool> present_;
  int contradictions_ = 0;
};

bool Ok(const grpc::Status& s) { return s.ok(); }

TEST(CrashServedTest, NoServedLrIsRewrittenAcrossKillNine) {
  // A small headroom, so the durable mark is raised many times per round.
  ServerProcess server(TempDb("db"), {"--served_headroom=64"});
  std::mt19937 rng(8);
  const std::vector<std::string> names = {"schedules/p0", "schedules/p1",
                                          "schedules/e", "schedules/a"};
  // One entry per schedule before any job starts: each job thread then uses
  // only its own entry, and no thread inserts into the maps.
  std::map<std::string, Served> served;
  std::map<std::string, int64_t> cursor;  // where each job goes on
  for (const std::string& name : names) {
    served[name];
    cursor[name] = 0;
  }
  int64_t answered = 0;
  for (int round = 0; round < 20; ++round) {
    ASSERT_NO_FATAL_FAILURE(server.Start());
    // The jobs' own stub: Kill() drops the server's while they still call.
    const auto job_stub = v1::ScheduleService::NewStub(server.channel());
    auto* stub = job_stub.get();
    if (round == 0) {
      for (const std::string& name : names) {
        v1::CreateScheduleRequest create;
        create.set_schedule_id(name.substr(10));
        *create.mutable_schedule()->mutable_spec() = SpecFromText(kSpec);
        v1::Schedule out;
        ASSERT_TRUE(stub->CreateSchedule(Ctx().get(), create, &out).ok());
      }
    }
    std::atomic<bool> stop{false};
    std::atomic<int64_t> calls{0};
    std::vector<std::thread> jobs;
    for (const char* name : {"schedules/p0", "schedules/p1"}) {  // prefetch
      jobs.emplace_back([&, name] {
        int64_t t = cursor[name];
        while (!stop) {
          v1::EvaluateRangeRequest req;
          req.set_name(name);
          req.set_start_step(t);
          req.set_count(256);
          v1::EvaluateRangeResponse resp;
          if (!Ok(stub->EvaluateRange(Ctx(2).get(), req, &resp))) break;
          for (int i = 0; i < resp.range().lr_size(); ++i) {
            served[name].Add(t + i, resp.range().lr(i));
          }
          ++calls;
          t += 128;  // refresh halfway through the window
          // A job trains between refreshes (and keeps the test's history
          // small enough to check every step of it each round).
          std::this_thread::sleep_for(std::chrono::microseconds(500));
        }
        cursor[name] = t;
      });
    }
    jobs.emplace_back([&] {  // one Evaluate per step
      int64_t t = cursor["schedules/e"];
      while (!stop) {
        v1::EvaluateRequest req;
        req.set_name("schedules/e");
        req.set_step(t);
        v1::EvaluateResponse resp;
        if (!Ok(stub->Evaluate(Ctx(2).get(), req, &resp))) break;
        served["schedules/e"].Add(t++, resp.result().lr());
        ++calls;
      }
      cursor["schedules/e"] = t;
    });
    jobs.emplace_back([&, round] {  // the server keeps the step
      for (int i = 0; !stop; ++i) {
        v1::AdvanceRequest req;
        req.set_name("schedules/a");
        req.set_request_id(absl::StrCat(round, "-", i));
        v1::AdvanceResponse resp;
        if (!Ok(stub->Advance(Ctx(2).get(), req, &resp))) break;
        served["schedules/a"].Add(resp.position(), resp.result().lr());
        ++calls;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(
        std::uniform_int_distribution<int>(30, 400)(rng)));
    server.Kill();
    stop = true;
    for (std::thread& t : jobs) t.join();
    answered += calls;

    // Restart; change every schedule at its default step.
    ASSERT_NO_FATAL_FAILURE(server.Start());
    stub = server.stub();
    for (const std::string& name : names) {
      v1::UpdateScheduleRequest update;
      update.mutable_schedule()->set_name(name);
      *update.mutable_schedule()->mutable_spec() = SpecFromText(absl::StrCat(
          "{max_lr: ", 0.05 + 0.001 * round, ", cosine: {period: 50}}"));
      v1::Schedule out;
      grpc::Status s = stub->UpdateSchedule(Ctx().get(), update, &out);
      ASSERT_TRUE(s.ok()) << s.error_message();
      v1::RestartScheduleRequest restart;
      restart.set_name(name);
      s = stub->RestartSchedule(Ctx().get(), restart, &out);
      ASSERT_TRUE(s.ok()) << s.error_message();
      EXPECT_EQ(out.timeline(0).kind(), v1::Segment::CREATE);
      EXPECT_EQ(out.timeline(0).from_step(), 0);
    }
    // Every answered LR is what the timeline says now.
    for (const std::string& name : names) {
      const Served& job = served[name];
      ASSERT_EQ(job.contradictions(), 0) << name;
      if (job.end() == 0) continue;
      v1::StepRange now;  // the whole timeline so far, in ranges of 1M
      for (int64_t start = 0; start < job.end(); start += 1'000'000) {
        v1::EvaluateRangeRequest req;
        req.set_name(name);
        req.set_start_step(start);
        req.set_count(std::min<int64_t>(1'000'000, job.end() - start));
        req.set_inspect_only(true);
        v1::EvaluateRangeResponse resp;
        ASSERT_TRUE(stub->EvaluateRange(Ctx().get(), req, &resp).ok());
        now.mutable_lr()->MergeFrom(resp.range().lr());
      }
      const int64_t rewritten = job.Rewritten(now);
      ASSERT_EQ(rewritten, 0)
          << name << " round " << round << ": " << rewritten << " of "
          << job.size() << " served steps rewritten";
    }
    ASSERT_EQ(server.Stop(), 0);
  }
  int64_t steps = 0;
  for (const std::string& name : names) steps += served[name].size();
  std::cout << "[ crash ] 20 rounds of kill -9: " << answered
            << " answered calls, " << steps
            << " distinct served steps, none rewritten\n";
  EXPECT_GT(steps, 2000);
}

}  // namespace
}  // namespace anneal
