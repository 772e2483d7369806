// process_* from /proc/self (see process_metrics.h).
#include "anneal/server/telemetry/exporter/process_metrics.h"

#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace anneal {
namespace {

prometheus::MetricFamily One(const char* name, const char* help,
                             prometheus::MetricType type, double value) {
  prometheus::MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  prometheus::ClientMetric m;
  if (type == prometheus::MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f.metric.push_back(m);
  return f;
}

std::string ReadFile(const char* path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The fields of /proc/self/stat after the command name (which may hold
// spaces and parentheses), so that fields()[0] is field 3, the state.
std::vector<std::string> StatFields() {
  const std::string stat = ReadFile("/proc/self/stat");
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return {};
  return absl::StrSplit(stat.substr(close + 2), ' ');
}

double BootTimeSeconds() {
  std::istringstream in(ReadFile("/proc/stat"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("btime ", 0) == 0) {
      double t = 0;
      return absl::SimpleAtod(line.substr(6), &t) ? t : 0;
    }
  }
  return 0;
}

int64_t OpenFds() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int64_t n = 0;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n - 1;  // the directory being read
}

}  // namespace

std::vector<prometheus::MetricFamily> ProcessFamilies() {
  using prometheus::MetricType;
  std::vector<prometheus::MetricFamily> out;
  const std::vector<std::string> f = StatFields();
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  auto field = [&f](int number) {  // as numbered in proc(5)
    double v = 0;
    const size_t i = static_cast<size_t>(number - 3);
    return i < f.size() && absl::SimpleAtod(f[i], &v) ? v : -1;
  };
  if (f.size() > 21) {
    out.push_back(One("process_cpu_seconds_total",
                      "User and system CPU time spent in seconds.",
                      MetricType::Counter, (field(14) + field(15)) / ticks));
    out.push_back(One("process_threads", "Number of OS threads.",
                      MetricType::Gauge, field(20)));
    out.push_back(One("process_virtual_memory_bytes",
                      "Virtual memory size in bytes.", MetricType::Gauge,
                      field(23)));
    out.push_back(One("process_resident_memory_bytes",
                      "Resident memory size in bytes.", MetricType::Gauge,
                      field(24) * static_cast<double>(sysconf(_SC_PAGESIZE))));
    if (const double boot = BootTimeSeconds(); boot > 0) {
      out.push_back(One("process_start_time_seconds",
                        "Start time of the process since unix epoch in "
                        "seconds.",
                        MetricType::Gauge, boot + field(22) / ticks));
    }
  }
  if (const int64_t fds = OpenFds(); fds >= 0) {
    out.push_back(One("process_open_fds", "Number of open file descriptors.",
                      MetricType::Gauge, static_cast<double>(fds)));
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    out.push_back(One("process_max_fds",
                      "Maximum number of open file descriptors.",
                      MetricType::Gauge, static_cast<double>(limit.rlim_cur)));
  }
  return out;
}

}  // namespace anneal
