// The exposition text: numbers read back exactly, labels and help escaped,
// histograms as _bucket/_sum/_count with le last.
#include "anneal/server/telemetry/exporter/exposition.h"

#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/numbers.h"
#include "gtest/gtest.h"

namespace anneal {
namespace {

TEST(ExpositionTest, NumbersReadBackAsTheSameDouble) {
  for (double v : {0.0014863105464920626, 0.1, 1e-300, 123456789.125,
                   std::nextafter(0.1, 1.0), -2.5}) {
    double back = 0;
    ASSERT_TRUE(absl::SimpleAtod(ExpositionNumber(v), &back));
    EXPECT_EQ(back, v) << ExpositionNumber(v);
  }
  EXPECT_EQ(ExpositionNumber(std::numeric_limits<double>::infinity()), "+Inf");
  EXPECT_EQ(ExpositionNumber(-std::numeric_limits<double>::infinity()), "-Inf");
  EXPECT_EQ(ExpositionNumber(std::nan("")), "NaN");
  EXPECT_EQ(ExpositionNumber(3), "3");
}

TEST(ExpositionTest, FamiliesWithEscapedLabelsAndHistograms) {
  prometheus::MetricFamily g;
  g.name = "x";
  g.help = "a \\ help\nline";
  g.type = prometheus::MetricType::Gauge;
  prometheus::ClientMetric m;
  m.label = {{"schedule", "a\"b\\c\nd"}};
  m.gauge.value = 0.5;
  g.metric.push_back(m);
  prometheus::MetricFamily h;
  h.name = "h";
  h.help = "h";
  h.type = prometheus::MetricType::Histogram;
  prometheus::ClientMetric hm;
  hm.label = {{"m", "E"}};
  hm.histogram.bucket = {{1, 0.5},
                         {3, std::numeric_limits<double>::infinity()}};
  hm.histogram.sample_count = 3;
  hm.histogram.sample_sum = 2.25;
  h.metric.push_back(hm);
  EXPECT_EQ(ExpositionText({g, h}),
            "# HELP x a \\\\ help\\nline\n"
            "# TYPE x gauge\n"
            "x{schedule=\"a\\\"b\\\\c\\nd\"} 0.5\n"
            "# HELP h h\n"
            "# TYPE h histogram\n"
            "h_bucket{m=\"E\",le=\"0.5\"} 1\n"
            "h_bucket{m=\"E\",le=\"+Inf\"} 3\n"
            "h_sum{m=\"E\"} 2.25\n"
            "h_count{m=\"E\"} 3\n");
}

}  // namespace
}  // namespace anneal
