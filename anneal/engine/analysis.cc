// Robbins-Monro and stability analysis (see analysis.h).
#include "anneal/engine/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

// Largest growth of log|x| at any checkpoint for the profile scaled by s.
double WorstGrowth(const std::vector<double>& lrs,
                   const std::vector<int64_t>& checkpoints, double s,
                   double curvature) {
  double worst = -std::numeric_limits<double>::infinity();
  double sum = 0;
  size_t next = 0;
  for (size_t t = 0; t < lrs.size() && next < checkpoints.size(); ++t) {
    // A factor of exactly 0 (s lr L == 1 on one step) would make any profile
    // look stable; treat it as the smallest relative step a double resolves.
    sum +=
        std::log(std::max(std::fabs(1.0 - s * lrs[t] * curvature), 0x1.0p-52));
    if (static_cast<int64_t>(t) == checkpoints[next]) {
      worst = std::max(worst, sum);
      ++next;
    }
  }
  return worst;
}

bool Stable(const std::vector<double>& lrs,
            const std::vector<int64_t>& checkpoints, double s,
            double curvature) {
  return WorstGrowth(lrs, checkpoints, s, curvature) <= 0;
}

}  // namespace

double CriticalScale(const std::vector<double>& lrs,
                     const std::vector<int64_t>& checkpoints,
                     double curvature) {
  double peak = 0;
  for (double lr : lrs) peak = std::max(peak, lr);
  if (peak <= 0 || checkpoints.empty()) {
    return std::numeric_limits<double>::infinity();
  }
  // Below 2/(peak L) every factor |1 - s lr L| is <= 1: always stable.
  double lo = 2.0 / (peak * curvature);
  double hi = lo;
  for (int i = 0; Stable(lrs, checkpoints, hi, curvature); ++i) {
    if (i == 60) return std::numeric_limits<double>::infinity();
    lo = hi;
    hi *= 1.75;  // not 2: dyadic factors hit s lr L == 1 exactly
  }
  for (int i = 0; i < 64 && hi - lo > 1e-15 * hi; ++i) {
    const double mid = lo + (hi - lo) / 2;
    (Stable(lrs, checkpoints, mid, curvature) ? lo : hi) = mid;
  }
  return lo;
}

int64_t DefaultHorizon(const Schedule& schedule) {
  const int64_t settles = schedule.SettlesAt();
  if (settles < 0) return kDefaultAnalysisHorizon;
  return std::clamp<int64_t>(settles + 1, 1000, kMaxAnalysisHorizon);
}

absl::StatusOr<v1::Analysis> Analyze(const Schedule& schedule,
                                     const AnalysisOptions& options) {
  int64_t horizon = options.horizon;
  if (horizon == 0) horizon = DefaultHorizon(schedule);
  if (horizon < 1 || horizon > kMaxAnalysisHorizon) {
    return absl::InvalidArgumentError(absl::StrCat(
        "horizon: must be in [1, ", kMaxAnalysisHorizon, "], got ", horizon));
  }
  if (options.max_curvature.has_value()) {
    const double l = *options.max_curvature;
    if (!(std::isfinite(l) && l > 0)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "max_curvature: must be a finite number > 0, got ", FormatNumber(l)));
    }
  }

  std::vector<double> lrs;
  lrs.reserve(static_cast<size_t>(horizon));
  std::vector<int64_t> checkpoints;
  long double sum = 0, sum_sq = 0;
  double peak = 0;
  int64_t restarts = 0, snapshots = 0;
  auto status =
      schedule.EvaluateRange(0, horizon, StepQuery{}, [&](const StepResult& r) {
        lrs.push_back(r.lr);
        sum += r.lr;
        sum_sq += static_cast<long double>(r.lr) * r.lr;
        peak = std::max(peak, r.lr);
        restarts += r.restart;
        if (r.snapshot) {
          ++snapshots;
          checkpoints.push_back(r.step);
        }
      });
  if (!status.ok()) return status;
  if (checkpoints.empty() || checkpoints.back() != horizon - 1) {
    checkpoints.push_back(horizon - 1);
  }

  v1::Analysis out;
  out.set_horizon(horizon);
  out.set_peak_lr(peak);
  out.set_final_lr(lrs.back());
  out.set_restarts(restarts);
  out.set_snapshots(snapshots);
  const Asymptotics tail = schedule.Tail();
  v1::RobbinsMonro* rm = out.mutable_robbins_monro();
  rm->set_sum_diverges(tail.sum_diverges);
  rm->set_sum_squares_converges(tail.sum_squares_converges);
  rm->set_satisfied(tail.sum_diverges && tail.sum_squares_converges);
  rm->set_reason(tail.reason);
  rm->set_horizon_sum(static_cast<double>(sum));
  rm->set_horizon_sum_squares(static_cast<double>(sum_sq));

  if (options.max_curvature.has_value()) {
    const double l = *options.max_curvature;
    const double scale = CriticalScale(lrs, checkpoints, l);
    const double max_lr = schedule.spec().max_lr();
    v1::Stability* st = out.mutable_stability();
    st->set_max_curvature(l);
    st->set_critical_max_lr(scale * max_lr);
    st->set_critical_max_lr_times_curvature(scale * max_lr * l);
    st->set_stable(scale >= 1.0);
    st->set_rule(
        "gradient descent on f = L/2 x^2 must not grow |x| over any complete "
        "cycle (checked at each snapshot step) nor over the horizon: "
        "sum log|1 - lr_t L| <= 0. Constant LR: 2/L; one long cosine cycle: "
        "4/L; one long linear decay: 4.59/L");
  }
  return out;
}

}  // namespace anneal
