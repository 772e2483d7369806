// Tests of the annealctl renderers (anneal/render/render.h) on step ranges
// evaluated from real compiled specs: the CSV layout, the ASCII chart's
// geometry and marks, and the SVG's structure, marks, bounds and size.
#include "anneal/render/render.h"

#include <cstdint>
#include <cstdio>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "anneal/engine/schedule.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

std::vector<StepResult> Evaluate(const v1::ScheduleSpec& spec, int64_t start,
                                 int64_t count) {
  auto schedule = Schedule::Compile(spec);
  EXPECT_TRUE(schedule.ok()) << schedule.status();
  std::vector<StepResult> steps;
  if (!schedule.ok()) return steps;
  EXPECT_TRUE(
      (*schedule)
          ->EvaluateRange(start, count, StepQuery{},
                          [&](const StepResult& r) { steps.push_back(r); })
          .ok());
  return steps;
}

// SGDR with doubling periods: restarts at 10, 30, 70, 150, snapshots the
// step before each, and momentum.
v1::ScheduleSpec Sgdr() {
  v1::ScheduleSpec spec;
  spec.set_max_lr(0.1);
  spec.set_min_lr(0.001);
  spec.mutable_warm_restarts()->set_period(10);
  spec.mutable_warm_restarts()->set_period_mult(2);
  spec.mutable_momentum()->set_base(0.85);
  spec.mutable_momentum()->set_max(0.95);
  return spec;
}

// One cosine decay: no restarts, no momentum.
v1::ScheduleSpec Cosine() {
  v1::ScheduleSpec spec;
  spec.set_max_lr(0.1);
  spec.mutable_cosine()->set_period(100);
  return spec;
}

v1::ScheduleSpec Constant() {
  v1::ScheduleSpec spec;
  spec.set_max_lr(0.05);
  spec.mutable_constant();
  return spec;
}

v1::ScheduleSpec Restarts(int64_t period) {
  v1::ScheduleSpec spec;
  spec.set_max_lr(0.1);
  spec.mutable_warm_restarts()->set_period(period);
  return spec;
}

int Count(const std::string& haystack, const std::string& needle) {
  int n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos;
       at = haystack.find(needle, at + needle.size())) {
    ++n;
  }
  return n;
}

// ---------------------------------------------------------------- CSV

std::vector<std::string> CsvLines(const std::vector<StepResult>& steps) {
  std::ostringstream out;
  RenderCsv(steps, out);
  return absl::StrSplit(out.str(), '\n', absl::SkipEmpty());
}

TEST(RenderCsvTest, HeaderIsExact) {
  const std::vector<std::string> lines = CsvLines(Evaluate(Cosine(), 0, 3));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0],
            "step,lr,momentum,beta1_bias_correction,cycle,step_in_cycle,"
            "cycle_length,phase,restart,snapshot");
}

TEST(RenderCsvTest, MomentumColumnsEmptyWithoutMomentum) {
  for (const std::string& line :
       std::vector<std::string>(CsvLines(Evaluate(Cosine(), 0, 5)))) {
    if (line.rfind("step,", 0) == 0) continue;
    std::vector<std::string> fields = absl::StrSplit(line, ',');
    ASSERT_EQ(fields.size(), 10u) << line;
    EXPECT_EQ(fields[2], "") << line;
    EXPECT_EQ(fields[3], "") << line;
  }
  const std::vector<std::string> with = CsvLines(Evaluate(Sgdr(), 0, 2));
  std::vector<std::string> fields = absl::StrSplit(with[1], ',');
  ASSERT_EQ(fields.size(), 10u);
  EXPECT_EQ(fields[2], "0.84999999999999998");  // base at the peak, exact
  EXPECT_NE(fields[3], "");
}

