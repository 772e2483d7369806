// annealctl's server commands end to end: the real annealctl binary against
// the real anneal-server (ServerProcess) over loopback. Every command, human
// and -o json output, --server and ANNEAL_SERVER, exit codes and one-line
// errors (2 invalid, 3 not found, 4 unreachable), and `lr` == `preview` byte
// for byte.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server_harness.h"

namespace anneal {
namespace {

using testing::HasSubstr;
using testing::StartsWith;

struct CliRun {
  int exit_code;
  std::string out;
  std::string err;
};

std::string ReadFile(const std::string& path) {
  std::stringstream text;
  text << std::ifstream(path).rdbuf();
  return text.str();
}

// Runs annealctl through the shell: `env` is a prefix such as
// "ANNEAL_SERVER=..." (ANNEAL_SERVER is unset otherwise).
CliRun RunCli(const std::string& args, const std::string& env = "") {
  const std::string err_path = TestDir() + "annealctl_err";
  const std::string command = "env -u ANNEAL_SERVER " + env + " " +
                              std::string(ANNEAL_BIN_DIR) + "/annealctl " +
                              args + " 2>" + err_path;
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0) {
    out.append(buf.data(), n);
  }
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out,
          ReadFile(err_path)};
}

std::string WriteSpec(const std::string& name, const std::string& text) {
  std::string path = TestDir() + name;
  std::ofstream(path) << text;
  return path;
}

constexpr char kSgdr[] =
    "max_lr: 0.1\nmin_lr: 0.001\nwarm_restarts: {period: 10, period_mult: 2}\n"
    "momentum: {base: 0.85, max: 0.95}\n";
constexpr char kCosine[] = "max_lr: 0.1\ncosine: {period: 100}\n";

class AnnealctlServerTest : public LiveServerTest {
 protected:
  // annealctl --server ADDRESS <args>
  CliRun Cli(const std::string& args) {
    return RunCli("--server " + server_->address() + " " + args);
  }

  // Creates `id` from spec text and checks it worked.
  std::string CreateFromText(const std::string& id, const std::string& text,
                             const std::string& extra = "") {
    std::string spec = WriteSpec(id + ".yaml", text);
    CliRun r = Cli("create " + id + " -f " + spec + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return spec;
  }

  v1::StepResult Evaluate(const std::string& name, int64_t step) {
    v1::EvaluateRequest req;
    req.set_name(name);
    req.set_step(step);
    v1::EvaluateResponse resp;
    grpc::Status s = server_->stub()->Evaluate(Ctx().get(), req, &resp);
    EXPECT_TRUE(s.ok()) << s.error_message();
    return resp.result();
  }
};

TEST_F(AnnealctlServerTest, CreateGetListDelete) {
  const std::string spec = WriteSpec("sgdr.yaml", kSgdr);
  CliRun r = Cli("create run-1 -f " + spec +
                 " --display-name 'ResNet run 1' --label team=vision"
                 " --label env=dev,tier=gold --reason 'first try'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out,
              StartsWith("created schedules/run-1 (revision 1, etag W/\""));
  EXPECT_THAT(r.out, HasSubstr("family warm_restarts"));
  EXPECT_EQ(r.err, "");

  // The bare id and the resource name are the same NAME.
  for (const char* name : {"run-1", "schedules/run-1"}) {
    r = Cli(std::string("get ") + name);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    EXPECT_THAT(r.out, HasSubstr("name             schedules/run-1\n"));
    EXPECT_THAT(r.out, HasSubstr("display name     ResNet run 1\n"));
    EXPECT_THAT(r.out,
                HasSubstr("labels           env=dev,team=vision,tier=gold\n"));
    EXPECT_THAT(r.out, HasSubstr("state            ACTIVE\n"));
    EXPECT_THAT(r.out, HasSubstr("revision         1\n"));
    EXPECT_THAT(r.out, HasSubstr("max step served  none\n"));
    EXPECT_THAT(r.out, HasSubstr("family           warm_restarts\n"));
    EXPECT_THAT(r.out, HasSubstr("spec             {\"max_lr\":0.1,"));
    EXPECT_THAT(r.out, HasSubstr("FROM_STEP  KIND"));
    EXPECT_THAT(r.out, HasSubstr("CREATE"));
    EXPECT_THAT(r.out, HasSubstr("first try"));
  }

  r = Cli("get run-1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (const char* key :
       {"\"name\": \"schedules/run-1\"", "\"display_name\": \"ResNet run 1\"",
        "\"team\": \"vision\"", "\"state\": \"ACTIVE\"", "\"revision\": \"1\"",
        "\"etag\"", "\"position\": \"0\"", "\"max_step_served\": \"-1\"",
        "\"timeline\"", "\"kind\": \"CREATE\"", "\"reason\": \"first try\"",
        "\"warm_restarts\"", "\"period_mult\": 2", "\"create_time\""}) {
    EXPECT_THAT(r.out, HasSubstr(key)) << r.out;
  }
  EXPECT_EQ(r.out.front(), '{');

  CreateFromText("run-2", kCosine, "--label team=nlp");
  r = Cli("list");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 3u) << r.out;
  EXPECT_THAT(lines[0], StartsWith("NAME             REVISION  POSITION  "
                                   "MAX_SERVED  FAMILY         LABELS"));
  EXPECT_THAT(lines[1], StartsWith("schedules/run-1  1         0         -"));
  EXPECT_THAT(lines[1],
              HasSubstr("warm_restarts  env=dev,team=vision,tier=gold"));
  EXPECT_THAT(lines[2], HasSubstr("cosine"));
  r = Cli("list -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"schedules\": ["));
  EXPECT_THAT(r.out, HasSubstr("\"name\": \"schedules/run-2\""));

  r = Cli("delete run-1 --etag 'W/\"stale\"'");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err,
              StartsWith("annealctl delete: etag: W/\"stale\" does not match"));
  r = Cli("delete schedules/run-1 --actor ops --reason 'run finished'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "deleted schedules/run-1\n");
  EXPECT_THAT(ReadFile(server_->log_path()),
              HasSubstr("delete schedules/run-1 by \"ops\" reason \"run "
                        "finished\""));
  r = Cli("get run-1");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err, "annealctl get: schedules/run-1: not found\n");
  EXPECT_EQ(r.out, "");
}

