// The real server when its store stalls or fails, when heavy calls crowd
// it, and when it stops: health tells the truth, cheap calls stay fast, and
// calls cut by a shutdown end UNAVAILABLE (which clients retry). Also the
// start-up checks: a database that cannot be written, a port file that
// cannot be written.
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <future>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anneal/engine/testing/spec_from_text.h"
#include "gmock/gmock.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using grpc::health::v1::Health;
using grpc::health::v1::HealthCheckRequest;
using grpc::health::v1::HealthCheckResponse;
using testing::HasSubstr;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// Another connection to the database holding its write lock, as an
// operator's sqlite3 shell in a transaction would.
class WriteLock {
 public:
  explicit WriteLock(const std::string& db) {
    EXPECT_EQ(sqlite3_open(db.c_str(), &db_), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db_, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  ~WriteLock() { Release(); }
  void Release() {
    if (db_ == nullptr) return;
    sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    sqlite3_close(db_);
    db_ = nullptr;
  }

 private:
  sqlite3* db_ = nullptr;
};

class ServerResilienceTest : public LiveServerTest {
 protected:
  explicit ServerResilienceTest(std::vector<std::string> flags)
      : LiveServerTest(std::move(flags)) {}

  void SetUp() override {
    LiveServerTest::SetUp();
    health_ = Health::NewStub(server_->channel());
    v1::CreateScheduleRequest create;
    create.set_schedule_id("r");
    *create.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.1, warm_restarts: {period: 10}}");
    v1::Schedule out;
    ASSERT_TRUE(
        server_->stub()->CreateSchedule(Ctx().get(), create, &out).ok());
  }

  HealthCheckResponse::ServingStatus Health(int timeout_ms = 1000) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(timeout_ms));
    HealthCheckRequest req;
    HealthCheckResponse resp;
    grpc::Status s = health_->Check(&ctx, req, &resp);
    EXPECT_TRUE(s.ok()) << "health check: " << s.error_code() << " "
                        << s.error_message();
    return resp.status();
  }

  // Polls health until it reports `want` (up to 10 s).
  bool HealthBecomes(HealthCheckResponse::ServingStatus want) {
    for (int i = 0; i < 200; ++i) {
      if (Health() == want) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }

  grpc::Status Advance(v1::AdvanceResponse* out, int timeout_s = 10) {
    v1::AdvanceRequest req;
    req.set_name("schedules/r");
    return server_->stub()->Advance(Ctx(timeout_s).get(), req, out);
  }

  grpc::Status Evaluate(int64_t step, int timeout_ms) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(timeout_ms));
    v1::EvaluateRequest req;
    req.set_name("schedules/r");
    req.set_step(step);
    v1::EvaluateResponse resp;
    return server_->stub()->Evaluate(&ctx, req, &resp);
  }

  std::unique_ptr<Health::Stub> health_;
};

// `annealctl health` against the server: its exit status and output.
std::pair<int, std::string> AnnealctlHealth(const std::string& address) {
  const std::string command = std::string(ANNEAL_BIN_DIR) +
                              "/annealctl --server " + address + " health 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  std::string out;
  char buf[256];
  while (fgets(buf, sizeof buf, pipe) != nullptr) out += buf;
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

class StoreFailureTest : public ServerResilienceTest {
 protected:
  StoreFailureTest()
      : ServerResilienceTest(
            {"--sqlite_busy_timeout=100ms", "--store_retry_interval=100ms"}) {}
};

TEST_F(StoreFailureTest, HealthIsNotServingWhileTheStoreFailsAndWritesResume) {
  v1::AdvanceResponse advanced;
  ASSERT_TRUE(Advance(&advanced).ok());
  EXPECT_EQ(Health(), HealthCheckResponse::SERVING);
  {
    WriteLock lock(db_);
    grpc::Status s = Advance(&advanced);
    EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE);
    EXPECT_THAT(s.error_message(), HasSubstr("database is locked"));
    EXPECT_TRUE(HealthBecomes(HealthCheckResponse::NOT_SERVING));
    auto [code, out] = AnnealctlHealth(server_->address());
    EXPECT_EQ(code, 4);
    EXPECT_THAT(out, HasSubstr("NOT_SERVING"));
    // Reads under the durable mark are still answered.
    EXPECT_TRUE(Evaluate(1, 1000).ok());
  }
  EXPECT_TRUE(HealthBecomes(HealthCheckResponse::SERVING));
  EXPECT_EQ(AnnealctlHealth(server_->address()),
            std::make_pair(0, std::string("SERVING\n")));
  ASSERT_TRUE(Advance(&advanced).ok());
  EXPECT_EQ(advanced.position(), 2);  // the failed advance left nothing
  const std::string log = ReadFile(server_->log_path());
  EXPECT_THAT(log, HasSubstr("store: writes stopped: UNAVAILABLE:"));
  EXPECT_THAT(log, HasSubstr("store: writes resumed"));
}

class StallTest : public ServerResilienceTest {
 protected:
  StallTest()
      : ServerResilienceTest({"--sqlite_busy_timeout=4s", "--worker_threads=1",
                              "--served_headroom=100000"}) {}
};

