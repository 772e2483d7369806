// anneal-server: named learning-rate schedules over gRPC.
//
// The recipe: parse and check the flags (and ANNEAL_* environment
// variables), open the store --store names (SQLite by default; a probe
// write proves it writable), load every schedule into the registry, serve
// telemetry (/metrics) on --metrics_listen, serve the schedule service with
// health checking and reflection, and on SIGTERM/SIGINT stop accepting, let
// in-flight calls finish within --shutdown_grace, answer the rest
// UNAVAILABLE, store the exact served marks and exit 0.
#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <thread>
#include <utility>

#include "absl/flags/flag.h"
#include "absl/strings/match.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "anneal/server/authz.h"
#include "anneal/server/common/log.h"
#include "anneal/server/common/work_pool.h"
#include "anneal/server/flags.h"
#include "anneal/server/health_service.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/request_limits.h"
#include "anneal/server/schedule_service.h"
#include "anneal/server/store_url.h"
#include "anneal/server/telemetry/exporter/http_server.h"
#include "anneal/server/telemetry/exporter/prometheus_telemetry.h"
#include "anneal/server/telemetry/exporter/status_page.h"
#include "anneal/server/telemetry/telemetry_store.h"
#include "anneal/server/telemetry_access.h"
#include "anneal/server/tls_files.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"

