// watch_pickup: how soon a C++ StepClient follows a schedule change, with
// its watch (WatchSchedules) and without it, alternated in one run.
//
//   watch_pickup --target=127.0.0.1:50051 --runs=5 --step_ms=2
//
// Each run creates a fresh schedule, connects a StepClient (window 256, so
// a refresh every 128 steps), steps every --step_ms, updates the schedule
// (UpdateSchedule, default effective step) when the job is at step
// --change_at, and records how many steps and milliseconds after the
// update returned `revision()` moved. Prints one JSON object: per mode, the
// median and the maximum of both, and the LRs served in each mode compared
// (a change starts after the served window either way, so they must agree).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "anneal/client/step_client.h"
#include "anneal/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "the server, host:port");
ABSL_FLAG(int, runs, 5, "runs per mode (watch on, off), alternated");
ABSL_FLAG(double, step_ms, 2, "the job's time per step");
ABSL_FLAG(int, change_at, 20, "the step the job is at when it is updated");
ABSL_FLAG(int, steps, 400, "steps per run (must pass the refresh at 128)");

namespace {

struct Pickup {
  int64_t steps = -1;  // steps taken after the update returned; -1: never
  double ms = -1;
  std::vector<double> lrs;
};

absl::Status FromGrpc(const grpc::Status& s) {
  return s.ok() ? absl::OkStatus()
                : absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                               s.error_message());
}

absl::StatusOr<Pickup> Run(anneal::v1::ScheduleService::Stub& stub,
                           const std::string& id, bool watch) {
  {
    anneal::v1::CreateScheduleRequest create;
    create.set_schedule_id(id);
    auto* spec = create.mutable_schedule()->mutable_spec();
    spec->set_max_lr(0.1);
    spec->set_min_lr(0.001);
    spec->mutable_cosine()->set_period(5000);
    anneal::v1::Schedule out;
    grpc::ClientContext ctx;
    if (auto s = FromGrpc(stub.CreateSchedule(&ctx, create, &out)); !s.ok()) {
      return s;
    }
  }
  anneal::StepClient::Options o;
  o.server = absl::GetFlag(FLAGS_target);
  o.schedule = id;
  o.window = 256;
  o.watch = watch;
  o.log = [](anneal::LogLevel, absl::string_view) {};
  auto client = anneal::StepClient::Connect(o);
  if (!client.ok()) return client.status();
  if (watch) {
    // The stream opens beside Connect's fetch; a job runs for hours.
    const absl::Time until = absl::Now() + absl::Seconds(5);
    while (!(*client)->stats().watching && absl::Now() < until) {
      absl::SleepFor(absl::Milliseconds(1));
    }
  }
  const absl::Duration step_time =
      absl::Microseconds(absl::GetFlag(FLAGS_step_ms) * 1000);
  Pickup p;
  absl::Time updated;
  for (int64_t t = 0; t < absl::GetFlag(FLAGS_steps); ++t) {
    if (t == absl::GetFlag(FLAGS_change_at)) {
      anneal::v1::UpdateScheduleRequest update;
      update.mutable_schedule()->set_name("schedules/" + id);
      auto* spec = update.mutable_schedule()->mutable_spec();
      spec->set_max_lr(0.05);
      spec->set_min_lr(0.001);
      spec->mutable_cosine()->set_period(5000);
      update.mutable_update_mask()->add_paths("spec");
      anneal::v1::Schedule out;
      grpc::ClientContext ctx;
      if (auto s = FromGrpc(stub.UpdateSchedule(&ctx, update, &out)); !s.ok()) {
        return s;
      }
      updated = absl::Now();
    }
    absl::StatusOr<anneal::StepResult> r = (*client)->Step(t);
    if (!r.ok()) return r.status();
    p.lrs.push_back(r->lr);
    if (p.steps < 0 && updated != absl::Time() && (*client)->revision() == 2) {
      p.steps = t - absl::GetFlag(FLAGS_change_at);
      p.ms = absl::ToDoubleMilliseconds(absl::Now() - updated);
    }
    absl::SleepFor(step_time);
  }
  return p;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

std::string Summary(const std::vector<Pickup>& runs) {
  std::vector<double> steps, ms;
  for (const Pickup& p : runs) {
    steps.push_back(static_cast<double>(p.steps));
    ms.push_back(p.ms);
  }
  return absl::StrFormat(
      "{\"steps_median\": %g, \"steps_max\": %g, \"ms_median\": %.2f, "
      "\"ms_max\": %.2f}",
      Median(steps), *std::max_element(steps.begin(), steps.end()), Median(ms),
      *std::max_element(ms.begin(), ms.end()));
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  auto stub = anneal::v1::ScheduleService::NewStub(grpc::CreateChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials()));
  const std::string tag = absl::StrCat(absl::ToUnixMicros(absl::Now()));
  std::vector<Pickup> on, off;
  bool same_lrs = true;
  for (int run = 0; run < absl::GetFlag(FLAGS_runs); ++run) {
    Pickup got[2];
    for (int k = 0; k < 2; ++k) {
      const bool watch = (run + k) % 2 == 0;  // alternate which goes first
      auto p =
          Run(*stub, absl::StrCat("pickup-", tag, "-", run, "-", k), watch);
      if (!p.ok()) {
        std::fprintf(stderr, "watch_pickup: %s\n",
                     p.status().ToString().c_str());
        return 1;
      }
      got[watch ? 0 : 1] = *p;
    }
    same_lrs = same_lrs && got[0].lrs == got[1].lrs;
    on.push_back(got[0]);
    off.push_back(got[1]);
  }
  std::printf("{\"watch\": %s, \"no_watch\": %s, \"same_lrs\": %s}\n",
              Summary(on).c_str(), Summary(off).c_str(),
              same_lrs ? "true" : "false");
  return 0;
}
