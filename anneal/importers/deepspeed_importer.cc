// --from deepspeed: a ds_config ({"scheduler": {"type", "params"},
// "optimizer": {"params": {"lr"}}, ...}; nothing else of it is read) or its
// "scheduler" object alone (deepspeed/runtime/lr_schedules.py).
//
// Index convention: DeepSpeed builds the scheduler with
// last_batch_iteration = -1, which sets the LR for the first update from
// f(-1), and the engine steps it after each update, so update u runs at
// f(u - 1), one step behind torch's convention. The imported spec serves
// f(u - 1) at step u: a one-step first phase at f(-1), then the formula.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "anneal/importers/library_importers.h"

namespace anneal {
namespace {

constexpr absl::string_view kKnown = "WarmupLR, WarmupDecayLR";

}  // namespace

absl::Status ImportDeepspeed(ConfigMap& root, ImportResult& out) {
  std::optional<double> optimizer_lr;
  ConfigMap* scheduler = &root;
  std::optional<ConfigMap> nested;
  if (root.Has("scheduler")) {
    // A whole ds_config: its other sections do not shape the LR.
    for (const std::string& key : root.Keys()) root.Ignore(key);
    ASSIGN_OR_RETURN(nested, root.Map("scheduler"));
    scheduler = &*nested;
    ASSIGN_OR_RETURN(ConfigMap optimizer, root.Map("optimizer"));
    ASSIGN_OR_RETURN(ConfigMap optimizer_params, optimizer.Map("params"));
    if (optimizer_params.Has("lr")) {
      ASSIGN_OR_RETURN(optimizer_lr, optimizer_params.Number("lr"));
    }
  }
  ASSIGN_OR_RETURN(std::string type, scheduler->String("type"));
  ASSIGN_OR_RETURN(ConfigMap params, scheduler->Map("params"));
  if (!nested) {
    // The scheduler object alone: "lr" stands for the optimizer's.
    if (scheduler->Has("lr")) {
      ASSIGN_OR_RETURN(optimizer_lr, scheduler->Number("lr"));
    }
    scheduler->Ignore("lr");
  }
  if (absl::Status s = scheduler->Finish("a DeepSpeed scheduler (type, "
                                         "params)");
      !s.ok()) {
    return s;
  }
  if (type == "WarmupCosineLR") {
    return Unsupported(*scheduler, "type",
                       "WarmupCosineLR (its cosine runs on t - W + 1, one "
                       "step ahead of its warmup's clock; anneal has no such "
                       "offset)");
  }
  if (type == "OneCycle") {
    return Unsupported(*scheduler, "type",
                       "DeepSpeed's OneCycle (a linear triangle with stairs "
                       "and a 1/(1 + rate t) decay, not torch's OneCycleLR)");
  }
  if (type == "LRRangeTest") {
    return Unsupported(*scheduler, "type",
                       "LRRangeTest; run annealctl lr-range-test instead");
  }
  const bool decay = type == "WarmupDecayLR";
  if (type != "WarmupLR" && !decay) {
    return UnknownType(*scheduler, "type", type, "DeepSpeed", kKnown);
  }
  ASSIGN_OR_RETURN(int64_t last, params.Integer("last_batch_iteration", -1));
  if (last != -1) {
    return Unsupported(params, "last_batch_iteration",
                       "a resumed scheduler; anneal's step is the job's own");
  }
  ASSIGN_OR_RETURN(double min_lr, params.Number("warmup_min_lr", 0.0));
  double max_lr = 0;
  if (decay) {
    ASSIGN_OR_RETURN(max_lr, params.Number("warmup_max_lr", 0.001));
  } else if (params.Has("warmup_max_lr")) {
    ASSIGN_OR_RETURN(max_lr, params.Number("warmup_max_lr"));
  } else if (optimizer_lr) {
    max_lr = *optimizer_lr;  // WarmupLR's default: the group's lr
    params.Ignore("warmup_max_lr");
  } else {
    return params.Error("warmup_max_lr",
                        "is required here: WarmupLR defaults it to the "
                        "optimizer's lr, which this config does not give "
                        "(optimizer.params.lr)");
  }
  ASSIGN_OR_RETURN(int64_t steps, params.Integer("warmup_num_steps", 1000));
  ASSIGN_OR_RETURN(std::string shape,
                   params.String("warmup_type", std::string("log")));
  if (steps <= 0) {
    return params.Error("warmup_num_steps", "must be a positive integer");
  }
  steps = std::max<int64_t>(2, steps);  // as DeepSpeed does
  v1::Warmup warmup;
  warmup.set_steps(steps);
  warmup.set_start_lr(min_lr);
  if (shape == "log") {
    warmup.set_shape(v1::Warmup::LOG);
  } else if (shape == "linear") {
    warmup.set_shape(v1::Warmup::LINEAR);
  } else {
    // DeepSpeed warns and falls back to log; an importer should not guess.
    return params.Error("warmup_type", absl::StrCat("must be log or linear, "
                                                    "got ",
                                                    shape.substr(0, 40)));
  }
  v1::ScheduleSpec& spec = out.spec;
  spec.set_max_lr(max_lr);
  // Update 0 runs at f(-1): get_lr() returns the min_lrs before the start.
  v1::ScheduleSpec first;
  first.mutable_warmup()->set_steps(1);
  first.mutable_warmup()->set_start_lr(min_lr);
  first.mutable_constant();
  v1::ScheduleSpec rest;
  *rest.mutable_warmup() = warmup;
  if (decay) {
    ASSIGN_OR_RETURN(int64_t total, params.Integer("total_num_steps"));
    if (total <= steps) {
      return Unsupported(params, "total_num_steps",
                         absl::StrCat("a decay that ends inside the warmup "
                                      "(total_num_steps <= warmup_num_steps, ",
                                      steps, ")"));
    }
    if (min_lr > max_lr) {
      return Unsupported(params, "warmup_min_lr",
                         "a decay that rises (warmup_min_lr > warmup_max_lr)");
    }
    spec.set_min_lr(min_lr);
    // gamma = (T - t) / (T - W) from t = W: linear to min_lr over T - W.
    rest.mutable_polynomial_decay()->set_total_steps(total - steps);
  } else {
    rest.mutable_constant();
  }
  AddPhase(spec, 1, std::move(first));
  AddPhase(spec, 0, std::move(rest));
  out.notes.push_back(
      "DeepSpeed's index convention: step u serves DeepSpeed's f(u - 1), as "
      "its engine applies it (the first update runs at warmup_min_lr)");
  return params.Finish(type);
}

}  // namespace anneal
