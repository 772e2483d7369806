// served_mark_bench: what the durable served mark costs a prefetching job.
//
// Every read past the durable served mark raises it durably (one
// group-committed write) before it is answered; --served_headroom sets how
// far each raise reaches. This starts anneal-server three ways, alternating
// them `--repetitions` times on the same machine:
//   default   --served_headroom=1024 (the shipped default)
//   every     --served_headroom=0 (a durable write for every window)
//   baseline  --served_headroom=10^15 (one raise, then never again: what
//             serving costs without the mark)
// and in each runs `--jobs` training jobs, each on its own schedule, each
// prefetching 256-step windows and refreshing after 128 steps, as fast as it
// can for `--seconds`. It prints windows per second and the ratio of each
// configuration to the baseline measured in the same repetition.
//
//   build/bin/served_mark_bench --repetitions=7 --seconds=4 --jobs=4
//
// The server is pinned to --server_cpu and the jobs to the other CPUs, so
// that they do not take each other's time.
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "anneal/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(int, repetitions, 5, "alternations of the three configurations");
ABSL_FLAG(double, seconds, 3, "load per configuration and repetition");
ABSL_FLAG(int, jobs, 8, "concurrent prefetching jobs, one schedule each");
ABSL_FLAG(std::string, server, "",
          "anneal-server binary (default: beside "
          "this one)");
ABSL_FLAG(double, pace_ms, 0,
          "each job waits this long between windows (0: as fast as it can); "
          "with a pace, compare the server's CPU per window instead");
ABSL_FLAG(int, server_cpu, 0,
          "CPU the server is pinned to (the jobs get the others); -1: none");

