// annealctl analyze: Robbins-Monro and stability analysis of a spec file.
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/engine/analysis.h"
#include "anneal/engine/schedule.h"
#include "google/protobuf/util/json_util.h"

namespace anneal {
namespace {

const char* YesNo(bool v) { return v ? "yes" : "no"; }

void PrintHuman(const v1::Analysis& a, std::ostream& out) {
  const v1::RobbinsMonro& rm = a.robbins_monro();
  out << absl::StrFormat(
      "horizon            %d steps (peak lr %.6g, final lr %.6g, %d restarts, "
      "%d snapshots)\n",
      a.horizon(), a.peak_lr(), a.final_lr(), a.restarts(), a.snapshots());
  if (a.batch_size() != 0) {
    out << absl::StrFormat(
        "batch size         %d (the LRs served under batch_scaling)\n",
        a.batch_size());
  }
  out << "robbins-monro      " << (rm.satisfied() ? "satisfied" : "violated")
      << "\n";
  out << "  sum lr = inf     " << YesNo(rm.sum_diverges()) << "\n";
  out << "  sum lr^2 < inf   " << YesNo(rm.sum_squares_converges()) << "\n";
  out << "  why              " << rm.reason() << "\n";
  out << absl::StrFormat("  over horizon     sum lr = %.6g, sum lr^2 = %.6g\n",
                         rm.horizon_sum(), rm.horizon_sum_squares());
  if (a.has_stability()) {
    const v1::Stability& st = a.stability();
    out << absl::StrFormat(
        "stability          %s (critical max_lr %.6g = %.4f / L, L = %.6g)\n",
        st.stable() ? "stable" : "UNSTABLE", st.critical_max_lr(),
        st.critical_max_lr_times_curvature(), st.max_curvature());
    out << absl::StrFormat(
        "  bounded          %s (|x| stays below its cycle-start value up to "
        "max_lr %.6g = %.4f / L)\n",
        YesNo(st.bounded()), st.bounded_max_lr(),
        st.bounded_max_lr_times_curvature());
    if (st.max_log_growth() == 0) {
      out << "  growth in cycle  none: |x| never exceeds its cycle-start "
             "value\n";
    } else if (std::isinf(st.max_log_growth())) {
      out << absl::StrFormat(
          "  growth in cycle  unbounded: the settled tail (from step %d) "
          "grows |x| at every step\n",
          st.max_growth_step());
    } else {
      out << absl::StrFormat(
          "  growth in cycle  |x| up to e^%.4g times its cycle-start value "
          "(at step %d)\n",
          st.max_log_growth(), st.max_growth_step());
    }
    out << absl::StrFormat("  judged           %d complete cycle%s%s\n",
                           st.cycles_checked(),
                           st.cycles_checked() == 1 ? "" : "s",
                           st.tail_checked() ? " and the settled tail" : "");
    out << "  rule             " << st.rule() << "\n";
  }
}

}  // namespace

absl::Status AnalyzeCommand(const std::vector<std::string>& args,
                            std::ostream& out) {
  auto parsed = CliArgs::Parse(
      args, {"file", "horizon", "max_curvature", "batch_size", "output"},
      {{"f", "file"}, {"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto file = a.Require("file");
  if (!file.ok()) return file.status();
  AnalysisOptions options;
  auto horizon = a.GetInt("horizon", 0);
  if (!horizon.ok()) return horizon.status();
  if (a.Has("horizon") && *horizon < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--horizon: must be >= 1, got ", *horizon));
  }
  options.horizon = *horizon;
  auto curvature = a.GetDouble("max_curvature");
  if (!curvature.ok()) return curvature.status();
  options.max_curvature = *curvature;
  if (a.Has("batch_size")) {
    auto batch = a.GetInt("batch_size", 0);
    if (!batch.ok()) return batch.status();
    options.batch_size = *batch;
  }
  const std::string output = a.Get("output", "text");
  if (output != "text" && output != "json") {
    return absl::InvalidArgumentError(
        absl::StrCat("-o: must be text or json, got ", output));
  }

  auto spec = LoadSpecArg(a);
  if (!spec.ok()) return spec.status();
  auto schedule = Schedule::Compile(*spec);
  if (!schedule.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(*file, ": ", schedule.status().message()));
  }
  if (auto s = BatchSizeApplies(a, *spec, *file); !s.ok()) return s;
  auto analysis = Analyze(**schedule, options);
  if (!analysis.ok()) return analysis.status();
  if (output == "json") {
    google::protobuf::util::JsonPrintOptions json_options;
    json_options.preserve_proto_field_names = true;
    json_options.always_print_primitive_fields = true;
    json_options.add_whitespace = true;
    std::string json;
    google::protobuf::util::MessageToJsonString(*analysis, &json, json_options);
    out << json;
  } else {
    PrintHuman(*analysis, out);
  }
  return absl::OkStatus();
}

}  // namespace anneal
