// The server's flags and their environment variables (see flags.h).
#include "anneal/server/flags.h"

#include <cstdlib>
#include <iostream>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

// Serving.
ABSL_FLAG(std::string, listen, "127.0.0.1:50051",
          "gRPC address to serve on (host:port; port 0 picks a free one)");
ABSL_FLAG(std::string, store, "",
          "where schedules are kept: sqlite:///PATH or memory: (nothing "
          "survives); empty: the SQLite file --db");
ABSL_FLAG(std::string, db, "./anneal.db",
          "SQLite database file (--store=sqlite://PATH); created with its "
          "schema if missing");
ABSL_FLAG(std::string, tokens_file, "",
          "bearer tokens with roles (docs/security.md); every call then needs "
          "one. Reloaded on SIGHUP. Empty: no authentication");
ABSL_FLAG(std::string, tls_cert, "",
          "PEM certificate chain: serve gRPC over TLS (with --tls_key)");
ABSL_FLAG(std::string, tls_key, "", "PEM private key of --tls_cert");
ABSL_FLAG(std::string, tls_client_ca, "",
          "PEM CA certificates: require a client certificate signed by one "
          "(mutual TLS)");
ABSL_FLAG(absl::Duration, tls_reload_interval, absl::Minutes(1),
          "how often the TLS files are read again (replaced certificates are "
          "used for new connections without a restart)");
ABSL_FLAG(bool, insecure, false,
          "allow --listen on a non-loopback address with neither --tokens_file "
          "nor --tls_client_ca (anyone who reaches the port may do "
          "anything), and reflection there");
ABSL_FLAG(double, mutation_rate, 0,
          "changes (Create, Update, Restart, Delete) each client (token name, "
          "else peer address) may make per second, after --mutation_burst; "
          "more are RESOURCE_EXHAUSTED with a retry delay. 0: no limit");
ABSL_FLAG(int32_t, mutation_burst, 20,
          "changes a client may make at once before --mutation_rate applies");
ABSL_FLAG(bool, metrics_public, false,
          "allow --metrics_listen on a non-loopback address without "
          "--metrics_require_token (anyone who reaches it sees every "
          "schedule)");
ABSL_FLAG(bool, metrics_require_token, false,
          "the telemetry port (/metrics, the status page) needs a token of "
          "--tokens_file not limited to a label: 'Authorization: Bearer "
          "TOKEN', or basic auth with the token as the password");
ABSL_FLAG(bool, metrics_tls, false,
          "serve the telemetry port over HTTPS with --tls_cert/--tls_key "
          "(read again every --tls_reload_interval)");
ABSL_FLAG(int32_t, metrics_threads, 8,
          "connections the telemetry port serves at once (one thread each); "
          "more wait for one to end");
ABSL_FLAG(absl::Duration, metrics_request_timeout, absl::Seconds(3),
          "how long the telemetry port waits for a connection's request (or "
          "its next one) before closing it, so idle connections cannot hold "
          "every --metrics_threads");
ABSL_FLAG(bool, log_advances, false,
          "log every accepted Advance (rejected ones are always logged)");
ABSL_FLAG(std::string, port_file, "",
          "if set, the bound port is written here once serving (for tests)");
ABSL_FLAG(absl::Duration, shutdown_grace, absl::Seconds(5),
          "on SIGTERM/SIGINT, how long in-flight calls may take to finish");
ABSL_FLAG(int32_t, max_message_bytes, 64 << 20,
          "largest gRPC message received or sent");
ABSL_FLAG(int32_t, max_concurrent_streams, 256,
          "most calls in flight on one client connection");
ABSL_FLAG(int64_t, grpc_memory_bytes, int64_t{1} << 30,
          "memory gRPC's transport may use for buffers (its resource quota)");
ABSL_FLAG(int32_t, worker_threads, 2,
          "threads for heavy calls (Create, Update, List, Simulate, long "
          "ranges, ListMetricReports), so they never hold up cheap ones");
ABSL_FLAG(int64_t, max_queued_work, 256,
          "heavy calls that may wait for a worker; more are refused "
          "(RESOURCE_EXHAUSTED, retry)");