TEST_F(AnnealctlServerTest, ListFollowsEveryPageAndFilters) {
  for (int i = 0; i < 7; ++i) {
    CreateFromText(absl::StrCat("s-", i), kCosine,
                   i % 2 == 0 ? "--label team=vision" : "--label team=nlp");
  }
  CliRun r = Cli("list --page-size 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < 7; ++i) {
    EXPECT_THAT(r.out, HasSubstr(absl::StrCat("schedules/s-", i, " ")))
        << r.out;
  }
  std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  EXPECT_EQ(lines.size(), 8u);

  r = Cli("list --page-size 3 --filter 'labels.team = vision' -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  for (int i = 0; i < 7; ++i) {
    EXPECT_EQ(r.out.find(absl::StrCat("\"schedules/s-", i, "\"")) !=
                  std::string::npos,
              i % 2 == 0)
        << i << "\n"
        << r.out;
  }
  EXPECT_EQ(r.out.find("next_page_token\": \"C"), std::string::npos);

  r = Cli("list --filter 'colour = red'");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("annealctl list: filter: "));
}

TEST_F(AnnealctlServerTest, UpdateRestartAdvanceAndTheLrTheyServe) {
  CreateFromText("job", kSgdr);

  CliRun r = Cli("advance job");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("schedules/job: position 1, lr "));
  EXPECT_THAT(r.out, HasSubstr("momentum"));
  EXPECT_THAT(r.out, HasSubstr("phase ANNEAL"));
  // The same request id twice advances once.
  r = Cli("advance job --request-id fixed-1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"position\": \"2\""));
  EXPECT_THAT(r.out, HasSubstr("\"step\": \"2\""));
  r = Cli("advance job --request-id fixed-1 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"position\": \"2\""));
  r = Cli("advance job --expected-position 2");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("position 3,"));
  r = Cli("advance job --expected-position 0");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(
      r.err,
      "annealctl advance: expected_position: 0 is stale; the position is 3\n");

  // Advancing served up to step 3; looking with `lr` serves nothing (it is
  // inspect_only). Then change the spec from step 15 and restart at 30.
  r = Cli("lr job --count 10");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string cosine = WriteSpec("cosine.yaml", kCosine);
  r = Cli("update job -f " + cosine + " --effective-step 2");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(
      r.err,
      "annealctl update: effective_step: must be > max_step_served (3) so "
      "no LR already served is rewritten, got 2\n");
  r = Cli("update schedules/job -f " + cosine +
          " --effective-step 15 --reason 'calmer tail'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, StartsWith("updated schedules/job (revision 2,"));
  EXPECT_THAT(r.out,
              HasSubstr("family cosine, latest segment UPDATE from step 15"));
  r = Cli("restart job --at 30 --reason plateau --actor ops@example -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"kind\": \"RESTART\""));
  EXPECT_THAT(r.out, HasSubstr("\"reason\": \"plateau\""));
  EXPECT_THAT(r.out, HasSubstr("\"actor\": \"ops@example\""));
  EXPECT_THAT(r.out, HasSubstr("\"revision\": \"3\""));
  r = Cli("update job --display-name 'job one' --label team=x,env=y");
  ASSERT_EQ(r.exit_code, 0) << r.err;

  r = Cli("get job");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("display name     job one\n"));
  EXPECT_THAT(r.out, HasSubstr("labels           env=y,team=x\n"));
  EXPECT_THAT(r.out, HasSubstr("position         3\n"));
  EXPECT_THAT(r.out, HasSubstr("max step served  3\n"));
  EXPECT_THAT(r.out, HasSubstr("revision         4\n"));
  EXPECT_THAT(r.out, HasSubstr("calmer tail"));
  EXPECT_THAT(r.out, HasSubstr("plateau"));
  EXPECT_THAT(r.out, HasSubstr("(annealctl)  calmer tail"));  // default actor
  EXPECT_THAT(r.out, HasSubstr("ops@example"));

  // lr across the three segments is what Evaluate serves, step by step,
  // including cycle_length and momentum.
  r = Cli("lr job --start 0 --count 60");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 61u);
  for (int64_t step = 0; step < 60; ++step) {
    v1::StepResult want = Evaluate("schedules/job", step);
    std::vector<std::string> cells = absl::StrSplit(lines[step + 1], ',');
    ASSERT_EQ(cells.size(), 10u) << lines[step + 1];
    double lr;
    ASSERT_TRUE(absl::SimpleAtod(cells[1], &lr));
    EXPECT_EQ(lr, want.lr()) << step;
    EXPECT_EQ(cells[2].empty(), !want.has_momentum()) << step;
    if (want.has_momentum()) {
      double momentum;
      ASSERT_TRUE(absl::SimpleAtod(cells[2], &momentum));
      EXPECT_EQ(momentum, want.momentum()) << step;
    }
    EXPECT_EQ(cells[4], absl::StrCat(want.cycle())) << step;
    EXPECT_EQ(cells[5], absl::StrCat(want.step_in_cycle())) << step;
    EXPECT_EQ(cells[6], absl::StrCat(want.cycle_length())) << step;
    EXPECT_EQ(cells[7], v1::Phase_Name(want.phase())) << step;
    EXPECT_EQ(cells[8], want.restart() ? "1" : "0") << step;
    EXPECT_EQ(cells[9], want.snapshot() ? "1" : "0") << step;
  }
  EXPECT_EQ(lines[31].substr(0, 3), "30,");
  EXPECT_EQ(lines[31].back(), '0');
  EXPECT_THAT(lines[31], HasSubstr(",1,0"));  // restart at 30

  r = Cli("update job");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("annealctl update: nothing to update"));
}

