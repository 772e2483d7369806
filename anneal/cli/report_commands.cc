// annealctl's metric-report commands: `report` records metrics at a step
// (ReportMetrics) and `reports` lists what a schedule keeps
// (ListMetricReports, every page) as a table, CSV or JSON.
//
//   annealctl report run-1 --step 1200 loss=0.31 val/acc=0.92
//   annealctl reports run-1 --start 1000 --metric loss -o csv
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/schedule_view.h"
#include "anneal/cli/server_connection.h"

namespace anneal {
namespace {

// METRIC=VALUE; the value is any number strtod reads (nan and inf too).
absl::Status AddMetric(const std::string& arg, v1::ReportMetricsRequest* r) {
  std::vector<std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
  double value = 0;
  if (kv.size() != 2 || kv[0].empty() || !absl::SimpleAtod(kv[1], &value)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "METRIC=VALUE: must be a name, '=' and a number, got \"", arg, "\""));
  }
  (*r->mutable_metrics())[kv[0]] = value;
  return absl::OkStatus();
}

}  // namespace

absl::Status ReportCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto parsed =
      CliArgs::Parse(args, {"server", "step", "output"}, {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  const std::vector<std::string>& positional = a.positional();
  if (positional.empty()) {
    return absl::InvalidArgumentError(
        "NAME is required (an id or schedules/ID)");
  }
  v1::ReportMetricsRequest request;
  auto name = ScheduleNameFrom(positional[0]);
  if (!name.ok()) return name.status();
  request.set_name(*name);
  if (auto required = a.Require("step"); !required.ok()) {
    return required.status();
  }
  auto step = a.GetInt("step", 0);
  if (!step.ok()) return step.status();
  request.set_step(*step);
  if (positional.size() < 2) {
    return absl::InvalidArgumentError(
        "METRIC=VALUE: must be given at least once (loss=0.31), got none");
  }
  for (size_t i = 1; i < positional.size(); ++i) {
    if (auto s = AddMetric(positional[i], &request); !s.ok()) return s;
  }
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();

  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  v1::MetricReport recorded;
  grpc::Status status = server.stub()->ReportMetrics(
      server.Context(kCallTimeout).get(), request, &recorded);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  if (*json) {
    PrintJson(recorded, out);
  } else {
    out << "reported " << recorded.metrics_size() << " metric"
        << (recorded.metrics_size() == 1 ? "" : "s") << " at step "
        << recorded.step() << " of " << *name << " (revision "
        << recorded.revision() << ")\n";
  }
  return absl::OkStatus();
}

absl::Status ReportsCommand(const std::vector<std::string>& args,
                            std::ostream& out) {
  auto parsed = CliArgs::Parse(
      args, {"server", "start", "end", "metric", "page_size", "output"},
      {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto name = ScheduleNameArg(a);
  if (!name.ok()) return name.status();
  const std::string format = a.Get("output", "text");
  if (format != "text" && format != "csv" && format != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("-o: must be text, csv or json, got ", format));
  }
  v1::ListMetricReportsRequest request;
  request.set_name(*name);
  for (const char* bound : {"start", "end"}) {
    if (!a.Has(bound)) continue;
    auto value = a.GetInt(bound, 0);
    if (!value.ok()) return value.status();
    if (bound[0] == 's') {
      request.set_start_step(*value);
    } else {
      request.set_end_step(*value);
    }
  }
  for (const std::string& m : a.GetAll("metric")) {
    request.add_metric_names(m);
  }
  auto page_size = PageSizeArg(a);
  if (!page_size.ok()) return page_size.status();
  request.set_page_size(*page_size);

  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  v1::ListMetricReportsResponse all;
  auto* stub = server.stub();
  absl::Status listed = ForEachPage<v1::ListMetricReportsResponse>(
      server, request,
      [stub](auto* context, const auto& r, auto* page) {
        return stub->ListMetricReports(context, r, page);
      },
      [&all](v1::ListMetricReportsResponse& page) {
        for (v1::MetricReport& r : *page.mutable_reports()) {
          *all.add_reports() = std::move(r);
        }
      });
  if (!listed.ok()) return listed;

  const std::vector<v1::MetricReport> reports(all.reports().begin(),
                                              all.reports().end());
  if (format == "json") {
    PrintJson(all, out);
  } else if (format == "csv") {
    PrintReportCsv(reports, out);
  } else {
    PrintReportTable(reports, out);
  }
  return absl::OkStatus();
}

}  // namespace anneal
