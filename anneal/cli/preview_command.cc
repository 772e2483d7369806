// annealctl preview: evaluate a spec file, or a schedule's whole timeline,
// offline, and print or plot it. With --timeline FILE (a Schedule as JSON,
// as `annealctl get -o json` prints it) the steps are the model's Timeline
// (anneal/model/timeline.h), exactly what the server serves for that
// timeline: the Python client's offline fallback runs this.
#include "absl/strings/str_cat.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/engine/schedule.h"
#include "anneal/model/timeline.h"
#include "anneal/render/render.h"

namespace anneal {
namespace {

constexpr int64_t kMaxPreviewSteps = 1'000'000;

}  // namespace

absl::Status PreviewCommand(const std::vector<std::string>& args,
                            std::ostream& out) {
  auto parsed =
      CliArgs::Parse(args,
                     {"file", "timeline", "steps", "start", "batch_size",
                      "grad_norm_sq", "num_params", "output"},
                     {{"f", "file"}, {"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  if (a.Has("file") == a.Has("timeline")) {
    return absl::InvalidArgumentError(
        "give exactly one of -f SPEC and --timeline SCHEDULE_JSON");
  }
  const std::string source = a.Get(a.Has("file") ? "file" : "timeline", "");
  auto steps = a.GetInt("steps", -1);
  if (!steps.ok()) return steps.status();
  if (*steps < 1 || *steps > kMaxPreviewSteps) {
    return absl::InvalidArgumentError(absl::StrCat("--steps: must be in [1, ",
                                                   kMaxPreviewSteps, "], got ",
                                                   a.Get("steps", "nothing")));
  }
  auto start = a.GetInt("start", 0);
  if (!start.ok()) return start.status();
  const std::string format = a.Get("output", "csv");
  if (auto s = CheckFormat(format); !s.ok()) return s;
  StepQuery options;
  if (a.Has("batch_size")) {
    auto batch = a.GetInt("batch_size", 0);
    if (!batch.ok()) return batch.status();
    options.batch_size = *batch;
  }
  // The thermostat's inputs, the same for every step previewed (a job sends
  // its own |g|^2 each step); both or neither, as Evaluate needs both.
  if (a.Has("grad_norm_sq") != a.Has("num_params")) {
    return absl::InvalidArgumentError(
        "give both --grad-norm-sq and --num-params (the thermostat needs "
        "both), or neither");
  }
  if (a.Has("grad_norm_sq")) {
    auto g = a.GetDouble("grad_norm_sq");
    if (!g.ok()) return g.status();
    options.grad_norm_sq = **g;
    auto d = a.GetInt("num_params", 0);
    if (!d.ok()) return d.status();
    options.num_params = *d;
  }

  std::vector<StepResult> results;
  results.reserve(static_cast<size_t>(*steps));
  auto keep = [&](const StepResult& r) { results.push_back(r); };
  absl::Status status;
  if (a.Has("file")) {
    auto spec = LoadSpecArg(a);
    if (!spec.ok()) return spec.status();
    auto schedule = Schedule::Compile(*spec);
    if (!schedule.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", schedule.status().message()));
    }
    if (options.grad_norm_sq.has_value() && !spec->has_thermostat()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--grad-norm-sq: ", source,
          " has no thermostat, so no noise_std is served; add thermostat "
          "{target_update_norm_sq: K} or leave out --grad-norm-sq and "
          "--num-params"));
    }
    if (auto s = BatchSizeApplies(a, *spec, source); !s.ok()) return s;
    status = (*schedule)->EvaluateRange(*start, *steps, options, keep);
  } else {
    v1::Schedule schedule;
    if (auto s = LoadMessageFile(source, &schedule); !s.ok()) return s;
    auto timeline = Timeline::Build(schedule.timeline());
    if (!timeline.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(source, ": ", timeline.status().message()));
    }
    status = (*timeline)->EvaluateRange(*start, *steps, options, keep);
  }
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        status.message(), " (from --start ", *start, " --steps ", *steps, ")"));
  }

  return RenderSteps(results, format, source, out);
}

}  // namespace anneal
