// annealctl preview/analyze end to end: the real binary on real spec files,
// its output formats, exit codes and one-line errors.
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gtest/gtest.h"
#include "tests/test_dir.h"

namespace anneal {
namespace {

struct CliRun {
  int exit_code;
  std::string out;  // stdout and stderr, in order
};

CliRun Annealctl(const std::string& args) {
  const std::string command =
      std::string(ANNEAL_BIN_DIR) + "/annealctl " + args + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  EXPECT_NE(pipe, nullptr);
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0)
    out.append(buf.data(), n);
  int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

std::string WriteSpec(const std::string& name, const std::string& text) {
  std::string path = TestDir() + name;
  std::ofstream(path) << text;
  return path;
}

TEST(AnnealctlTest, PreviewCsvHasHeaderAndOneRowPerStep) {
  std::string spec =
      WriteSpec("sgdr.yaml",
                "max_lr: 0.1\nwarm_restarts: {period: 10, period_mult: 2}\n");
  CliRun r = Annealctl("preview -f " + spec + " --steps 30");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  std::vector<std::string> lines =
      absl::StrSplit(r.out, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 31u);
  EXPECT_EQ(lines[0],
            "step,lr,momentum,beta1_bias_correction,cycle,step_in_cycle,"
            "cycle_length,phase,restart,snapshot");
  EXPECT_EQ(lines[1], "0,0.10000000000000001,,,0,0,10,ANNEAL,0,0");
  EXPECT_EQ(lines[10], "9,0.0024471741852423235,,,0,9,10,ANNEAL,0,1");
  EXPECT_EQ(lines[11], "10,0.10000000000000001,,,1,0,20,ANNEAL,1,0");
}

TEST(AnnealctlTest, PreviewStartAndJson) {
  std::string spec = WriteSpec("c.json", R"({"max_lr": 0.5, "constant": {}})");
  CliRun r = Annealctl("preview -f " + spec +
                       " --steps 2 --start 4611686018427387903 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("\"step\":\"4611686018427387904\""), std::string::npos)
      << r.out;
  EXPECT_NE(r.out.find("\"lr\":0.5"), std::string::npos) << r.out;
}

TEST(AnnealctlTest, PreviewAsciiAndSvg) {
  std::string spec =
      WriteSpec("w.yaml", "max_lr: 0.1\nwarm_restarts: {period: 20}\n");
  CliRun ascii = Annealctl("preview -f " + spec + " --steps 100 -o ascii");
  ASSERT_EQ(ascii.exit_code, 0) << ascii.out;
  EXPECT_GT(std::count(ascii.out.begin(), ascii.out.end(), '\n'), 10);
  CliRun svg = Annealctl("preview -f " + spec + " --steps 100 --output svg");
  ASSERT_EQ(svg.exit_code, 0) << svg.out;
  EXPECT_NE(svg.out.find("<svg"), std::string::npos);
  EXPECT_NE(svg.out.find("</svg>"), std::string::npos);
  CliRun bad = Annealctl("preview -f " + spec + " --steps 100 -o png");
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.out.find("--output: must be csv, json, ascii or svg, got png"),
            std::string::npos)
      << bad.out;
  // One meaning of -o/--output everywhere: the old file flag is gone.
  EXPECT_EQ(
      Annealctl("preview -f " + spec + " --steps 1 --format csv").exit_code, 2);
}

TEST(AnnealctlTest, InvalidSpecExitsNonZeroWithTheFieldAndRule) {
  std::string spec =
      WriteSpec("bad.yaml",
                "max_lr: 0.1\nwarm_restarts: {period: 10, period_mult: -2}\n");
  CliRun r = Annealctl("preview -f " + spec + " --steps 5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "annealctl preview: " + spec +
                       ": warm_restarts.period_mult: must be > 0, got -2\n");
  r = Annealctl("analyze -f " + spec);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("warm_restarts.period_mult: must be > 0, got -2"),
            std::string::npos);
}

