// A closed-loop load generator for any unary method of a gRPC server.
//
//   load_gen --target=127.0.0.1:50051 --request=evaluate --names=1000
//            --in_flight=64 --seconds=5 --server_pid=1234   (one line)
//
// `--in_flight` calls are kept outstanding on one channel through
// grpc::GenericStub (bytes in, bytes out: no message is parsed on the
// client's hot path); each completion starts the next call. Requests are
// serialized before the run (evaluate, list, raw) or, where each call must
// differ (advance: a fresh request_id; report: a fresh step; create: a fresh
// id), built by a counter, which costs well under a microsecond.
//
// Prints one JSON object: calls, errors (and the first error), qps,
// p50/p99/p999 latency in microseconds, and with --server_pid the server's
// CPU microseconds per call and its RSS, read from /proc.
//
// --populate=N creates schedules s0..s{N-1} (labels team=t{i % 100}) before
// the load (64 at a time) and reports how long that took; --capture_reply
// writes the bytes of one reply, for null_server.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "anneal/v1/service.grpc.pb.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/byte_buffer.h"

ABSL_FLAG(std::string, target, "127.0.0.1:50051", "server address");
ABSL_FLAG(std::string, request, "evaluate",
          "evaluate | advance | report | create | list | raw");
ABSL_FLAG(std::string, method, "",
          "full method name for --request=raw, e.g. "
          "/anneal.v1.ScheduleService/Evaluate");
ABSL_FLAG(std::string, request_file, "",
          "--request=raw: the serialized request sent by every call");
ABSL_FLAG(int64_t, names, 1, "schedules the requests cycle over (s0...)");
ABSL_FLAG(std::string, prefix, "s", "schedule id prefix");
ABSL_FLAG(std::string, filter, "labels.team = \"t7\"",
          "--request=list: the filter");
ABSL_FLAG(int32_t, page_size, 1000, "--request=list: the page size");
ABSL_FLAG(int32_t, in_flight, 64, "calls outstanding at once");
ABSL_FLAG(double, seconds, 5, "how long to measure (after --warmup)");
ABSL_FLAG(double, warmup, 1, "seconds of load before measuring");
ABSL_FLAG(int64_t, server_pid, 0, "if set, the server's CPU and RSS");
ABSL_FLAG(int64_t, populate, 0, "create this many schedules first");
ABSL_FLAG(bool, momentum, false, "--populate and create: specs with momentum");
ABSL_FLAG(bool, distinct_specs, false,
          "--populate and create: a different max_lr for every schedule");
ABSL_FLAG(std::string, capture_reply, "",
          "write one reply's bytes to this file and exit");

namespace {

using anneal::v1::AdvanceRequest;
using anneal::v1::CreateScheduleRequest;
using anneal::v1::EvaluateRequest;
using anneal::v1::ListSchedulesRequest;
using anneal::v1::ReportMetricsRequest;

constexpr char kService[] = "/anneal.v1.ScheduleService/";

struct ProcSample {
  double cpu_seconds = 0;
  int64_t rss_kib = 0;
};

ProcSample ReadProc(int64_t pid) {
  ProcSample s;
  if (pid <= 0) return s;
  std::ifstream stat(absl::StrCat("/proc/", pid, "/stat"));
  std::string text((std::istreambuf_iterator<char>(stat)), {});
  // Fields after the command name, which is in parentheses and may hold
  // spaces: utime and stime are fields 14 and 15 of the whole line.
  std::istringstream rest(text.substr(text.rfind(')') + 2));
  std::string field;
  int64_t utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoll(field);
    if (i == 15) stime = std::stoll(field);
  }
  s.cpu_seconds = static_cast<double>(utime + stime) /
                  static_cast<double>(sysconf(_SC_CLK_TCK));
  std::ifstream status(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) s.rss_kib = std::stoll(line.substr(6));
  }
  return s;
}