TEST_F(AnnealctlServerTest, LrEqualsPreviewByteForByte) {
  const std::vector<std::string> specs = {
      kSgdr,
      kCosine,
      "max_lr: 0.3\nwarmup: {steps: 20, start_lr: 0.01}\ncosine: {period: "
      "200}\n",
      "max_lr: 0.01\none_cycle: {total_steps: 250, three_phase: true}\n"
      "momentum: {base: 0.85, max: 0.95}\n",
      "max_lr: 0.1\nmin_lr: 0.01\nsequence:\n  phases:\n"
      "    - {steps: 50, spec: {linear: {start_factor: 0.1, total_steps: "
      "50}}}\n"
      "    - {steps: 100, spec: {cosine: {period: 100}}, restart: true}\n"
      "    - {spec: {wsd: {warmup_steps: 10, stable_steps: 40, decay_steps: "
      "60}},"
      " restart: true}\n",
      "max_lr: 0.1\ncyclic: {step_size_up: 7, mode: TRIANGULAR2}\n",
  };
  for (size_t i = 0; i < specs.size(); ++i) {
    const std::string id = absl::StrCat("p-", i);
    const std::string spec = CreateFromText(id, specs[i]);
    for (const std::string& range :
         {std::string("--start 0"), std::string("--start 137")}) {
      for (const char* format : {"csv", "json"}) {
        CliRun preview = RunCli("preview -f " + spec + " --steps 300 " + range +
                                " -o " + format);
        ASSERT_EQ(preview.exit_code, 0) << preview.err;
        CliRun lr =
            Cli("lr " + id + " --count 300 " + range + " --output " + format);
        ASSERT_EQ(lr.exit_code, 0) << lr.err;
        EXPECT_EQ(lr.out, preview.out) << specs[i] << range << " " << format;
      }
    }
  }
  CliRun lr = Cli("lr p-0 --count 300 -o ascii");
  ASSERT_EQ(lr.exit_code, 0) << lr.err;
  EXPECT_EQ(
      lr.out,
      RunCli("preview -f " + TestDir() + "p-0.yaml --steps 300 -o ascii").out);
  lr = Cli("lr p-0 --count 300 -o svg");
  ASSERT_EQ(lr.exit_code, 0) << lr.err;
  const std::string svg_text = lr.out;
  EXPECT_THAT(svg_text, HasSubstr("<svg"));
  EXPECT_THAT(svg_text, HasSubstr("schedules/p-0"));
  EXPECT_THAT(svg_text, HasSubstr("</svg>"));
}

