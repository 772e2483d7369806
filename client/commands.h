// annealctl subcommands. Each takes its arguments (after the subcommand
// name), writes results to `out` and one-line errors to `err`, and returns
// the process exit code: 0 ok, 1 the request failed, 2 bad usage.
#ifndef ANNEAL_CLIENT_COMMANDS_H_
#define ANNEAL_CLIENT_COMMANDS_H_

#include <ostream>
#include <string>
#include <vector>

namespace anneal {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// annealctl preview -f SPEC --steps N [--start S] [--format csv|json|ascii|svg]
//                   [--batch-size B] [--output FILE]
int RunPreview(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

// annealctl analyze -f SPEC [--horizon N] [--max-curvature L] [-o json]
int RunAnalyze(const std::vector<std::string>& args, std::ostream& out,
               std::ostream& err);

}  // namespace anneal

#endif  // ANNEAL_CLIENT_COMMANDS_H_