namespace {

// glibc returns a thread arena's free top to the kernel once it exceeds
// 128 KiB, and the dynamic mmap threshold moves with it: a commit group's
// allocations then cost page faults and madvise calls on every commit,
// ~18% of an Advance's CPU (docs/performance.md). Fixed thresholds keep up
// to 16 MiB of freed memory per arena for reuse. GLIBC_TUNABLES, if set,
// is the operator's choice and wins.
void KeepFreedMemoryWarm() {
  if (std::getenv("GLIBC_TUNABLES") != nullptr) return;
  mallopt(M_TRIM_THRESHOLD, 16 << 20);
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
}

// Blocks SIGTERM, SIGINT (stop) and SIGHUP (reload the tokens) in every
// thread (gRPC's threads inherit the mask) so that one thread can wait for
// them with sigwait.
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

// Writes `port` to `file` (the value of --`flag`) so that it appears whole
// (write, then rename).
absl::Status WritePortFile(const char* flag, const std::string& file,
                           int port) {
  const std::string tmp = file + ".tmp";
  {
    std::ofstream out(tmp);
    out << port << "\n";
    out.close();
    if (!out) {
      return absl::FailedPreconditionError(
          absl::StrCat("--", flag, ": cannot write ", tmp));
    }
  }
  if (std::rename(tmp.c_str(), file.c_str()) != 0) {
    std::remove(tmp.c_str());
    return absl::FailedPreconditionError(
        absl::StrCat("--", flag, ": cannot rename ", tmp, " to ", file));
  }
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t signals = BlockShutdownSignals();
  anneal::ParseFlagsWithEnvironment(argc, argv);
  if (auto bad = anneal::CheckFlags(); !bad.empty()) {
    for (const std::string& line : bad) anneal::Log(line);
    return 1;
  }
  anneal::RouteProtobufLogs();

  // Safe by default: a port others can reach needs tokens (or --insecure),
  // and the unauthenticated telemetry port stays on loopback unless
  // --metrics_public says otherwise.
  const std::string listen = absl::GetFlag(FLAGS_listen);
  const std::string tokens_file = absl::GetFlag(FLAGS_tokens_file);
  const bool insecure = absl::GetFlag(FLAGS_insecure);
  const bool loopback = anneal::IsLoopbackListen(listen);
  const std::string tls_cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string tls_key = absl::GetFlag(FLAGS_tls_key);
  const std::string tls_client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (!tls_cert.empty()) {
    if (absl::Status s =
            anneal::CheckTlsFiles(tls_cert, tls_key, tls_client_ca);
        !s.ok()) {
      anneal::Log("cannot start: ", s.message());
      return 1;
    }
  }
  anneal::Authorizer authorizer;
  if (!tokens_file.empty()) {
    if (absl::Status s = authorizer.LoadFile(tokens_file); !s.ok()) {
      anneal::Log("cannot start: ", s.message());
      return 1;
    }
    anneal::Log("start: ", authorizer.size(), " tokens from ", tokens_file,
                "; every call needs a bearer token (SIGHUP reloads them)");
  } else if (!tls_client_ca.empty()) {
    anneal::Log(
        "start: no --tokens_file: every client with a certificate "
        "from --tls_client_ca may do everything");
  } else if (!loopback && !insecure) {
    anneal::Log(
        "cannot start: --listen=", listen,
        " is not a loopback address and there is no --tokens_file: anyone "
        "who reaches the port could change or delete every schedule. Give "
        "--tokens_file (docs/security.md), listen on 127.0.0.1, or pass "
        "--insecure to serve without authentication anyway");
    return 1;
  } else if (!loopback) {
    anneal::Log(
        "WARNING: --insecure: serving ", listen,
        " with NO AUTHENTICATION: anyone who reaches the port can change or "
        "delete every schedule");
  }
  if (const std::string m = absl::GetFlag(FLAGS_metrics_listen);
      !m.empty() && !anneal::IsLoopbackListen(m) &&
      !absl::GetFlag(FLAGS_metrics_public) &&
      !absl::GetFlag(FLAGS_metrics_require_token)) {
    anneal::Log("cannot start: --metrics_listen=", m,
                " is not a loopback address, and the status page and /metrics "
                "show every schedule to anyone who reaches them. Pass "
                "--metrics_require_token (with --metrics_tls), listen on "
                "127.0.0.1, or pass --metrics_public to serve them openly");
    return 1;
  }
  // Reflection (the service's schema, unauthenticated) follows the same
  // rule as the port.
  const bool reflection = loopback || insecure;
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!tls_cert.empty()) {
    // The files are read again every --tls_reload_interval: replaced
    // certificates serve new connections without a restart.
    const auto interval = static_cast<unsigned int>(
        absl::ToInt64Seconds(absl::GetFlag(FLAGS_tls_reload_interval)));
    auto provider =
        std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
            tls_key, tls_cert, tls_client_ca, interval);
    grpc::experimental::TlsServerCredentialsOptions tls(provider);
    tls.watch_identity_key_cert_pairs();
    if (tls_client_ca.empty()) {
      tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
    } else {
      tls.watch_root_certs();
      tls.set_cert_request_type(
          GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    }
    credentials = grpc::experimental::TlsServerCredentials(tls);
    anneal::Log("start: TLS with ", tls_cert,
                tls_client_ca.empty()
                    ? std::string()
                    : absl::StrCat(", client certificates from ", tls_client_ca,
                                   " required"),
                "; files read again every ",
                absl::FormatDuration(absl::GetFlag(FLAGS_tls_reload_interval)));
  }
  // Debian's Abseil checks every lock for deadlock cycles in every build
  // type: thousands of instructions per request, and a graph node per
  // schedule mutex that made a create cost 18 ms with 100k schedules loaded
  // (docs/performance.md). Lock-order inversions are caught by the
  // ThreadSanitizer runs (scripts/test-sanitizers.sh) instead.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  KeepFreedMemoryWarm();

  const std::string db = anneal::StoreUrlFromFlags();
  anneal::StoreUrlOptions store_options;
  store_options.sqlite_busy_timeout = absl::GetFlag(FLAGS_sqlite_busy_timeout);
  store_options.sqlite_cache_mib = absl::GetFlag(FLAGS_sqlite_cache_mib);
  auto store = anneal::OpenStore(db, store_options);
  if (!store.ok()) {
    anneal::Log("cannot open ", db, ": ", store.status().ToString());
    return 1;
  }
  if (absl::StartsWith(db, "memory:")) {
    anneal::Log("start: the store is in memory: nothing survives this process");
  }

