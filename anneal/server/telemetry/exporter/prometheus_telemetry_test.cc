// PrometheusTelemetry over a real registry and the memory store: the
// counters the serving path bumps, the per-schedule series read at a scrape
// (LR at the highest step served, cycle, last reported values), the caps,
// deleted schedules' series going away, and the exposition text.
#include "anneal/server/telemetry/exporter/prometheus_telemetry.h"

#include <memory>
#include <optional>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "anneal/server/registry/registry_test_util.h"
#include "anneal/server/store/memory/memory_store.h"
#include "anneal/server/telemetry/telemetry_store.h"
#include "gmock/gmock.h"
#include "grpcpp/support/status.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using testing::HasSubstr;
using testing::Not;

class PrometheusTelemetryTest : public testing::Test {
 protected:
  explicit PrometheusTelemetryTest(int64_t max_schedules = 1000,
                                   int64_t max_names = 32)
      : telemetry_({"0.1.0", "memory", max_schedules}),
        max_names_(max_names),
        memory_(NewMemoryStore()),
        timed_(memory_.get(), &telemetry_),
        holder_(std::in_place, &timed_, Options()),
        registry_(&**holder_) {
    EXPECT_TRUE(registry_->Load().ok());
    telemetry_.Observe(&*registry_, &timed_);
  }
  ~PrometheusTelemetryTest() override { telemetry_.Observe(nullptr, nullptr); }

  RegistryOptions Options() {
    RegistryOptions o;
    o.telemetry = &telemetry_;
    o.max_reported_names = max_names_;
    return o;
  }

  // A new registry over the same store, as after a server restart.
  void Restart() {
    telemetry_.Observe(nullptr, nullptr);
    holder_.emplace(&timed_, Options());
    registry_ = &**holder_;
    ASSERT_TRUE(registry_->Load().ok());
    telemetry_.Observe(&*registry_, &timed_);
  }

  void Create(const std::string& id, const std::string& spec) {
    v1::CreateScheduleRequest r;
    r.set_schedule_id(id);
    *r.mutable_schedule()->mutable_spec() = SpecFromText(spec);
    ASSERT_TRUE((Wait<v1::Schedule>(*registry_, &Registry::Create, r)).ok());
  }
  void Evaluate(const std::string& id, int64_t step) {
    v1::EvaluateRequest r;
    r.set_name("schedules/" + id);
    r.set_step(step);
    ASSERT_TRUE(EvaluateNow(*registry_, r).ok());
  }
  absl::Status Report(const std::string& id, int64_t step,
                      std::map<std::string, double> metrics) {
    v1::ReportMetricsRequest r;
    r.set_name("schedules/" + id);
    r.set_step(step);
    for (auto& [k, v] : metrics) (*r.mutable_metrics())[k] = v;
    return Wait<v1::MetricReport>(*registry_, &Registry::ReportMetrics, r)
        .status();
  }

  PrometheusTelemetry telemetry_;
  int64_t max_names_;
  std::unique_ptr<Store> memory_;
  TelemetryStore timed_;
  std::optional<TestRegistry> holder_;
  Registry* registry_;
};

