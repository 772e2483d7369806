// The real server against a hostile client: bytes that do not decode,
// oversized fields, specs that would compile to gigabytes, timelines that
// grow without end, control characters meant to forge log lines. Each gets
// a clear error naming the field, the limit and the size (never the value),
// and the server stays small and healthy.
#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

// The server's peak resident memory (VmHWM), in MiB.
int64_t PeakRssMib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (absl::StartsWith(line, "VmHWM:")) {
      return std::stoll(line.substr(6)) / 1024;
    }
  }
  return -1;
}

class HostileClientTest : public LiveServerTest {
 protected:
  HostileClientTest()
      : LiveServerTest({"--max_timeline_segments=8", "--served_headroom=10"}) {}

  // Calls `method` with raw request bytes; the status.
  grpc::Status Raw(const std::string& method, const std::string& bytes) {
    grpc::GenericStub stub(server_->channel());
    grpc::Slice slice(bytes);
    grpc::ByteBuffer request(&slice, 1), response;
    grpc::Status status;
    absl::Notification done;
    auto ctx = Ctx();
    stub.UnaryCall(ctx.get(), "/anneal.v1.ScheduleService/" + method,
                   grpc::StubOptions(), &request, &response,
                   [&](grpc::Status s) {
                     status = std::move(s);
                     done.Notify();
                   });
    done.WaitForNotification();
    return status;
  }

  void CreateSchedule(const std::string& id, const std::string& spec) {
    v1::CreateScheduleRequest req;
    req.set_schedule_id(id);
    *req.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    v1::Schedule out;
    grpc::Status s = server_->stub()->CreateSchedule(Ctx().get(), req, &out);
    ASSERT_TRUE(s.ok()) << s.error_message();
  }

  std::string Log() {
    std::ifstream in(server_->log_path());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }
};

void ExpectInvalid(const grpc::Status& s, const std::string& message) {
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
      << s.error_code() << " " << s.error_message();
  EXPECT_EQ(s.error_message(), message);
}

TEST_F(HostileClientTest, BytesThatDoNotDecodeAreInvalidArgumentWithAReason) {
  // A truncated field: tag 1 (name), length 10, 3 bytes.
  ExpectInvalid(Raw("Evaluate", std::string("\x10\x01\x0a\x0a"
                                            "abc",
                                            7)),
                "request: must be a serialized anneal.v1.EvaluateRequest, "
                "got bytes that end inside a field (the field at byte 2)");
  ExpectInvalid(Raw("Evaluate", std::string("\xff\xff\xff\xff\xff", 5)),
                "request: must be a serialized anneal.v1.EvaluateRequest, "
                "got bytes that hold an invalid field tag (the field at byte "
                "0)");
  // Invalid UTF-8 in a string field, one level down.
  v1::UpdateScheduleRequest update;
  update.mutable_schedule()->set_name("schedules/x");
  std::string bytes = update.SerializeAsString();
  bytes.back() = '\xc3';  // "schedules/\xc3"
  ExpectInvalid(Raw("UpdateSchedule", bytes),
                "schedule.name: must be valid UTF-8, got 11 bytes that are "
                "not");
  // Deeper than any request needs: 30 nested sequences, 90 messages.
  v1::SimulateRequest simulate;
  v1::ScheduleSpec* spec = simulate.mutable_spec();
  for (int i = 0; i < 30; ++i) {
    spec = spec->mutable_sequence()->add_phases()->mutable_spec();
  }
  spec->mutable_constant();
  grpc::Status s = Raw("Simulate", simulate.SerializeAsString());
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), HasSubstr(": must nest at most 64 messages"));
  EXPECT_LT(s.error_message().size(), 2000u);
}