namespace {

struct Server {
  pid_t pid = -1;
  int port = 0;
};

Server Start(const std::string& binary, const std::string& dir,
             const std::string& headroom) {
  const std::string db = dir + "/bench.db", port_file = dir + "/port";
  for (const char* s : {"", "-wal", "-shm"}) std::remove((db + s).c_str());
  std::remove(port_file.c_str());
  Server server;
  server.pid = fork();
  if (server.pid == 0) {
    if (!freopen((dir + "/server.log").c_str(), "a", stderr)) _exit(126);
    if (const int cpu = absl::GetFlag(FLAGS_server_cpu); cpu >= 0) {
      cpu_set_t set;
      CPU_ZERO(&set);
      CPU_SET(cpu, &set);
      sched_setaffinity(0, sizeof set, &set);
    }
    std::vector<std::string> args = {binary,
                                     "--listen=127.0.0.1:0",
                                     "--metrics_listen=127.0.0.1:0",
                                     "--db=" + db,
                                     "--port_file=" + port_file,
                                     "--served_headroom=" + headroom};
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  for (int i = 0; i < 2000 && server.port == 0; ++i) {
    std::ifstream in(port_file);
    if (!(in >> server.port)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  return server;
}

void Stop(const Server& server) {
  kill(server.pid, SIGTERM);
  int status;
  waitpid(server.pid, &status, 0);
}

// The server's CPU time so far, in seconds.
double CpuSeconds(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string field;
  unsigned long utime = 0, stime = 0;
  for (int i = 1; i <= 15 && in >> field; ++i) {
    if (i == 14) utime = std::stoul(field);
    if (i == 15) stime = std::stoul(field);
  }
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

struct Result {
  double windows_per_second = 0;
  double cpu_us_per_window = 0;  // the server's
};

Result Run(const Server& server, int jobs, double seconds, double pace_ms) {
  auto channel = grpc::CreateChannel(absl::StrCat("127.0.0.1:", server.port),
                                     grpc::InsecureChannelCredentials());
  auto stub = anneal::v1::ScheduleService::NewStub(channel);
  for (int j = 0; j < jobs; ++j) {
    anneal::v1::CreateScheduleRequest create;
    create.set_schedule_id(absl::StrCat("job-", j));
    auto* spec = create.mutable_schedule()->mutable_spec();
    spec->set_max_lr(0.1);
    spec->mutable_warm_restarts()->set_period(1000);
    spec->mutable_momentum()->set_base(0.85);
    spec->mutable_momentum()->set_max(0.95);
    anneal::v1::Schedule out;
    grpc::ClientContext ctx;
    if (!stub->CreateSchedule(&ctx, create, &out).ok()) return Result();
  }
  const double cpu_before = CpuSeconds(server.pid);
  std::atomic<int64_t> windows{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int j = 0; j < jobs; ++j) {
    threads.emplace_back([&, j] {
      auto own = anneal::v1::ScheduleService::NewStub(channel);
      anneal::v1::EvaluateRangeRequest req;
      req.set_name(absl::StrCat("schedules/job-", j));
      req.set_count(256);
      anneal::v1::EvaluateRangeResponse resp;
      for (int64_t t = 0; !stop; t += 128) {
        req.set_start_step(t);
        grpc::ClientContext ctx;
        if (!own->EvaluateRange(&ctx, req, &resp).ok()) return;
        ++windows;
        if (pace_ms > 0) {
          std::this_thread::sleep_for(
              std::chrono::duration<double, std::milli>(pace_ms));
        }
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : threads) t.join();
  Result r;
  r.windows_per_second = static_cast<double>(windows.load()) / seconds;
  r.cpu_us_per_window = (CpuSeconds(server.pid) - cpu_before) * 1e6 /
                        static_cast<double>(std::max<int64_t>(1, windows));
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  if (const int cpu = absl::GetFlag(FLAGS_server_cpu); cpu >= 0) {
    // The jobs run everywhere but the server's CPU.
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c = 0; c < CPU_SETSIZE && c < 64; ++c) {
      if (c != cpu) CPU_SET(c, &set);
    }
    sched_setaffinity(0, sizeof set, &set);
  }
  std::string binary = absl::GetFlag(FLAGS_server);
  if (binary.empty()) {
    std::string self(argv[0]);
    binary = self.substr(0, self.rfind('/') + 1) + "anneal-server";
  }
  char dir_template[] = "/tmp/served_mark_bench_XXXXXX";
  const std::string dir = mkdtemp(dir_template);
  struct Config {
    const char* name;
    const char* headroom;
    std::vector<double> rates;
  } configs[] = {{"baseline", "1000000000000000", {}},
                 {"default", "1024", {}},
                 {"every", "0", {}}};
  // Paced: the server's CPU per window (lower is better), so the ratio is
  // inverted to read the same way: 1.0 costs nothing, 0.5 costs double.
  const bool paced = absl::GetFlag(FLAGS_pace_ms) > 0;
  const char* unit = paced ? "us CPU/window" : "windows/s";
  std::vector<double> ratio_default, ratio_every;
  for (int r = 0; r < absl::GetFlag(FLAGS_repetitions); ++r) {
    for (Config& c : configs) {
      Server server = Start(binary, dir, c.headroom);
      if (server.port == 0) {
        std::fprintf(stderr, "served_mark_bench: %s did not start\n",
                     binary.c_str());
        return 1;
      }
      const Result result =
          Run(server, absl::GetFlag(FLAGS_jobs), absl::GetFlag(FLAGS_seconds),
              absl::GetFlag(FLAGS_pace_ms));
      c.rates.push_back(paced ? result.cpu_us_per_window
                              : result.windows_per_second);
      Stop(server);
    }
    auto ratio = [&](const Config& c) {
      return paced ? configs[0].rates.back() / c.rates.back()
                   : c.rates.back() / configs[0].rates.back();
    };
    ratio_default.push_back(ratio(configs[1]));
    ratio_every.push_back(ratio(configs[2]));
    std::printf(
        "rep %d: baseline %.1f %s, default %.1f (%.3f), every window %.1f "
        "(%.3f)\n",
        r, configs[0].rates.back(), unit, configs[1].rates.back(),
        ratio_default.back(), configs[2].rates.back(), ratio_every.back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  std::printf(
      "median ratio to baseline: default (headroom 1024) %.3f, a durable "
      "write every window %.3f\n",
      median(ratio_default), median(ratio_every));
  std::string cleanup = "rm -rf " + dir;
  return std::system(cleanup.c_str()) == 0 ? 0 : 1;
}
