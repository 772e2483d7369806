// anneal-server: named learning-rate schedules over gRPC.
//
// The recipe: parse flags (and ANNEAL_* environment variables), open the
// SQLite store, load every schedule into the registry, serve the schedule
// service with health checking and reflection, and on SIGTERM/SIGINT stop
// accepting, let in-flight calls finish within --shutdown_grace, flush the
// store and exit 0.
#include <csignal>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/server.h"
#include "grpcpp/server_builder.h"
#include "server/flags.h"
#include "server/health_service.h"
#include "server/log.h"
#include "server/registry.h"
#include "server/schedule_service.h"
#include "server/sqlite_store.h"

namespace {

// Blocks SIGTERM and SIGINT in every thread (gRPC's threads inherit the
// mask) so that one thread can wait for them with sigwait.
sigset_t BlockShutdownSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

}  // namespace

int main(int argc, char** argv) {
  const sigset_t signals = BlockShutdownSignals();
  anneal::ParseFlagsWithEnvironment(argc, argv);

  const std::string db = absl::GetFlag(FLAGS_db);
  auto store = anneal::OpenSqliteStore(db);
  if (!store.ok()) {
    anneal::Log("cannot open ", db, ": ", store.status().ToString());
    return 1;
  }
  anneal::RegistryOptions options;
  options.max_schedules = absl::GetFlag(FLAGS_max_schedules);
  options.max_range_count = absl::GetFlag(FLAGS_max_range_count);
  options.served_flush_interval = absl::GetFlag(FLAGS_served_flush_interval);
  options.metrics_history = absl::GetFlag(FLAGS_metrics_history);
  if (options.metrics_history < 1) {
    anneal::Log("--metrics_history: must be >= 1, got ",
                options.metrics_history);
    return 1;
  }
  auto registry = std::make_unique<anneal::Registry>(store->get(), options);
  if (absl::Status s = registry->Load(); !s.ok()) {
    anneal::Log("cannot load ", db, ": ", s.ToString());
    return 1;
  }

  anneal::ScheduleServiceImpl service(registry.get());
  anneal::HealthService health({"anneal.v1.ScheduleService"});
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  const std::string listen = absl::GetFlag(FLAGS_listen);
  builder.AddListeningPort(listen, grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.SetMaxSendMessageSize(absl::GetFlag(FLAGS_max_message_bytes));
  builder.RegisterService(&service);
  builder.RegisterService(&health);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    anneal::Log("cannot listen on ", listen);
    return 1;
  }
  health.SetServing(true);
  if (const std::string file = absl::GetFlag(FLAGS_port_file); !file.empty()) {
    std::ofstream(file + ".tmp") << port << "\n";
    std::rename((file + ".tmp").c_str(), file.c_str());  // appears whole
  }
  anneal::Log("start: serving on ", listen, " (port ", port, "), db ", db, ", ",
              registry->size(), " schedules");

  std::thread waiter([&] {
    int signal = 0;
    sigwait(&signals, &signal);
    const absl::Duration grace = absl::GetFlag(FLAGS_shutdown_grace);
    anneal::Log("stop: signal ", signal, ", draining for up to ",
                absl::FormatDuration(grace));
    health.Shutdown();
    service.calls().StartDraining();
    if (!service.calls().WaitIdle(grace)) {
      anneal::Log("stop: calls still in flight after ",
                  absl::FormatDuration(grace), "; cancelling them");
    }
    // Shutdown(deadline) would wait for the whole deadline while any client
    // stays connected; the drain above already waited for the calls.
    server->Shutdown(std::chrono::system_clock::now());
  });
  server->Wait();
  waiter.join();
  absl::Status flushed = registry->Flush();
  registry.reset();
  store->reset();
  if (!flushed.ok()) {
    anneal::Log("stop: flush failed: ", flushed.ToString());
    return 1;
  }
  anneal::Log("stop: clean");
  return 0;
}
