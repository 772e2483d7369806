// The floor for load_gen: a server of anneal.v1.ScheduleService that does
// nothing. Every method is registered exactly as anneal-server registers it
// (gRPC's raw callback API, bytes in and bytes out, the same server options
// and thread placement), and answers at once with the reply bytes captured
// from a real anneal-server (load_gen --capture_reply), so the difference
// between the two is what anneal's own work costs.
//
//   null_server --listen=127.0.0.1:50052 --reply_file=evaluate.bin
#include <csignal>
#include <cstdio>
#include <fstream>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "anneal/server/schedule_service.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/server_builder.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:50052", "address to serve on");
ABSL_FLAG(std::string, reply_file, "", "the reply bytes every call gets");
ABSL_FLAG(int32_t, max_concurrent_streams, 256,
          "as anneal-server's flag of the same name");

namespace {

using Bytes = grpc::ByteBuffer;
using Context = grpc::CallbackServerContext;

class NullService final : public anneal::RawScheduleService {
 public:
  explicit NullService(std::string reply) : reply_(std::move(reply)) {}

#define ANNEAL_NULL_METHOD(Name)                                 \
  grpc::ServerUnaryReactor* Name(Context* context, const Bytes*, \
                                 Bytes* response) override {     \
    return Answer(context, response);                            \
  }
  ANNEAL_NULL_METHOD(CreateSchedule)
  ANNEAL_NULL_METHOD(GetSchedule)
  ANNEAL_NULL_METHOD(ListSchedules)
  ANNEAL_NULL_METHOD(UpdateSchedule)
  ANNEAL_NULL_METHOD(DeleteSchedule)
  ANNEAL_NULL_METHOD(Evaluate)
  ANNEAL_NULL_METHOD(EvaluateRange)
  ANNEAL_NULL_METHOD(Simulate)
  ANNEAL_NULL_METHOD(Advance)
  ANNEAL_NULL_METHOD(RestartSchedule)
  ANNEAL_NULL_METHOD(ReportMetrics)
  ANNEAL_NULL_METHOD(ListMetricReports)
#undef ANNEAL_NULL_METHOD

 private:
  grpc::ServerUnaryReactor* Answer(Context* context, Bytes* response) {
    grpc::Slice slice(reply_);
    Bytes bytes(&slice, 1);
    response->Swap(&bytes);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
  const std::string reply_;
};

}  // namespace

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  std::ifstream in(absl::GetFlag(FLAGS_reply_file), std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "null_server: --reply_file: cannot read\n");
    return 2;
  }
  std::string reply((std::istreambuf_iterator<char>(in)), {});
  NullService service(std::move(reply));
  grpc::ServerBuilder builder;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen),
                           grpc::InsecureServerCredentials());
  // anneal-server's defaults (main.cc), so both servers pay the same.
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS,
                             absl::GetFlag(FLAGS_max_concurrent_streams));
  grpc::ResourceQuota quota("null-server");
  quota.Resize(size_t{1} << 30);
  builder.SetResourceQuota(quota);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 60'000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20'000);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server) return 1;
  std::printf("null_server: serving on %s\n",
              absl::GetFlag(FLAGS_listen).c_str());
  std::fflush(stdout);
  server->Wait();
  return 0;
}
