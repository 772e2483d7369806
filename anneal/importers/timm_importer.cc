// --from timm: {"type": "<timm.scheduler class>", "lr": <the optimizer's
// lr>, "params": {<constructor arguments>}}: CosineLRScheduler,
// PolyLRScheduler, TanhLRScheduler, StepLRScheduler, MultiStepLRScheduler
// (timm/scheduler/*.py; docs/schedules.md gives each equivalence).
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/importers/library_importers.h"

namespace anneal {
namespace {

constexpr absl::string_view kKnown =
    "CosineLRScheduler, PolyLRScheduler, TanhLRScheduler, StepLRScheduler, "
    "MultiStepLRScheduler";

// warmup_t, warmup_lr_init, warmup_prefix (scheduler.py's and each
// subclass's ramp: init + t (base - init) / warmup_t).
// warmup_prefix defaults to False for the cycle schedulers and to True for
// StepLRScheduler and MultiStepLRScheduler.
absl::Status Warmup(ConfigMap& params, bool tanh, bool default_prefix,
                    v1::ScheduleSpec& spec) {
  ASSIGN_OR_RETURN(int64_t steps, params.Integer("warmup_t", 0));
  ASSIGN_OR_RETURN(double init, params.Number("warmup_lr_init", 0.0));
  ASSIGN_OR_RETURN(bool prefix, params.Bool("warmup_prefix", default_prefix));
  if (steps < 0) return params.Error("warmup_t", "must be >= 0");
  if (steps == 0) return absl::OkStatus();
  v1::Warmup& w = *spec.mutable_warmup();
  w.set_steps(steps);
  w.set_start_lr(init);
  w.set_overlap(!prefix);
  // TanhLRScheduler's ramp aims at the curve's value where it ends.
  w.set_to_curve(tanh && !prefix);
  return absl::OkStatus();
}

// noise_range_t, noise_pct, noise_type, noise_seed (scheduler.py); timm
// never reads noise_std.
absl::Status Noise(ConfigMap& params, v1::ScheduleSpec& spec) {
  params.Ignore("noise_std");
  ASSIGN_OR_RETURN(double pct, params.Number("noise_pct", 0.67));
  ASSIGN_OR_RETURN(std::string type, params.String("noise_type", "normal"));
  ASSIGN_OR_RETURN(int64_t seed, params.Integer("noise_seed", 42));
  if (!params.Has("noise_range_t")) {
    params.Ignore("noise_range_t");
    return absl::OkStatus();
  }
  v1::LrNoise& noise = *spec.mutable_lr_noise();
  absl::StatusOr<std::vector<int64_t>> range = params.Integers("noise_range_t");
  if (range.ok()) {
    if (range->empty() || range->size() > 2) {
      return params.Error("noise_range_t", "must be a step or [start, end)");
    }
    noise.set_start_step((*range)[0]);
    if (range->size() == 2) noise.set_end_step((*range)[1]);
  } else {
    ASSIGN_OR_RETURN(int64_t start, params.Integer("noise_range_t"));
    noise.set_start_step(start);
  }
  noise.set_pct(pct);
  if (type == "normal") {
    noise.set_type(v1::LrNoise::NORMAL);
  } else {
    noise.set_type(v1::LrNoise::UNIFORM);  // timm: anything else
  }
  noise.set_seed(seed);
  return absl::OkStatus();
}

}  // namespace

absl::Status ImportTimm(ConfigMap& root, ImportResult& out) {
  ASSIGN_OR_RETURN(std::string type, root.String("type"));
  ASSIGN_OR_RETURN(double lr, root.Number("lr"));
  ASSIGN_OR_RETURN(ConfigMap params, root.Map("params"));
  if (absl::Status s = root.Finish("a timm scheduler config (type, lr, "
                                   "params)");
      !s.ok()) {
    return s;
  }
  v1::ScheduleSpec& spec = out.spec;
  spec.set_max_lr(lr);
  // The clock is whatever the job steps: per epoch or per update.
  params.Ignore("t_in_epochs");
  params.Ignore("initialize");
  const bool cosine = type == "CosineLRScheduler";
  const bool poly = type == "PolyLRScheduler";
  const bool tanh = type == "TanhLRScheduler";
  if (cosine || poly || tanh) {
    ASSIGN_OR_RETURN(int64_t t_initial, params.Integer("t_initial"));
    ASSIGN_OR_RETURN(double lr_min, params.Number("lr_min", 0.0));
    ASSIGN_OR_RETURN(double cycle_mul, params.Number("cycle_mul", 1.0));
    ASSIGN_OR_RETURN(double cycle_decay, params.Number("cycle_decay", 1.0));
    ASSIGN_OR_RETURN(int64_t cycle_limit, params.Integer("cycle_limit", 1));
    spec.set_min_lr(lr_min);
    v1::WarmRestarts& wr = *spec.mutable_warm_restarts();
    wr.set_period(t_initial);
    wr.set_period_mult(cycle_mul);
    wr.set_peak_decay(cycle_decay);
    wr.set_cycle_lengths(v1::WarmRestarts::REAL);
    if (cycle_limit < 1) {
      return params.Error("cycle_limit", "must be >= 1");
    }
    wr.set_max_cycles(cycle_limit);
    if (tanh) {
      ASSIGN_OR_RETURN(double lb, params.Number("lb", -7.0));
      ASSIGN_OR_RETURN(double ub, params.Number("ub", 3.0));
      wr.set_shape(v1::WarmRestarts::TANH);
      wr.set_tanh_lower(lb);
      wr.set_tanh_upper(ub);
    } else {
      ASSIGN_OR_RETURN(double k, params.Number("k_decay", 1.0));
      if (k != 1.0) wr.set_k_decay(k);
    }
    if (poly) {
      ASSIGN_OR_RETURN(double power, params.Number("power", 0.5));
      wr.set_shape(v1::WarmRestarts::POLYNOMIAL);
      wr.set_power(power);
    }
  } else if (type == "StepLRScheduler") {
    ASSIGN_OR_RETURN(int64_t decay_t, params.Integer("decay_t"));
    if (decay_t < 1) {
      return params.Error("decay_t",
                          absl::StrCat("must be >= 1, got ", decay_t));
    }
    ASSIGN_OR_RETURN(double rate, params.Number("decay_rate", 1.0));
    spec.mutable_step_decay()->set_step_size(decay_t);
    spec.mutable_step_decay()->set_gamma(rate);
  } else if (type == "MultiStepLRScheduler") {
    ASSIGN_OR_RETURN(std::vector<int64_t> decay_t, params.Integers("decay_t"));
    ASSIGN_OR_RETURN(double rate, params.Number("decay_rate", 1.0));
    // bisect_right over the list as given: it must be sorted already.
    for (size_t i = 1; i < decay_t.size(); ++i) {
      if (decay_t[i] < decay_t[i - 1]) {
        return params.Error("decay_t",
                            "must be non-decreasing (timm bisects "
                            "it)");
      }
    }
    for (int64_t m : decay_t) spec.mutable_step_decay()->add_milestones(m);
    spec.mutable_step_decay()->set_gamma(rate);
  } else if (type == "PlateauLRScheduler") {
    return Unsupported(root, "type",
                       "PlateauLRScheduler; import the equivalent torch "
                       "ReduceLROnPlateau (--from torch)");
  } else {
    return UnknownType(root, "type", type, "timm", kKnown);
  }
  if (absl::Status s = Warmup(params, tanh, !(cosine || poly || tanh), spec);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = Noise(params, spec); !s.ok()) return s;
  return params.Finish(type);
}

}  // namespace anneal
