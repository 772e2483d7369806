// PyTorch's ReduceLROnPlateau, step for step (see plateau.h). The order of
// the updates in Count and the formulas of IsBetter and Cut are those of
// torch/optim/lr_scheduler.py (ReduceLROnPlateau.step, is_better,
// _reduce_lr), so that the same values give the same LRs bit for bit.
#include "anneal/engine/plateau.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"
#include "anneal/engine/metric_name.h"

namespace anneal {
namespace {

constexpr int64_t kMaxReports = (int64_t{1} << 31) - 1;
constexpr double kMaxThreshold = 1e300;

absl::Status RequireCount(const FieldPath& path, int64_t v) {
  if (auto s = RequireAtLeast(path, v, 0); !s.ok()) return s;
  return RequireAtMost(path, v, kMaxReports);
}

}  // namespace

absl::StatusOr<PlateauPolicy> PlateauPolicy::Build(const v1::Plateau& spec,
                                                   double max_lr) {
  const FieldPath path("plateau");
  PlateauPolicy p;
  if (spec.metric().empty()) {
    return path.Child("metric").Error(
        "is required (the reported metric to watch, e.g. \"val_loss\")");
  }
  if (auto s = ValidateMetricName(path.Child("metric").str(), spec.metric());
      !s.ok()) {
    return s;
  }
  p.metric_ = spec.metric();
  if (!v1::Plateau::Mode_IsValid(spec.mode())) {
    return path.Child("mode").Error(
        absl::StrCat("must be MIN or MAX, got ", spec.mode()));
  }
  p.maximize_ = spec.mode() == v1::Plateau::MAX;
  if (!v1::Plateau::ThresholdMode_IsValid(spec.threshold_mode())) {
    return path.Child("threshold_mode")
        .Error(absl::StrCat("must be REL or ABS, got ", spec.threshold_mode()));
  }
  p.absolute_ = spec.threshold_mode() == v1::Plateau::ABS;
  if (!v1::Plateau::Action_IsValid(spec.action())) {
    return path.Child("action").Error(
        absl::StrCat("must be REDUCE or RESTART, got ", spec.action()));
  }
  p.restart_ = spec.action() == v1::Plateau::RESTART;
  if (spec.has_factor()) {
    p.factor_ = spec.factor();
    if (!(p.factor_ > 0 && p.factor_ < 1)) {
      return path.Child("factor").Error(
          absl::StrCat("must be in (0, 1), got ", FormatNumber(spec.factor())));
    }
  }
  if (spec.has_patience()) {
    p.patience_ = spec.patience();
    if (auto s = RequireCount(path.Child("patience"), p.patience_); !s.ok()) {
      return s;
    }
  }
  if (spec.has_threshold()) {
    p.threshold_ = spec.threshold();
    if (auto s = RequireInRange(path.Child("threshold"), p.threshold_, 0,
                                kMaxThreshold);
        !s.ok()) {
      return s;
    }
  }
  p.cooldown_ = spec.cooldown();
  if (auto s = RequireCount(path.Child("cooldown"), p.cooldown_); !s.ok()) {
    return s;
  }
  p.min_lr_ = spec.min_lr();
  if (auto s = RequireInRange(path.Child("min_lr"), p.min_lr_, 0, max_lr);
      !s.ok()) {
    return s;
  }
  if (spec.has_eps()) {
    p.eps_ = spec.eps();
    if (auto s = RequireInRange(path.Child("eps"), p.eps_, 0,
                                std::numeric_limits<double>::max());
        !s.ok()) {
      return s;
    }
  }
  return p;
}

bool PlateauPolicy::IsBetter(double a, double best) const {
  if (!maximize_ && !absolute_) return a < best * (1.0 - threshold_);
  if (!maximize_) return a < best - threshold_;
  if (!absolute_) return a > best * (threshold_ + 1.0);
  return a > best + threshold_;
}

std::optional<PlateauEvidence> PlateauPolicy::Count(int64_t step, double value,
                                                    PlateauCounters* c) const {
  if (step <= c->last_step) return std::nullopt;
  c->last_step = step;
  ++c->reports;
  const double inf = std::numeric_limits<double>::infinity();
  const double best = c->best.has_value() ? *c->best : (maximize_ ? -inf : inf);
  if (IsBetter(value, best)) {
    c->best = value;
    c->bad_reports = 0;
  } else {
    if (c->bad_reports == 0) {
      c->bad_values.clear();
      c->first_bad_step = step;
    }
    ++c->bad_reports;
    c->bad_values.push_back(value);
    if (c->bad_values.size() > kMaxBadValues) {
      c->bad_values.erase(c->bad_values.begin());
    }
  }
  if (c->cooldown_left > 0) {
    --c->cooldown_left;
    c->bad_reports = 0;  // bad reports in a cooldown are ignored
  }
  if (c->bad_reports == 0) {
    c->bad_values.clear();
    c->first_bad_step = -1;
  }
  if (c->bad_reports <= patience_) return std::nullopt;
  PlateauEvidence why;
  why.report_step = step;
  why.best = best;  // a decision follows bad reports: best did not change
  why.bad_reports = c->bad_reports;
  why.first_bad_step = c->first_bad_step;
  why.bad_values = std::move(c->bad_values);
  c->cooldown_left = cooldown_;
  c->bad_reports = 0;
  c->bad_values.clear();
  c->first_bad_step = -1;
  ++c->decisions;
  return why;
}

std::optional<double> PlateauPolicy::Cut(double level) const {
  const double next = std::max(level * factor_, min_lr_);
  if (level - next > eps_) return next;
  return std::nullopt;
}

}  // namespace anneal
