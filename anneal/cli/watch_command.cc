// annealctl watch: WatchSchedules printed live, one line per event (or one
// JSON object per line with -o json), until interrupted or the server ends
// the stream.
//
//   annealctl watch                         every schedule
//   annealctl watch run-1 run-2 --reports on   two, with training reports
//   annealctl watch --filter 'labels.team = "vision"' -o json
#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/schedule_view.h"
#include "anneal/cli/server_connection.h"
#include "anneal/engine/field_error.h"
#include "anneal/model/spec_summary.h"

namespace anneal {
namespace {

// "UPDATED schedules/run-1 revision 3: warm_restarts(...)" and the like.
std::string Line(const v1::WatchEvent& e) {
  std::string out =
      absl::StrCat(v1::WatchEvent::Kind_Name(e.kind()), " ", e.name());
  if (e.kind() == v1::WatchEvent::SYNCED) return "SYNCED (live from here)";
  if (e.revision() > 0) absl::StrAppend(&out, " revision ", e.revision());
  switch (e.kind()) {
    case v1::WatchEvent::CYCLE:
      absl::StrAppend(&out, ": cycle ", e.cycle(), " from step ",
                      e.cycle_start_step());
      break;
    case v1::WatchEvent::REPORTED: {
      std::vector<std::string> metrics;
      for (const auto& [k, v] : e.report().metrics()) {
        metrics.push_back(absl::StrCat(k, "=", v));
      }
      std::sort(metrics.begin(), metrics.end());
      absl::StrAppend(&out, ": step ", e.report().step(), " ",
                      absl::StrJoin(metrics, " "));
      break;
    }
    case v1::WatchEvent::CURRENT:
    case v1::WatchEvent::CREATED:
    case v1::WatchEvent::UPDATED:
    case v1::WatchEvent::RESTARTED: {
      const v1::Schedule& s = e.schedule();
      absl::StrAppend(&out, ": ", SpecSummary(s.spec()), "; served ",
                      s.max_step_served());
      if (s.timeline_size() > 0) {
        const v1::Segment& last = s.timeline(s.timeline_size() - 1);
        // A plateau cut scales the spec: its peak is the level, not max_lr.
        if (last.lr_level() > 0) {
          absl::StrAppend(&out, "; peak now ", FormatNumber(last.lr_level()),
                          " from step ", last.from_step());
        }
        if (!last.reason().empty()) {
          absl::StrAppend(&out, "; reason \"", last.reason(), "\"");
        }
      }
      break;
    }
    case v1::WatchEvent::DELETED:
      if (!e.actor().empty()) absl::StrAppend(&out, ": by ", e.actor());
      if (!e.reason().empty()) {
        absl::StrAppend(&out, "; reason \"", e.reason(), "\"");
      }
      break;
    default:
      break;
  }
  return out;
}

}  // namespace

absl::Status WatchCommand(const std::vector<std::string>& args,
                          std::ostream& out) {
  auto parsed = CliArgs::Parse(args, {"server", "filter", "reports", "output"},
                               {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  v1::WatchSchedulesRequest request;
  for (const std::string& arg : a.positional()) {
    auto name = ScheduleNameFrom(arg);
    if (!name.ok()) return name.status();
    request.add_names(*name);
  }
  request.set_filter(a.Get("filter", ""));
  const std::string reports = a.Get("reports", "off");
  if (reports != "on" && reports != "off") {
    return absl::InvalidArgumentError(
        absl::StrCat("--reports: must be on or off, got \"", reports, "\""));
  }
  request.set_include_reports(reports == "on");
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();

  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  // No deadline: it runs until interrupted.
  auto context = server.Context(absl::InfiniteDuration());
  auto reader = server.stub()->WatchSchedules(context.get(), request);
  v1::WatchEvent event;
  while (reader->Read(&event)) {
    out << (*json ? CompactJson(event) : Line(event)) << "\n";
    out.flush();
  }
  grpc::Status status = reader->Finish();
  if (!status.ok()) return server.Failure(status, absl::InfiniteDuration());
  return absl::OkStatus();
}

}  // namespace anneal