ABSL_FLAG(int64_t, max_inflight_range_steps, 4000000,
          "range steps (EvaluateRange, Simulate) being computed or sent at "
          "once, over all calls; more are refused (RESOURCE_EXHAUSTED, retry)");

// Durability.
ABSL_FLAG(int64_t, served_headroom, 1024,
          "a read past the durable served mark raises it to last + max(count, "
          "this): one durable write per this many steps of a job");
ABSL_FLAG(absl::Duration, store_retry_interval, absl::Seconds(1),
          "after a storage failure, how often writes are tried again");
ABSL_FLAG(int32_t, sqlite_cache_mib, 64,
          "SQLite page cache of the write connection, in MiB");
ABSL_FLAG(absl::Duration, sqlite_busy_timeout, absl::Seconds(5),
          "how long a write waits for a lock another connection holds "
          "before the store fails");

// Telemetry: the server's own metrics, for Prometheus (not the training
// metrics jobs report, which --metrics_history and --max_metric_names
// bound).
ABSL_FLAG(std::string, metrics_listen, "127.0.0.1:9464",
          "where /metrics (Prometheus) and the status page are served; "
          "port 0 picks a free port, empty disables");
ABSL_FLAG(std::string, metrics_port_file, "",
          "if set, the telemetry port is written to this file once serving");
ABSL_FLAG(int64_t, metrics_max_schedules, 1000,
          "most schedules with per-schedule series on /metrics");
ABSL_FLAG(int64_t, metrics_max_reported_names, 32,
          "most reported training-metric names per schedule on /metrics");

// WatchSchedules.
ABSL_FLAG(int64_t, max_watchers, 256, "WatchSchedules streams at once");
ABSL_FLAG(int64_t, watch_queue_events, 1024,
          "live events a watcher may fall behind before its stream is ended");

// What the server holds.
ABSL_FLAG(int64_t, max_schedules, 10000, "most schedules the server holds");
ABSL_FLAG(int64_t, max_range_count, 1000000,
          "most steps one EvaluateRange/Simulate may ask for");
ABSL_FLAG(int64_t, max_tombstones, 10000,
          "deleted schedule names whose last revision is remembered, so that "
          "a schedule created again under one continues its revisions and "
          "watchers resuming see it (the oldest forgotten first)");
ABSL_FLAG(int64_t, plateau_max_report_lead, 100000,
          "a plateau policy counts a report only up to this many steps past "
          "the schedule's highest served step (the report is stored anyway)");
ABSL_FLAG(int64_t, metrics_history, 10000,
          "how many reported steps (ReportMetrics) each schedule keeps; the "
          "lowest steps beyond it are dropped");
ABSL_FLAG(int64_t, max_timeline_segments, 1000,
          "most segments (create, updates, restarts) one schedule's timeline "
          "holds");
ABSL_FLAG(int64_t, max_schedule_bytes, int64_t{1} << 20,
          "largest schedule record (resource and timeline, serialized)");
ABSL_FLAG(int64_t, max_spec_table_bytes, anneal::kDefaultMaxTableBytes,
          "compile budget of one spec: bytes of tables (cycle starts, decay "
          "values, bias-correction products)");
ABSL_FLAG(int64_t, max_table_bytes, int64_t{1} << 30,
          "compiled tables of all schedules together");

// Request fields.
ABSL_FLAG(int64_t, max_spec_bytes, 64 << 10, "largest spec, serialized");
ABSL_FLAG(int64_t, max_display_name_bytes, 256, "largest display_name");
ABSL_FLAG(int64_t, max_labels, 64, "most labels on a schedule");
ABSL_FLAG(int64_t, max_label_key_bytes, 63, "largest label key");
ABSL_FLAG(int64_t, max_label_value_bytes, 256, "largest label value");
ABSL_FLAG(int64_t, max_actor_bytes, 256, "largest actor");
ABSL_FLAG(int64_t, max_reason_bytes, 4096, "largest reason");
ABSL_FLAG(int64_t, max_request_id_bytes, 128, "largest Advance request_id");
ABSL_FLAG(int64_t, max_filter_bytes, 4096, "largest ListSchedules filter");
ABSL_FLAG(int64_t, max_page_token_bytes, 1024, "largest page_token");
ABSL_FLAG(int64_t, max_etag_bytes, 128, "largest etag sent back");
ABSL_FLAG(int64_t, max_metric_names, 64,
          "most metric_names in one ListMetricReports");

