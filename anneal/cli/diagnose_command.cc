// annealctl's Diagnose commands: `diagnose` prints the findings about a
// schedule and its job's reports, and `lr-range-test` creates an LR range
// test (an exponential sweep, labelled as such) and turns its result into a
// suggested max_lr, optionally a new schedule with it.
//
//   annealctl diagnose run-1 [--validation-metric M] [--training-metric M]
//   annealctl lr-range-test create sweep-1 --min-lr 1e-5 --max-lr 1 --steps 200
//   annealctl lr-range-test suggest sweep-1 --write run-2 --from spec.yaml
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/schedule_view.h"
#include "anneal/cli/server_connection.h"
#include "anneal/model/diagnosis.h"

namespace anneal {
namespace {

// Analysing a long spec can take a few seconds on a busy server.
constexpr absl::Duration kDiagnoseTimeout = absl::Seconds(60);
// The default schedule `suggest --write` creates without --from.
constexpr int64_t kDefaultSuggestSteps = 1000;

const char* SeverityName(v1::Finding::Severity s) {
  switch (s) {
    case v1::Finding::ERROR:
      return "ERROR";
    case v1::Finding::WARNING:
      return "WARNING";
    case v1::Finding::INFO:
      return "INFO";
    default:
      return "?";
  }
}

void PrintFindings(const v1::DiagnoseResponse& r, std::ostream& out) {
  out << r.name() << " (revision " << r.revision() << "): " << r.reports_read()
      << " report" << (r.reports_read() == 1 ? "" : "s");
  if (r.reports_read() > 0) {
    out << ", steps " << r.first_step() << "-" << r.last_step();
  }
  out << "; validation "
      << (r.validation_metric().empty() ? "(none)" : r.validation_metric())
      << ", training "
      << (r.training_metric().empty() ? "(none)" : r.training_metric());
  if (r.lr_range_test()) out << "; an LR range test";
  out << "\n";
  for (const v1::Finding& f : r.findings()) {
    out << "\n"
        << SeverityName(f.severity()) << " " << f.code() << ": " << f.summary()
        << "\n";
    if (f.evidence_size() > 0) {
      std::vector<std::string> e;
      for (const auto& x : f.evidence()) {
        e.push_back(absl::StrCat(x.name(), "=", x.text()));
      }
      out << "  evidence: " << absl::StrJoin(e, " ") << "\n";
    }
    if (f.spans_size() > 0) {
      std::vector<std::string> s;
      for (const auto& x : f.spans()) {
        s.push_back(x.end_step() == x.start_step() + 1
                        ? absl::StrCat(x.start_step(), " (", x.label(), ")")
                        : absl::StrCat(x.start_step(), "-", x.end_step() - 1,
                                       " (", x.label(), ")"));
      }
      out << "  steps: " << absl::StrJoin(s, ", ") << "\n";
    }
    if (!f.statistic().empty()) out << "  statistic: " << f.statistic() << "\n";
    if (!f.recommendation().empty()) {
      out << "  recommendation: " << f.recommendation() << "\n";
    }
  }
}

absl::StatusOr<v1::DiagnoseResponse> CallDiagnose(const CliArgs& a,
                                                  const std::string& name) {
  v1::DiagnoseRequest request;
  request.set_name(name);
  request.set_validation_metric(a.Get("validation_metric", ""));
  request.set_training_metric(a.Get("training_metric", ""));
  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  v1::DiagnoseResponse response;
  grpc::Status status = server.stub()->Diagnose(
      server.Context(kDiagnoseTimeout).get(), request, &response);
  if (!status.ok()) return server.Failure(status, kDiagnoseTimeout);
  return response;
}

// The LrRangeTestSpec error with its field named as the flag was spelled.
absl::Status AsFlags(const absl::Status& s, const CliArgs& args) {
  std::string m(s.message());
  for (const char* field : {"min_lr", "max_lr", "steps"}) {
    const std::string prefix = absl::StrCat(field, ":");
    if (absl::StartsWith(m, prefix)) {
      m = absl::StrCat(args.Spelling(field), m.substr(prefix.size() - 1));
      break;
    }
  }
  return absl::Status(s.code(), m);
}

absl::Status RangeTestCreate(const std::vector<std::string>& args,
                             std::ostream& out) {
  auto parsed = CliArgs::Parse(args,
                               {"server", "min_lr", "max_lr", "steps", "label",
                                "display_name", "reason", "actor", "output"},
                               {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto id = ScheduleIdArg(a);
  if (!id.ok()) return id.status();
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();
  for (const char* flag : {"min_lr", "max_lr", "steps"}) {
    if (auto r = a.Require(flag); !r.ok()) return r.status();
  }
  auto min_lr = a.GetDouble("min_lr");
  if (!min_lr.ok()) return min_lr.status();
  auto max_lr = a.GetDouble("max_lr");
  if (!max_lr.ok()) return max_lr.status();
  auto steps = a.GetInt("steps", 0);
  if (!steps.ok()) return steps.status();
  auto spec = LrRangeTestSpec(**min_lr, **max_lr, *steps);
  if (!spec.ok()) return AsFlags(spec.status(), a);
  auto labels = ParseLabels(a.GetAll("label"));
  if (!labels.ok()) return labels.status();

  v1::CreateScheduleRequest request;
  request.set_schedule_id(*id);
  v1::Schedule* s = request.mutable_schedule();
  *s->mutable_spec() = *std::move(spec);
  s->set_display_name(a.Get("display_name", ""));
  s->mutable_labels()->insert(labels->begin(), labels->end());
  (*s->mutable_labels())[std::string(kLrRangeTestLabel)] = "true";
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get(
      "reason", absl::StrCat("LR range test: ", a.Get("min_lr", ""), " to ",
                             a.Get("max_lr", ""), " over ", *steps, " steps")));
  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  v1::Schedule created;
  grpc::Status status = server.stub()->CreateSchedule(
      server.Context(kCallTimeout).get(), request, &created);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  if (*json) {
    PrintJson(created, out);
  } else {
    out << "created " << created.name() << ": an LR range test from "
        << **min_lr << " to " << **max_lr << " over " << *steps
        << " steps; report loss at every step, then run: annealctl "
           "lr-range-test suggest "
        << *id << "\n";
  }
  return absl::OkStatus();
}

absl::Status RangeTestSuggest(const std::vector<std::string>& args,
                              std::ostream& out) {
  auto parsed =
      CliArgs::Parse(args,
                     {"server", "write", "from", "steps", "training_metric",
                      "label", "reason", "actor", "output"},
                     {{"o", "output"}, {"f", "from"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto name = ScheduleNameArg(a);
  if (!name.ok()) return name.status();
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();
  if (!a.Has("write") && (a.Has("from") || a.Has("steps"))) {
    return absl::InvalidArgumentError(
        "--from and --steps: only with --write NEW_ID");
  }
  if (a.Has("from") && a.Has("steps")) {
    return absl::InvalidArgumentError(
        "--steps: only without --from (the spec file has its own length)");
  }
  // Check the new schedule's inputs before asking the server anything.
  v1::ScheduleSpec spec;
  if (a.Has("write")) {
    if (a.Has("from")) {
      auto path = a.Require("from");
      if (!path.ok()) return path.status();
      if (auto s = LoadMessageFile(*path, &spec); !s.ok()) return s;
    } else {
      auto steps = a.GetInt("steps", kDefaultSuggestSteps);
      if (!steps.ok()) return steps.status();
      if (*steps < 2) {
        return absl::InvalidArgumentError(
            absl::StrCat("--steps: must be >= 2, got ", *steps));
      }
      spec.mutable_one_cycle()->set_total_steps(*steps);
    }
  }
  auto labels = ParseLabels(a.GetAll("label"));
  if (!labels.ok()) return labels.status();

  auto diagnosed = CallDiagnose(a, *name);
  if (!diagnosed.ok()) return diagnosed.status();
  if (!diagnosed->lr_range_test()) {
    return absl::FailedPreconditionError(absl::StrCat(
        *name, ": not an LR range test (it has no label ", kLrRangeTestLabel,
        "; create one with annealctl lr-range-test create)"));
  }
  const v1::Finding* found = nullptr;
  for (const v1::Finding& f : diagnosed->findings()) {
    if (f.has_suggested_max_lr()) found = &f;
  }
  if (found == nullptr) {
    std::string why = diagnosed->findings().empty()
                          ? "no finding"
                          : diagnosed->findings(0).summary();
    return absl::FailedPreconditionError(
        absl::StrCat(*name, ": no suggestion yet: ", why));
  }
  const double max_lr = found->suggested_max_lr();
  if (!a.Has("write")) {
    if (*json) {
      PrintJson(*found, out);
    } else {
      out << "suggested max_lr " << EvidenceText(max_lr) << "\n"
          << found->summary() << "\n";
    }
    return absl::OkStatus();
  }
  auto id = a.Require("write");
  if (!id.ok()) return id.status();
  spec.set_max_lr(max_lr);
  v1::CreateScheduleRequest request;
  request.set_schedule_id(*id);
  *request.mutable_schedule()->mutable_spec() = spec;
  request.mutable_schedule()->mutable_labels()->insert(labels->begin(),
                                                       labels->end());
  request.set_actor(ActorArg(a));
  request.set_reason(
      a.Get("reason", absl::StrCat("max_lr ", EvidenceText(max_lr),
                                   " from the LR range test ", *name)));
  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  v1::Schedule created;
  grpc::Status status = server.stub()->CreateSchedule(
      server.Context(kCallTimeout).get(), request, &created);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  if (*json) {
    PrintJson(created, out);
  } else {
    out << "suggested max_lr " << EvidenceText(max_lr) << "\ncreated "
        << created.name() << " (revision " << created.revision() << ")\n";
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status DiagnoseCommand(const std::vector<std::string>& args,
                             std::ostream& out) {
  auto parsed = CliArgs::Parse(
      args, {"server", "validation_metric", "training_metric", "output"},
      {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto name = ScheduleNameArg(a);
  if (!name.ok()) return name.status();
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();
  auto diagnosed = CallDiagnose(a, *name);
  if (!diagnosed.ok()) return diagnosed.status();
  if (*json) {
    PrintJson(*diagnosed, out);
  } else {
    PrintFindings(*diagnosed, out);
  }
  return absl::OkStatus();
}

absl::Status LrRangeTestCommand(const std::vector<std::string>& args,
                                std::ostream& out) {
  // annealctl puts a global --server=ADDRESS first; it goes on to the
  // subcommand.
  std::vector<std::string> rest;
  size_t i = 0;
  for (; i < args.size() && absl::StartsWith(args[i], "--server="); ++i) {
    rest.push_back(args[i]);
  }
  if (i == args.size() || (args[i] != "create" && args[i] != "suggest")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SUBCOMMAND: must be create or suggest, got ",
        i == args.size() ? "none" : absl::StrCat("\"", args[i], "\"")));
  }
  const bool create = args[i] == "create";
  rest.insert(rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
              args.end());
  return create ? RangeTestCreate(rest, out) : RangeTestSuggest(rest, out);
}

}  // namespace anneal
