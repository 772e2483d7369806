// The text exposition format (see exposition.h).
#include "anneal/server/telemetry/exporter/exposition.h"

#include <charconv>
#include <cmath>
#include <cstdint>

#include "absl/strings/str_cat.h"

namespace anneal {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricType;

// Label values escape backslash, double quote and newline; HELP text
// backslash and newline.
std::string Escape(const std::string& text, bool quotes) {
  std::string out;
  for (char c : text) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '"' && quotes) {
      out += "\\\"";
    } else {
      out += c;
    }
  }
  return out;
}

void Sample(std::string* out, const std::string& name,
            const std::vector<ClientMetric::Label>& labels,
            const ClientMetric::Label* extra, const std::string& value) {
  absl::StrAppend(out, name);
  if (!labels.empty() || extra != nullptr) {
    out->push_back('{');
    bool first = true;
    auto add = [&](const ClientMetric::Label& l) {
      absl::StrAppend(out, first ? "" : ",", l.name, "=\"",
                      Escape(l.value, true), "\"");
      first = false;
    };
    for (const auto& l : labels) add(l);
    if (extra != nullptr) add(*extra);
    out->push_back('}');
  }
  absl::StrAppend(out, " ", value, "\n");
}

const char* TypeName(MetricType type) {
  switch (type) {
    case MetricType::Counter:
      return "counter";
    case MetricType::Gauge:
      return "gauge";
    case MetricType::Histogram:
      return "histogram";
    case MetricType::Summary:
      return "summary";
    default:
      return "untyped";
  }
}

}  // namespace

std::string ExpositionNumber(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, end);
}

std::string ExpositionText(const std::vector<prometheus::MetricFamily>& fams) {
  std::string out;
  for (const auto& f : fams) {
    absl::StrAppend(&out, "# HELP ", f.name, " ", Escape(f.help, false), "\n",
                    "# TYPE ", f.name, " ", TypeName(f.type), "\n");
    for (const ClientMetric& m : f.metric) {
      switch (f.type) {
        case MetricType::Counter:
          Sample(&out, f.name, m.label, nullptr,
                 ExpositionNumber(m.counter.value));
          break;
        case MetricType::Histogram: {
          for (const auto& b : m.histogram.bucket) {
            const ClientMetric::Label le{"le", ExpositionNumber(b.upper_bound)};
            Sample(&out, f.name + "_bucket", m.label, &le,
                   absl::StrCat(b.cumulative_count));
          }
          Sample(&out, f.name + "_sum", m.label, nullptr,
                 ExpositionNumber(m.histogram.sample_sum));
          Sample(&out, f.name + "_count", m.label, nullptr,
                 absl::StrCat(m.histogram.sample_count));
          break;
        }
        default:
          Sample(&out, f.name, m.label, nullptr,
                 ExpositionNumber(m.gauge.value));
      }
    }
  }
  return out;
}

}  // namespace anneal