TEST_F(HostileClientTest, EveryFieldHasALimitAndTheErrorNamesIt) {
  CreateSchedule("a", "{max_lr: 0.1, constant: {}}");
  const std::string mib(1 << 20, 'x');
  {
    v1::CreateScheduleRequest req;
    req.set_schedule_id("b");
    *req.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.1, constant: {}}");
    req.mutable_schedule()->set_display_name(mib);
    v1::Schedule out;
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "schedule.display_name: must be at most 256 bytes, got "
                  "1048576");
    req.mutable_schedule()->clear_display_name();
    for (int i = 0; i < 100'000; ++i) {
      (*req.mutable_schedule()->mutable_labels())[absl::StrCat("k", i)] = "v";
    }
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "schedule.labels: must be at most 64 labels, got 100000");
    req.mutable_schedule()->clear_labels();
    (*req.mutable_schedule()->mutable_labels())["9team"] = "v";
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "schedule.labels[\"9team\"]: key must match "
                  "^[A-Za-z][A-Za-z0-9_./-]*$, got \"9team\"");
    req.mutable_schedule()->clear_labels();
    req.set_reason(std::string(15 << 20, 'r'));
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "reason: must be at most 4096 bytes, got 15728640");
    req.clear_reason();
    req.set_actor(mib);
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "actor: must be at most 256 bytes, got 1048576");
    req.clear_actor();
    req.set_schedule_id(mib);
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "schedule_id: must be at most 1024 bytes, got 1048576");
    req.set_schedule_id("Bad_Id");
    ExpectInvalid(server_->stub()->CreateSchedule(Ctx().get(), req, &out),
                  "schedule_id: must match ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$ "
                  "(lower-case letters, digits and '-', at most 63), got "
                  "\"Bad_Id\"");
  }
  {
    v1::DeleteScheduleRequest req;
    req.set_name("schedules/a");
    req.set_reason(std::string(15 << 20, 'r'));
    google::protobuf::Empty out;
    ExpectInvalid(server_->stub()->DeleteSchedule(Ctx().get(), req, &out),
                  "reason: must be at most 4096 bytes, got 15728640");
    req.clear_reason();
    req.set_actor(mib);
    ExpectInvalid(server_->stub()->DeleteSchedule(Ctx().get(), req, &out),
                  "actor: must be at most 256 bytes, got 1048576");
  }
  {
    v1::AdvanceRequest req;
    req.set_name("schedules/a");
    req.set_request_id(mib);
    v1::AdvanceResponse out;
    ExpectInvalid(server_->stub()->Advance(Ctx().get(), req, &out),
                  "request_id: must be at most 128 bytes, got 1048576");
  }
  {
    v1::ListSchedulesRequest req;
    req.set_filter(mib);
    v1::ListSchedulesResponse out;
    ExpectInvalid(server_->stub()->ListSchedules(Ctx().get(), req, &out),
                  "filter: must be at most 4096 bytes, got 1048576");
    req.clear_filter();
    req.set_page_token(mib);
    ExpectInvalid(server_->stub()->ListSchedules(Ctx().get(), req, &out),
                  "page_token: must be at most 1024 bytes, got 1048576");
    req.set_page_token("not a token");
    ExpectInvalid(server_->stub()->ListSchedules(Ctx().get(), req, &out),
                  "page_token: not a token this server issued");
  }
  {
    v1::ListMetricReportsRequest req;
    req.set_name("schedules/a");
    for (int i = 0; i < 65; ++i) req.add_metric_names("loss");
    v1::ListMetricReportsResponse out;
    ExpectInvalid(server_->stub()->ListMetricReports(Ctx().get(), req, &out),
                  "metric_names: must be at most 64 names, got 65");
  }
  {
    v1::SimulateRequest req;
    std::string milestones;
    for (int i = 0; i < 40'000; ++i) {
      absl::StrAppend(&milestones, i ? "," : "", i);
    }
    *req.mutable_spec() = SpecFromText(
        "{max_lr: 1, step_decay: {milestones: [" + milestones + "]}}");
    req.set_count(1);
    v1::EvaluateRangeResponse out;
    grpc::Status s = server_->stub()->Simulate(Ctx().get(), req, &out);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(s.error_message(),
                StartsWith("spec: must be at most 65536 bytes, got "));
  }
  // The hostile values were refused before anything stored or logged them.
  v1::GetScheduleRequest get;
  get.set_name("schedules/a");
  v1::Schedule a;
  ASSERT_TRUE(server_->stub()->GetSchedule(Ctx().get(), get, &a).ok());
  EXPECT_LT(a.ByteSizeLong(), 1000u);
  EXPECT_LT(Log().size(), 10'000u);
}