TEST(RenderCsvTest, NoiseStdColumnOnlyWhenTheStepsCarryIt) {
  std::vector<StepResult> steps = Evaluate(Cosine(), 0, 2);
  steps[0].has_noise_std = true;
  steps[0].noise_std = 0.5;
  const std::vector<std::string> lines = CsvLines(steps);
  EXPECT_EQ(lines[0],
            "step,lr,momentum,beta1_bias_correction,cycle,step_in_cycle,"
            "cycle_length,phase,restart,snapshot,noise_std");
  std::vector<std::string> first = absl::StrSplit(lines[1], ',');
  std::vector<std::string> second = absl::StrSplit(lines[2], ',');
  ASSERT_EQ(first.size(), 11u);
  EXPECT_EQ(first[10], "0.5");
  ASSERT_EQ(second.size(), 11u);
  EXPECT_EQ(second[10], "");
  std::ostringstream ascii;
  RenderAscii(steps, 40, 8, ascii);
  EXPECT_NE(ascii.str().find("noise_std 0.5 at step 0, 0.5 at step 0"),
            std::string::npos)
      << ascii.str();
}

// ---------------------------------------------------------------- ASCII

struct Chart {
  std::vector<std::string> plot;  // the rows above the x axis
  std::string axis;
  std::string marks;  // the '^' row, empty when there is none
  std::string text;
};

Chart Ascii(const std::vector<StepResult>& steps, int width, int height) {
  std::ostringstream out;
  RenderAscii(steps, width, height, out);
  Chart chart;
  chart.text = out.str();
  std::vector<std::string> lines = absl::StrSplit(chart.text, '\n');
  size_t i = 0;
  for (; i < lines.size(); ++i) {
    if (lines[i].find("+-") != std::string::npos &&
        lines[i].find_first_not_of(' ') == lines[i].find("+-")) {
      break;
    }
    chart.plot.push_back(lines[i]);
  }
  if (i < lines.size()) chart.axis = lines[i];
  if (i + 1 < lines.size() && lines[i + 1].find('^') != std::string::npos &&
      lines[i + 1].find_first_not_of(" ^") == std::string::npos) {
    chart.marks = lines[i + 1];
  }
  return chart;
}

TEST(RenderAsciiTest, HasTheRequestedPlotArea) {
  const Chart chart = Ascii(Evaluate(Sgdr(), 0, 200), 40, 10);
  EXPECT_EQ(chart.plot.size(), 10u) << chart.text;
  EXPECT_EQ(Count(chart.axis, "-"), 40) << chart.text;
  const size_t plot_start = chart.axis.find('+') + 1;
  for (const std::string& row : chart.plot) {
    EXPECT_LE(row.size(), plot_start + 40) << row;
  }
  EXPECT_THAT(chart.plot.front(), HasSubstr("0.1 +"));
  EXPECT_THAT(chart.plot.back(), HasSubstr("1e-3 +"));
}

TEST(RenderAsciiTest, MarksEveryRestartAndOnlyRestarts) {
  const Chart sgdr = Ascii(Evaluate(Sgdr(), 0, 200), 72, 18);
  EXPECT_EQ(Count(sgdr.marks, "^"), 4) << sgdr.text;
  EXPECT_THAT(sgdr.text, HasSubstr("^ marks a restart (4)"));

  const Chart cosine = Ascii(Evaluate(Cosine(), 0, 200), 72, 18);
  EXPECT_EQ(cosine.marks, "");
  EXPECT_EQ(Count(cosine.text, "^"), 0) << cosine.text;
}

TEST(RenderAsciiTest, RestartIsAVerticalRunWhenDownsampled) {
  // 500 steps per column: each restart column holds both the floor and the
  // peak, and must show the whole drop rather than one of them.
  const Chart chart = Ascii(Evaluate(Restarts(1000), 0, 10000), 20, 8);
  ASSERT_EQ(Count(chart.marks, "^"), 9) << chart.text;
  for (size_t c = 0; c < chart.marks.size(); ++c) {
    if (chart.marks[c] != '^') continue;
    for (const std::string& row : chart.plot) {
      ASSERT_LT(c, row.size()) << chart.text;
      EXPECT_EQ(row[c], '*') << "column " << c << "\n" << chart.text;
    }
  }
}

