// CSV and JSON renderers, and the format dispatch (see render.h).
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "anneal/render/render.h"
#include "google/protobuf/util/json_util.h"

namespace anneal {
namespace {

std::string Exact(double v) { return absl::StrFormat("%.17g", v); }

}  // namespace

void RenderCsv(const std::vector<StepResult>& steps, std::ostream& out) {
  // The thermostat column only when the range was evaluated with its inputs,
  // so the usual header (which the Python fallback reads) stays as it was.
  const bool noise = std::any_of(steps.begin(), steps.end(),
                                 [](const auto& r) { return r.has_noise_std; });
  out << "step,lr,momentum,beta1_bias_correction,cycle,step_in_cycle,"
         "cycle_length,phase,restart,snapshot"
      << (noise ? ",noise_std\n" : "\n");
  for (const StepResult& r : steps) {
    out << r.step << ',' << Exact(r.lr) << ',';
    if (r.has_momentum) {
      out << Exact(r.momentum) << ',' << Exact(r.beta1_bias_correction);
    } else {
      out << ',';
    }
    out << ',' << r.cycle << ',' << r.step_in_cycle << ',' << r.cycle_length
        << ',' << v1::Phase_Name(r.phase) << ',' << (r.restart ? 1 : 0) << ','
        << (r.snapshot ? 1 : 0);
    if (noise) {
      out << ',';
      if (r.has_noise_std) out << Exact(r.noise_std);
    }
    out << '\n';
  }
}

void RenderJson(const std::vector<StepResult>& steps, std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  out << "[";
  v1::StepResult proto;
  std::string json;
  for (size_t i = 0; i < steps.size(); ++i) {
    ToProto(steps[i], &proto);
    json.clear();
    google::protobuf::util::MessageToJsonString(proto, &json, options);
    out << (i == 0 ? "\n  " : ",\n  ") << json;
  }
  out << "\n]\n";
}

absl::Status CheckFormat(const std::string& format) {
  if (format == "csv" || format == "json" || format == "ascii" ||
      format == "svg") {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--output: must be csv, json, ascii or svg, got ", format));
}

absl::Status RenderSteps(const std::vector<StepResult>& steps,
                         const std::string& format, const std::string& title,
                         std::ostream& out) {
  if (auto s = CheckFormat(format); !s.ok()) return s;
  if (format == "csv") RenderCsv(steps, out);
  if (format == "json") RenderJson(steps, out);
  if (format == "ascii") RenderAscii(steps, 72, 18, out);
  if (format == "svg") RenderSvg(steps, title, out);
  return absl::OkStatus();
}

}  // namespace anneal
