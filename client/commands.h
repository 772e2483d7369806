// annealctl subcommands. Each takes its arguments (after the subcommand
// name), writes results to `out` and one-line errors to `err`, and returns
// the process exit code: 0 ok, 1 the request failed, 2 bad usage or
// INVALID_ARGUMENT, 3 the schedule does not exist (NOT_FOUND), 4 the server
// is unreachable or unavailable. Server commands take --server ADDRESS
// (default $ANNEAL_SERVER, else 127.0.0.1:50051).
#ifndef ANNEAL_CLIENT_COMMANDS_H_
#define ANNEAL_CLIENT_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace anneal {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitNotFound = 3;
inline constexpr int kExitUnreachable = 4;

// annealctl preview -f SPEC --steps N [--start S] [--format csv|json|ascii|svg]
//                   [--batch-size B] [--output FILE]
int RunPreview(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// annealctl analyze -f SPEC [--horizon N] [--max-curvature L] [-o json]
int RunAnalyze(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// annealctl create NAME -f SPEC [--display-name X] [--label k=v ...]
//                  [--reason TEXT] [-o json]
int RunCreate(const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err);

// annealctl get NAME [-o json]
int RunGet(const std::vector<std::string>& args, std::ostream& out,
           std::ostream& err);

// annealctl list [--filter EXPR] [--page-size N] [-o json] (every page)
int RunList(const std::vector<std::string>& args, std::ostream& out,
            std::ostream& err);

// annealctl delete NAME [--etag E]
int RunDelete(const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err);

// annealctl update NAME [-f SPEC] [--effective-step S] [--display-name X]
//                  [--label k=v ...] [--reason TEXT] [--etag E] [-o json]
int RunUpdate(const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err);

// annealctl restart NAME [--at S] [--reason TEXT] [--etag E] [-o json]
int RunRestart(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// annealctl advance NAME [--expected-position P] [--request-id ID] [-o json]
int RunAdvance(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// annealctl lr NAME --start S --count N [--format csv|json|ascii|svg]
//              [--batch-size B] [--output FILE]
int RunLr(const std::vector<std::string>& args, std::ostream& out,
          std::ostream& err);

// annealctl report NAME --step S METRIC=VALUE... [-o json]
int RunReport(const std::vector<std::string>& args, std::ostream& out,
              std::ostream& err);

// annealctl reports NAME [--start S] [--end E] [--metric M]...
//                   [--page-size N] [-o text|csv|json] (every page)
int RunReports(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

}  // namespace anneal

#endif  // ANNEAL_CLIENT_COMMANDS_H_