namespace anneal {
namespace {

bool OursFile(absl::string_view file) {
  return absl::EndsWith(file, "anneal/server/flags.cc");
}

}  // namespace

void ParseFlagsWithEnvironment(int argc, char** argv) {
  // absl lists only flags of the main file under --help by default; ours
  // live here.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = OursFile;
  usage.contains_helpshort_flags = OursFile;
  absl::SetFlagsUsageConfig(usage);
  absl::SetProgramUsageMessage(
      "anneal-server: named learning-rate schedules over gRPC.\n"
      "Every flag can also be set as ANNEAL_<FLAG> in the environment.");
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (!OursFile(flag->Filename())) continue;
    const std::string env =
        "ANNEAL_" + absl::AsciiStrToUpper(std::string(name));
    const char* value = std::getenv(env.c_str());
    if (value == nullptr) continue;
    std::string error;
    if (!flag->ParseFrom(value, &error)) {
      std::cerr << "anneal-server: " << env << "=" << value << ": " << error
                << "\n";
      std::exit(2);
    }
  }
  absl::ParseCommandLine(argc, argv);
}

std::vector<std::string> CheckFlags() {
  std::vector<std::string> bad;
  auto at_least = [&bad](const char* name, int64_t value, int64_t min) {
    if (value < min)
      bad.push_back(
          absl::StrCat("--", name, ": must be >= ", min, ", got ", value));
  };
  at_least("max_message_bytes", absl::GetFlag(FLAGS_max_message_bytes),
           1 << 20);
  at_least("max_concurrent_streams",
           absl::GetFlag(FLAGS_max_concurrent_streams), 1);
  at_least("grpc_memory_bytes", absl::GetFlag(FLAGS_grpc_memory_bytes),
           16 << 20);
  at_least("worker_threads", absl::GetFlag(FLAGS_worker_threads), 1);
  at_least("max_queued_work", absl::GetFlag(FLAGS_max_queued_work), 1);
  at_least("max_range_count", absl::GetFlag(FLAGS_max_range_count), 1);
  // One largest range must fit the three quarters of the budget long
  // ranges may use, or it could never be served.
  at_least("max_inflight_range_steps",
           absl::GetFlag(FLAGS_max_inflight_range_steps),
           absl::GetFlag(FLAGS_max_range_count) * 4 / 3 + 1);
  at_least("served_headroom", absl::GetFlag(FLAGS_served_headroom), 0);
  at_least("max_schedules", absl::GetFlag(FLAGS_max_schedules), 1);
  at_least("sqlite_cache_mib", absl::GetFlag(FLAGS_sqlite_cache_mib), 1);
  at_least("metrics_history", absl::GetFlag(FLAGS_metrics_history), 1);
  at_least("max_tombstones", absl::GetFlag(FLAGS_max_tombstones), 0);
  at_least("plateau_max_report_lead",
           absl::GetFlag(FLAGS_plateau_max_report_lead), 0);
  at_least("max_watchers", absl::GetFlag(FLAGS_max_watchers), 0);
  at_least("watch_queue_events", absl::GetFlag(FLAGS_watch_queue_events), 16);
  if (!(absl::GetFlag(FLAGS_mutation_rate) >= 0)) {
    bad.push_back(absl::StrCat("--mutation_rate: must be >= 0, got ",
                               absl::GetFlag(FLAGS_mutation_rate)));
  }
  at_least("mutation_burst", absl::GetFlag(FLAGS_mutation_burst), 1);
  if (absl::GetFlag(FLAGS_tls_cert).empty() !=
      absl::GetFlag(FLAGS_tls_key).empty()) {
    bad.push_back("--tls_cert, --tls_key: give both or neither");
  }
  if (!absl::GetFlag(FLAGS_tls_client_ca).empty() &&
      absl::GetFlag(FLAGS_tls_cert).empty()) {
    bad.push_back("--tls_client_ca: needs --tls_cert and --tls_key");
  }
  if (absl::GetFlag(FLAGS_metrics_require_token) &&
      absl::GetFlag(FLAGS_tokens_file).empty()) {
    bad.push_back("--metrics_require_token: needs --tokens_file");
  }
  if (absl::GetFlag(FLAGS_metrics_tls) &&
      absl::GetFlag(FLAGS_tls_cert).empty()) {
    bad.push_back("--metrics_tls: needs --tls_cert and --tls_key");
  }
  at_least("metrics_threads", absl::GetFlag(FLAGS_metrics_threads), 1);
  if (absl::GetFlag(FLAGS_metrics_request_timeout) < absl::Milliseconds(100)) {
    bad.push_back(absl::StrCat(
        "--metrics_request_timeout: must be >= 100ms, got ",
        absl::FormatDuration(absl::GetFlag(FLAGS_metrics_request_timeout))));
  }
  if (absl::GetFlag(FLAGS_tls_reload_interval) < absl::Seconds(1)) {
    bad.push_back(absl::StrCat(
        "--tls_reload_interval: must be >= 1s, got ",
        absl::FormatDuration(absl::GetFlag(FLAGS_tls_reload_interval))));
  }
  at_least("metrics_max_schedules", absl::GetFlag(FLAGS_metrics_max_schedules),
           0);
  at_least("metrics_max_reported_names",
           absl::GetFlag(FLAGS_metrics_max_reported_names), 0);
  at_least("max_timeline_segments", absl::GetFlag(FLAGS_max_timeline_segments),
           1);
  at_least("max_spec_table_bytes", absl::GetFlag(FLAGS_max_spec_table_bytes),
           kCurveNodeBytes);
  at_least("max_table_bytes", absl::GetFlag(FLAGS_max_table_bytes),
           absl::GetFlag(FLAGS_max_spec_table_bytes));
  at_least("max_spec_bytes", absl::GetFlag(FLAGS_max_spec_bytes), 1024);
  // A schedule's record holds its spec at least twice (spec and first
  // segment), and Get must be able to send it.
  at_least("max_schedule_bytes", absl::GetFlag(FLAGS_max_schedule_bytes),
           4 * absl::GetFlag(FLAGS_max_spec_bytes));
  if (absl::GetFlag(FLAGS_max_schedule_bytes) >
      absl::GetFlag(FLAGS_max_message_bytes) / 2) {
    bad.push_back(
        absl::StrCat("--max_schedule_bytes: must be <= max_message_bytes / 2 (",
                     absl::GetFlag(FLAGS_max_message_bytes) / 2,
                     ") so a schedule fits a "
                     "response, got ",
                     absl::GetFlag(FLAGS_max_schedule_bytes)));
  }
  for (auto [name, value] : {
           std::pair{"max_display_name_bytes",
                     absl::GetFlag(FLAGS_max_display_name_bytes)},
           std::pair{"max_labels", absl::GetFlag(FLAGS_max_labels)},
           std::pair{"max_label_key_bytes",
                     absl::GetFlag(FLAGS_max_label_key_bytes)},
           std::pair{"max_label_value_bytes",
                     absl::GetFlag(FLAGS_max_label_value_bytes)},
           std::pair{"max_actor_bytes", absl::GetFlag(FLAGS_max_actor_bytes)},
           std::pair{"max_reason_bytes", absl::GetFlag(FLAGS_max_reason_bytes)},
           std::pair{"max_request_id_bytes",
                     absl::GetFlag(FLAGS_max_request_id_bytes)},
           std::pair{"max_filter_bytes", absl::GetFlag(FLAGS_max_filter_bytes)},
           std::pair{"max_page_token_bytes",
                     absl::GetFlag(FLAGS_max_page_token_bytes)},
           std::pair{"max_etag_bytes", absl::GetFlag(FLAGS_max_etag_bytes)},
           std::pair{"max_metric_names", absl::GetFlag(FLAGS_max_metric_names)},
       }) {
    at_least(name, value, 1);
  }
  // Page tokens carry a schedule name (up to 73 bytes) and a fingerprint.
  at_least("max_page_token_bytes", absl::GetFlag(FLAGS_max_page_token_bytes),
           256);
  at_least("max_etag_bytes", absl::GetFlag(FLAGS_max_etag_bytes), 32);
  return bad;
}

