// Robbins-Monro and stability analysis (see analysis.h).
#include "anneal/engine/analysis.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
// Relative resolution of the scan for the first crossing.
constexpr double kMinStep = 1e-12;
// Steps one window's scan may take; reached only by a profile whose growth
// hovers just below 0 over a wide range, and then the scan stops where it
// has proved stability (an under-estimate, never an over-estimate).
constexpr int kMaxScanSteps = 1 << 16;

// An upper bound on the window's log-growth for every scale in [u, v] (lr is
// multiplied by u*L .. v*L), exact when u == v. |1 - s a| is convex in s, so
// each factor is largest at an end of [u, v]; the sum of those maxima bounds
// the sum. For kTransient it returns early, with a positive value, as soon as
// a partial sum is positive: the scan needs only the sign.
double GrowthBound(absl::Span<const double> lrs, GrowthMeasure measure,
                   double u, double v) {
  double sum = 0;
  for (double lr : lrs) {
    sum += std::log(std::max(std::fabs(1 - u * lr), std::fabs(1 - v * lr)));
    if (measure == GrowthMeasure::kTransient && sum > 0) return sum;
  }
  return sum;
}

// The first scale in [2 / (peak L), stop) at which the window grows, or stop.
// Below 2 / (peak L) every factor is at most 1. From there the scan advances
// only over intervals on which GrowthBound proves no growth, so it cannot
// step over a short-lived region of growth (the product is a polynomial in s
// with roots at 1 / (lr_t L); between roots it can rise above 1 and fall
// back), and it converges on the first crossing from below.
double FirstCrossing(absl::Span<const double> lrs, double curvature,
                     GrowthMeasure measure, double stop) {
  double peak = 0;
  for (double lr : lrs) peak = std::max(peak, lr);
  if (peak <= 0) return stop;
  double s = 2 / (peak * curvature);
  double h = 0.125;
  for (int i = 0; i < kMaxScanSteps && s < stop; ++i) {
    const double v = std::min(s * (1 + h), stop);
    if (GrowthBound(lrs, measure, s * curvature, v * curvature) <= 0) {
      s = v;
      h = std::min(2 * h, 1.0);
    } else if (h > kMinStep) {
      h /= 2;
    } else if (GrowthBound(lrs, measure, v * curvature, v * curvature) > 0) {
      return s;  // grows at v and not before s: the crossing is in (s, v]
    } else {
      s = v;  // no growth at either end of a sliver of relative width 1e-12
    }
  }
  return std::min(s, stop);
}

struct GrowthPeak {
  double log_growth = 0;  // log max |x_t / x_start| over the windows, >= 0
  int64_t step = -1;      // index of the step reaching it (-1: no growth)
};

// The largest growth of |x| inside any window at the given curvature; a
// repeating window (the settled tail) that grows at all grows forever.
GrowthPeak LargestGrowth(absl::Span<const double> lrs,
                         absl::Span<const StabilityWindow> windows,
                         double curvature, const StabilityWindow* tail) {
  GrowthPeak peak;
  for (const StabilityWindow& w : windows) {
    double sum = 0;
    for (int64_t t = w.begin; t < w.begin + w.size; ++t) {
      sum += std::log(std::fabs(1 - lrs[static_cast<size_t>(t)] * curvature));
      if (sum > peak.log_growth) peak = {sum, t};
    }
  }
  if (tail != nullptr &&
      std::fabs(1 - lrs[static_cast<size_t>(tail->begin)] * curvature) > 1) {
    peak = {kInf, tail->begin};
  }
  return peak;
}

}  // namespace