TEST_F(PrometheusTelemetryTest, RpcCountersUseTheGrpcDashboardNames) {
  RpcTelemetry* evaluate =
      telemetry_.Rpc("anneal.v1.ScheduleService", "Evaluate", "unary");
  evaluate->Started();
  evaluate->Handled(grpc::StatusCode::OK, absl::Microseconds(30));
  evaluate->Started();
  evaluate->Handled(grpc::StatusCode::NOT_FOUND, absl::Milliseconds(2));
  const std::string text = telemetry_.Text();
  const std::string labels =
      "grpc_service=\"anneal.v1.ScheduleService\",grpc_method=\"Evaluate\","
      "grpc_type=\"unary\"";
  EXPECT_THAT(text, HasSubstr("grpc_server_started_total{" + labels + "} 2"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{" + labels +
                              ",grpc_code=\"OK\"} 1"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handled_total{" + labels +
                              ",grpc_code=\"NotFound\"} 1"));
  // 30 µs falls in the 50 µs bucket, 2 ms in 2.5 ms.
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket{" + labels +
                              ",le=\"5e-05\"} 1"));
  EXPECT_THAT(text, HasSubstr("grpc_server_handling_seconds_bucket{" + labels +
                              ",le=\"0.0025\"} 2"));
  EXPECT_THAT(
      text, HasSubstr("grpc_server_handling_seconds_count{" + labels + "} 2"));
}

TEST_F(PrometheusTelemetryTest, PerScheduleSeriesComeFromTheRegistry) {
  Create("sgdr", "{max_lr: 0.1, min_lr: 0, warm_restarts: {period: 10}}");
  Evaluate("sgdr", 3);
  Evaluate("sgdr", 12);  // cycle 1, which began at step 10
  Evaluate("sgdr", 5);   // not the highest: the series stay at 12
  const std::string text = telemetry_.Text();
  EXPECT_THAT(text, HasSubstr("anneal_schedules 1"));
  EXPECT_THAT(text,
              HasSubstr("anneal_schedule_max_step_served{schedule=\"sgdr\"} "
                        "12"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_cycle{schedule=\"sgdr\"} 1"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_cycle_start_step{schedule="
                              "\"sgdr\"} 10"));
  // 0.1 * (1 + cos(pi * 2 / 10)) / 2
  EXPECT_THAT(text, HasSubstr("anneal_schedule_lr{schedule=\"sgdr\"} "
                              "0.0904508497187"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_last_progress_timestamp_"
                              "seconds{schedule=\"sgdr\"} "));
  EXPECT_THAT(text, HasSubstr("anneal_steps_served_total{method=\"Evaluate\"} "
                              "3"));
  EXPECT_THAT(text,
              HasSubstr("anneal_schedule_changes_total{kind=\"create\"} 1"));
  EXPECT_THAT(text, HasSubstr("anneal_store_write_seconds_count "));
  EXPECT_THAT(text, HasSubstr("anneal_store_failed 0"));
  EXPECT_THAT(text, HasSubstr("anneal_build_info{store=\"memory\",version="
                              "\"0.1.0\"} 1"));
  EXPECT_THAT(text, HasSubstr("process_resident_memory_bytes "));
  EXPECT_THAT(text, HasSubstr("process_cpu_seconds_total "));
}

TEST_F(PrometheusTelemetryTest, LastReportedValuesAndDeletedSchedulesGo) {
  Create("run", "{max_lr: 0.1, constant: {}}");
  ASSERT_TRUE(Report("run", 10, {{"loss", 2.5}, {"val_loss", 3}}).ok());
  ASSERT_TRUE(Report("run", 20, {{"loss", 1.25}}).ok());
  // Late: not the last loss, but the first acc.
  ASSERT_TRUE(Report("run", 15, {{"loss", 9}, {"acc", 0.75}}).ok());
  EXPECT_FALSE(Report("missing", 1, {{"loss", 1}}).ok());
  std::string text = telemetry_.Text();
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"loss\","
                              "schedule=\"run\"} 1.25"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"val_loss\","
                              "schedule=\"run\"} 3"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"acc\","
                              "schedule=\"run\"} 0.75"));
  EXPECT_THAT(text,
              HasSubstr("anneal_schedule_reported_step{schedule=\"run\"} 20"));
  EXPECT_THAT(text, HasSubstr("anneal_training_reports_total 3"));
  EXPECT_THAT(text, HasSubstr("anneal_training_report_rejections_total{code="
                              "\"NotFound\"} 1"));

  v1::DeleteScheduleRequest del;
  del.set_name("schedules/run");
  ASSERT_TRUE(
      (Wait<google::protobuf::Empty>(*registry_, &Registry::Delete, del)).ok());
  text = telemetry_.Text();
  EXPECT_THAT(text, Not(HasSubstr("schedule=\"run\"")));
  EXPECT_THAT(text, HasSubstr("anneal_schedules 0"));
}

class CappedTelemetryTest : public PrometheusTelemetryTest {
 protected:
  CappedTelemetryTest() : PrometheusTelemetryTest(2, 1) {}
};

TEST_F(CappedTelemetryTest, SeriesStopAtTheCapsAndTheRestIsCounted) {
  // The last to report come first by name: the cap is by name, for the
  // reported series as for the others.
  for (const char* id : {"c", "b", "a"}) {
    Create(id, "{max_lr: 0.1, constant: {}}");
    ASSERT_TRUE(Report(id, 1, {{"loss", 1}, {"acc", 0.5}}).ok());
  }
  const std::string text = telemetry_.Text();
  EXPECT_THAT(text, HasSubstr("anneal_schedules 3"));
  EXPECT_THAT(text, HasSubstr("anneal_telemetry_schedules_over_cap 1"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_position{schedule=\"b\"}"));
  EXPECT_THAT(text, Not(HasSubstr("schedule=\"c\"")));
  EXPECT_THAT(text,
              HasSubstr("anneal_schedule_reported_step{schedule=\"a\"} 1"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"acc\","
                              "schedule=\"b\"} 0.5"));
  // One name per schedule: "acc" (a report's names pass the cap in name
  // order, whatever the map's order) is kept, "loss" counted, for each.
  EXPECT_THAT(text,
              HasSubstr("anneal_telemetry_reported_names_dropped_total 3"));
  EXPECT_THAT(text, Not(HasSubstr("metric=\"loss\"")));
}

TEST_F(PrometheusTelemetryTest, ReportedSeriesComeBackAfterARestart) {
  Create("run", "{max_lr: 0.1, constant: {}}");
  ASSERT_TRUE(Report("run", 10, {{"loss", 2.5}, {"val_loss", 3}}).ok());
  ASSERT_TRUE(Report("run", 20, {{"loss", 1.25}}).ok());
  Restart();
  // The highest stored step's values; val_loss returns with its next report.
  std::string text = telemetry_.Text();
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"loss\","
                              "schedule=\"run\"} 1.25"));
  EXPECT_THAT(text,
              HasSubstr("anneal_schedule_reported_step{schedule=\"run\"} 20"));
  EXPECT_THAT(text, Not(HasSubstr("metric=\"val_loss\"")));
  ASSERT_TRUE(Report("run", 30, {{"val_loss", 2}}).ok());
  text = telemetry_.Text();
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"val_loss\","
                              "schedule=\"run\"} 2"));
  EXPECT_THAT(text, HasSubstr("anneal_schedule_reported{metric=\"loss\","
                              "schedule=\"run\"} 1.25"));
}

}  // namespace
}  // namespace anneal