std::string StoreUrlFromFlags() {
  const std::string store = absl::GetFlag(FLAGS_store);
  return store.empty() ? absl::StrCat("sqlite://", absl::GetFlag(FLAGS_db))
                       : store;
}

PrometheusTelemetryOptions TelemetryOptionsFromFlags(
    const std::string& store_url) {
  PrometheusTelemetryOptions o;
  o.version = ANNEAL_VERSION;
  o.store_kind = store_url.substr(0, store_url.find(':'));
  o.max_schedules = absl::GetFlag(FLAGS_metrics_max_schedules);
  return o;
}

RegistryOptions RegistryOptionsFromFlags() {
  RegistryOptions o;
  o.max_schedules = absl::GetFlag(FLAGS_max_schedules);
  o.max_reported_names = absl::GetFlag(FLAGS_metrics_max_reported_names);
  o.max_range_count = absl::GetFlag(FLAGS_max_range_count);
  o.metrics_history = absl::GetFlag(FLAGS_metrics_history);
  o.plateau_max_report_lead = absl::GetFlag(FLAGS_plateau_max_report_lead);
  o.max_tombstones = absl::GetFlag(FLAGS_max_tombstones);
  o.served_headroom = absl::GetFlag(FLAGS_served_headroom);
  o.max_timeline_segments = absl::GetFlag(FLAGS_max_timeline_segments);
  o.max_schedule_bytes = absl::GetFlag(FLAGS_max_schedule_bytes);
  o.compile.max_table_bytes = absl::GetFlag(FLAGS_max_spec_table_bytes);
  o.max_table_bytes = absl::GetFlag(FLAGS_max_table_bytes);
  o.store_retry_interval = absl::GetFlag(FLAGS_store_retry_interval);
  o.max_watchers = absl::GetFlag(FLAGS_max_watchers);
  o.watch_queue_events = absl::GetFlag(FLAGS_watch_queue_events);
  return o;
}

