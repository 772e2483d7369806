// annealctl lr: the LRs a stored schedule serves for a range of steps
// (EvaluateRange), rendered exactly as preview renders a spec file: the
// packed range is unpacked into StepResult values (anneal/model/step_range.h)
// and handed to the same CSV / JSON / ASCII / SVG renderers. It asks with
// inspect_only, so looking does not raise max_step_served.
#include "absl/strings/str_cat.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/server_connection.h"
#include "anneal/model/step_range.h"
#include "anneal/render/render.h"

namespace anneal {
namespace {

constexpr int64_t kMaxLrSteps = 1'000'000;  // as preview

}  // namespace

absl::Status LrCommand(const std::vector<std::string>& args,
                       std::ostream& out) {
  auto parsed =
      CliArgs::Parse(args, {"server", "start", "count", "batch_size", "output"},
                     {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto name = ScheduleNameArg(a);
  if (!name.ok()) return name.status();
  auto count = a.GetInt("count", -1);
  if (!count.ok()) return count.status();
  if (*count < 1 || *count > kMaxLrSteps) {
    return absl::InvalidArgumentError(absl::StrCat("--count: must be in [1, ",
                                                   kMaxLrSteps, "], got ",
                                                   a.Get("count", "nothing")));
  }
  auto start = a.GetInt("start", 0);
  if (!start.ok()) return start.status();
  const std::string format = a.Get("output", "csv");
  if (auto s = CheckFormat(format); !s.ok()) return s;

  v1::EvaluateRangeRequest range_request;
  range_request.set_name(*name);
  range_request.set_start_step(*start);
  range_request.set_count(*count);
  range_request.set_inspect_only(true);
  if (a.Has("batch_size")) {
    auto batch = a.GetInt("batch_size", 0);
    if (!batch.ok()) return batch.status();
    range_request.set_batch_size(*batch);
  }
  ServerConnection server(ResolveServerAddress(a.Get("server", "")));
  v1::EvaluateRangeResponse range;
  grpc::Status status = server.stub()->EvaluateRange(
      server.Context(kRangeCallTimeout).get(), range_request, &range);
  if (!status.ok()) return server.Failure(status, kRangeCallTimeout);
  auto results = UnpackStepRange(range.range());
  if (!results.ok()) return results.status();

  return RenderSteps(*results, format, *name, out);
}

}  // namespace anneal