grpc::ByteBuffer ToBytes(const google::protobuf::Message& m) {
  const std::string s = m.SerializeAsString();
  grpc::Slice slice(s);
  return grpc::ByteBuffer(&slice, 1);
}

std::string Name(int64_t i) {
  return absl::StrCat("schedules/", absl::GetFlag(FLAGS_prefix), i);
}

CreateScheduleRequest CreateRequest(const std::string& id, int64_t i) {
  CreateScheduleRequest r;
  r.set_schedule_id(id);
  auto* spec = r.mutable_schedule()->mutable_spec();
  // --distinct_specs: a sweep, every schedule its own peak (nothing to
  // share between compiled forms).
  spec->set_max_lr(absl::GetFlag(FLAGS_distinct_specs) ? 0.1 + 1e-9 * i : 0.1);
  spec->set_min_lr(1e-4);
  spec->mutable_warm_restarts()->set_period(10);
  spec->mutable_warm_restarts()->set_period_mult(2);
  if (absl::GetFlag(FLAGS_momentum)) {
    spec->mutable_momentum()->set_base(0.85);
    spec->mutable_momentum()->set_max(0.95);
  }
  (*r.mutable_schedule()->mutable_labels())["team"] =
      absl::StrCat("t", i % 100);
  return r;
}

// What each call sends: the method and a source of request bytes.
struct Workload {
  std::string method;
  std::vector<grpc::ByteBuffer> fixed;            // cycled over, when not empty
  std::function<grpc::ByteBuffer(int64_t)> make;  // else built per call
  grpc::ByteBuffer Next(int64_t n) const {
    return fixed.empty() ? make(n) : fixed[n % fixed.size()];
  }
};