TEST_F(AnnealctlServerTest, InvalidArgumentsExitTwoWithTheFieldAndRule) {
  const std::string bad =
      WriteSpec("bad.yaml",
                "max_lr: 0.1\nwarm_restarts: {period: 10, period_mult: -2}\n");
  CliRun r = Cli("create b -f " + bad);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(
      r.err,
      "annealctl create: schedule.spec.warm_restarts.period_mult: must be "
      "> 0, got -2\n");
  EXPECT_EQ(r.out, "");

  const std::string good = WriteSpec("good.yaml", kCosine);
  r = Cli("create Bad_ID -f " + good);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, StartsWith("annealctl create: schedule_id: must match"));
  r = Cli("create ok -f " + good);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  r = Cli("create ok -f " + good);
  EXPECT_EQ(r.exit_code, 1);  // ALREADY_EXISTS
  EXPECT_THAT(r.err, StartsWith("annealctl create: "));

  r = Cli("update ok -f " + bad);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err,
              HasSubstr("warm_restarts.period_mult: must be > 0, got -2"));
  r = Cli("lr ok --start -5 --count 3");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err,
              StartsWith("annealctl lr: start_step: must be in [0, 2^62]"));

  // Usage errors are found before any call.
  r = Cli("get");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "annealctl get: NAME is required (an id or schedules/ID)\n");
  r = Cli("get a b");
  EXPECT_EQ(r.exit_code, 2);
  r = Cli("get projects/x/schedules/y");
  EXPECT_EQ(r.exit_code, 2);
  r = Cli("create x");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "annealctl create: --file is required\n");
  r = Cli("create x -f " + good + " --label novalue");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "annealctl create: --label: must be KEY=VALUE, got \"novalue\"\n");
  r = Cli("create x -f /nonexistent.yaml");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "annealctl create: /nonexistent.yaml: cannot open\n");
  r = Cli("lr ok");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err,
            "annealctl lr: --count: must be in [1, 1000000], got nothing\n");
  r = Cli("lr ok --count 5 -o png");
  EXPECT_EQ(r.exit_code, 2);
  r = Cli("get ok --colour red");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "annealctl get: unknown flag --colour\n");
  r = Cli("get ok -o yaml");
  EXPECT_EQ(r.exit_code, 2);
  r = Cli("restart ok --at soon");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, "annealctl restart: --at: must be an integer, got soon\n");
}

TEST_F(AnnealctlServerTest, RestartWithNothingServedRestartsAtStepOne) {
  const std::string spec = WriteSpec("fresh.yaml", kCosine);
  ASSERT_EQ(Cli("create fresh -f " + spec).exit_code, 0);
  CliRun r = Cli("restart fresh --reason 'try again'");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("latest segment RESTART from step 1"));
}

TEST_F(AnnealctlServerTest, UnknownScheduleExitsThree) {
  const std::string spec = WriteSpec("c.yaml", kCosine);
  for (const std::string& args :
       {std::string("get nope"), std::string("delete nope"),
        std::string("lr nope --count 3"), std::string("advance nope"),
        std::string("restart nope"), "update nope -f " + spec}) {
    CliRun r = Cli(args);
    EXPECT_EQ(r.exit_code, 3) << args << ": " << r.err;
    EXPECT_THAT(r.err, HasSubstr("schedules/nope: not found")) << args;
  }
}