TEST(RenderAsciiTest, ConstantLrIsOneLabelledRow) {
  const Chart chart = Ascii(Evaluate(Constant(), 0, 100), 30, 9);
  ASSERT_EQ(chart.plot.size(), 9u);
  int rows_with_points = 0;
  for (const std::string& row : chart.plot) {
    if (row.find('*') == std::string::npos) continue;
    ++rows_with_points;
    EXPECT_THAT(row, StartsWith(" 0.05 +")) << chart.text;  // right-aligned
    EXPECT_EQ(Count(row, "*"), 30);
  }
  EXPECT_EQ(rows_with_points, 1) << chart.text;
}

TEST(RenderAsciiTest, SingleStep) {
  const Chart chart = Ascii(Evaluate(Sgdr(), 0, 1), 40, 10);
  EXPECT_EQ(chart.plot.size(), 10u) << chart.text;
  EXPECT_EQ(Count(chart.text, "*"), 40) << chart.text;  // one step, stretched
  EXPECT_THAT(chart.text, HasSubstr("1 step\n"));
}

TEST(RenderAsciiTest, HugeStepNumbersAreLabelledExactly) {
  const Chart chart = Ascii(Evaluate(Sgdr(), kMaxStep - 9, 10), 72, 6);
  EXPECT_EQ(chart.plot.size(), 6u);
  EXPECT_THAT(chart.text, HasSubstr("4611686018427387895"));
  EXPECT_THAT(chart.text, HasSubstr("4611686018427387904"));
}

TEST(RenderAsciiTest, DegenerateInputDoesNotCrash) {
  std::ostringstream empty;
  RenderAscii({}, 72, 18, empty);
  EXPECT_EQ(empty.str(), "(no steps)\n");
  const std::vector<StepResult> steps = Evaluate(Sgdr(), 0, 50);
  for (int size : {-5, 0, 1, 2}) {
    EXPECT_FALSE(Ascii(steps, size, 18).text.empty());
    EXPECT_FALSE(Ascii(steps, 72, size).text.empty());
  }
  EXPECT_EQ(Ascii(steps, 72, 1).plot.size(), 1u);
}

// ---------------------------------------------------------------- SVG

std::string Svg(const std::vector<StepResult>& steps,
                const std::string& title = "spec.yaml") {
  std::ostringstream out;
  RenderSvg(steps, title, out);
  return out.str();
}

// Structure every SVG must have, whatever the input.
void ExpectWellFormed(const std::string& svg) {
  EXPECT_TRUE(svg.rfind("<?xml", 0) == 0 || svg.rfind("<svg", 0) == 0)
      << svg.substr(0, 80);
  EXPECT_THAT(svg, HasSubstr("<svg xmlns=\"http://www.w3.org/2000/svg\""));
  const size_t end = svg.find_last_not_of('\n');
  ASSERT_NE(end, std::string::npos);
  EXPECT_EQ(svg.substr(0, end + 1).substr(end + 1 - 6), "</svg>");
  EXPECT_EQ(Count(svg, "<svg"), 1);
  EXPECT_EQ(Count(svg, "<g"), Count(svg, "</g>"));
  EXPECT_EQ(Count(svg, "<text"), Count(svg, "</text>"));
  EXPECT_THAT(svg, Not(HasSubstr("nan")));
  EXPECT_THAT(svg, Not(HasSubstr("inf")));
}

// The points of the polyline with class `name`, as (x, y) pairs.
std::vector<std::pair<double, double>> Points(const std::string& svg,
                                              const std::string& name) {
  std::vector<std::pair<double, double>> points;
  const size_t at = svg.find("<polyline class=\"" + name + "\"");
  if (at == std::string::npos) return points;
  const size_t begin = svg.find("points=\"", at) + 8;
  const std::string list = svg.substr(begin, svg.find('"', begin) - begin);
  for (absl::string_view pair : absl::StrSplit(list, ' ', absl::SkipEmpty())) {
    std::pair<double, double> p;
    EXPECT_EQ(
        std::sscanf(std::string(pair).c_str(), "%lf,%lf", &p.first, &p.second),
        2)
        << pair;
    points.push_back(p);
  }
  return points;
}