Workload MakeWorkload() {
  const std::string kind = absl::GetFlag(FLAGS_request);
  const int64_t names = std::max<int64_t>(1, absl::GetFlag(FLAGS_names));
  Workload w;
  if (kind == "evaluate") {
    w.method = absl::StrCat(kService, "Evaluate");
    for (int64_t i = 0; i < std::min<int64_t>(names, 1 << 20); ++i) {
      EvaluateRequest r;
      r.set_name(Name(i));
      r.set_step((i * 7919) % 1000);
      w.fixed.push_back(ToBytes(r));
    }
  } else if (kind == "advance") {
    w.method = absl::StrCat(kService, "Advance");
    const int64_t salt = absl::ToUnixNanos(absl::Now());
    w.make = [names, salt](int64_t n) {
      AdvanceRequest r;
      r.set_name(Name(n % names));
      r.set_request_id(absl::StrCat(salt, "-", n));
      return ToBytes(r);
    };
  } else if (kind == "report") {
    w.method = absl::StrCat(kService, "ReportMetrics");
    w.make = [names](int64_t n) {
      ReportMetricsRequest r;
      r.set_name(Name(n % names));
      r.set_step(n / names);
      (*r.mutable_metrics())["loss"] = 1.0 / static_cast<double>(n + 1);
      return ToBytes(r);
    };
  } else if (kind == "create") {
    w.method = absl::StrCat(kService, "CreateSchedule");
    const int64_t salt = absl::ToUnixSeconds(absl::Now()) % 100000;
    w.make = [salt](int64_t n) {
      return ToBytes(CreateRequest(absl::StrCat("c", salt, "-", n), n));
    };
  } else if (kind == "list") {
    w.method = absl::StrCat(kService, "ListSchedules");
    ListSchedulesRequest r;
    r.set_filter(absl::GetFlag(FLAGS_filter));
    r.set_page_size(absl::GetFlag(FLAGS_page_size));
    w.fixed.push_back(ToBytes(r));
  } else if (kind == "raw") {
    w.method = absl::GetFlag(FLAGS_method);
    std::ifstream in(absl::GetFlag(FLAGS_request_file), std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    grpc::Slice slice(bytes);
    w.fixed.emplace_back(&slice, 1);
  } else {
    std::fprintf(stderr, "load_gen: --request: unknown kind %s\n",
                 kind.c_str());
    std::exit(2);
  }
  return w;
}

// One closed loop: `in_flight` slots, each re-issuing its call on completion
// until `until` or until `max_calls` calls have been issued.
class Loop {
 public:
  // Calls answered with `tolerated` count as answered (a create of a name
  // that exists, when populating).
  Loop(grpc::GenericStub* stub, const Workload* work,
       grpc::StatusCode tolerated = grpc::StatusCode::OK)
      : stub_(stub), work_(work), tolerated_(tolerated) {}

  // Runs `in_flight` slots until `until` (or `max_calls`, if >= 0, have
  // been issued); latencies are kept from `from` on.
  void Run(int in_flight, absl::Time from, absl::Time until,
           int64_t max_calls = -1) {
    from_ = from;
    until_ = until;
    max_calls_ = max_calls;
    {
      absl::MutexLock lock(&mu_);
      latencies_.reserve(1 << 22);
    }
    live_.store(in_flight);
    for (int i = 0; i < in_flight; ++i) Issue();
    absl::MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](std::atomic<int>* live) { return live->load() == 0; }, &live_));
  }

  std::vector<int64_t> latencies_ns() {
    absl::MutexLock lock(&mu_);
    return latencies_;
  }
  int64_t errors() const { return errors_.load(); }
  std::string first_error() {
    absl::MutexLock lock(&mu_);
    return first_error_;
  }

 private:
  struct Call {
    grpc::ClientContext context;
    grpc::ByteBuffer request;
    grpc::ByteBuffer response;
    absl::Time start;
  };

  // Starts the slot's next call, or ends the slot.
  void Issue() {
    const int64_t n = counter_.fetch_add(1);
    if ((max_calls_ >= 0 && n >= max_calls_) || absl::Now() >= until_) {
      absl::MutexLock lock(&mu_);
      live_.fetch_sub(1);
      return;
    }
    auto* call = new Call;
    call->request = work_->Next(n);
    call->start = absl::Now();
    stub_->UnaryCall(&call->context, work_->method, grpc::StubOptions(),
                     &call->request, &call->response,
                     [this, call](grpc::Status status) { Done(call, status); });
  }

  void Done(Call* call, const grpc::Status& status) {
    const absl::Time now = absl::Now();
    if (call->start >= from_ && now <= until_) {
      absl::MutexLock lock(&mu_);
      if (status.ok() || status.error_code() == tolerated_) {
        latencies_.push_back(absl::ToInt64Nanoseconds(now - call->start));
      } else if (errors_.fetch_add(1) == 0) {
        first_error_ = absl::StrCat(status.error_code(), ": ",
                                    status.error_message().substr(0, 200));
      }
    }
    delete call;
    Issue();
  }

  grpc::GenericStub* const stub_;
  const Workload* const work_;
  const grpc::StatusCode tolerated_;
  absl::Time from_, until_;
  int64_t max_calls_ = -1;
  std::atomic<int64_t> counter_{0};
  std::atomic<int> live_{0};
  std::atomic<int64_t> errors_{0};
  absl::Mutex mu_;
  std::vector<int64_t> latencies_ ABSL_GUARDED_BY(mu_);
  std::string first_error_ ABSL_GUARDED_BY(mu_);
};

double Percentile(std::vector<int64_t>& v, double q) {
  if (v.empty()) return 0;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(q * v.size()));
  std::nth_element(v.begin(), v.begin() + k, v.end());
  return static_cast<double>(v[k]) / 1000.0;
}

