// annealctl: the command-line client of anneal.
//
//   annealctl preview -f spec.yaml --steps 1000 -o ascii
//   annealctl analyze -f spec.yaml --max-curvature 10 -o json
//   annealctl create run-1 -f spec.yaml --label team=vision
//   annealctl lr run-1 --count 1000 -o svg > lr.svg
//   annealctl report run-1 --step 1200 loss=0.31
//   annealctl diagnose run-1
//
// Offline commands evaluate specs with the same engine the server uses, so a
// preview is exactly what a training job will be served. Server commands
// talk to anneal-server (--server, $ANNEAL_SERVER, or 127.0.0.1:50051). Every
// command is one row of kCommands, which is also where the usage text comes
// from; -o/--output is the output format everywhere.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/server_connection.h"

namespace {

using Run = absl::Status (*)(const std::vector<std::string>&, std::ostream&);

struct Command {
  const char* name;
  Run run;
  bool offline;  // needs no server (and takes no --server)
  // The arguments after the name; "\n" continues the line, indented.
  const char* synopsis;
  // What it does; "\n" starts another line.
  const char* help;
};

constexpr Command kCommands[] = {
    {"preview", anneal::PreviewCommand, true,
     "-f SPEC|--timeline SCHEDULE --steps N [--start S]\n"
     "[-o csv|json|ascii|svg] [--batch-size B]\n"
     "[--grad-norm-sq G --num-params D]",
     "evaluate a JSON/YAML schedule spec, or a whole timeline (a schedule\n"
     "as 'get -o json' prints it), and print or plot it; with the\n"
     "thermostat's inputs, each step's noise_std too"},
    {"analyze", anneal::AnalyzeCommand, true,
     "-f SPEC [--horizon N] [--max-curvature L] [--batch-size B]\n"
     "[-o text|json]",
     "Robbins-Monro conditions and the stability bounds for curvature L"},
    {"import", anneal::ImportCommand, true,
     "--from torch|timm|optax|hf|keras|deepspeed -f CONFIG",
     "translate a library's scheduler config (JSON/YAML) into the anneal\n"
     "spec that serves the same LRs, printed as JSON; refuses, naming the\n"
     "option, what anneal cannot reproduce (docs/integrations.md)"},
    {"create", anneal::CreateCommand, false,
     "NAME -f SPEC [--display-name X] [--label k=v[,k=v]]...\n[--reason TEXT] "
     "[-o text|json]",
     "store a new schedule"},
    {"fork", anneal::ForkCommand, false,
     "SOURCE NEW_ID --at-step S [-f SPEC] [--display-name X]\n"
     "[--label k=v]... [--reason TEXT] [-o text|json]",
     "a new schedule serving SOURCE's LRs below S (held as served) and\n"
     "then SOURCE's timeline as of S, or SPEC from S on the copied clock:\n"
     "population-based training's exploit step; labels default to\n"
     "SOURCE's"},
    {"get", anneal::GetCommand, false, "NAME [-o text|json]",
     "a schedule: state, counters, timeline and the spec in force"},
    {"list", anneal::ListCommand, false,
     "[--filter EXPR] [--page-size N] [-o text|json]",
     "every schedule (all pages); EXPR like 'labels.team = vision'"},
    {"update", anneal::UpdateCommand, false,
     "NAME [-f SPEC [--effective-step S]] [--display-name X]\n"
     "[--label k=v]... [--reason TEXT] [--etag E] [-o text|json]",
     "a new spec from step S (default max_step_served + 1); --label\n"
     "replaces every label ('' clears them)"},
    {"restart", anneal::RestartCommand, false,
     "NAME [--at S] [--reason TEXT] [--etag E] [-o text|json]",
     "a warm restart: a new cycle begins at S (default the next unserved\n"
     "step, at least 1)"},
    {"rewind", anneal::RewindCommand, false,
     "NAME --to-step S [-f SPEC] [--reason TEXT] [--etag E] [-o text|json]",
     "a new lineage from S, a served step (a rollback): LRs below S stay,\n"
     "SPEC runs from S if given, jobs on the old lineage are refused"},
    {"advance", anneal::AdvanceCommand, false,
     "NAME [--expected-position P] [--request-id ID] [-o text|json]",
     "move the server's step counter by one and print the step there"},
    {"lr", anneal::LrCommand, false,
     "NAME --count N [--start S] [-o csv|json|ascii|svg]\n[--batch-size B]",
     "the LRs the schedule serves, in preview's formats; looking does\n"
     "not count as serving (max_step_served is unchanged)"},
    {"delete", anneal::DeleteCommand, false,
     "NAME [--etag E] [--reason R] [--actor A] [-o text|json]",
     "delete a schedule"},
    {"report", anneal::ReportCommand, false,
     "NAME --step S METRIC=VALUE... [-o text|json]",
     "record training metrics at step S (loss=0.31 val/acc=0.92)"},
    {"reports", anneal::ReportsCommand, false,
     "NAME [--start S] [--end E] [--metric M]... [-o text|csv|json]",
     "the metrics reported for steps in [S, E), optionally only M"},
    {"diagnose", anneal::DiagnoseCommand, false,
     "NAME [--validation-metric M] [--training-metric M] [-o text|json]",
     "findings about the schedule and its job's reports: the phase\n"
     "diagnostic, stability (max_curvature), batch size, Robbins-Monro,\n"
     "divergence, the LR range test (docs/adaptive.md)"},
    {"lr-range-test", anneal::LrRangeTestCommand, false,
     "create NAME --min-lr A --max-lr B --steps N [--label k=v]...\n"
     "suggest NAME [--write NEW_ID [--from SPEC | --steps N]] [-o text|json]",
     "create: an exponential LR sweep from A to B over N steps, labelled\n"
     "as a range test (the job reports loss every step); suggest: the\n"
     "max_lr it finds, and with --write a new schedule with it (SPEC\n"
     "with max_lr replaced, else one_cycle over N steps, default 1000)"},
    {"watch", anneal::WatchCommand, false,
     "[NAME...] [--filter F] [--reports on|off] [-o text|json]",
     "print schedules' changes live (created, updated, restarted, deleted,\n"
     "new cycles, reports): first their current state, then SYNCED"},
    {"health", anneal::HealthCommand, false, "[--service NAME]",
     "SERVING or NOT_SERVING (draining, or writes stopped); exit 0 only\n"
     "when SERVING"},
};

// `text` with each "\n" followed by `indent`.
std::string Indented(const char* text, const std::string& indent) {
  std::string out;
  for (const char* c = text; *c != '\0'; ++c) {
    out += *c;
    if (*c == '\n') out += indent;
  }
  return out;
}

std::string Usage() {
  std::string usage =
      "usage: annealctl [--server ADDRESS] COMMAND [flags]\n"
      "\n"
      "  server commands also take --token TOKEN or --token_file PATH (else\n"
      "  $ANNEAL_TOKEN, $ANNEAL_TOKEN_FILE) and --tls_ca PEM [--tls_cert PEM\n"
      "  --tls_key PEM] (else $ANNEAL_TLS_CA, ...): docs/security.md\n"
      "\n"
      "offline (no server needed):\n";
  bool server_section = false;
  for (const Command& c : kCommands) {
    if (!c.offline && !server_section) {
      server_section = true;
      usage +=
          "\nserver (--server ADDRESS, else $ANNEAL_SERVER, else "
          "127.0.0.1:50051):\n";
    }
    const std::string name_indent(4 + std::string(c.name).size(), ' ');
    absl::StrAppend(&usage, "  ", c.name, " ",
                    Indented(c.synopsis, name_indent), "\n      ",
                    Indented(c.help, "      "), "\n");
  }
  usage +=
      "  NAME is an id (run-1) or a resource name (schedules/run-1). create,\n"
      "  update and restart record --actor (default USER@HOST) and --reason.\n"
      "  -o/--output is the output format; write files with '>'.\n"
      "\n"
      "exit codes: 0 ok, 1 the request failed, 2 bad usage or an invalid\n"
      "argument (INVALID_ARGUMENT), 3 no such schedule (NOT_FOUND), 4 the\n"
      "server is unreachable or unavailable\n";
  return usage;
}

const Command* Find(const std::string& name) {
  for (const Command& c : kCommands) {
    if (name == c.name) return &c;
  }
  return nullptr;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // --token, --token_file and --tls_* may come anywhere.
  anneal::ConnectionSecurity security;
  if (absl::Status s = anneal::TakeSecurityFlags(args, &security); !s.ok()) {
    std::cerr << "annealctl: " << s.message() << "\n";
    return anneal::kExitUsage;
  }
  anneal::SetConnectionSecurity(std::move(security));
  // --server may also come before the command; it is passed on to it.
  std::vector<std::string> global;
  while (!args.empty() && absl::StartsWith(args[0], "--server")) {
    if (args[0] == "--server") {
      if (args.size() < 2) {
        std::cerr << "annealctl: --server: needs a value\n";
        return anneal::kExitUsage;
      }
      global.push_back("--server=" + args[1]);
      args.erase(args.begin(), args.begin() + 2);
    } else if (absl::StartsWith(args[0], "--server=")) {
      global.push_back(args[0]);
      args.erase(args.begin());
    } else {
      break;
    }
  }
  if (args.empty()) {
    std::cerr << Usage();
    return anneal::kExitUsage;
  }
  const std::string name = args[0];
  args.erase(args.begin());
  if (name == "help" || name == "--help" || name == "-h") {
    std::cout << Usage();
    return anneal::kExitOk;
  }
  const Command* command = Find(name);
  if (command == nullptr) {
    std::cerr << "annealctl: unknown command '" << name << "'\n" << Usage();
    return anneal::kExitUsage;
  }
  if (!global.empty() && command->offline) {
    std::cerr << "annealctl " << name
              << ": --server: not used by an offline command\n";
    return anneal::kExitUsage;
  }
  args.insert(args.begin(), global.begin(), global.end());
  return anneal::Report(name, command->run(args, std::cout), std::cerr);
}
