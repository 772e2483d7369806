// Clients that ask for big ranges and never read the answers cannot pin
// unbounded memory: responses held for them count against
// --max_inflight_range_steps until the call ends, so further big ranges are
// refused (RESOURCE_EXHAUSTED with a retry delay) while the server stays
// small and healthy, and the budget comes back when they go away.
//
// The stalled client speaks HTTP/2 by hand: it opens with a flow-control
// window of 0, so the server can never send it a byte of any response.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gmock/gmock.h"
#include "google/rpc/error_details.pb.h"
#include "google/rpc/status.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

std::string Frame(uint8_t type, uint8_t flags, uint32_t stream,
                  const std::string& payload) {
  std::string f;
  const auto n = static_cast<uint32_t>(payload.size());
  f.push_back(static_cast<char>(n >> 16));
  f.push_back(static_cast<char>(n >> 8));
  f.push_back(static_cast<char>(n));
  f.push_back(static_cast<char>(type));
  f.push_back(static_cast<char>(flags));
  for (int shift = 24; shift >= 0; shift -= 8) {
    f.push_back(static_cast<char>((stream >> shift) & 0x7f));
  }
  return f + payload;
}

// An HPACK literal header without indexing, with a new name (RFC 7541
// 6.2.2); names and values here are shorter than 127 bytes.
std::string Header(const std::string& name, const std::string& value) {
  std::string h(1, '\0');
  h.push_back(static_cast<char>(name.size()));
  h += name;
  h.push_back(static_cast<char>(value.size()));
  return h + value;
}

// A client that sends requests and never lets the server answer them.
class StalledClient {
 public:
  explicit StalledClient(int port) {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    // SETTINGS: INITIAL_WINDOW_SIZE (0x4) = 0, ENABLE_PUSH (0x2) = 0.
    const std::string settings(
        "\x00\x04\x00\x00\x00\x00\x00\x02\x00\x00\x00\x00", 12);
    Send("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + Frame(0x4, 0, 0, settings));
  }
  ~StalledClient() { close(fd_); }

  // Starts EvaluateRange(name, 0, count) on a new stream.
  void AskRange(const std::string& name, int64_t count) {
    v1::EvaluateRangeRequest req;
    req.set_name(name);
    req.set_count(count);
    const std::string body = req.SerializeAsString();
    std::string message(1, '\0');
    const auto n = static_cast<uint32_t>(body.size());
    for (int shift = 24; shift >= 0; shift -= 8) {
      message.push_back(static_cast<char>(n >> shift));
    }
    message += body;
    const std::string headers =
        Header(":method", "POST") + Header(":scheme", "http") +
        Header(":path", "/anneal.v1.ScheduleService/EvaluateRange") +
        Header(":authority", "localhost") +
        Header("content-type", "application/grpc") + Header("te", "trailers");
    Send(Frame(0x1, 0x4, stream_, headers) +  // HEADERS, END_HEADERS
         Frame(0x0, 0x1, stream_, message));  // DATA, END_STREAM
    stream_ += 2;
  }

 private:
  void Send(const std::string& bytes) {
    ASSERT_EQ(write(fd_, bytes.data(), bytes.size()),
              static_cast<ssize_t>(bytes.size()));
  }
  int fd_ = -1;
  uint32_t stream_ = 1;
};

int64_t RssMib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(in, line);) {
    if (absl::StartsWith(line, "VmRSS:"))
      return std::stoll(line.substr(6)) / 1024;
  }
  return -1;
}

class StalledReaderTest : public LiveServerTest {
 protected:
  StalledReaderTest()
      : LiveServerTest({"--max_inflight_range_steps=3000000"}) {}
};

TEST_F(StalledReaderTest, ResponsesNobodyReadsArePinnedOnlyUpToTheBudget) {
  v1::CreateScheduleRequest create;
  create.set_schedule_id("big");
  *create.mutable_schedule()->mutable_spec() = SpecFromText(
      "{max_lr: 0.1, warm_restarts: {period: 7}, momentum: {base: 0.85, max: "
      "0.95}}");
  v1::Schedule out;
  ASSERT_TRUE(server_->stub()->CreateSchedule(Ctx().get(), create, &out).ok());
  const int port = std::stoi(server_->address().substr(10));

  // 40 connections, each asking for four 1M-step ranges it never reads.
  std::vector<std::unique_ptr<StalledClient>> stalled;
  for (int c = 0; c < 40; ++c) {
    stalled.push_back(std::make_unique<StalledClient>(port));
    for (int i = 0; i < 4; ++i)
      stalled.back()->AskRange("schedules/big", 1'000'000);
  }
  std::this_thread::sleep_for(std::chrono::seconds(3));
  const int64_t rss = RssMib(server_->pid());
  std::cout << "[ stalled ] 160 unread 1M-step ranges: server RSS " << rss
            << " MiB\n";
  // Two ranges' responses are pinned (~100 bytes a step), not 160.
  EXPECT_LT(rss, 800);

  // The server still answers, health and small reads alike.
  auto health = grpc::health::v1::Health::NewStub(server_->channel());
  grpc::health::v1::HealthCheckRequest check;
  grpc::health::v1::HealthCheckResponse status;
  ASSERT_TRUE(health->Check(Ctx(2).get(), check, &status).ok());
  EXPECT_EQ(status.status(), grpc::health::v1::HealthCheckResponse::SERVING);
  v1::EvaluateRangeRequest small;
  small.set_name("schedules/big");
  small.set_count(256);
  v1::EvaluateRangeResponse range;
  grpc::Status small_status =
      server_->stub()->EvaluateRange(Ctx(2).get(), small, &range);
  ASSERT_TRUE(small_status.ok())
      << small_status.error_code() << " " << small_status.error_message();
  // A big one is refused while the budget is spent, with a retry delay.
  small.set_count(1'000'000);
  grpc::Status s = server_->stub()->EvaluateRange(Ctx(5).get(), small, &range);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(s.error_message(),
              testing::HasSubstr("count: the server is serving its limit of "
                                 "3000000 range steps at once"));
  EXPECT_THAT(s.error_message(), testing::HasSubstr("retry shortly"));
  google::rpc::Status details;
  ASSERT_TRUE(details.ParseFromString(s.error_details()));
  bool retry_info = false;
  for (const auto& any : details.details()) {
    google::rpc::RetryInfo info;
    if (any.UnpackTo(&info)) retry_info = info.retry_delay().nanos() > 0;
  }
  EXPECT_TRUE(retry_info);

  // Once the stalled clients go, the budget comes back.
  stalled.clear();
  bool served = false;
  for (int i = 0; i < 100 && !served; ++i) {
    served = server_->stub()->EvaluateRange(Ctx(10).get(), small, &range).ok();
    if (!served) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(served);
  EXPECT_EQ(range.range().lr_size(), 1'000'000);
}

}  // namespace
}  // namespace anneal