TEST_F(StallTest, CheapCallsStayFastWhileTheStoreStallsAndHeavyCallsQueue) {
  ASSERT_TRUE(Evaluate(10, 5000).ok());  // the mark covers up to 100010
  WriteLock lock(db_);
  // An update from step 50 waits for the store (up to the busy timeout),
  // holding its fence; reads past step 50 wait for it, and three big
  // simulations keep the one worker busy.
  std::vector<std::future<grpc::Status>> pending;
  pending.push_back(std::async(std::launch::async, [&] {
    v1::UpdateScheduleRequest update;
    update.mutable_schedule()->set_name("schedules/r");
    *update.mutable_schedule()->mutable_spec() =
        SpecFromText("{max_lr: 0.2, constant: {}}");
    update.set_effective_step(50);
    v1::Schedule out;
    return server_->stub()->UpdateSchedule(Ctx(20).get(), update, &out);
  }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (int i = 0; i < 8; ++i) {
    pending.push_back(std::async(std::launch::async,
                                 [&, i] { return Evaluate(60 + i, 20000); }));
  }
  for (int i = 0; i < 3; ++i) {
    pending.push_back(std::async(std::launch::async, [&] {
      v1::SimulateRequest simulate;
      *simulate.mutable_spec() = SpecFromText(
          "{max_lr: 1, warm_restarts: {period: 3, period_mult: 1.01}, "
          "momentum: {base: 0.9, max: 0.9999}}");
      simulate.set_count(1'000'000);
      v1::EvaluateRangeResponse out;
      return server_->stub()->Simulate(Ctx(30).get(), simulate, &out);
    }));
  }
  // Meanwhile health and reads that need no write answer at once, every
  // time (each with a 1 s deadline; they once took seconds here).
  for (int i = 0; i < 20; ++i) {
    EXPECT_EQ(Health(1000), HealthCheckResponse::SERVING);
    grpc::Status s = Evaluate(20 + i, 1000);
    EXPECT_TRUE(s.ok()) << s.error_code() << " " << s.error_message();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  lock.Release();
  for (auto& p : pending) {
    grpc::Status s = p.get();
    EXPECT_TRUE(s.ok() || s.error_code() == grpc::StatusCode::UNAVAILABLE)
        << s.error_code() << " " << s.error_message();
  }
}

class ShutdownTest : public ServerResilienceTest {
 protected:
  ShutdownTest()
      : ServerResilienceTest(
            {"--sqlite_busy_timeout=10s", "--shutdown_grace=300ms"}) {}
};

TEST_F(ShutdownTest, CallsCutByTheShutdownEndUnavailable) {
  WriteLock lock(db_);
  auto advance = std::async(std::launch::async, [&] {
    v1::AdvanceResponse out;
    return Advance(&out, 20);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  kill(server_->pid(), SIGTERM);
  grpc::Status s = advance.get();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::UNAVAILABLE) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("shutting down"));
  lock.Release();
  server_.reset();  // it exits once the store's wait ends
}

// Runs anneal-server with `args` until it exits (as `nobody` when the test
// runs as root, which file permissions do not stop); the exit status.
int RunServer(const std::vector<std::string>& args, const std::string& log,
              bool as_nobody = false) {
  const pid_t pid = fork();
  if (pid == 0) {
    if (!freopen(log.c_str(), "w", stderr)) _exit(126);
    if (as_nobody && getuid() == 0 &&
        (setgid(65534) != 0 || setuid(65534) != 0)) {
      _exit(125);
    }
    std::vector<std::string> all = {std::string(ANNEAL_BIN_DIR) +
                                    "/anneal-server"};
    all.insert(all.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (std::string& a : all) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

TEST(StartupTest, AReadOnlyDatabaseFailsAtStart) {
  const std::string dir = TestDir() + "ro";
  ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
  const std::string db = dir + "/anneal.db";
  const std::string log = TestDir() + "ro.log";
  ServerProcess first(db);
  ASSERT_NO_FATAL_FAILURE(first.Start());
  ASSERT_EQ(first.Stop(), 0);
  ASSERT_EQ(chmod(db.c_str(), 0444), 0);
  if (getuid() == 0) {
    ASSERT_EQ(chown(dir.c_str(), 65534, 65534), 0);
  }
  EXPECT_EQ(RunServer({"--listen=127.0.0.1:0", "--db=" + db}, log, true), 1);
  EXPECT_THAT(ReadFile(log), HasSubstr("cannot open sqlite://" + db +
                                       ": FAILED_PRECONDITION: " + db +
                                       ": the file is read-only"));
  ASSERT_EQ(chmod(db.c_str(), 0644), 0);
}

TEST(StartupTest, APortFileThatCannotBeWrittenFailsAtStart) {
  const std::string log = TestDir() + "port.log";
  EXPECT_EQ(
      RunServer({"--listen=127.0.0.1:0", "--db=" + TempDb("p"),
                 "--metrics_listen=", "--port_file=/nonexistent/dir/port"},
                log),
      1);
  EXPECT_THAT(ReadFile(log),
              HasSubstr("cannot start: --port_file: cannot write "
                        "/nonexistent/dir/port.tmp"));
}

TEST(StartupTest, FlagsOutOfRangeFailAtStart) {
  const std::string log = TestDir() + "flags.log";
  EXPECT_EQ(RunServer({"--listen=127.0.0.1:0", "--db=" + TempDb("f"),
                       "--max_inflight_range_steps=10"},
                      log),
            1);
  EXPECT_THAT(ReadFile(log), HasSubstr("--max_inflight_range_steps: must be "
                                       ">= 1333334, got 10"));
}

}  // namespace
}  // namespace anneal
