// The real anneal-server over gRPC: every RPC, pagination, etags, error paths
// with their details, Evaluate == engine bit for bit, EvaluateRange ==
// Evaluate, health checking, and the log lines.
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include "anneal/engine/testing/spec_from_text.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using testing::HasSubstr;

class ServerTest : public LiveServerTest {
 protected:
  v1::Schedule Create(const std::string& id, const std::string& spec_text,
                      std::map<std::string, std::string> labels = {}) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec_text);
    for (auto& [k, v] : labels)
      (*req.mutable_schedule()->mutable_labels())[k] = v;
    v1::Schedule out;
    grpc::Status s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return out;
  }

  StepResult EvaluateStep(const std::string& name, int64_t step) {
    v1::EvaluateRequest req;
    req.set_name(name);
    req.set_step(step);
    v1::EvaluateResponse resp;
    grpc::Status s = server_->stub()->Evaluate(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    StepResult r;
    r.lr = resp.result().lr();
    r.cycle = resp.result().cycle();
    r.step_in_cycle = resp.result().step_in_cycle();
    r.restart = resp.result().restart();
    r.snapshot = resp.result().snapshot();
    r.momentum = resp.result().momentum();
    return r;
  }
};

constexpr char kSgdr[] =
    "{max_lr: 0.1, min_lr: 0.001, warm_restarts: {period: 10, period_mult: 2}, "
    "momentum: {base: 0.85, max: 0.95}}";

TEST_F(ServerTest, CreateGetDelete) {
  v1::Schedule created = Create("resnet-run-1", kSgdr, {{"team", "vision"}});
  EXPECT_EQ(created.name(), "schedules/resnet-run-1");
  EXPECT_EQ(created.state(), v1::Schedule::ACTIVE);
  EXPECT_EQ(created.revision(), 1);
  EXPECT_FALSE(created.etag().empty());
  EXPECT_EQ(created.timeline_size(), 1);
  EXPECT_EQ(created.max_step_served(), -1);
  EXPECT_TRUE(created.has_create_time());

  v1::GetScheduleRequest get;
  get.set_name("schedules/resnet-run-1");
  v1::Schedule got;
  ASSERT_TRUE(server_->stub()->GetSchedule(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.SerializeAsString(), created.SerializeAsString());

  v1::DeleteScheduleRequest del;
  del.set_name("schedules/resnet-run-1");
  del.set_etag("W/\"stale\"");
  google::protobuf::Empty empty;
  EXPECT_EQ(
      server_->stub()->DeleteSchedule(Ctx().get(), del, &empty).error_code(),
      grpc::StatusCode::ABORTED);
  del.set_etag(created.etag());
  ASSERT_TRUE(server_->stub()->DeleteSchedule(Ctx().get(), del, &empty).ok());
  grpc::Status s = server_->stub()->GetSchedule(Ctx().get(), get, &got);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(s.error_message(), "schedules/resnet-run-1: not found");
}

TEST_F(ServerTest, CreateErrorsNameFieldAndRuleWithDetails) {
  Create("a", kSgdr);
  v1::CreateScheduleRequest req;
  req.set_schedule_id("a");
  *req.mutable_schedule()->mutable_spec() = SpecFromText(kSgdr);
  v1::Schedule out;
  EXPECT_EQ(
      server_->stub()->CreateSchedule(Ctx().get(), req, &out).error_code(),
      grpc::StatusCode::ALREADY_EXISTS);

  req.set_schedule_id("Bad_ID");
  grpc::Status s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr("schedule_id: must match"));

  req.set_schedule_id("b");
  req.mutable_schedule()->mutable_spec()->mutable_warm_restarts()->set_period(
      0);
  s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(),
            "schedule.spec.warm_restarts.period: must be >= 1, got 0");
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  bool found = false;
  for (const auto& any : details.details()) {
    google::rpc::BadRequest bad;
    if (any.UnpackTo(&bad)) {
      found = true;
      EXPECT_EQ(bad.field_violations(0).field(),
                "schedule.spec.warm_restarts.period");
      EXPECT_EQ(bad.field_violations(0).description(), "must be >= 1, got 0");
    }
  }
  EXPECT_TRUE(found) << "no BadRequest detail";

  req.clear_schedule();
  s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
  EXPECT_EQ(s.error_message(), "schedule.spec: is required");
}