void ExpectInsideCanvas(const std::vector<std::pair<double, double>>& points) {
  for (const auto& [x, y] : points) {
    EXPECT_GE(x, 0);
    EXPECT_LE(x, 900);
    EXPECT_GE(y, 0);
    EXPECT_LE(y, 420);
  }
}

TEST(RenderSvgTest, PlotsTheCurveWithAxesAndLegend) {
  const std::string svg = Svg(Evaluate(Sgdr(), 0, 200));
  ExpectWellFormed(svg);
  const auto lr = Points(svg, "lr");
  EXPECT_EQ(lr.size(), 200u);  // few enough steps to keep every one
  ExpectInsideCanvas(lr);
  for (size_t i = 1; i < lr.size(); ++i)
    EXPECT_GT(lr[i].first, lr[i - 1].first);
  for (const char* title : {">step<", ">learning rate<", ">momentum<"}) {
    EXPECT_THAT(svg, HasSubstr(title));
  }
  // Nice ticks: 0..200 by 50 on x, 0..0.1 by 0.02 on the lr axis.
  for (const char* tick : {">0<", ">50<", ">100<", ">150<", ">200<", ">0.02<",
                           ">0.06<", ">0.1<"}) {
    EXPECT_THAT(svg, HasSubstr(tick));
  }
  EXPECT_EQ(Count(svg, "class=\"snapshot\""), 4);
}

TEST(RenderSvgTest, MarksRestartsExactlyWhenThereAreRestarts) {
  const std::string sgdr = Svg(Evaluate(Sgdr(), 0, 200));
  EXPECT_EQ(Count(sgdr, "class=\"restart\""), 4);
  EXPECT_THAT(sgdr, HasSubstr(">restart<"));

  const std::string cosine = Svg(Evaluate(Cosine(), 0, 200));
  ExpectWellFormed(cosine);
  EXPECT_EQ(Count(cosine, "class=\"restart\""), 0);
  EXPECT_THAT(cosine, Not(HasSubstr(">restart<")));
}

TEST(RenderSvgTest, MomentumOnlyWhenScheduled) {
  const std::string sgdr = Svg(Evaluate(Sgdr(), 0, 200));
  const auto momentum = Points(sgdr, "momentum");
  EXPECT_EQ(momentum.size(), 200u);
  ExpectInsideCanvas(momentum);

  const std::string cosine = Svg(Evaluate(Cosine(), 0, 200));
  EXPECT_THAT(cosine, Not(HasSubstr("class=\"momentum\"")));
  EXPECT_THAT(cosine, Not(HasSubstr(">momentum<")));
}

