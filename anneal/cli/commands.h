// annealctl subcommands, one function each; annealctl.cc's kCommands table
// holds their synopses and help. Each takes its arguments (after the
// subcommand name), writes its result to `out` and returns the outcome;
// annealctl.cc turns that into one line on stderr and the process exit code
// (Report in server_connection.h): 0 ok, 1 the request failed, 2 bad usage or
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

// annealctl preview
absl::Status PreviewCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl analyze
absl::Status AnalyzeCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl import
absl::Status ImportCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl create
absl::Status CreateCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl fork
absl::Status ForkCommand(const std::vector<std::string>& args,
                         std::ostream& out);

// annealctl rewind
absl::Status RewindCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl get
absl::Status GetCommand(const std::vector<std::string>& args,
                        std::ostream& out);

// annealctl list
absl::Status ListCommand(const std::vector<std::string>& args,
                         std::ostream& out);

// annealctl delete
absl::Status DeleteCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl update
absl::Status UpdateCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl health
absl::Status HealthCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl restart
absl::Status RestartCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl advance
absl::Status AdvanceCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl lr
absl::Status LrCommand(const std::vector<std::string>& args, std::ostream& out);

// annealctl report
absl::Status ReportCommand(const std::vector<std::string>& args,
                           std::ostream& out);

// annealctl reports
absl::Status ReportsCommand(const std::vector<std::string>& args,
                            std::ostream& out);

// annealctl watch
absl::Status WatchCommand(const std::vector<std::string>& args,
                          std::ostream& out);

// annealctl diagnose
absl::Status DiagnoseCommand(const std::vector<std::string>& args,
                             std::ostream& out);

// annealctl lr-range-test create|suggest
absl::Status LrRangeTestCommand(const std::vector<std::string>& args,
                                std::ostream& out);

}  // namespace anneal

#endif  // ANNEAL_CLI_COMMANDS_H_