TEST(AnnealctlTest, UsageErrors) {
  EXPECT_EQ(Annealctl("").exit_code, 2);
  EXPECT_EQ(Annealctl("frobnicate").exit_code, 2);
  CliRun r = Annealctl("preview --steps 5");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out,
            "annealctl preview: give exactly one of -f SPEC and --timeline "
            "SCHEDULE_JSON\n");
  r = Annealctl("preview -f x.yaml --steps 0");
  EXPECT_EQ(r.out,
            "annealctl preview: --steps: must be in [1, 1000000], got 0\n");
  r = Annealctl("preview -f x.yaml --steps 5 --colour red");
  EXPECT_EQ(r.out, "annealctl preview: unknown flag --colour\n");
  r = Annealctl("preview -f /nonexistent.yaml --steps 5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "annealctl preview: /nonexistent.yaml: cannot open\n");
}

// Inputs the spec would ignore are refused, not silently dropped.
TEST(AnnealctlTest, InputsTheSpecIgnoresAreRefused) {
  std::string spec =
      WriteSpec("plain.yaml", "max_lr: 0.1\ncosine: {period: 50}\n");
  CliRun r = Annealctl("preview -f " + spec +
                       " --steps 5 --grad-norm-sq 1 --num-params 10");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "annealctl preview: --grad-norm-sq: " + spec +
                       " has no thermostat, so no noise_std is served; add "
                       "thermostat {target_update_norm_sq: K} or leave out "
                       "--grad-norm-sq and --num-params\n");
  r = Annealctl("preview -f " + spec + " --steps 5 --batch-size 1024");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--batch-size: " + spec + " has no batch_scaling"),
            std::string::npos)
      << r.out;
  r = Annealctl("analyze -f " + spec + " --batch-size 1024");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.out.find("--batch-size: " + spec + " has no batch_scaling"),
            std::string::npos)
      << r.out;
}

TEST(AnnealctlTest, AnalyzeJsonHasTheDocumentedKeys) {
  std::string spec =
      WriteSpec("cos.yaml", "max_lr: 1.0\ncosine: {period: 100000}\n");
  CliRun r = Annealctl("analyze -f " + spec + " --max-curvature 3 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* key :
       {"\"robbins_monro\"", "\"sum_diverges\": false",
        "\"sum_squares_converges\": true", "\"horizon_sum\"", "\"stability\"",
        "\"critical_max_lr\"", "\"stable\": true"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
  }
  r = Annealctl("analyze -f " + spec + " --max-curvature 5");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  EXPECT_NE(r.out.find("UNSTABLE"), std::string::npos) << r.out;
}

TEST(AnnealctlTest, AnalyzeReportsBothBoundsAndTheServedLrs) {
  // One-cycle of 10 steps: the first crossing is 3.8343/L (not 5.92/L), so
  // 4.0/L is unstable; the transient bound is 2.9447/L.
  std::string spec = WriteSpec(
      "one_cycle.json",
      R"({"max_lr": 0.1, "batch_scaling": {"reference_batch_size": 256},)"
      R"( "one_cycle": {"total_steps": 10, "pct_start": 0.5,)"
      R"( "three_phase": true}})");
  CliRun r = Annealctl("analyze -f " + spec + " --max-curvature 40");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* line :
       {"stability          UNSTABLE (critical max_lr 0.0958579 = 3.8343 / L, "
        "L = 40)\n",
        "  bounded          no (|x| stays below its cycle-start value up to "
        "max_lr 0.0736187 = 2.9447 / L)\n",
        "  judged           1 complete cycle and the settled tail\n"}) {
    EXPECT_NE(r.out.find(line), std::string::npos) << line << r.out;
  }
  EXPECT_NE(r.out.find("  growth in cycle  |x| up to e^"), std::string::npos)
      << r.out;
  // At batch 128 the served peak is 0.05: 2.0/L, stable and bounded.
  r = Annealctl("analyze -f " + spec +
                " --max-curvature 40 --batch-size 128 -o json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  for (const char* key :
       {"\"batch_size\": \"128\"", "\"peak_lr\": 0.05", "\"stable\": true",
        "\"bounded\": true", "\"bounded_max_lr\"", "\"max_log_growth\": 0",
        "\"cycles_checked\": \"1\"", "\"tail_checked\": true"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key << "\n" << r.out;
  }
  r = Annealctl("analyze -f " + spec + " --max-curvature 40 --batch-size 0");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "annealctl analyze: batch_size: must be >= 1, got 0\n");
}

}  // namespace
}  // namespace anneal