// Creates s0..s{n-1} (a name that exists already is fine), 64 at a time;
// the seconds it took.
double Populate(grpc::GenericStub* stub, int64_t n) {
  Workload creates;
  creates.method = absl::StrCat(kService, "CreateSchedule");
  creates.make = [](int64_t i) {
    return ToBytes(
        CreateRequest(absl::StrCat(absl::GetFlag(FLAGS_prefix), i), i));
  };
  Loop loop(stub, &creates, grpc::StatusCode::ALREADY_EXISTS);
  const absl::Time start = absl::Now();
  loop.Run(64, start, absl::InfiniteFuture(), n);
  if (loop.errors() > 0) {
    std::fprintf(stderr, "load_gen: %" PRId64 " creates failed, first: %s\n",
                 loop.errors(), loop.first_error().c_str());
    std::exit(1);
  }
  return absl::ToDoubleSeconds(absl::Now() - start);
}

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(256 << 20);
  auto channel = grpc::CreateCustomChannel(
      absl::GetFlag(FLAGS_target), grpc::InsecureChannelCredentials(), args);
  grpc::GenericStub stub(channel);
  const int64_t pid = absl::GetFlag(FLAGS_server_pid);

  double populate_seconds = 0;
  if (absl::GetFlag(FLAGS_populate) > 0) {
    populate_seconds = Populate(&stub, absl::GetFlag(FLAGS_populate));
  }
  const Workload work = MakeWorkload();

  if (!absl::GetFlag(FLAGS_capture_reply).empty()) {
    grpc::ClientContext context;
    grpc::ByteBuffer request = work.Next(0), response;
    absl::Notification done;
    grpc::Status status;
    stub.UnaryCall(&context, work.method, grpc::StubOptions(), &request,
                   &response, [&](grpc::Status s) {
                     status = s;
                     done.Notify();
                   });
    done.WaitForNotification();
    if (!status.ok()) {
      std::fprintf(stderr, "load_gen: %s\n", status.error_message().c_str());
      return 1;
    }
    std::vector<grpc::Slice> slices;
    (void)response.Dump(&slices);
    std::ofstream out(absl::GetFlag(FLAGS_capture_reply), std::ios::binary);
    for (const auto& s : slices) {
      out.write(reinterpret_cast<const char*>(s.begin()),
                static_cast<std::streamsize>(s.size()));
    }
    return 0;
  }

  Loop loop(&stub, &work);
  const absl::Time start = absl::Now();
  const absl::Time from = start + absl::Seconds(absl::GetFlag(FLAGS_warmup));
  const absl::Time until = from + absl::Seconds(absl::GetFlag(FLAGS_seconds));
  ProcSample before;
  // Sample the server's CPU when measuring starts, from a side thread.
  std::thread sampler([&] {
    absl::SleepFor(from - absl::Now());
    before = ReadProc(pid);
  });
  loop.Run(absl::GetFlag(FLAGS_in_flight), from, until);
  sampler.join();
  const ProcSample after = ReadProc(pid);

  std::vector<int64_t> lat = loop.latencies_ns();
  const double seconds = absl::GetFlag(FLAGS_seconds);
  const double calls = static_cast<double>(lat.size());
  std::string out = absl::StrFormat(
      "{\"method\": \"%s\", \"in_flight\": %d, \"calls\": %d, \"errors\": %d, "
      "\"qps\": %.1f, \"p50_us\": %.1f, \"p99_us\": %.1f, \"p999_us\": %.1f",
      work.method, absl::GetFlag(FLAGS_in_flight), lat.size(), loop.errors(),
      calls / seconds, Percentile(lat, 0.5), Percentile(lat, 0.99),
      Percentile(lat, 0.999));
  if (pid > 0) {
    absl::StrAppendFormat(
        &out,
        ", \"server_cpu_us_per_call\": %.2f, "
        "\"server_rss_kib\": %d",
        calls > 0 ? (after.cpu_seconds - before.cpu_seconds) * 1e6 / calls
                  : 0.0,
        after.rss_kib);
  }
  if (populate_seconds > 0) {
    absl::StrAppendFormat(&out, ", \"populate_seconds\": %.2f",
                          populate_seconds);
  }
  if (loop.errors() > 0) {
    absl::StrAppendFormat(&out, ", \"first_error\": \"%s\"",
                          absl::CEscape(loop.first_error()));
  }
  std::printf("%s}\n", out.c_str());
  return 0;
}