TEST_F(ServerTest, ListPaginatesAndFilters) {
  for (int i = 0; i < 7; ++i) {
    Create("s" + std::to_string(i), kSgdr,
           {{"team", i % 2 ? "vision" : "nlp"}, {"idx", std::to_string(i)}});
  }
  v1::ListSchedulesRequest req;
  req.set_page_size(3);
  std::vector<std::string> names;
  for (int page = 0; page < 10; ++page) {
    v1::ListSchedulesResponse resp;
    ASSERT_TRUE(server_->stub()->ListSchedules(Ctx().get(), req, &resp).ok());
    for (const auto& s : resp.schedules()) names.push_back(s.name());
    EXPECT_LE(resp.schedules_size(), 3);
    if (resp.next_page_token().empty()) break;
    req.set_page_token(resp.next_page_token());
  }
  EXPECT_THAT(names, testing::ElementsAre("schedules/s0", "schedules/s1",
                                          "schedules/s2", "schedules/s3",
                                          "schedules/s4", "schedules/s5",
                                          "schedules/s6"));
  v1::ListSchedulesRequest filtered;
  filtered.set_filter("labels.team = \"vision\" AND labels.idx:*");
  v1::ListSchedulesResponse resp;
  ASSERT_TRUE(
      server_->stub()->ListSchedules(Ctx().get(), filtered, &resp).ok());
  EXPECT_EQ(resp.schedules_size(), 3);
  EXPECT_TRUE(resp.next_page_token().empty());

  // A token is bound to its filter; bad inputs are INVALID_ARGUMENT.
  filtered.set_page_token(req.page_token());
  EXPECT_EQ(
      server_->stub()->ListSchedules(Ctx().get(), filtered, &resp).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  v1::ListSchedulesRequest bad;
  bad.set_page_size(-1);
  EXPECT_EQ(
      server_->stub()->ListSchedules(Ctx().get(), bad, &resp).error_message(),
      "page_size: must be >= 0, got -1");
  bad.set_page_size(0);
  bad.set_filter("team = vision");
  EXPECT_THAT(
      server_->stub()->ListSchedules(Ctx().get(), bad, &resp).error_message(),
      HasSubstr("filter: expected labels.KEY"));
}

TEST_F(ServerTest, EvaluateEqualsTheEngineBitForBit) {
  Create("e", kSgdr);
  auto engine = CompileText(kSgdr);
  for (int64_t step :
       {int64_t{0}, int64_t{1}, int64_t{9}, int64_t{10}, int64_t{29},
        int64_t{30}, int64_t{12345}, int64_t{1} << 40, kMaxStep}) {
    v1::EvaluateRequest req;
    req.set_name("schedules/e");
    req.set_step(step);
    v1::EvaluateResponse resp;
    ASSERT_TRUE(server_->stub()->Evaluate(Ctx().get(), req, &resp).ok());
    v1::StepResult want;
    ToProto(engine->At(step), &want);
    EXPECT_EQ(resp.result().SerializeAsString(), want.SerializeAsString())
        << step;
    EXPECT_EQ(resp.revision(), 1);
  }
  v1::EvaluateRequest bad;
  bad.set_name("schedules/e");
  bad.set_step(-1);
  v1::EvaluateResponse resp;
  grpc::Status s = server_->stub()->Evaluate(Ctx().get(), bad, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(s.error_message(), "step: must be in [0, 2^62], got -1");
  bad.set_name("schedules/missing");
  bad.set_step(0);
  EXPECT_EQ(server_->stub()->Evaluate(Ctx().get(), bad, &resp).error_code(),
            grpc::StatusCode::NOT_FOUND);
  bad.set_name("nope");
  EXPECT_EQ(server_->stub()->Evaluate(Ctx().get(), bad, &resp).error_message(),
            "name: must be schedules/{id}, got \"nope\"");
}

TEST_F(ServerTest, EvaluateRangeEqualsEvaluateForEveryStep) {
  Create("r", kSgdr);
  v1::RestartScheduleRequest restart;
  restart.set_name("schedules/r");
  restart.set_at_step(50);
  v1::Schedule out;
  ASSERT_TRUE(
      server_->stub()->RestartSchedule(Ctx().get(), restart, &out).ok());
  v1::EvaluateRangeRequest req;
  req.set_name("schedules/r");
  req.set_start_step(0);
  req.set_count(300);
  v1::EvaluateRangeResponse range;
  ASSERT_TRUE(server_->stub()->EvaluateRange(Ctx().get(), req, &range).ok());
  ASSERT_EQ(range.range().lr_size(), 300);
  ASSERT_EQ(range.range().momentum_size(), 300);
  for (int i = 0; i < 300; ++i) {
    v1::EvaluateRequest one;
    one.set_name("schedules/r");
    one.set_step(i);
    v1::EvaluateResponse r;
    ASSERT_TRUE(server_->stub()->Evaluate(Ctx().get(), one, &r).ok());
    ASSERT_EQ(range.range().lr(i), r.result().lr()) << i;
    ASSERT_EQ(range.range().momentum(i), r.result().momentum()) << i;
    ASSERT_EQ(range.range().beta1_bias_correction(i),
              r.result().beta1_bias_correction())
        << i;
    ASSERT_EQ(range.range().cycle(i), r.result().cycle()) << i;
    ASSERT_EQ(range.range().step_in_cycle(i), r.result().step_in_cycle()) << i;
    ASSERT_EQ((range.range().flags(i) & 1) != 0, r.result().restart()) << i;
    ASSERT_EQ((range.range().flags(i) & 2) != 0, r.result().snapshot()) << i;
    ASSERT_EQ(static_cast<int>(range.range().flags(i) >> 8), r.result().phase())
        << i;
  }
  req.set_count(1'000'001);
  EXPECT_EQ(
      server_->stub()->EvaluateRange(Ctx().get(), req, &range).error_code(),
      grpc::StatusCode::RESOURCE_EXHAUSTED);
  // A full million-step range fits in one message.
  req.set_count(1'000'000);
  ASSERT_TRUE(server_->stub()->EvaluateRange(Ctx(30).get(), req, &range).ok());
  EXPECT_EQ(range.range().lr_size(), 1'000'000);
}

TEST_F(ServerTest, InspectOnlyRangesServeNothing) {
  Create("i", kSgdr);
  v1::EvaluateRangeRequest req;
  req.set_name("schedules/i");
  req.set_count(500);
  req.set_inspect_only(true);
  v1::EvaluateRangeResponse range;
  ASSERT_TRUE(server_->stub()->EvaluateRange(Ctx().get(), req, &range).ok());
  v1::GetScheduleRequest get;
  get.set_name("schedules/i");
  v1::Schedule got;
  ASSERT_TRUE(server_->stub()->GetSchedule(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.max_step_served(), -1);
  req.set_inspect_only(false);
  ASSERT_TRUE(server_->stub()->EvaluateRange(Ctx().get(), req, &range).ok());
  ASSERT_TRUE(server_->stub()->GetSchedule(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.max_step_served(), 499);
}

TEST_F(ServerTest, UpdatesKeepCycleNumbersGoingForward) {
  Create("k", "{max_lr: 1, warm_restarts: {period: 10}}");  // cycle 3 at 35
  v1::UpdateScheduleRequest update;
  update.mutable_schedule()->set_name("schedules/k");
  *update.mutable_schedule()->mutable_spec() =
      SpecFromText("{max_lr: 0.5, cosine: {period: 100}}");
  update.mutable_update_mask()->add_paths("spec");
  update.set_effective_step(35);
  v1::Schedule out;
  ASSERT_TRUE(server_->stub()->UpdateSchedule(Ctx().get(), update, &out).ok());
  EXPECT_EQ(EvaluateStep("schedules/k", 34).cycle, 3);
  EXPECT_EQ(EvaluateStep("schedules/k", 35).cycle, 3);  // not back to 0
  EXPECT_FALSE(EvaluateStep("schedules/k", 35).restart);
}

TEST_F(ServerTest, SimulateNeedsNoStoredSchedule) {
  v1::SimulateRequest req;
  *req.mutable_spec() = SpecFromText("{max_lr: 1, cosine: {period: 10}}");
  req.set_count(11);
  v1::EvaluateRangeResponse resp;
  ASSERT_TRUE(server_->stub()->Simulate(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.range().lr(0), 1.0);
  EXPECT_EQ(resp.range().lr(10), 0.0);
  EXPECT_EQ(resp.range().flags(10) & 2, 2u);
  req.mutable_spec()->mutable_cosine()->set_period(0);
  EXPECT_EQ(server_->stub()->Simulate(Ctx().get(), req, &resp).error_message(),
            "spec.cosine.period: must be >= 1, got 0");
}

TEST_F(ServerTest, UpdateWithMaskEtagAndEffectiveStep) {
  v1::Schedule created = Create("u", "{max_lr: 0.1, cosine: {period: 100}}");
  EvaluateStep("schedules/u", 40);  // serves up to step 40

  v1::UpdateScheduleRequest req;
  req.mutable_schedule()->set_name("schedules/u");
  req.mutable_schedule()->set_etag("W/\"0000\"");
  req.mutable_schedule()->set_display_name("renamed");
  v1::Schedule out;
  EXPECT_EQ(
      server_->stub()->UpdateSchedule(Ctx().get(), req, &out).error_code(),
      grpc::StatusCode::ABORTED);
  req.mutable_schedule()->set_etag(created.etag());
  req.mutable_update_mask()->add_paths("colour");
  EXPECT_EQ(
      server_->stub()->UpdateSchedule(Ctx().get(), req, &out).error_message(),
      "update_mask.paths[0]: \"colour\" is not updatable (allowed: spec, "
      "display_name, labels, *)");
  req.clear_update_mask();
  ASSERT_TRUE(server_->stub()->UpdateSchedule(Ctx().get(), req, &out).ok());
  EXPECT_EQ(out.display_name(), "renamed");
  EXPECT_EQ(out.revision(), 2);
  EXPECT_NE(out.etag(), created.etag());
  EXPECT_EQ(out.timeline_size(), 1);

  // A new spec from step 60, same clock: steps <= 40 were served and stay.
  const double served_40 = EvaluateStep("schedules/u", 40).lr;
  v1::UpdateScheduleRequest spec;
  spec.mutable_schedule()->set_name("schedules/u");
  *spec.mutable_schedule()->mutable_spec() =
      SpecFromText("{max_lr: 0.05, cosine: {period: 100}}");
  spec.mutable_update_mask()->add_paths("spec");
  spec.set_effective_step(30);
  grpc::Status s = server_->stub()->UpdateSchedule(Ctx().get(), spec, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "effective_step: must be > max_step_served (40) so no LR already "
            "served is rewritten, got 30");
  spec.set_effective_step(60);
  spec.set_reason("halve the peak");
  spec.set_actor("ops@example");
  ASSERT_TRUE(server_->stub()->UpdateSchedule(Ctx().get(), spec, &out).ok());
  ASSERT_EQ(out.timeline_size(), 2);
  EXPECT_EQ(out.timeline(1).from_step(), 60);
  EXPECT_EQ(out.timeline(1).kind(), v1::Segment::UPDATE);
  EXPECT_EQ(out.timeline(1).reason(), "halve the peak");
  EXPECT_EQ(out.timeline(1).actor(), "ops@example");
  EXPECT_EQ(EvaluateStep("schedules/u", 40).lr, served_40);
  auto old_spec = CompileText("{max_lr: 0.1, cosine: {period: 100}}");
  auto new_spec = CompileText("{max_lr: 0.05, cosine: {period: 100}}");
  EXPECT_EQ(EvaluateStep("schedules/u", 59).lr, old_spec->At(59).lr);
  EXPECT_EQ(EvaluateStep("schedules/u", 60).lr, new_spec->At(60).lr);
  EXPECT_EQ(EvaluateStep("schedules/u", 99).lr, new_spec->At(99).lr);
  // The default effective step is max_step_served + 1.
  spec.clear_effective_step();
  *spec.mutable_schedule()->mutable_spec() =
      SpecFromText("{max_lr: 0.02, constant: {}}");
  ASSERT_TRUE(server_->stub()->UpdateSchedule(Ctx().get(), spec, &out).ok());
  EXPECT_EQ(out.timeline(out.timeline_size() - 1).from_step(), 100);
}

TEST_F(ServerTest, RestartBeginsANewCycleAtTheStep) {
  Create("w", "{max_lr: 1.0, min_lr: 0.0, cosine: {period: 100}}");
  v1::RestartScheduleRequest req;
  req.set_name("schedules/w");
  req.set_at_step(37);
  req.set_reason("loss plateau");
  v1::Schedule out;
  ASSERT_TRUE(server_->stub()->RestartSchedule(Ctx().get(), req, &out).ok());
  ASSERT_EQ(out.timeline_size(), 2);
  EXPECT_EQ(out.timeline(1).kind(), v1::Segment::RESTART);
  EXPECT_EQ(out.timeline(1).time_origin(), 37);
  StepResult before = EvaluateStep("schedules/w", 36);
  StepResult at = EvaluateStep("schedules/w", 37);
  EXPECT_TRUE(before.snapshot);
  EXPECT_FALSE(before.restart);
  EXPECT_TRUE(at.restart);
  EXPECT_EQ(at.lr, 1.0);
  EXPECT_EQ(at.cycle, 1);
  EXPECT_EQ(at.step_in_cycle, 0);
  EXPECT_EQ(EvaluateStep("schedules/w", 87).lr,
            CompileText("{max_lr: 1.0, cosine: {period: 100}}")->At(50).lr);
  req.set_at_step(10);  // step 37 was served
  EXPECT_EQ(
      server_->stub()->RestartSchedule(Ctx().get(), req, &out).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
}

TEST_F(ServerTest, AdvanceMovesOnceAndRetriesAreIdempotent) {
  Create("c", kSgdr);
  auto engine = CompileText(kSgdr);
  v1::AdvanceRequest req;
  req.set_name("schedules/c");
  v1::AdvanceResponse resp;
  for (int i = 1; i <= 12; ++i) {
    req.set_request_id("req-" + std::to_string(i));
    req.set_expected_position(i - 1);
    ASSERT_TRUE(server_->stub()->Advance(Ctx().get(), req, &resp).ok());
    EXPECT_EQ(resp.position(), i);
    v1::StepResult want;
    ToProto(engine->At(i), &want);
    EXPECT_EQ(resp.result().SerializeAsString(), want.SerializeAsString());
  }
  // The same request again: the first answer, no second advance.
  req.set_request_id("req-5");
  req.set_expected_position(4);
  ASSERT_TRUE(server_->stub()->Advance(Ctx().get(), req, &resp).ok());
  EXPECT_EQ(resp.position(), 5);
  // A stale expected_position names the actual one.
  req.set_request_id("req-13");
  req.set_expected_position(7);
  grpc::Status s = server_->stub()->Advance(Ctx().get(), req, &resp);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_EQ(s.error_message(),
            "expected_position: 7 is stale; the position is 12");
  v1::GetScheduleRequest get;
  get.set_name("schedules/c");
  v1::Schedule got;
  ASSERT_TRUE(server_->stub()->GetSchedule(Ctx().get(), get, &got).ok());
  EXPECT_EQ(got.position(), 12);
  EXPECT_EQ(got.max_step_served(), 12);
}

TEST_F(ServerTest, HealthServiceServes) {
  // grpc.health.v1.Health/Check with an empty HealthCheckRequest; the reply
  // HealthCheckResponse{status: SERVING} is the two bytes 08 01.
  grpc::GenericStub generic(server_->channel());
  grpc::ByteBuffer request, response;
  grpc::Slice empty("", 0);
  request = grpc::ByteBuffer(&empty, 1);
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status status;
  grpc::ClientContext ctx;
  generic.UnaryCall(&ctx, "/grpc.health.v1.Health/Check", grpc::StubOptions(),
                    &request, &response, [&](grpc::Status s) {
                      std::lock_guard<std::mutex> lock(mu);
                      status = s;
                      done = true;
                      cv.notify_all();
                    });
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return done; });
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(response.Dump(&slices).ok());
  std::string bytes;
  for (auto& slice : slices)
    bytes.append(reinterpret_cast<const char*>(slice.begin()), slice.size());
  EXPECT_EQ(bytes, std::string("\x08\x01", 2));
}

TEST_F(ServerTest, LogsOneLinePerMutationAndNonePerEvaluate) {
  Create("logged", kSgdr);
  for (int i = 0; i < 20; ++i) EvaluateStep("schedules/logged", i);
  std::stringstream log;
  log << std::ifstream(server_->log_path()).rdbuf();
  EXPECT_THAT(log.str(), HasSubstr("start: serving on"));
  EXPECT_THAT(log.str(), HasSubstr("create schedules/logged by"));
  EXPECT_THAT(log.str(), testing::Not(HasSubstr("evaluate")));
}

}  // namespace
}  // namespace anneal
