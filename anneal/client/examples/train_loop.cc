// A toy training loop on anneal::StepClient: asks for the learning rate at
// every step and prints the restarts, snapshots, revision changes and the
// switches to and from offline mode.
//
//   train_loop --server=127.0.0.1:50051 --schedule=resnet-1 --steps=1000
//              [--window=100] [--spec_file=sgdr.json] [--connect_timeout_ms=N]
//
// With --spec_file (a ScheduleSpec in protobuf's JSON mapping) the client
// falls back to evaluating it offline when the server cannot be reached; with
// nothing listening at --server, the whole run is offline.
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>

#include "anneal/client/step_client.h"
#include "google/protobuf/util/json_util.h"

namespace {

// --name=value, or the fallback.
std::string Flag(int argc, char** argv, const std::string& name,
                 const std::string& fallback) {
  const std::string prefix = "--" + name + "=";
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind(prefix, 0) == 0) return arg.substr(prefix.size());
  }
  return fallback;
}

int Fail(const std::string& message) {
  std::cerr << "train_loop: " << message << "\n";
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  anneal::StepClient::Options options;
  options.server = Flag(argc, argv, "server", "127.0.0.1:50051");
  options.schedule = Flag(argc, argv, "schedule", "");
  options.window = std::stoll(Flag(argc, argv, "window", "100"));
  options.connect_timeout = absl::Milliseconds(
      std::stoll(Flag(argc, argv, "connect_timeout_ms", "10000")));
  const int64_t steps = std::stoll(Flag(argc, argv, "steps", "100"));

  const std::string spec_file = Flag(argc, argv, "spec_file", "");
  if (!spec_file.empty()) {
    std::ifstream in(spec_file);
    if (!in) return Fail(spec_file + ": cannot open");
    std::stringstream json;
    json << in.rdbuf();
    anneal::v1::ScheduleSpec spec;
    auto parsed =
        google::protobuf::util::JsonStringToMessage(json.str(), &spec);
    if (!parsed.ok()) return Fail(spec_file + ": " + parsed.ToString());
    options.offline_spec = spec;
    options.offline_fallback = true;
    // The example's own outage would otherwise cost a backoff per attempt.
    options.initial_backoff = absl::Milliseconds(50);
  }

  auto client = anneal::StepClient::Connect(options);
  if (!client.ok()) return Fail(client.status().ToString());

  int64_t revision = (*client)->revision();
  bool offline = false;
  double lr_sum = 0;
  for (int64_t t = 0; t < steps; ++t) {
    absl::StatusOr<anneal::StepResult> r = (*client)->Step(t);
    if (!r.ok()) return Fail(r.status().ToString());
    if ((*client)->offline() != offline) {
      offline = !offline;
      std::cout << "step " << t << ": " << (offline ? "offline" : "online")
                << "\n";
    }
    if ((*client)->revision() != revision) {
      revision = (*client)->revision();
      std::cout << "step " << t << ": schedule revision " << revision << "\n";
    }
    if (r->restart) {
      std::cout << "step " << t << ": restart (cycle " << r->cycle << ", lr "
                << r->lr << "): reset the momentum\n";
    }
    lr_sum += r->lr;  // the "training"
    if (r->snapshot) {
      std::cout << "step " << t << ": snapshot (lr " << r->lr
                << "): save a checkpoint\n";
    }
  }
  const anneal::StepClient::Stats stats = (*client)->stats();
  std::cout << stats.steps << " steps, " << stats.offline_steps << " offline, "
            << stats.range_calls << " range calls, " << stats.blocked_steps
            << " blocked; sum of lr " << lr_sum << "\n";
  return 0;
}
