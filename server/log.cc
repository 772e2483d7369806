// Server log lines (see log.h).
#include "server/log.h"

#include <unistd.h>

#include <string>

#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace anneal {

void LogLine(absl::string_view line) {
  std::string text =
      absl::StrCat(absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ ", absl::Now(),
                                    absl::UTCTimeZone()),
                   line, "\n");
  // One write() per line so concurrent lines never interleave.
  (void)!write(STDERR_FILENO, text.data(), text.size());
}

}  // namespace anneal