  // Telemetry sees every write through the timing decorator.
  anneal::PrometheusTelemetry telemetry(anneal::TelemetryOptionsFromFlags(db));
  anneal::TelemetryStore timed_store(store->get(), &telemetry);

  anneal::WorkPool pool({absl::GetFlag(FLAGS_worker_threads),
                         absl::GetFlag(FLAGS_max_queued_work)});
  anneal::HealthService health({"anneal.v1.ScheduleService"});
  anneal::RegistryOptions options = anneal::RegistryOptionsFromFlags();
  options.executor = &pool;
  options.telemetry = &telemetry;
  options.on_store_state = [&health](bool writable, const absl::Status&) {
    health.SetServing(writable);
  };
  auto registry = std::make_unique<anneal::Registry>(&timed_store, options);
  if (absl::Status s = registry->Load(); !s.ok()) {
    anneal::Log("cannot load ", db, ": ", s.ToString());
    return 1;
  }
  telemetry.Observe(registry.get(), &timed_store);
  std::unique_ptr<anneal::StatusPage> status_page;
  std::unique_ptr<anneal::HttpServer> telemetry_port;
  if (const std::string metrics_listen = absl::GetFlag(FLAGS_metrics_listen);
      !metrics_listen.empty()) {
    anneal::StatusPageOptions page_options;
    page_options.version = ANNEAL_VERSION;
    page_options.store = db;
    page_options.check_list = [limits =
                                   anneal::ServiceOptionsFromFlags().limits](
                                  const anneal::v1::ListSchedulesRequest& r) {
      return anneal::CheckLimits(r, limits);
    };
    status_page = std::make_unique<anneal::StatusPage>(
        registry.get(), &timed_store, std::move(page_options));
    anneal::StatusPage* page = status_page.get();
    anneal::HttpServer::Options http;
    http.threads = absl::GetFlag(FLAGS_metrics_threads);
    http.request_timeout = absl::GetFlag(FLAGS_metrics_request_timeout);
    if (absl::GetFlag(FLAGS_metrics_tls)) {
      http.tls = anneal::HttpTlsFiles{tls_cert, tls_key,
                                      absl::GetFlag(FLAGS_tls_reload_interval)};
    }
    if (absl::GetFlag(FLAGS_metrics_require_token)) {
      http.guard = [&authorizer](const anneal::HttpRequest& r) {
        return anneal::CheckTelemetryAccess(authorizer, r);
      };
    }
    auto started = anneal::HttpServer::Start(
        metrics_listen,
        {{"/metrics",
          [&telemetry](const anneal::HttpRequest&) {
            return anneal::HttpResponse{
                200, "text/plain; version=0.0.4; charset=utf-8",
                telemetry.Text()};
          }},
         {"/", [page](const anneal::HttpRequest& r) { return page->Index(r); }},
         {"/schedules/",
          [page](const anneal::HttpRequest& r) { return page->Schedule(r); }}},
        std::move(http));
    if (!started.ok()) {
      anneal::Log("--metrics_listen: ", started.status().message(),
                  " (another address, or empty to serve no telemetry)");
      return 1;
    }
    telemetry_port = *std::move(started);
    if (const std::string file = absl::GetFlag(FLAGS_metrics_port_file);
        !file.empty()) {
      if (absl::Status s =
              WritePortFile("metrics_port_file", file, telemetry_port->port());
          !s.ok()) {
        anneal::Log("cannot start: ", s.message());
        return 1;
      }
    }
    const char* http_scheme =
        absl::GetFlag(FLAGS_metrics_tls) ? "https" : "http";
    anneal::Log("start: telemetry on ", http_scheme, "://",
                metrics_listen.substr(0, metrics_listen.rfind(':')), ":",
                telemetry_port->port(), "/metrics");
  }