TEST_F(HostileClientTest, SpecsThatWouldCompileToGigabytesAreRefusedQuickly) {
  // 64 phases of warm restarts with ~65k distinct cycles each: the 82 KB
  // shape that once cost 2.1 GB for one Simulate and 4.25 GB once stored.
  std::string text = "{max_lr: 1, sequence: {phases: [";
  for (int i = 0; i < 64; ++i) {
    absl::StrAppend(&text, i ? ", " : "", "{", i < 63 ? "steps: 1000, " : "",
                    "spec: {warm_restarts: {period: 1000, period_mult: "
                    "1.00055}}}");
  }
  absl::StrAppend(&text, "]}}");
  v1::SimulateRequest simulate;
  *simulate.mutable_spec() = SpecFromText(text);
  simulate.set_count(10);
  v1::EvaluateRangeResponse out;
  grpc::Status s = server_->stub()->Simulate(Ctx().get(), simulate, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr(".warm_restarts.period_mult: must fit the compile "
                        "budget of 4194304 bytes of tables"));
  v1::CreateScheduleRequest create;
  create.set_schedule_id("huge");
  *create.mutable_schedule()->mutable_spec() = simulate.spec();
  v1::Schedule created;
  s = server_->stub()->CreateSchedule(Ctx().get(), create, &created);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(), StartsWith("schedule.spec.sequence.phases["));
  // Sequences nested past the engine's rule.
  std::string nested = "{constant: {}}";
  for (int i = 0; i < 9; ++i) {
    nested = "{sequence: {phases: [{spec: " + nested + "}]}}";
  }
  *simulate.mutable_spec() = SpecFromText("{max_lr: 1, " + nested.substr(1));
  s = server_->stub()->Simulate(Ctx().get(), simulate, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(s.error_message(),
              HasSubstr("sequence: sequences may nest at most 8 deep, got 9"));
  EXPECT_LT(PeakRssMib(server_->pid()), 200);
}

TEST_F(HostileClientTest, TimelineEditsAreCapped) {
  CreateSchedule("t", "{max_lr: 0.1, cosine: {period: 100}}");
  v1::RestartScheduleRequest restart;
  restart.set_name("schedules/t");
  v1::Schedule out;
  for (int i = 1; i < 8; ++i) {  // 8 segments with the CREATE one
    restart.set_at_step(i * 10);
    ASSERT_TRUE(
        server_->stub()->RestartSchedule(Ctx().get(), restart, &out).ok());
  }
  restart.set_at_step(100);
  grpc::Status s = server_->stub()->RestartSchedule(Ctx().get(), restart, &out);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_EQ(s.error_message(),
            "timeline: must hold at most 8 segments (max_timeline_segments), "
            "got 9; create a new schedule for a new run");
  // An edit that replaces the future segments keeps the count.
  restart.set_at_step(70);
  EXPECT_TRUE(
      server_->stub()->RestartSchedule(Ctx().get(), restart, &out).ok());
  EXPECT_EQ(out.timeline_size(), 8);
}

TEST_F(HostileClientTest, RestartWithNothingServedDefaultsToStepOne) {
  CreateSchedule("r", "{max_lr: 0.1, cosine: {period: 100}}");
  v1::RestartScheduleRequest restart;
  restart.set_name("schedules/r");
  v1::Schedule out;
  grpc::Status s = server_->stub()->RestartSchedule(Ctx().get(), restart, &out);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(out.timeline(1).from_step(), 1);
}

