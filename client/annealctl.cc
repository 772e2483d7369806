// annealctl: the command-line client of anneal.
//
//   annealctl preview -f spec.yaml --steps 1000 --format ascii
//   annealctl analyze -f spec.yaml --max-curvature 10 -o json
//
// Offline commands evaluate specs with the same schedule engine the server
// uses, so a preview is exactly what a training job will be served.
#include <iostream>
#include <string>
#include <vector>

#include "client/commands.h"

namespace {

constexpr char kUsage[] =
    "usage: annealctl COMMAND [flags]\n"
    "\n"
    "offline (no server needed):\n"
    "  preview -f SPEC --steps N [--start S] [--format csv|json|ascii|svg]\n"
    "          [--batch-size B] [--output FILE]\n"
    "      evaluate a JSON/YAML schedule spec and print or plot it\n"
    "  analyze -f SPEC [--horizon N] [--max-curvature L] [-o json]\n"
    "      Robbins-Monro conditions and the stability bound for curvature L\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::cerr << kUsage;
    return anneal::kExitUsage;
  }
  const std::string command = argv[1];
  const std::vector<std::string> args(argv + 2, argv + argc);
  if (command == "preview") return anneal::RunPreview(args, std::cout, std::cerr);
  if (command == "analyze") return anneal::RunAnalyze(args, std::cout, std::cerr);
  if (command == "help" || command == "--help" || command == "-h") {
    std::cout << kUsage;
    return anneal::kExitOk;
  }
  std::cerr << "annealctl: unknown command '" << command << "'\n" << kUsage;
  return anneal::kExitUsage;
}