  anneal::ServiceOptions service_options = anneal::ServiceOptionsFromFlags();
  service_options.telemetry = &telemetry;
  if (authorizer.enabled()) service_options.authorizer = &authorizer;
  std::unique_ptr<anneal::RateLimiter> mutation_limiter;
  if (const double rate = absl::GetFlag(FLAGS_mutation_rate); rate > 0) {
    mutation_limiter = std::make_unique<anneal::RateLimiter>(
        rate, absl::GetFlag(FLAGS_mutation_burst));
    service_options.mutation_limiter = mutation_limiter.get();
  }
  anneal::ScheduleServiceImpl service(registry.get(), &pool, service_options);
  if (reflection) {
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  } else {
    anneal::Log("start: reflection is off (", listen,
                " is not a loopback address; --insecure turns it on)");
  }
  auto builder = std::make_unique<grpc::ServerBuilder>();
  int port = 0;
  builder->AddListeningPort(listen, credentials, &port);
  builder->SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder->SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  // What one connection, and all of them, may pin in the transport.
  builder->AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                              absl::GetFlag(FLAGS_max_concurrent_streams));
  grpc::ResourceQuota quota("anneal-server");
  quota.Resize(static_cast<size_t>(absl::GetFlag(FLAGS_grpc_memory_bytes)));
  builder->SetResourceQuota(quota);
  // Find dead peers (a job's host gone without closing its connection).
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder->AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder->RegisterService(&service);
  builder->RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder->BuildAndStart();
  if (!server || port == 0) {
    anneal::Log("cannot listen on ", listen);
    return 1;
  }
  if (const std::string file = absl::GetFlag(FLAGS_port_file); !file.empty()) {
    if (absl::Status s = WritePortFile("port_file", file, port); !s.ok()) {
      anneal::Log("cannot start: ", s.message());
      server->Shutdown(std::chrono::system_clock::now());
      return 1;
    }
  }
  health.SetServing(registry->writable());
  anneal::Log("start: serving on ", listen, " (port ", port, "), db ", db, ", ",
              registry->size(), " schedules");

  std::thread waiter([&] {
    int signal = 0;
    while (sigwait(&signals, &signal) == 0 && signal == SIGHUP) {
      if (tokens_file.empty()) {
        anneal::Log("reload: SIGHUP, but there is no --tokens_file");
      } else if (absl::Status s = authorizer.LoadFile(tokens_file); s.ok()) {
        service.RecheckWatches();
        anneal::Log("reload: ", authorizer.size(), " tokens from ",
                    tokens_file);
      } else {
        anneal::Log("reload: kept the previous ", authorizer.size(),
                    " tokens: ", s.message());
      }
    }
    const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
    anneal::Log("stop: signal ", signal, ", draining for up to ",
                absl::FormatDuration(grace));
    health.Shutdown();
    service.calls().StartDraining();
    registry->EndWatches(absl::UnavailableError(
        "server: shutting down; reconnect with since_revisions"));
    if (!service.calls().WaitIdle(grace)) {
      // Answered UNAVAILABLE (retryable), not cancelled by the shutdown.
      const int cut = service.calls().FinishAll(absl::UnavailableError(
          "server: shutting down before the call finished; retry"));
      anneal::Log("stop: calls still in flight after ",
                  absl::FormatDuration(grace), "; answered ", cut,
                  " UNAVAILABLE");
    }
    // Shutdown(deadline) would wait for the whole deadline while any client
    // stays connected; the drain above already waited for the calls.
    server->Shutdown(std::chrono::system_clock::now());
  });
  server->Wait();
  waiter.join();
  telemetry_port.reset();  // no scrape reads the registry from here on
  telemetry.Observe(nullptr, nullptr);
  absl::Status closed = registry->Close();
  registry.reset();
  store->reset();
  if (!closed.ok()) {
    anneal::Log("stop: flush failed: ", closed.ToString());
    return 1;
  }
  anneal::Log("stop: clean");
  // Everything is durable. gRPC's own teardown can wait about 10 s for an
  // executor thread after some connections close abnormally; it is given
  // a bounded time, so that a clean stop is also a prompt one.
  absl::Notification torn_down;
  std::thread([&] {
    server.reset();
    builder.reset();
    torn_down.Notify();
  }).detach();
  if (!torn_down.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    std::_Exit(0);
  }
  return 0;
}
