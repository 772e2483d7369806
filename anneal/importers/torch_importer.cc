// --from torch: {"type": "<torch.optim.lr_scheduler class>", "lr": <the
// optimizer's lr>, "params": {<constructor arguments>}} (docs/schedules.md
// gives each equivalence; tests/python/test_importers.py checks them against
// torch's own schedulers).
#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"
#include "anneal/importers/library_importers.h"

namespace anneal {
namespace {

constexpr absl::string_view kKnown =
    "StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, "
    "CosineAnnealingWarmRestarts, CyclicLR, OneCycleLR, LinearLR, ConstantLR, "
    "PolynomialLR, ReduceLROnPlateau, SequentialLR";

// Arguments of every torch scheduler that do not change the LRs.
absl::Status CommonArgs(ConfigMap& params) {
  params.Ignore("verbose");
  absl::StatusOr<int64_t> last_epoch = params.Integer("last_epoch", -1);
  if (!last_epoch.ok()) return last_epoch.status();
  if (*last_epoch != -1) {
    return Unsupported(params, "last_epoch",
                       "a resumed scheduler; anneal's step is the job's own "
                       "(drop last_epoch)");
  }
  return absl::OkStatus();
}

absl::Status Momentum(ConfigMap& params, double base, double max,
                      v1::ScheduleSpec& spec) {
  ASSIGN_OR_RETURN(bool cycle, params.Bool("cycle_momentum", true));
  ASSIGN_OR_RETURN(double b, params.Number("base_momentum", base));
  ASSIGN_OR_RETURN(double m, params.Number("max_momentum", max));
  if (cycle) {
    spec.mutable_momentum()->set_base(b);
    spec.mutable_momentum()->set_max(m);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ImportTorchScheduler(absl::string_view type, double lr,
                                  ConfigMap& params, absl::string_view metric,
                                  const ConfigMap& root, ImportResult& out) {
  v1::ScheduleSpec& spec = out.spec;
  if (absl::Status s = CommonArgs(params); !s.ok()) return s;
  if (type != "CyclicLR" && type != "OneCycleLR") spec.set_max_lr(lr);
  if (type == "StepLR") {
    ASSIGN_OR_RETURN(int64_t step_size, params.Integer("step_size"));
    if (step_size < 1) {
      return params.Error("step_size",
                          absl::StrCat("must be >= 1, got ", step_size));
    }
    ASSIGN_OR_RETURN(double gamma, params.Number("gamma", 0.1));
    spec.mutable_step_decay()->set_step_size(step_size);
    spec.mutable_step_decay()->set_gamma(gamma);
  } else if (type == "MultiStepLR") {
    ASSIGN_OR_RETURN(std::vector<int64_t> milestones,
                     params.Integers("milestones"));
    ASSIGN_OR_RETURN(double gamma, params.Number("gamma", 0.1));
    // torch counts milestones in a Counter, so their order does not matter.
    std::sort(milestones.begin(), milestones.end());
    for (int64_t m : milestones) spec.mutable_step_decay()->add_milestones(m);
    spec.mutable_step_decay()->set_gamma(gamma);
  } else if (type == "ExponentialLR") {
    ASSIGN_OR_RETURN(double gamma, params.Number("gamma"));
    if (gamma > 1) {
      return Unsupported(params, "gamma",
                         "an LR that grows without bound (gamma > 1)");
    }
    spec.mutable_exponential_decay()->set_gamma(gamma);
  } else if (type == "CosineAnnealingLR") {
    ASSIGN_OR_RETURN(int64_t t_max, params.Integer("T_max"));
    ASSIGN_OR_RETURN(double eta_min, params.Number("eta_min", 0.0));
    spec.set_min_lr(eta_min);
    spec.mutable_cosine()->set_period(t_max);
    out.notes.push_back(absl::StrCat(
        "CosineAnnealingLR: after T_max (", t_max,
        ") anneal holds eta_min where torch climbs back to lr; the steps "
        "before are equal"));
  } else if (type == "CosineAnnealingWarmRestarts") {
    ASSIGN_OR_RETURN(int64_t t0, params.Integer("T_0"));
    ASSIGN_OR_RETURN(int64_t t_mult, params.Integer("T_mult", 1));
    ASSIGN_OR_RETURN(double eta_min, params.Number("eta_min", 0.0));
    spec.set_min_lr(eta_min);
    spec.mutable_warm_restarts()->set_period(t0);
    spec.mutable_warm_restarts()->set_period_mult(static_cast<double>(t_mult));
  } else if (type == "CyclicLR") {
    ASSIGN_OR_RETURN(double base_lr, params.Number("base_lr"));
    ASSIGN_OR_RETURN(double max_lr, params.Number("max_lr"));
    ASSIGN_OR_RETURN(int64_t up, params.Integer("step_size_up", 2000));
    ASSIGN_OR_RETURN(int64_t down, params.Integer("step_size_down", up));
    ASSIGN_OR_RETURN(std::string mode, params.String("mode", "triangular"));
    ASSIGN_OR_RETURN(double gamma, params.Number("gamma", 1.0));
    if (params.Has("scale_fn")) {
      return Unsupported(params, "scale_fn", "a Python function");
    }
    params.Ignore("scale_mode");  // read by torch only with scale_fn
    spec.set_max_lr(max_lr);
    spec.set_min_lr(base_lr);
    v1::Cyclic& cyclic = *spec.mutable_cyclic();
    cyclic.set_step_size_up(up);
    cyclic.set_step_size_down(down);
    if (mode == "triangular") {
      cyclic.set_mode(v1::Cyclic::TRIANGULAR);
    } else if (mode == "triangular2") {
      cyclic.set_mode(v1::Cyclic::TRIANGULAR2);
    } else if (mode == "exp_range") {
      cyclic.set_mode(v1::Cyclic::EXP_RANGE);
      cyclic.set_gamma(gamma);
    } else {
      return params.Error("mode",
                          absl::StrCat("must be triangular, triangular2 or "
                                       "exp_range, got ",
                                       mode.substr(0, 40)));
    }
    if (absl::Status s = Momentum(params, 0.8, 0.9, spec); !s.ok()) return s;
    out.notes.push_back(
        "CyclicLR: anneal flags a warm restart at the start of every cycle; "
        "AnnealLR resets momentum there unless reset_momentum=False "
        "(docs/python-client.md, porting table)");
  } else if (type == "OneCycleLR") {
    ASSIGN_OR_RETURN(double max_lr, params.Number("max_lr"));
    int64_t total = 0;
    if (params.Has("total_steps")) {
      ASSIGN_OR_RETURN(total, params.Integer("total_steps"));
      params.Ignore("epochs");
      params.Ignore("steps_per_epoch");
    } else {
      ASSIGN_OR_RETURN(int64_t epochs, params.Integer("epochs"));
      ASSIGN_OR_RETURN(int64_t per_epoch, params.Integer("steps_per_epoch"));
      if (epochs <= 0 || per_epoch <= 0 || epochs > (int64_t{1} << 31) ||
          per_epoch > (int64_t{1} << 31)) {
        return params.Error("epochs",
                            "epochs and steps_per_epoch must be in [1, 2^31]");
      }
      total = epochs * per_epoch;
    }
    ASSIGN_OR_RETURN(double pct, params.Number("pct_start", 0.3));
    ASSIGN_OR_RETURN(std::string strategy,
                     params.String("anneal_strategy", "cos"));
    ASSIGN_OR_RETURN(double div, params.Number("div_factor", 25.0));
    ASSIGN_OR_RETURN(double final_div, params.Number("final_div_factor", 1e4));
    ASSIGN_OR_RETURN(bool three, params.Bool("three_phase", false));
    spec.set_max_lr(max_lr);
    v1::OneCycle& oc = *spec.mutable_one_cycle();
    oc.set_total_steps(total);
    oc.set_pct_start(pct);
    if (strategy == "cos") {
      oc.set_anneal(v1::OneCycle::COSINE);
    } else if (strategy == "linear") {
      oc.set_anneal(v1::OneCycle::LINEAR);
    } else {
      return params.Error(
          "anneal_strategy",
          absl::StrCat("must be cos or linear, got ", strategy.substr(0, 40)));
    }
    oc.set_div_factor(div);
    oc.set_final_div_factor(final_div);
    oc.set_three_phase(three);
    if (absl::Status s = Momentum(params, 0.85, 0.95, spec); !s.ok()) return s;
  } else if (type == "LinearLR") {
    ASSIGN_OR_RETURN(double start, params.Number("start_factor", 1.0 / 3));
    ASSIGN_OR_RETURN(double end, params.Number("end_factor", 1.0));
    ASSIGN_OR_RETURN(int64_t iters, params.Integer("total_iters", 5));
    spec.mutable_linear()->set_start_factor(start);
    spec.mutable_linear()->set_end_factor(end);
    spec.mutable_linear()->set_total_steps(iters);
  } else if (type == "ConstantLR") {
    ASSIGN_OR_RETURN(double factor, params.Number("factor", 1.0 / 3));
    ASSIGN_OR_RETURN(int64_t iters, params.Integer("total_iters", 5));
    if (factor <= 0 || factor > 1) {
      return params.Error("factor", absl::StrCat("must be in (0, 1], got ",
                                                 FormatNumber(factor)));
    }
    if (iters < 0) {
      return params.Error("total_iters", "must be >= 0");
    }
    if (factor == 1 || iters == 0) {
      spec.mutable_constant();
    } else {
      AddPhase(spec, iters, ConstantAt(lr * factor));
      AddPhase(spec, 0, ConstantAt(lr));
      out.notes.push_back(
          absl::StrCat("ConstantLR: the LR rises to lr at step ", iters,
                       ", which anneal flags as a warm restart"));
    }
  } else if (type == "PolynomialLR") {
    ASSIGN_OR_RETURN(int64_t iters, params.Integer("total_iters", 5));
    ASSIGN_OR_RETURN(double power, params.Number("power", 1.0));
    spec.mutable_polynomial_decay()->set_total_steps(iters);
    spec.mutable_polynomial_decay()->set_power(power);
  } else if (type == "ReduceLROnPlateau") {
    if (metric.empty()) {
      return root.Error("metric",
                        "is required for ReduceLROnPlateau: the name of the "
                        "reported metric it watches, e.g. \"val_loss\"");
    }
    ASSIGN_OR_RETURN(std::string mode, params.String("mode", "min"));
    ASSIGN_OR_RETURN(double factor, params.Number("factor", 0.1));
    ASSIGN_OR_RETURN(int64_t patience, params.Integer("patience", 10));
    ASSIGN_OR_RETURN(double threshold, params.Number("threshold", 1e-4));
    ASSIGN_OR_RETURN(std::string tmode, params.String("threshold_mode", "rel"));
    ASSIGN_OR_RETURN(int64_t cooldown, params.Integer("cooldown", 0));
    ASSIGN_OR_RETURN(double min_lr, params.Number("min_lr", 0.0));
    ASSIGN_OR_RETURN(double eps, params.Number("eps", 1e-8));
    spec.mutable_constant();
    v1::Plateau& p = *spec.mutable_plateau();
    p.set_metric(std::string(metric));
    if (mode == "min") {
      p.set_mode(v1::Plateau::MIN);
    } else if (mode == "max") {
      p.set_mode(v1::Plateau::MAX);
    } else {
      return params.Error("mode", "must be min or max");
    }
    if (tmode == "rel") {
      p.set_threshold_mode(v1::Plateau::REL);
    } else if (tmode == "abs") {
      p.set_threshold_mode(v1::Plateau::ABS);
    } else {
      return params.Error("threshold_mode", "must be rel or abs");
    }
    p.set_factor(factor);
    p.set_patience(patience);
    p.set_threshold(threshold);
    p.set_cooldown(cooldown);
    p.set_min_lr(min_lr);
    p.set_eps(eps);
    out.notes.push_back(
        "ReduceLROnPlateau: the server counts the job's reports of the "
        "metric, one per epoch as torch's step(metric) does "
        "(docs/adaptive.md)");
  } else if (type == "SequentialLR") {
    ASSIGN_OR_RETURN(std::vector<ConfigMap> children,
                     params.Maps("schedulers"));
    ASSIGN_OR_RETURN(std::vector<int64_t> milestones,
                     params.Integers("milestones"));
    if (milestones.size() + 1 != children.size()) {
      return params.Error(
          "milestones",
          absl::StrCat("must hold one fewer entry than "
                       "schedulers (",
                       children.size(), "), got ", milestones.size()));
    }
    int64_t begin = 0;
    for (size_t i = 0; i < children.size(); ++i) {
      ConfigMap& child = children[i];
      ASSIGN_OR_RETURN(std::string child_type, child.String("type"));
      if (child_type == "SequentialLR" || child_type == "ReduceLROnPlateau") {
        return UnknownType(child, "type", child_type, "nested torch",
                           "any but SequentialLR and ReduceLROnPlateau");
      }
      ASSIGN_OR_RETURN(ConfigMap child_params, child.Map("params"));
      if (absl::Status s = child.Finish(child_type); !s.ok()) return s;
      ImportResult phase;
      if (absl::Status s = ImportTorchScheduler(child_type, lr, child_params,
                                                metric, root, phase);
          !s.ok()) {
        return s;
      }
      if (phase.spec.has_momentum()) {
        return Unsupported(child, "type",
                           "a cycled momentum inside SequentialLR (anneal "
                           "cycles momentum for the whole schedule only)");
      }
      for (std::string& note : phase.notes) out.notes.push_back(note);
      int64_t end = i < milestones.size() ? milestones[i] : 0;
      if (i < milestones.size() && end <= begin) {
        return params.Error(absl::StrCat("milestones[", i, "]"),
                            "must be increasing and above 0");
      }
      AddPhase(spec, i < milestones.size() ? end - begin : 0,
               std::move(phase.spec));
      begin = end;
    }
  } else if (type == "LambdaLR" || type == "MultiplicativeLR") {
    return Unsupported(root, "type",
                       absl::StrCat(type, " (a Python function)"));
  } else if (type == "ChainedScheduler") {
    return Unsupported(root, "type",
                       "ChainedScheduler (products of schedules); import the "
                       "schedulers one by one or write a sequence");
  } else {
    return UnknownType(root, "type", type, "torch", kKnown);
  }
  return params.Finish(type);
}

absl::Status ImportTorch(ConfigMap& root, ImportResult& out) {
  ASSIGN_OR_RETURN(std::string type, root.String("type"));
  double lr = 0;
  if (type != "CyclicLR" && type != "OneCycleLR") {
    ASSIGN_OR_RETURN(lr, root.Number("lr"));
  } else {
    root.Ignore("lr");  // both set the optimizer's LR themselves
  }
  ASSIGN_OR_RETURN(ConfigMap params, root.Map("params"));
  ASSIGN_OR_RETURN(std::string metric, root.String("metric", ""));
  if (!metric.empty() && type != "ReduceLROnPlateau") {
    return root.Error("metric", "is only read for ReduceLROnPlateau");
  }
  if (absl::Status s =
          ImportTorchScheduler(type, lr, params, metric, root, out);
      !s.ok()) {
    return s;
  }
  return root.Finish("a torch scheduler config (type, lr, params, metric)");
}

}  // namespace anneal