TEST(RenderSvgTest, MillionStepsGiveASmallFile) {
  const std::string svg = Svg(Evaluate(Restarts(10), 0, 1'000'000));
  ExpectWellFormed(svg);
  EXPECT_LT(svg.size(), 300'000u);
  const auto lr = Points(svg, "lr");
  EXPECT_GT(lr.size(), 100u);
  EXPECT_LE(lr.size(), 2u * 900);
  ExpectInsideCanvas(lr);
  // 99999 restarts: still marked, at most once per pixel column.
  const int restarts = Count(svg, "class=\"restart\"");
  EXPECT_GT(restarts, 0);
  EXPECT_LE(restarts, 900);
}

TEST(RenderSvgTest, EscapesTheTitle) {
  const std::string svg =
      Svg(Evaluate(Cosine(), 0, 10), "a<b & \"c\" 'd'>\x01");
  ExpectWellFormed(svg);
  EXPECT_THAT(svg, HasSubstr("a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt; "));
  EXPECT_THAT(svg, Not(HasSubstr("a<b")));
}

TEST(RenderSvgTest, NoStepsIsAValidDocumentSayingSo) {
  const std::string svg = Svg({});
  ExpectWellFormed(svg);
  EXPECT_THAT(svg, HasSubstr("no steps"));
  EXPECT_THAT(svg, Not(HasSubstr("<polyline")));
}

TEST(RenderSvgTest, SingleStepAndConstantLr) {
  for (const std::string& svg :
       {Svg(Evaluate(Sgdr(), 0, 1)), Svg(Evaluate(Constant(), 0, 1)),
        Svg(Evaluate(Constant(), 0, 500))}) {
    ExpectWellFormed(svg);
    EXPECT_THAT(svg, HasSubstr("<polyline class=\"lr\""));
    ExpectInsideCanvas(Points(svg, "lr"));
    ExpectInsideCanvas(Points(svg, "momentum"));
  }
  // A constant lr is a horizontal line.
  const auto flat = Points(Svg(Evaluate(Constant(), 0, 500)), "lr");
  ASSERT_FALSE(flat.empty());
  for (const auto& p : flat) EXPECT_EQ(p.second, flat[0].second);
}

TEST(RenderSvgTest, HugeStepNumbers) {
  const std::string svg = Svg(Evaluate(Sgdr(), kMaxStep - 499, 500));
  ExpectWellFormed(svg);
  const auto lr = Points(svg, "lr");
  EXPECT_EQ(lr.size(), 500u);
  ExpectInsideCanvas(lr);
  // Steps near 2^62 are not doubles; neighbours must still be distinct.
  for (size_t i = 1; i < lr.size(); ++i)
    EXPECT_GT(lr[i].first, lr[i - 1].first);
}

// Not something the engine produces, but a renderer must survive it.
TEST(RenderTest, NonFiniteAndExtremeValuesDoNotCrash) {
  std::vector<StepResult> steps(5);
  for (int i = 0; i < 5; ++i) steps[i].step = i;
  steps[0].lr = NAN;
  steps[1].lr = INFINITY;
  steps[2].lr = 1e308;
  steps[3].lr = -1e308;
  steps[4].lr = 5e-324;
  ExpectWellFormed(Svg(steps));
  EXPECT_EQ(Ascii(steps, 10, 5).plot.size(), 5u);
  steps[2].lr = steps[3].lr = steps[4].lr = NAN;
  const std::string svg = Svg(steps);
  ExpectWellFormed(svg);
  EXPECT_THAT(svg, HasSubstr("no finite lr values"));
  EXPECT_THAT(Ascii(steps, 10, 5).text, HasSubstr("no finite lr values"));
}

TEST(RenderSvgTest, MarksChangesTheCurrentStepAndAReportedMetric) {
  SvgMarks marks;
  marks.changes = {{20, "update"}, {45, "<b>restart</b>"}, {500, "outside"}};
  marks.current = 33;
  marks.reported_name = "val<loss>";
  marks.reported = {{5, 2.0}, {25, 1.5}, {40, 1.25}, {900, 9.0}};
  std::ostringstream out;
  RenderSvg(Evaluate(Sgdr(), 0, 50), "run", marks, out);
  const std::string svg = out.str();
  ExpectWellFormed(svg);
  EXPECT_EQ(Count(svg, "class=\"change\""), 2);  // 500 is off the plot
  EXPECT_THAT(svg, HasSubstr("&lt;b&gt;restart&lt;/b&gt;"));
  EXPECT_THAT(svg, Not(HasSubstr("<b>")));
  EXPECT_EQ(Count(svg, "class=\"current\""), 1);
  EXPECT_EQ(Count(svg, "class=\"reported\""), 1);
  EXPECT_EQ(Count(svg, "class=\"momentum\""), 0);  // the axis is taken
  EXPECT_THAT(svg, HasSubstr("val&lt;loss&gt;"));
  // Three points inside the steps' range, none outside.
  const size_t at = svg.find("class=\"reported\"");
  const std::string line = svg.substr(at, svg.find('\n', at) - at);
  EXPECT_EQ(Count(line, ","), 3);
}

}  // namespace
}  // namespace anneal