double CriticalScale(absl::Span<const double> lrs,
                     absl::Span<const StabilityWindow> windows,
                     double curvature, GrowthMeasure measure) {
  double best = kInf;
  absl::Span<const double> previous;
  for (const StabilityWindow& w : windows) {
    const absl::Span<const double> window =
        lrs.subspan(static_cast<size_t>(w.begin), static_cast<size_t>(w.size));
    // Equal cycles (periodic restarts) have the same answer: judged once.
    if (window == previous) continue;
    previous = window;
    best = FirstCrossing(window, curvature, measure, best);
  }
  return best;
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

  // From `settles` on the LR is one value forever: the tail, judged as one
  // step standing for all of them. Before it, the windows are the cycles: a
  // cycle ends at its snapshot step, where the next cycle begins, or at the
  // step where the schedule settles.
  const int64_t settles = schedule.SettlesAt();
  const bool settled = settles >= 0 && settles <= horizon;
  const int64_t cycles_end = settled ? settles : horizon;
  std::vector<double> lrs;
  lrs.reserve(static_cast<size_t>(horizon));
  std::vector<StabilityWindow> windows;
  int64_t window_begin = 0, last_cycle = 0;
  int64_t open_cycle_ends = -1;  // last step of the cycle in progress, or -1
  long double sum = 0, sum_sq = 0;
  double peak = 0;
  int64_t peak_step = 0, restarts = 0, snapshots = 0;
  StepQuery query;
  query.batch_size = options.batch_size;
  auto status =
      schedule.EvaluateRange(0, horizon, query, [&](const StepResult& r) {
        lrs.push_back(r.lr);
        sum += r.lr;
        sum_sq += static_cast<long double>(r.lr) * r.lr;
        if (r.lr > peak) {
          peak = r.lr;
          peak_step = r.step;
        }
        restarts += r.restart;
        snapshots += r.snapshot;
        if (r.step > cycles_end) return;
        if (r.step > window_begin && r.cycle != last_cycle) {
          windows.push_back({window_begin, r.step - window_begin});
          window_begin = r.step;
        }
        if (r.step == cycles_end) {  // settles: ends the cycle still open
          if (window_begin < r.step) {
            windows.push_back({window_begin, r.step + 1 - window_begin});
          }
          window_begin = r.step + 1;
          return;
        }
        if (r.snapshot) {
          windows.push_back({window_begin, r.step + 1 - window_begin});
          window_begin = r.step + 1;
        }
        last_cycle = r.cycle;
        open_cycle_ends = r.cycle_length == 0
                              ? -1
                              : r.step - r.step_in_cycle + r.cycle_length - 1;
      });
  if (!status.ok()) return status;
  // What is left open at the horizon: the cycles up to a settling step just
  // past it (judged), a cycle that never ends (a decay: judged up to the
  // horizon; once s lr L < 2 its later steps only contract further), or a
  // cycle cut by the horizon (not judged).
  int64_t cut_cycle_ends = -1;
  if (window_begin < cycles_end) {
    if (settled || open_cycle_ends < 0) {
      windows.push_back({window_begin, cycles_end - window_begin});
    } else {
      cut_cycle_ends = open_cycle_ends;
    }
  }
  v1::Analysis out;
  out.set_horizon(horizon);
  out.set_peak_lr(peak);
  out.set_final_lr(lrs.back());
  std::optional<StabilityWindow> tail;
  if (settled) {
    tail = StabilityWindow{settles, 1};
    if (settles == horizon) {  // the cycles end with the horizon: read on
      status = schedule.EvaluateRange(
          settles, 1, query, [&](const StepResult& r) { lrs.push_back(r.lr); });
      if (!status.ok()) return status;
    }
  }
  out.set_restarts(restarts);
  out.set_snapshots(snapshots);
  if (options.batch_size.has_value()) out.set_batch_size(*options.batch_size);
  const Asymptotics asymptotics = schedule.Tail();
  v1::RobbinsMonro* rm = out.mutable_robbins_monro();
  rm->set_sum_diverges(asymptotics.sum_diverges);
  rm->set_sum_squares_converges(asymptotics.sum_squares_converges);
  rm->set_satisfied(asymptotics.sum_diverges &&
                    asymptotics.sum_squares_converges);
  rm->set_reason(asymptotics.reason);
  rm->set_horizon_sum(static_cast<double>(sum));
  rm->set_horizon_sum_squares(static_cast<double>(sum_sq));

  if (!options.max_curvature.has_value()) return out;
  if (windows.empty() && !tail.has_value()) {
    const std::string need =
        cut_cycle_ends < kMaxAnalysisHorizon
            ? absl::StrCat("give a horizon of at least ", cut_cycle_ends + 1)
            : absl::StrCat("past the longest horizon analysed, ",
                           kMaxAnalysisHorizon);
    return absl::InvalidArgumentError(absl::StrCat(
        "horizon: the stability bounds judge complete cycles, and none ends "
        "within ",
        horizon, " steps (the first ends at step ", cut_cycle_ends, "; ", need,
        ")"));
  }
  const double l = *options.max_curvature;
  std::vector<StabilityWindow> judged = windows;
  if (tail.has_value()) judged.push_back(*tail);
  const double net = CriticalScale(lrs, judged, l, GrowthMeasure::kNet);
  const double bounded =
      CriticalScale(lrs, judged, l, GrowthMeasure::kTransient);
  const GrowthPeak growth =
      LargestGrowth(lrs, windows, l, tail.has_value() ? &*tail : nullptr);
  // The peak as served: the spec's max_lr times the batch scaling factor,
  // read off the step where the served profile peaks.
  double max_lr = schedule.spec().max_lr();
  if (options.batch_size.has_value() && peak > 0) {
    max_lr *= peak / schedule.At(peak_step).lr;
  }
  v1::Stability* st = out.mutable_stability();
  st->set_max_curvature(l);
  st->set_critical_max_lr(net * max_lr);
  st->set_critical_max_lr_times_curvature(net * max_lr * l);
  st->set_stable(net >= 1.0);
  st->set_bounded_max_lr(bounded * max_lr);
  st->set_bounded_max_lr_times_curvature(bounded * max_lr * l);
  st->set_bounded(bounded >= 1.0);
  st->set_max_log_growth(growth.log_growth);
  st->set_max_growth_step(growth.step);
  st->set_cycles_checked(static_cast<int64_t>(windows.size()));
  st->set_tail_checked(tail.has_value());
  st->set_rule(
      "gradient descent on f = L/2 x^2, x <- (1 - lr_t L) x, for every "
      "curvature up to L. stable: |x| does not grow over any complete cycle "
      "nor in the settled tail (net contraction; constant LR 2/L, one long "
      "cosine cycle 4/L, one long linear decay 4.59/L). bounded: |x| never "
      "exceeds its value at the start of its cycle (-> 2/L for long cycles). "
      "A cycle cut by the horizon is not judged");
  return out;
}

}  // namespace anneal
