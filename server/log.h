// Server log lines: one line per start, stop and mutation, to stderr, with a
// UTC timestamp. Never one per Evaluate (that is the hot path).
#ifndef ANNEAL_SERVER_LOG_H_
#define ANNEAL_SERVER_LOG_H_

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anneal {

void LogLine(absl::string_view line);

template <typename... Args>
void Log(const Args&... args) {
  LogLine(absl::StrCat(args...));
}

}  // namespace anneal

#endif  // ANNEAL_SERVER_LOG_H_
