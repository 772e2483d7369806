// annealctl: the command-line client of anneal.
//
//   annealctl preview -f spec.yaml --steps 1000 --format ascii
//   annealctl analyze -f spec.yaml --max-curvature 10 -o json
//   annealctl create run-1 -f spec.yaml --label team=vision
//   annealctl lr run-1 --start 0 --count 1000 --format svg --output lr.svg
//   annealctl report run-1 --step 1200 loss=0.31
//
// Offline commands evaluate specs with the same schedule engine the server
// uses, so a preview is exactly what a training job will be served. Server
// commands talk to anneal-server (--server, $ANNEAL_SERVER, or
// 127.0.0.1:50051).
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/server_connection.h"

namespace {

constexpr char kUsage[] =
    "usage: annealctl [--server ADDRESS] COMMAND [flags]\n"
    "\n"
    "offline (no server needed):\n"
    "  preview -f SPEC --steps N [--start S] [--format csv|json|ascii|svg]\n"
    "          [--batch-size B] [--output FILE]\n"
    "      evaluate a JSON/YAML schedule spec and print or plot it\n"
    "  analyze -f SPEC [--horizon N] [--max-curvature L] [-o json]\n"
    "      Robbins-Monro conditions and the stability bound for curvature L\n"
    "\n"
    "server (--server ADDRESS, else $ANNEAL_SERVER, else 127.0.0.1:50051):\n"
    "  create NAME -f SPEC [--display-name X] [--label k=v[,k=v]]...\n"
    "         [--reason TEXT] [-o json]\n"
    "      store a new schedule\n"
    "  get NAME [-o json]\n"
    "      a schedule: state, counters, timeline and the spec in force\n"
    "  list [--filter EXPR] [--page-size N] [-o json]\n"
    "      every schedule (all pages); EXPR like 'labels.team = vision'\n"
    "  update NAME [-f SPEC [--effective-step S]] [--display-name X]\n"
    "         [--label k=v]... [--reason TEXT] [--etag E] [-o json]\n"
    "      a new spec from step S (default max_step_served + 1); --label\n"
    "      replaces every label ('' clears them)\n"
    "  restart NAME [--at S] [--reason TEXT] [--etag E] [-o json]\n"
    "      a warm restart: a new cycle begins at S\n"
    "  advance NAME [--expected-position P] [--request-id ID] [-o json]\n"
    "      move the server's step counter by one and print the step there\n"
    "  lr NAME --count N [--start S] [--format csv|json|ascii|svg]\n"
    "     [--batch-size B] [--output FILE]\n"
    "      the LRs the schedule serves, in preview's formats; looking does\n"
    "      not count as serving (max_step_served is unchanged)\n"
    "  delete NAME [--etag E] [-o json]\n"
    "      delete a schedule\n"
    "  report NAME --step S METRIC=VALUE... [-o json]\n"
    "      record training metrics at step S (loss=0.31 val/acc=0.92)\n"
    "  reports NAME [--start S] [--end E] [--metric M]... [-o text|csv|json]\n"
    "      the metrics reported for steps in [S, E), optionally only M\n"
    "  health [--service NAME]\n"
    "      SERVING or NOT_SERVING (draining, or writes stopped); exit 0 only\n"
    "      when SERVING\n"
    "  NAME is an id (run-1) or a resource name (schedules/run-1). create,\n"
    "  update and restart record --actor (default USER@HOST) and --reason.\n"
    "\n"
    "exit codes: 0 ok, 1 the request failed, 2 bad usage or an invalid\n"
    "argument (INVALID_ARGUMENT), 3 no such schedule (NOT_FOUND), 4 the\n"
    "server is unreachable or unavailable\n";

using Command = absl::Status (*)(const std::vector<std::string>&,
                                 std::ostream&);

const std::map<std::string, Command>& Commands() {
  static const auto* commands = new std::map<std::string, Command>{
      {"preview", anneal::PreviewCommand}, {"analyze", anneal::AnalyzeCommand},
      {"create", anneal::CreateCommand},   {"get", anneal::GetCommand},
      {"list", anneal::ListCommand},       {"delete", anneal::DeleteCommand},
      {"update", anneal::UpdateCommand},   {"restart", anneal::RestartCommand},
      {"advance", anneal::AdvanceCommand}, {"lr", anneal::LrCommand},
      {"report", anneal::ReportCommand},   {"reports", anneal::ReportsCommand},
      {"health", anneal::HealthCommand},
  };
  return *commands;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
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
    std::cerr << kUsage;
    return anneal::kExitUsage;
  }
  const std::string command = args[0];
  args.erase(args.begin());
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return anneal::kExitOk;
  }
  auto it = Commands().find(command);
  if (it == Commands().end()) {
    std::cerr << "annealctl: unknown command '" << command << "'\n" << kUsage;
    return anneal::kExitUsage;
  }
  if (!global.empty() && (command == "preview" || command == "analyze")) {
    std::cerr << "annealctl " << command
              << ": --server: not used by an offline command\n";
    return anneal::kExitUsage;
  }
  args.insert(args.begin(), global.begin(), global.end());
  return anneal::Report(command, it->second(args, std::cout), std::cerr);
}
