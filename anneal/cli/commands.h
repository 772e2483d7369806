// annealctl subcommands. Each takes its arguments (after the subcommand
// name), writes its result to `out` and returns the outcome; annealctl.cc
// turns that into one line on stderr and the process exit code (Report in
// server_connection.h): 0 ok, 1 the request failed, 2 bad usage or
// INVALID_ARGUMENT, 3 the schedule does not exist (NOT_FOUND), 4 the server
// is unreachable or unavailable. Server commands take --server ADDRESS
// (default $ANNEAL_SERVER, else 127.0.0.1:50051).
#ifndef ANNEAL_CLI_COMMANDS_H_
#define ANNEAL_CLI_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"

namespace anneal {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitUnreachable = 4;

// annealctl preview -f SPEC --steps N [--start S] [--format csv|json|ascii|svg]
//                   [--batch-size B] [--output FILE]
absl::Status PreviewCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl analyze -f SPEC [--horizon N] [--max-curvature L] [-o json]
absl::Status AnalyzeCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl create NAME -f SPEC [--display-name X] [--label k=v ...]
//                  [--reason TEXT] [-o json]
absl::Status CreateCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl get NAME [-o json]
absl::Status GetCommand(const std::vector<std::string>& args,
                        std::ostream& out);

// annealctl list [--filter EXPR] [--page-size N] [-o json] (every page)
absl::Status ListCommand(const std::vector<std::string>& args,
                         std::ostream& out);

// annealctl delete NAME [--etag E]
absl::Status DeleteCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl update NAME [-f SPEC] [--effective-step S] [--display-name X]
//                  [--label k=v ...] [--reason TEXT] [--etag E] [-o json]
absl::Status UpdateCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl health [--service NAME]: prints SERVING or NOT_SERVING; exit 0
// only when SERVING (4 otherwise), so a container health check can use it.
absl::Status HealthCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl restart NAME [--at S] [--reason TEXT] [--etag E] [-o json]
absl::Status RestartCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl advance NAME [--expected-position P] [--request-id ID] [-o json]
absl::Status AdvanceCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl lr NAME --start S --count N [--format csv|json|ascii|svg]
//              [--batch-size B] [--output FILE]
absl::Status LrCommand(const std::vector<std::string>& args, std::ostream& out);

// annealctl report NAME --step S METRIC=VALUE... [-o json]
absl::Status ReportCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl reports NAME [--start S] [--end E] [--metric M]...
//                   [--page-size N] [-o text|csv|json] (every page)
absl::Status ReportsCommand(const std::vector<std::string>& args,
                            std::ostream& out);

}  // namespace anneal

#endif  // ANNEAL_CLI_COMMANDS_H_
