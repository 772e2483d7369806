// Server log lines: one line per start, stop and mutation, to stderr, with a
// UTC timestamp. Never one per Evaluate (that is the hot path).
//
// A line cannot be forged: control characters anywhere in it (a newline in
// a caller's reason, say) are written as \xNN, so every line the server
// writes is exactly one line. Callers still QuoteValue what users typed, so
// that it is cut short and shows where it begins and ends.
#ifndef ANNEAL_SERVER_COMMON_LOG_H_
#define ANNEAL_SERVER_COMMON_LOG_H_

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace anneal {

void LogLine(absl::string_view line);

template <typename... Args>
void Log(const Args&... args) {
  LogLine(absl::StrCat(args...));
}

// Routes protobuf's own log messages (such as "String field ... contains
// invalid UTF-8", which any client can trigger) through LogLine, at most
// one a second, so that a hostile client cannot flood the log.
void RouteProtobufLogs();

}  // namespace anneal

#endif  // ANNEAL_SERVER_COMMON_LOG_H_
