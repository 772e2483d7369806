// annealctl preview: evaluate a spec file offline and print or plot it.
#include "absl/strings/str_cat.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/render/render.h"
#include "anneal/engine/schedule.h"

namespace anneal {
namespace {

constexpr int64_t kMaxPreviewSteps = 1'000'000;

}  // namespace

absl::Status PreviewCommand(const std::vector<std::string>& args,
                            std::ostream& out) {
  auto parsed = CliArgs::Parse(
      args, {"file", "steps", "start", "batch_size", "output"},
      {{"f", "file"}, {"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto file = a.Require("file");
  if (!file.ok()) return file.status();
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

  auto spec = LoadSpecArg(a);
  if (!spec.ok()) return spec.status();
  auto schedule = Schedule::Compile(*spec);
  if (!schedule.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(*file, ": ", schedule.status().message()));
  }
  std::vector<StepResult> results;
  results.reserve(static_cast<size_t>(*steps));
  auto status = (*schedule)->EvaluateRange(
      *start, *steps, options,
      [&](const StepResult& r) { results.push_back(r); });
  if (!status.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        status.message(), " (from --start ", *start, " --steps ", *steps, ")"));
  }

  return RenderSteps(results, format, *file, out);
}

}  // namespace anneal