TEST_F(AnnealctlServerTest, ServerAddressFromFlagOrEnvironment) {
  const std::string live = server_->address();
  const std::string dead = absl::StrCat("127.0.0.1:", FreePort());
  CreateFromText("env", kCosine);

  // ANNEAL_SERVER alone.
  CliRun r = RunCli("get env", "ANNEAL_SERVER=" + live);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("schedules/env"));
  // --server (before or after the command) wins over ANNEAL_SERVER.
  r = RunCli("--server " + live + " get env", "ANNEAL_SERVER=" + dead);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  r = RunCli("get env --server=" + live, "ANNEAL_SERVER=" + dead);
  EXPECT_EQ(r.exit_code, 0) << r.err;

  // Unreachable: exit 4, naming the address and how to change it.
  r = RunCli("get env --server " + dead);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err,
              StartsWith("annealctl get: cannot reach the anneal server at " +
                         dead + " ("));
  EXPECT_THAT(r.err, HasSubstr("--server"));
  EXPECT_THAT(r.err, HasSubstr("ANNEAL_SERVER"));
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  r = RunCli("list", "ANNEAL_SERVER=" + dead);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, HasSubstr(dead));
  r = RunCli("advance env --server " + dead);
  EXPECT_EQ(r.exit_code, 4);
  EXPECT_THAT(r.err, HasSubstr("--request-id annealctl-"));
  r = RunCli("lr env --count 3 --server " + dead);
  EXPECT_EQ(r.exit_code, 4);
}

TEST_F(AnnealctlServerTest, ReportAndListReportsAsTableCsvAndJson) {
  CreateFromText("m", kCosine);
  CliRun r = Cli("report m --step 20 loss=0.25 val/acc=0.5");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            "reported 2 metrics at step 20 of schedules/m (revision 1)\n");
  ASSERT_EQ(Cli("report schedules/m --step 10 loss=0.1 grad=inf").exit_code, 0);
  r = Cli("report m --step 30 loss=nan -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"loss\": \"NaN\""));

  r = Cli("reports m");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  std::vector<std::string> lines = absl::StrSplit(r.out, '\n');
  ASSERT_GE(lines.size(), 4u);
  EXPECT_THAT(lines[0], StartsWith("STEP"));
  EXPECT_THAT(lines[0], HasSubstr("grad  loss  val/acc"));
  EXPECT_THAT(lines[1], StartsWith("10 "));
  EXPECT_THAT(lines[3], StartsWith("30 "));

  // CSV: exact values (17 digits), empty cells where a step lacks a metric.
  r = Cli("reports m -o csv --start 10 --end 30");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  lines = absl::StrSplit(r.out, '\n');
  ASSERT_EQ(lines.size(), 4u);  // header, two rows, the final empty line
  EXPECT_EQ(lines[0], "step,revision,report_time,grad,loss,val/acc");
  EXPECT_THAT(lines[1], StartsWith("10,1,"));
  EXPECT_THAT(lines[1], testing::EndsWith(",inf,0.10000000000000001,"));
  EXPECT_THAT(lines[2], testing::EndsWith(",,0.25,0.5"));

  r = Cli("reports m --metric val/acc -o json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.out, HasSubstr("\"step\": \"20\""));
  EXPECT_THAT(r.out, testing::Not(HasSubstr("\"step\": \"10\"")));

  // Errors: usage (2) naming the argument or the server's field, and 3.
  r = Cli("report m --step 1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("METRIC=VALUE: must be given at least once"));
  r = Cli("report m --step 1 loss");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("got \"loss\""));
  r = Cli("report m loss=1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("--step is required"));
  r = Cli("report m --step -1 loss=1");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("step: must be >= 0, got -1"));
  r = Cli("reports m -o yaml");
  EXPECT_EQ(r.exit_code, 2);
  r = Cli("reports nope");
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_THAT(r.err, HasSubstr("schedules/nope: not found"));
}

TEST(AnnealctlUsageTest, UsageListsEveryCommandAndTheExitCodes) {
  CliRun r = RunCli("help");
  EXPECT_EQ(r.exit_code, 0);
  for (const char* command :
       {"preview", "analyze", "create", "get", "list", "update", "restart",
        "advance", "lr", "delete", "report", "reports", "ANNEAL_SERVER",
        "exit codes"}) {
    EXPECT_THAT(r.out, HasSubstr(command));
  }
  r = RunCli("--server 127.0.0.1:1 preview -f x.yaml --steps 3");
  EXPECT_EQ(r.exit_code, 2);
}

}  // namespace
}  // namespace anneal