TEST_F(HostileClientTest, ControlCharactersCannotForgeLogLines) {
  v1::CreateScheduleRequest req;
  req.set_schedule_id("evil");
  *req.mutable_schedule()->mutable_spec() =
      SpecFromText("{max_lr: 0.1, constant: {}}");
  req.set_actor("mallory\n2026-01-01T00:00:00.000Z delete schedules/all");
  req.set_reason("why\r\nnot");
  v1::Schedule out;
  ASSERT_TRUE(server_->stub()->CreateSchedule(Ctx().get(), req, &out).ok());
  // An accepted Advance is not logged (--log_advances); a rejected one is.
  v1::AdvanceRequest advance;
  advance.set_name("schedules/evil");
  advance.set_request_id("quiet-1");
  v1::AdvanceResponse advanced;
  ASSERT_TRUE(server_->stub()->Advance(Ctx().get(), advance, &advanced).ok());
  advance.set_request_id("id\nforged");
  advance.set_expected_position(7);
  EXPECT_EQ(
      server_->stub()->Advance(Ctx().get(), advance, &advanced).error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);
  v1::DeleteScheduleRequest del;
  del.set_name("schedules/evil");
  del.set_actor("mallory\nforged");
  del.set_reason("cleanup\r\n");
  google::protobuf::Empty deleted;
  ASSERT_TRUE(server_->stub()->DeleteSchedule(Ctx().get(), del, &deleted).ok());
  const std::string log = Log();
  EXPECT_THAT(log, HasSubstr("delete schedules/evil by \"mallory\\x0aforged\" "
                             "reason \"cleanup\\x0d\\x0a\""));
  EXPECT_THAT(log, testing::Not(HasSubstr("quiet-1")));
  EXPECT_THAT(log, HasSubstr("create schedules/evil by \"mallory\\x0a2026"));
  EXPECT_THAT(log, HasSubstr("reason \"why\\x0d\\x0anot\""));
  EXPECT_THAT(log, HasSubstr("request_id \"id\\x0aforged\""));
  // Every line is one the server wrote: it starts with a timestamp.
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_THAT(line, testing::MatchesRegex("^20[0-9-]+T[0-9:.]+Z .*")) << line;
  }
}

}  // namespace
}  // namespace anneal

namespace anneal {
namespace {

// Big schedules are paged by bytes too, so every page fits a response.
class BigPagesTest : public LiveServerTest {
 protected:
  BigPagesTest()
      : LiveServerTest(
            {"--max_message_bytes=1048576", "--max_schedule_bytes=262144"}) {}
};

TEST_F(BigPagesTest, AListPageNeverOutgrowsAResponse) {
  for (int i = 0; i < 6; ++i) {
    v1::CreateScheduleRequest create;
    create.set_schedule_id(absl::StrCat("big-", i));
    *create.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.1, cosine: {period: 100}}");
    v1::Schedule out;
    ASSERT_TRUE(
        server_->stub()->CreateSchedule(Ctx().get(), create, &out).ok());
    v1::RestartScheduleRequest restart;
    restart.set_name(out.name());
    restart.set_reason(std::string(4000, 'r'));
    for (int at = 1; at <= 50; ++at) {  // ~200 KB of reasons
      restart.set_at_step(at);
      grpc::Status s =
          server_->stub()->RestartSchedule(Ctx().get(), restart, &out);
      ASSERT_TRUE(s.ok()) << s.error_message();
    }
  }
  v1::ListSchedulesRequest list;
  list.set_page_size(1000);
  std::vector<std::string> names;
  int pages = 0;
  do {
    v1::ListSchedulesResponse page;
    grpc::Status s = server_->stub()->ListSchedules(Ctx().get(), list, &page);
    ASSERT_TRUE(s.ok()) << s.error_message();
    EXPECT_LE(page.ByteSizeLong(), 524288u + 1024u);  // half the max message
    for (const auto& schedule : page.schedules()) {
      names.push_back(schedule.name());
    }
    list.set_page_token(page.next_page_token());
    ++pages;
  } while (!list.page_token().empty());
  EXPECT_EQ(names.size(), 6u);
  EXPECT_GE(pages, 3);
}

}  // namespace
}  // namespace anneal
