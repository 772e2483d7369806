// The server's flags and their environment variables (see flags.h).
#include "server/flags.h"

#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address to serve on (host:port; port 0 picks a free one)");
ABSL_FLAG(std::string, db, "./anneal.db",
          "SQLite database file; created with its schema if missing");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound port is written here once serving (for tests)");
ABSL_FLAG(int64_t, max_schedules, 10000, "most schedules the server holds");
ABSL_FLAG(int64_t, max_range_count, 1000000,
          "most steps one EvaluateRange/Simulate may ask for");
ABSL_FLAG(int32_t, max_message_bytes, 64 << 20,
          "largest gRPC message received or sent");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM/SIGINT, how long in-flight calls may take to finish");
ABSL_FLAG(absl::Duration, served_flush_interval, absl::Seconds(1),
          "how often max_step_served is persisted");
ABSL_FLAG(int64_t, metrics_history, 10000,
          "how many reported steps (ReportMetrics) each schedule keeps; the "
          "lowest steps beyond it are dropped");

namespace anneal {

void ParseFlagsWithEnvironment(int argc, char** argv) {
  // absl lists only flags of the main file under --help by default; ours
  // live here.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "server/flags.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "anneal-server: named learning-rate schedules over gRPC.\n"
      "Every flag can also be set as ANNEAL_<FLAG> in the environment.");
  for (const char* name :
       {"listen", "db", "port_file", "max_schedules", "max_range_count",
        "max_message_bytes", "shutdown_grace", "served_flush_interval",
        "metrics_history"}) {
    const std::string env = "ANNEAL_" + absl::AsciiStrToUpper(name);
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    absl::CommandLineFlag* flag = absl::FindCommandLineFlag(name);
    std::string error;
    if (flag == nullptr || !flag->ParseFrom(value, &error)) {
      std::cerr << "anneal-server: " << env << "=" << value << ": " << error
                << "\n";
      std::exit(2);
    }
  }
  absl::ParseCommandLine(argc, argv);
}

}  // namespace anneal
