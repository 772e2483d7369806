// --from keras: a serialized LearningRateSchedule, {"class_name": ...,
// "config": {...}} as keras.optimizers.schedules.serialize writes it
// (keras/src/optimizers/schedules/learning_rate_schedule.py; docs/schedules.md
// gives each equivalence).
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/importers/library_importers.h"

namespace anneal {
namespace {

constexpr absl::string_view kKnown =
    "CosineDecay, CosineDecayRestarts, ExponentialDecay, InverseTimeDecay, "
    "PolynomialDecay, PiecewiseConstantDecay";

}  // namespace

absl::Status ImportKeras(ConfigMap& root, ImportResult& out) {
  ASSIGN_OR_RETURN(std::string type, root.String("class_name"));
  ASSIGN_OR_RETURN(ConfigMap config, root.Map("config"));
  // Keras 3's serialization adds these; they do not change the LRs.
  root.Ignore("module");
  root.Ignore("registered_name");
  if (absl::Status s = root.Finish("a serialized Keras schedule (class_name, "
                                   "config)");
      !s.ok()) {
    return s;
  }
  config.Ignore("name");
  v1::ScheduleSpec& spec = out.spec;
  if (type == "PiecewiseConstantDecay") {
    ASSIGN_OR_RETURN(std::vector<int64_t> boundaries,
                     config.Integers("boundaries"));
    ASSIGN_OR_RETURN(std::vector<double> values, config.Numbers("values"));
    if (values.size() != boundaries.size() + 1) {
      return config.Error("values",
                          "must hold one more entry than "
                          "boundaries");
    }
    // values[i] for boundaries[i-1] < step <= boundaries[i].
    int64_t begin = 0;
    for (size_t i = 0; i < values.size(); ++i) {
      if (!(values[i] > 0)) {
        return Unsupported(config, absl::StrCat("values[", i, "]"),
                           "an LR of 0 or below (anneal's levels are > 0)");
      }
      if (i == boundaries.size()) {
        AddPhase(spec, 0, ConstantAt(values[i]));
        break;
      }
      const int64_t end = boundaries[i] + 1;
      if (end <= begin) {
        return config.Error(absl::StrCat("boundaries[", i, "]"),
                            "must be increasing and >= 0");
      }
      AddPhase(spec, end - begin, ConstantAt(values[i]));
      begin = end;
    }
    return config.Finish(type);
  }
  ASSIGN_OR_RETURN(double initial, config.Number("initial_learning_rate"));
  spec.set_max_lr(initial);
  if (type == "CosineDecay") {
    ASSIGN_OR_RETURN(int64_t decay, config.Integer("decay_steps"));
    ASSIGN_OR_RETURN(double alpha, config.Number("alpha", 0.0));
    ASSIGN_OR_RETURN(int64_t warmup, config.Integer("warmup_steps", 0));
    spec.mutable_cosine()->set_period(decay);
    if (config.Has("warmup_target")) {
      ASSIGN_OR_RETURN(double target, config.Number("warmup_target"));
      spec.set_max_lr(target);
      if (warmup > 0) {
        spec.mutable_warmup()->set_steps(warmup);
        spec.mutable_warmup()->set_start_lr(initial);
      }
      spec.set_min_lr(alpha * target);
    } else {
      config.Ignore("warmup_target");
      spec.set_min_lr(alpha * initial);
    }
  } else if (type == "CosineDecayRestarts") {
    ASSIGN_OR_RETURN(int64_t first, config.Integer("first_decay_steps"));
    ASSIGN_OR_RETURN(double t_mul, config.Number("t_mul", 2.0));
    ASSIGN_OR_RETURN(double m_mul, config.Number("m_mul", 1.0));
    ASSIGN_OR_RETURN(double alpha, config.Number("alpha", 0.0));
    if (m_mul > 1) {
      return Unsupported(config, "m_mul",
                         "peaks that grow without end (m_mul > 1; anneal "
                         "needs a cycle limit for growing peaks)");
    }
    spec.set_min_lr(alpha * initial);
    v1::WarmRestarts& wr = *spec.mutable_warm_restarts();
    wr.set_period(first);
    wr.set_period_mult(t_mul);
    wr.set_peak_decay(m_mul);
    wr.set_decay_law(v1::WarmRestarts::AMPLITUDE);
    wr.set_cycle_lengths(v1::WarmRestarts::REAL);
  } else if (type == "ExponentialDecay") {
    ASSIGN_OR_RETURN(int64_t steps, config.Integer("decay_steps"));
    ASSIGN_OR_RETURN(double rate, config.Number("decay_rate"));
    ASSIGN_OR_RETURN(bool staircase, config.Bool("staircase", false));
    if (rate > 1) {
      return Unsupported(config, "decay_rate",
                         "an LR that grows without bound (decay_rate > 1)");
    }
    spec.mutable_exponential_decay()->set_gamma(rate);
    spec.mutable_exponential_decay()->set_transition_steps(steps);
    spec.mutable_exponential_decay()->set_staircase(staircase);
  } else if (type == "InverseTimeDecay") {
    ASSIGN_OR_RETURN(int64_t steps, config.Integer("decay_steps"));
    ASSIGN_OR_RETURN(double rate, config.Number("decay_rate"));
    ASSIGN_OR_RETURN(bool staircase, config.Bool("staircase", false));
    if (!(rate > 0) || steps < 1) {
      return config.Error("decay_rate",
                          "decay_rate must be > 0 and decay_steps >= 1");
    }
    // I / (1 + r t / D) = I (D/r) / (t + D/r).
    spec.mutable_inverse_time_decay()->set_t0(static_cast<double>(steps) /
                                              rate);
    spec.mutable_inverse_time_decay()->set_power(1.0);
    if (staircase) {
      spec.mutable_inverse_time_decay()->set_staircase_steps(steps);
    }
  } else if (type == "PolynomialDecay") {
    ASSIGN_OR_RETURN(int64_t steps, config.Integer("decay_steps"));
    ASSIGN_OR_RETURN(double end, config.Number("end_learning_rate", 1e-4));
    ASSIGN_OR_RETURN(double power, config.Number("power", 1.0));
    ASSIGN_OR_RETURN(bool cycle, config.Bool("cycle", false));
    if (end > initial) {
      return Unsupported(config, "end_learning_rate",
                         "a rise under PolynomialDecay (end_learning_rate > "
                         "initial_learning_rate); use optax's "
                         "polynomial_schedule form");
    }
    spec.set_min_lr(end);
    spec.mutable_polynomial_decay()->set_total_steps(steps);
    spec.mutable_polynomial_decay()->set_power(power);
    spec.mutable_polynomial_decay()->set_cycle(cycle);
  } else {
    return UnknownType(root, "class_name", type, "Keras", kKnown);
  }
  return config.Finish(type);
}

}  // namespace anneal
