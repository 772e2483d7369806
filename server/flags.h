// The server's flags. Each is also settable from an ANNEAL_<NAME> environment
// variable (ANNEAL_LISTEN, ANNEAL_DB, ...); a command-line flag wins.
#ifndef ANNEAL_SERVER_FLAGS_H_
#define ANNEAL_SERVER_FLAGS_H_

#include <cstdint>
#include <string>

#include "absl/flags/declare.h"
#include "absl/time/time.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, db);
ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(int64_t, max_schedules);
ABSL_DECLARE_FLAG(int64_t, max_range_count);
ABSL_DECLARE_FLAG(int32_t, max_message_bytes);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_grace);
ABSL_DECLARE_FLAG(absl::Duration, served_flush_interval);
ABSL_DECLARE_FLAG(int64_t, metrics_history);

namespace anneal {

// Applies ANNEAL_<FLAG> environment variables, then parses argv (which
// overrides them). Exits with a usage message on a bad value.
void ParseFlagsWithEnvironment(int argc, char** argv);

}  // namespace anneal

#endif  // ANNEAL_SERVER_FLAGS_H_
