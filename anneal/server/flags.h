// The server's flags. Each is also settable from an ANNEAL_<NAME> environment
// variable (ANNEAL_LISTEN, ANNEAL_DB, ...); a command-line flag wins.
// docs/operations.md lists them all.
#ifndef ANNEAL_SERVER_FLAGS_H_
#define ANNEAL_SERVER_FLAGS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/flags/declare.h"
#include "absl/time/time.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/schedule_service.h"
#include "anneal/server/telemetry/exporter/prometheus_telemetry.h"

ABSL_DECLARE_FLAG(std::string, listen);
ABSL_DECLARE_FLAG(std::string, store);
ABSL_DECLARE_FLAG(std::string, db);
ABSL_DECLARE_FLAG(std::string, port_file);
ABSL_DECLARE_FLAG(std::string, tokens_file);
ABSL_DECLARE_FLAG(bool, insecure);
ABSL_DECLARE_FLAG(std::string, tls_cert);
ABSL_DECLARE_FLAG(std::string, tls_key);
ABSL_DECLARE_FLAG(std::string, tls_client_ca);
ABSL_DECLARE_FLAG(absl::Duration, tls_reload_interval);
ABSL_DECLARE_FLAG(bool, metrics_public);
ABSL_DECLARE_FLAG(bool, metrics_require_token);
ABSL_DECLARE_FLAG(bool, metrics_tls);
ABSL_DECLARE_FLAG(int32_t, metrics_threads);
ABSL_DECLARE_FLAG(absl::Duration, metrics_request_timeout);
ABSL_DECLARE_FLAG(double, mutation_rate);
ABSL_DECLARE_FLAG(int32_t, mutation_burst);
ABSL_DECLARE_FLAG(absl::Duration, shutdown_grace);
ABSL_DECLARE_FLAG(int32_t, max_message_bytes);
ABSL_DECLARE_FLAG(int32_t, max_concurrent_streams);
ABSL_DECLARE_FLAG(int64_t, grpc_memory_bytes);
ABSL_DECLARE_FLAG(int32_t, worker_threads);
ABSL_DECLARE_FLAG(int64_t, max_queued_work);
ABSL_DECLARE_FLAG(absl::Duration, sqlite_busy_timeout);
ABSL_DECLARE_FLAG(int32_t, sqlite_cache_mib);
ABSL_DECLARE_FLAG(std::string, metrics_listen);
ABSL_DECLARE_FLAG(std::string, metrics_port_file);

namespace anneal {

// Applies ANNEAL_<FLAG> environment variables, then parses argv (which
// overrides them). Exits with a usage message (status 2 for a bad
// environment value, 1 for a bad flag) on a bad value.
void ParseFlagsWithEnvironment(int argc, char** argv);

// The flags that are not within their range, as "--flag: rule, got X".
std::vector<std::string> CheckFlags();

// --store, or sqlite://<--db> when it is empty.
std::string StoreUrlFromFlags();

// The registry's and the service's options, from the flags.
RegistryOptions RegistryOptionsFromFlags();
ServiceOptions ServiceOptionsFromFlags();
PrometheusTelemetryOptions TelemetryOptionsFromFlags(
    const std::string& store_url);

}  // namespace anneal

#endif  // ANNEAL_SERVER_FLAGS_H_
