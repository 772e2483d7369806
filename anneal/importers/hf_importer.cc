// --from hf: the Trainer's scheduler arguments, {"lr_scheduler_type",
// "learning_rate", "num_training_steps" (or "max_steps"), "warmup_steps",
// "warmup_ratio", "lr_scheduler_kwargs", "metric_for_best_model"}
// (transformers/optimization.py and training_args.py; docs/schedules.md gives
// each equivalence).
#include <cmath>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "anneal/importers/library_importers.h"

namespace anneal {
namespace {

constexpr absl::string_view kKnown =
    "linear, cosine, cosine_with_restarts, polynomial, constant, "
    "constant_with_warmup, inverse_sqrt, warmup_stable_decay, "
    "cosine_with_min_lr, reduce_lr_on_plateau";

absl::StatusOr<v1::Wsd::Shape> WsdShape(ConfigMap& kwargs,
                                        absl::string_view key,
                                        absl::string_view fallback) {
  ASSIGN_OR_RETURN(std::string name, kwargs.String(key, std::string(fallback)));
  if (name == "linear") return v1::Wsd::LINEAR;
  if (name == "cosine") return v1::Wsd::COSINE;
  if (name == "1-sqrt") return v1::Wsd::SQRT;
  return kwargs.Error(key, absl::StrCat("must be linear, cosine or 1-sqrt, "
                                        "got ",
                                        name.substr(0, 40)));
}

}  // namespace

absl::Status ImportHf(ConfigMap& root, ImportResult& out) {
  ASSIGN_OR_RETURN(std::string type,
                   root.String("lr_scheduler_type", std::string("linear")));
  // TrainingArguments' default learning_rate.
  ASSIGN_OR_RETURN(double lr, root.Number("learning_rate", 5e-5));
  std::optional<int64_t> total;
  for (const char* key : {"num_training_steps", "max_steps"}) {
    if (!root.Has(key)) {
      root.Ignore(key);
      continue;
    }
    ASSIGN_OR_RETURN(int64_t n, root.Integer(key));
    if (total && *total != n) {
      return root.Error(key, "disagrees with num_training_steps");
    }
    total = n;
  }
  ASSIGN_OR_RETURN(int64_t warmup, root.Integer("warmup_steps", 0));
  ASSIGN_OR_RETURN(double ratio, root.Number("warmup_ratio", 0.0));
  ASSIGN_OR_RETURN(ConfigMap kwargs, root.Map("lr_scheduler_kwargs"));
  ASSIGN_OR_RETURN(std::string best,
                   root.String("metric_for_best_model", std::string("loss")));
  if (absl::Status s = root.Finish("the Trainer's scheduler arguments");
      !s.ok()) {
    return s;
  }
  if (warmup < 0) return root.Error("warmup_steps", "must be >= 0");
  if (ratio < 0 || ratio > 1) {
    return root.Error("warmup_ratio", "must be in [0, 1]");
  }
  const bool needs_total =
      type != "constant" && type != "constant_with_warmup" &&
      type != "inverse_sqrt" && type != "reduce_lr_on_plateau";
  if (needs_total && !total) {
    return root.Error("num_training_steps",
                      absl::StrCat("is required for ", type));
  }
  // TrainingArguments.get_warmup_steps.
  if (warmup == 0 && ratio > 0 && total) {
    warmup = static_cast<int64_t>(std::ceil(*total * ratio));
  }
  v1::ScheduleSpec& spec = out.spec;
  spec.set_max_lr(lr);
  if (warmup > 0 && type != "constant" && type != "warmup_stable_decay" &&
      type != "reduce_lr_on_plateau") {
    spec.mutable_warmup()->set_steps(warmup);  // step / max(1, W), from 0
  }
  const int64_t after_warmup = total ? *total - warmup : 0;
  if (needs_total && type != "warmup_stable_decay" && after_warmup < 1) {
    return root.Error("warmup_steps",
                      absl::StrCat("must be below num_training_steps (", *total,
                                   "), got ", warmup));
  }
  if (type == "linear") {
    spec.mutable_polynomial_decay()->set_total_steps(after_warmup);
  } else if (type == "cosine" || type == "cosine_with_min_lr") {
    ASSIGN_OR_RETURN(double cycles, kwargs.Number("num_cycles", 0.5));
    spec.mutable_cosine()->set_period(after_warmup);
    if (cycles != 0.5) spec.mutable_cosine()->set_waves(cycles);
    if (type == "cosine_with_min_lr") {
      if (kwargs.Has("min_lr") == kwargs.Has("min_lr_rate")) {
        return kwargs.Error("min_lr",
                            "exactly one of min_lr and "
                            "min_lr_rate is required");
      }
      ASSIGN_OR_RETURN(double min_lr, kwargs.Number("min_lr", -1.0));
      ASSIGN_OR_RETURN(double rate, kwargs.Number("min_lr_rate", -1.0));
      spec.set_min_lr(min_lr >= 0 ? min_lr : rate * lr);
    }
    out.notes.push_back(absl::StrCat(
        type, ": after num_training_steps (", *total,
        ") anneal holds the value reached there; HF's cosine keeps waving"));
  } else if (type == "cosine_with_restarts") {
    ASSIGN_OR_RETURN(double cycles, kwargs.Number("num_cycles", 1.0));
    spec.mutable_cosine()->set_period(after_warmup);
    spec.mutable_cosine()->set_restart_cycles(cycles);
  } else if (type == "polynomial") {
    ASSIGN_OR_RETURN(double lr_end, kwargs.Number("lr_end", 1e-7));
    ASSIGN_OR_RETURN(double power, kwargs.Number("power", 1.0));
    if (!(lr > lr_end)) {
      return kwargs.Error("lr_end", "must be below learning_rate (HF raises)");
    }
    spec.set_min_lr(lr_end);
    spec.mutable_polynomial_decay()->set_total_steps(after_warmup);
    spec.mutable_polynomial_decay()->set_power(power);
  } else if (type == "constant" || type == "constant_with_warmup") {
    spec.mutable_constant();
  } else if (type == "inverse_sqrt") {
    ASSIGN_OR_RETURN(int64_t timescale,
                     kwargs.Integer("timescale", warmup > 0 ? warmup : 10000));
    spec.mutable_inverse_time_decay()->set_t0(static_cast<double>(timescale));
    spec.mutable_inverse_time_decay()->set_power(0.5);
  } else if (type == "warmup_stable_decay") {
    ASSIGN_OR_RETURN(int64_t decay, kwargs.Integer("num_decay_steps"));
    std::optional<int64_t> stable;
    if (kwargs.Has("num_stable_steps")) {
      ASSIGN_OR_RETURN(stable, kwargs.Integer("num_stable_steps"));
    } else if (total) {
      stable = *total - warmup - decay;  // get_wsd_schedule's default
    } else {
      return kwargs.Error("num_stable_steps",
                          "is required without num_training_steps");
    }
    ASSIGN_OR_RETURN(v1::Wsd::Shape warmup_shape,
                     WsdShape(kwargs, "warmup_type", "linear"));
    ASSIGN_OR_RETURN(v1::Wsd::Shape decay_shape,
                     WsdShape(kwargs, "decay_type", "cosine"));
    ASSIGN_OR_RETURN(double min_ratio, kwargs.Number("min_lr_ratio", 0.0));
    v1::Wsd& wsd = *spec.mutable_wsd();
    wsd.set_warmup_steps(warmup);
    wsd.set_stable_steps(*stable);
    wsd.set_decay_steps(decay);
    wsd.set_warmup_shape(warmup_shape);
    wsd.set_decay_shape(decay_shape);
    spec.set_min_lr(min_ratio * lr);
    if (kwargs.Has("num_cycles")) {
      ASSIGN_OR_RETURN(double cycles, kwargs.Number("num_cycles"));
      if (decay_shape == v1::Wsd::COSINE) wsd.set_num_cycles(cycles);
    }
  } else if (type == "reduce_lr_on_plateau") {
    // Trainer._maybe_log_save_evaluate steps it with the eval metric.
    std::string metric =
        absl::StartsWith(best, "eval_") ? best : absl::StrCat("eval_", best);
    spec.clear_max_lr();
    if (absl::Status s = ImportTorchScheduler("ReduceLROnPlateau", lr, kwargs,
                                              metric, root, out);
        !s.ok()) {
      return s;
    }
    return absl::OkStatus();  // ImportTorchScheduler finished kwargs
  } else {
    return UnknownType(root, "lr_scheduler_type", type, "Hugging Face", kKnown);
  }
  return kwargs.Finish(type);
}

}  // namespace anneal
