// Server log lines (see log.h).
#include "anneal/server/common/log.h"

#include <unistd.h>

#include <atomic>
#include <string>

#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "google/protobuf/stubs/logging.h"

namespace anneal {
namespace {

void ProtobufLog(google::protobuf::LogLevel level, const char* filename,
                 int line, const std::string& message) {
  static std::atomic<int64_t> last_second{0};
  static std::atomic<int64_t> dropped{0};
  const int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t last = last_second.load();
  if (level < google::protobuf::LOGLEVEL_FATAL &&
      (now == last || !last_second.compare_exchange_strong(last, now))) {
    dropped.fetch_add(1);
    return;
  }
  const int64_t skipped = dropped.exchange(0);
  Log("protobuf: ", message,
      skipped > 0 ? absl::StrCat(" (", skipped, " more not shown)") : "");
}

}  // namespace

void LogLine(absl::string_view line) {
  std::string text = absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ ", absl::Now(),
                                      absl::UTCTimeZone());
  text.reserve(text.size() + line.size() + 1);
  for (unsigned char c : line) {
    if (c < 0x20 || c == 0x7f) {
      absl::StrAppendFormat(&text, "\\x%02x", c);
    } else {
      text.push_back(static_cast<char>(c));
    }
  }
  text.push_back('\n');
  // One write() per line so concurrent lines never interleave.
  (void)!write(STDERR_FILENO, text.data(), text.size());
}

void RouteProtobufLogs() { google::protobuf::SetLogHandler(&ProtobufLog); }

}  // namespace anneal
