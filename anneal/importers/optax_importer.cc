// --from optax: {"type": "<optax schedule function>", "params": {<keyword
// arguments>}} (optax/schedules/_schedule.py and _join.py; docs/schedules.md
// gives each equivalence).
#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"
#include "anneal/importers/library_importers.h"

namespace anneal {
namespace {

constexpr absl::string_view kKnown =
    "constant_schedule, linear_schedule, polynomial_schedule, "
    "cosine_decay_schedule, warmup_cosine_decay_schedule, exponential_decay, "
    "piecewise_constant_schedule, sgdr_schedule";

// init -> end over `steps` as (1 - t/T)^power: a decay, or a rise when
// end > init (optax's polynomial_schedule and linear_schedule).
absl::Status Polynomial(ConfigMap& params, double init, double end,
                        double power, int64_t steps, v1::ScheduleSpec& spec) {
  if (steps <= 0) {
    return params.Error("transition_steps",
                        "must be >= 1 (optax then holds init_value)");
  }
  if (init == end) {
    spec = ConstantAt(init);
    return absl::OkStatus();
  }
  v1::PolynomialDecay& poly = *spec.mutable_polynomial_decay();
  spec.set_max_lr(std::max(init, end));
  spec.set_min_lr(std::min(init, end));
  poly.set_total_steps(steps);
  poly.set_power(power);
  poly.set_rise(end > init);
  return absl::OkStatus();
}

// transition_begin: init_value is held for that many steps first.
absl::Status Begin(ConfigMap& params, double init, v1::ScheduleSpec& spec) {
  ASSIGN_OR_RETURN(int64_t begin, params.Integer("transition_begin", 0));
  if (begin < 0) return params.Error("transition_begin", "must be >= 0");
  if (begin == 0) return absl::OkStatus();
  if (init <= 0) {
    return Unsupported(params, "transition_begin",
                       "a hold at init_value 0 (anneal's levels are > 0)");
  }
  v1::ScheduleSpec curve = std::move(spec);
  spec = v1::ScheduleSpec();
  AddPhase(spec, begin, ConstantAt(init));
  AddPhase(spec, 0, std::move(curve));
  return absl::OkStatus();
}

absl::Status WarmupCosine(ConfigMap& params, v1::ScheduleSpec& spec) {
  ASSIGN_OR_RETURN(double init, params.Number("init_value"));
  ASSIGN_OR_RETURN(double peak, params.Number("peak_value"));
  ASSIGN_OR_RETURN(int64_t warmup, params.Integer("warmup_steps"));
  ASSIGN_OR_RETURN(int64_t decay, params.Integer("decay_steps"));
  ASSIGN_OR_RETURN(double end, params.Number("end_value", 0.0));
  ASSIGN_OR_RETURN(double exponent, params.Number("exponent", 1.0));
  if (decay <= warmup) {
    return params.Error("decay_steps",
                        absl::StrCat("must be above warmup_steps (", warmup,
                                     "): it counts the warmup, got ", decay));
  }
  spec.set_max_lr(peak);
  spec.set_min_lr(end);
  if (warmup > 0) {
    spec.mutable_warmup()->set_steps(warmup);
    spec.mutable_warmup()->set_start_lr(init);
  }
  spec.mutable_cosine()->set_period(decay - warmup);
  if (exponent != 1.0) spec.mutable_cosine()->set_exponent(exponent);
  return absl::OkStatus();
}

}  // namespace

absl::Status ImportOptax(ConfigMap& root, ImportResult& out) {
  ASSIGN_OR_RETURN(std::string type, root.String("type"));
  ASSIGN_OR_RETURN(ConfigMap params, root.Map("params"));
  if (absl::Status s = root.Finish("an optax schedule config (type, params)");
      !s.ok()) {
    return s;
  }
  v1::ScheduleSpec& spec = out.spec;
  if (type == "constant_schedule") {
    ASSIGN_OR_RETURN(double value, params.Number("value"));
    spec = ConstantAt(value);
  } else if (type == "linear_schedule" || type == "polynomial_schedule") {
    ASSIGN_OR_RETURN(double init, params.Number("init_value"));
    ASSIGN_OR_RETURN(double end, params.Number("end_value"));
    double power = 1.0;
    if (type == "polynomial_schedule") {
      ASSIGN_OR_RETURN(power, params.Number("power"));
    }
    ASSIGN_OR_RETURN(int64_t steps, params.Integer("transition_steps"));
    if (auto s = Polynomial(params, init, end, power, steps, spec); !s.ok()) {
      return s;
    }
    if (auto s = Begin(params, init, spec); !s.ok()) return s;
  } else if (type == "cosine_decay_schedule") {
    ASSIGN_OR_RETURN(double init, params.Number("init_value"));
    ASSIGN_OR_RETURN(int64_t decay, params.Integer("decay_steps"));
    ASSIGN_OR_RETURN(double alpha, params.Number("alpha", 0.0));
    ASSIGN_OR_RETURN(double exponent, params.Number("exponent", 1.0));
    spec.set_max_lr(init);
    spec.set_min_lr(alpha * init);
    spec.mutable_cosine()->set_period(decay);
    if (exponent != 1.0) spec.mutable_cosine()->set_exponent(exponent);
  } else if (type == "warmup_cosine_decay_schedule") {
    if (auto s = WarmupCosine(params, spec); !s.ok()) return s;
  } else if (type == "exponential_decay") {
    ASSIGN_OR_RETURN(double init, params.Number("init_value"));
    ASSIGN_OR_RETURN(int64_t steps, params.Integer("transition_steps"));
    ASSIGN_OR_RETURN(double rate, params.Number("decay_rate"));
    ASSIGN_OR_RETURN(bool staircase, params.Bool("staircase", false));
    if (steps <= 0) {
      return params.Error("transition_steps",
                          "must be >= 1 (optax then holds init_value)");
    }
    v1::ExponentialDecay& e = *spec.mutable_exponential_decay();
    e.set_gamma(rate);
    e.set_transition_steps(steps);
    e.set_staircase(staircase);
    if (rate > 1) {
      if (!params.Has("end_value")) {
        return Unsupported(params, "decay_rate",
                           "growth without bound (decay_rate > 1 needs "
                           "end_value as its cap)");
      }
      ASSIGN_OR_RETURN(double end, params.Number("end_value"));
      spec.set_max_lr(end);
      e.set_start_lr(init);
    } else {
      ASSIGN_OR_RETURN(double end, params.Number("end_value", 0.0));
      spec.set_max_lr(init);
      spec.set_min_lr(end);
    }
    if (auto s = Begin(params, init, spec); !s.ok()) return s;
  } else if (type == "piecewise_constant_schedule") {
    ASSIGN_OR_RETURN(double init, params.Number("init_value"));
    ASSIGN_OR_RETURN(ConfigMap scales, params.Map("boundaries_and_scales"));
    // JSON keys are the boundaries, in any order; optax sorts them.
    std::vector<std::pair<int64_t, double>> steps;
    for (const std::string& key : scales.Keys()) {
      int64_t boundary = 0;
      if (!absl::SimpleAtoi(key, &boundary) || boundary < 0) {
        return scales.Error(key, "must be a boundary step (an integer >= 0)");
      }
      ASSIGN_OR_RETURN(double scale, scales.Number(key));
      steps.emplace_back(boundary, scale);
    }
    std::sort(steps.begin(), steps.end());
    double value = init;
    int64_t begin = 0;
    for (const auto& [boundary, scale] : steps) {
      if (boundary > begin) {
        AddPhase(spec, boundary - begin, ConstantAt(value));
        begin = boundary;
      }
      value *= scale;
      if (!(value > 0)) {
        return Unsupported(scales, absl::StrCat(boundary),
                           "an LR of 0 or below (anneal's levels are > 0)");
      }
    }
    if (begin == 0) {
      spec = ConstantAt(value);
    } else {
      AddPhase(spec, 0, ConstantAt(value));
    }
  } else if (type == "sgdr_schedule") {
    ASSIGN_OR_RETURN(std::vector<ConfigMap> cycles,
                     params.Maps("cosine_kwargs"));
    if (cycles.empty()) {
      return params.Error("cosine_kwargs", "must hold at least one cycle");
    }
    for (size_t i = 0; i < cycles.size(); ++i) {
      v1::ScheduleSpec cycle;
      if (auto s = WarmupCosine(cycles[i], cycle); !s.ok()) return s;
      if (auto s = cycles[i].Finish("warmup_cosine_decay_schedule"); !s.ok()) {
        return s;
      }
      ASSIGN_OR_RETURN(int64_t length, cycles[i].Integer("decay_steps"));
      // join_schedules: each runs on its own clock from its boundary; the
      // last holds its end_value.
      AddPhase(spec, i + 1 < cycles.size() ? length : 0, std::move(cycle),
               /*restart=*/i > 0);
    }
  } else if (type == "join_schedules") {
    return Unsupported(root, "type",
                       "join_schedules of Python functions; write a "
                       "sequence spec (docs/schedules.md)");
  } else {
    return UnknownType(root, "type", type, "optax", kKnown);
  }
  return params.Finish(type);
}

}  // namespace anneal
