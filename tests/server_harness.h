// Starts the real anneal-server binary for integration tests: loopback only,
// a free port (the server binds port 0 and writes the port to a file), a temp
// database, and a stub connected to it. Stop() is SIGTERM and waits for a
// clean exit; Kill() is SIGKILL (a crash).
#ifndef ANNEAL_TESTS_SERVER_HARNESS_H_
#define ANNEAL_TESTS_SERVER_HARNESS_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "anneal/v1/service.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "tests/test_dir.h"

namespace anneal {

class ServerProcess {
 public:
  // `db` persists across Start/Stop so restarts see the same data.
  explicit ServerProcess(std::string db, std::vector<std::string> extra = {})
      : db_(std::move(db)), extra_(std::move(extra)) {}
  ~ServerProcess() {
    if (pid_ > 0) Kill();
  }

  // Starts the server and waits (up to 20 s) until it serves.
  void Start() {
    port_file_ = db_ + ".port";
    metrics_port_file_ = db_ + ".metrics_port";
    std::remove(port_file_.c_str());
    std::remove(metrics_port_file_.c_str());
    // Telemetry on a free port too: the default one would be shared by
    // every server the tests start at once.
    std::vector<std::string> args = {
        std::string(ANNEAL_BIN_DIR) + "/anneal-server",
        "--listen=127.0.0.1:0",
        "--db=" + db_,
        "--port_file=" + port_file_,
        "--metrics_listen=127.0.0.1:0",
        "--metrics_port_file=" + metrics_port_file_};
    args.insert(args.end(), extra_.begin(), extra_.end());
    log_ = db_ + ".log";
    pid_ = fork();
    if (pid_ == 0) {
      freopen(log_.c_str(), "a", stderr);
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    ASSERT_GT(pid_, 0);
    for (int i = 0; i < 2000 && port_ == 0; ++i) {
      std::ifstream in(port_file_);
      if (!(in >> port_)) {
        int status;
        ASSERT_EQ(waitpid(pid_, &status, WNOHANG), 0)
            << "server exited; see " << log_;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    ASSERT_NE(port_, 0) << "server did not start; see " << log_;
    grpc::ChannelArguments args_channel;
    args_channel.SetMaxReceiveMessageSize(256 << 20);
    channel_ = grpc::CreateCustomChannel(
        address(), grpc::InsecureChannelCredentials(), args_channel);
    ASSERT_TRUE(channel_->WaitForConnected(std::chrono::system_clock::now() +
                                           std::chrono::seconds(10)));
    stub_ = v1::ScheduleService::NewStub(channel_);
  }

  // SIGTERM; returns the exit status (0 for a clean stop).
  int Stop() {
    kill(pid_, SIGTERM);
    return Wait();
  }
  void Kill() {
    kill(pid_, SIGKILL);
    Wait();
  }

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  // The telemetry port (/metrics), written before the gRPC port is.
  int metrics_port() const {
    int port = 0;
    std::ifstream in(metrics_port_file_);
    in >> port;
    return port;
  }
  v1::ScheduleService::Stub* stub() { return stub_.get(); }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }
  const std::string& log_path() const { return log_; }
  pid_t pid() const { return pid_; }

 private:
  int Wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    port_ = 0;
    stub_.reset();
    channel_.reset();
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  std::string db_, port_file_, metrics_port_file_, log_;
  std::vector<std::string> extra_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ScheduleService::Stub> stub_;
};

// A loopback port nothing listens on now (bound, then released), for a
// server that must come back on a known port.
inline int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A fresh path in the running test's directory (removed when it ends).
inline std::string TempDb(const std::string& tag) {
  return TestDir() + tag + ".db";
}

// A test with its own server: started before each test on a fresh database,
// and required to stop cleanly (exit 0) after it. StartServer() starts it
// again on the same database (restart and crash tests).
class LiveServerTest : public testing::Test {
 protected:
  explicit LiveServerTest(std::vector<std::string> flags = {})
      : flags_(std::move(flags)) {}

  void SetUp() override { StartServer(); }
  void TearDown() override {
    if (server_) {
      EXPECT_EQ(server_->Stop(), 0);
    }
  }

  void StartServer() {
    server_ = std::make_unique<ServerProcess>(db_, flags_);
    ASSERT_NO_FATAL_FAILURE(server_->Start());
  }

  const std::string db_ = TempDb("db");
  std::unique_ptr<ServerProcess> server_;

 private:
  const std::vector<std::string> flags_;
};

// A client context with a deadline, as every call should have.
inline std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 10) {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::seconds(seconds));
  return ctx;
}

}  // namespace anneal

#endif  // ANNEAL_TESTS_SERVER_HARNESS_H_