ServiceOptions ServiceOptionsFromFlags() {
  ServiceOptions o;
  RequestLimits& l = o.limits;
  l.max_display_name_bytes = absl::GetFlag(FLAGS_max_display_name_bytes);
  l.max_labels = absl::GetFlag(FLAGS_max_labels);
  l.max_label_key_bytes = absl::GetFlag(FLAGS_max_label_key_bytes);
  l.max_label_value_bytes = absl::GetFlag(FLAGS_max_label_value_bytes);
  l.max_actor_bytes = absl::GetFlag(FLAGS_max_actor_bytes);
  l.max_reason_bytes = absl::GetFlag(FLAGS_max_reason_bytes);
  l.max_request_id_bytes = absl::GetFlag(FLAGS_max_request_id_bytes);
  l.max_filter_bytes = absl::GetFlag(FLAGS_max_filter_bytes);
  l.max_page_token_bytes = absl::GetFlag(FLAGS_max_page_token_bytes);
  l.max_etag_bytes = absl::GetFlag(FLAGS_max_etag_bytes);
  l.max_spec_bytes = absl::GetFlag(FLAGS_max_spec_bytes);
  l.max_metric_names = absl::GetFlag(FLAGS_max_metric_names);
  l.max_watch_names = absl::GetFlag(FLAGS_max_schedules);
  o.max_inflight_range_steps = absl::GetFlag(FLAGS_max_inflight_range_steps);
  o.max_list_page_bytes = absl::GetFlag(FLAGS_max_message_bytes) / 2;
  o.log_advances = absl::GetFlag(FLAGS_log_advances);
  return o;
}

}  // namespace anneal
