// The findings of Diagnose (diagnosis.h). Each check is one function below,
// in the order of docs/adaptive.md; the statistics and thresholds are
// documented there and named here once.
#include "anneal/model/diagnosis.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "anneal/engine/field_error.h"
#include "anneal/engine/metric_name.h"
#include "anneal/model/plateau_change.h"

namespace anneal {
namespace {

using Severity = v1::Finding::Severity;

// The phase diagnostic: at least this many consecutive-report differences
// in each phase kind, from at least this many completed cycles, and |t| at
// least kPhaseT for a difference to count as a trend.
constexpr int64_t kPhaseMinPairs = 3;
constexpr int64_t kPhaseMinCycles = 2;
constexpr double kPhaseT = 2.0;
// Cycles longer than this are sampled at this many steps (plus both ends)
// to find their LR range.
constexpr int64_t kCycleSamples = 4096;
// Snapshot steps named in a finding (the newest).
constexpr int kMaxSnapshotSpans = 32;
// Divergence after a restart: up to kWindow finite training reports on
// each side of the restart, at least kMinWindow, and a rise of at least
// kRiseRatio times |mean before| with Welch's t >= kRiseT.
constexpr int kWindow = 5;
constexpr int kMinWindow = 3;
constexpr double kRiseRatio = 1.0;
constexpr double kRiseT = 3.0;
// The stability margin below which a stable peak still warns.
constexpr double kStabilityMargin = 0.9;
// LR range test: at least this many finite reports; the smoothing window is
// 2k+1 reports with k = max(1, n / kSmoothDivisor); the loss has diverged
// once its smoothed value exceeds kDivergeFactor times the best so far.
constexpr int64_t kRangeMinPoints = 10;
constexpr int64_t kSmoothDivisor = 20;
constexpr double kDivergeFactor = 4.0;

// ---- Findings ----

class FindingBuilder {
 public:
  FindingBuilder(absl::string_view code, Severity severity,
                 std::string summary) {
    f_.set_code(std::string(code));
    f_.set_severity(severity);
    f_.set_summary(std::move(summary));
  }
  FindingBuilder& Num(absl::string_view name, double value) {
    v1::Finding::Evidence* e = f_.add_evidence();
    e->set_name(std::string(name));
    if (std::isfinite(value)) e->set_value(value);
    e->set_text(EvidenceText(value));
    return *this;
  }
  FindingBuilder& Span(int64_t start, int64_t end, std::string label) {
    v1::Finding::StepSpan* s = f_.add_spans();
    s->set_start_step(start);
    s->set_end_step(end);
    s->set_label(std::move(label));
    return *this;
  }
  FindingBuilder& Statistic(std::string text) {
    f_.set_statistic(std::move(text));
    return *this;
  }
  FindingBuilder& Recommend(std::string text) {
    f_.set_recommendation(std::move(text));
    return *this;
  }
  FindingBuilder& Suggest(double lr) {
    if (std::isfinite(lr) && lr > 0) f_.set_suggested_max_lr(lr);
    return *this;
  }
  v1::Finding Build() { return std::move(f_); }

 private:
  v1::Finding f_;
};

// ---- Statistics ----

struct Summary {
  int64_t n = 0;
  double mean = 0;
  double var = 0;  // sample variance (0 for n < 2)
  double se = 0;   // standard error of the mean
  double t = 0;    // mean / se (+-inf when se = 0 and mean != 0)
};

double Ratio(double num, double den) {
  if (den > 0) return num / den;
  if (num == 0) return 0;
  return num > 0 ? std::numeric_limits<double>::infinity()
                 : -std::numeric_limits<double>::infinity();
}

Summary Summarize(const std::vector<double>& x) {
  Summary s;
  s.n = static_cast<int64_t>(x.size());
  if (s.n == 0) return s;
  double sum = 0;
  for (double v : x) sum += v;
  s.mean = sum / static_cast<double>(s.n);
  if (s.n >= 2) {
    double ss = 0;
    for (double v : x) ss += (v - s.mean) * (v - s.mean);
    s.var = ss / static_cast<double>(s.n - 1);
    s.se = std::sqrt(s.var / static_cast<double>(s.n));
    s.t = Ratio(s.mean, s.se);
  }
  return s;
}

// Welch's t of mean(a) - mean(b).
double WelchT(const Summary& a, const Summary& b) {
  const double se = std::sqrt(a.var / static_cast<double>(a.n) +
                              b.var / static_cast<double>(b.n));
  return Ratio(a.mean - b.mean, se);
}

// ---- The timeline at reported steps ----

// The last step of a cycle of `length` steps from `start`, without overflow
// (lengths saturate at 2^62).
int64_t CycleLast(int64_t start, int64_t length) {
  return length > kMaxStep - start ? kMaxStep : start + length - 1;
}

class Profile {
 public:
  explicit Profile(const Timeline& timeline) : timeline_(timeline) {}

  // By value: a later call may rehash the cache, so a reference into it
  // would dangle (AddressSanitizer found one: two At calls in a row).
  StepResult At(int64_t step) {
    auto it = at_.find(step);
    if (it == at_.end()) it = at_.emplace(step, timeline_.At(step)).first;
    return it->second;
  }
  // The first step of the cycle `step` is in.
  int64_t CycleStart(int64_t step) { return step - At(step).step_in_cycle; }

  // The LR range [floor, peak] of the cycle starting at `start` of `length`
  // steps (exact up to kCycleSamples steps, sampled beyond).
  std::pair<double, double> Range(int64_t start, int64_t length) {
    auto it = ranges_.find(start);
    if (it != ranges_.end()) return it->second;
    double lo = std::numeric_limits<double>::infinity();
    double hi = -lo;
    auto visit = [&](double lr) {
      lo = std::min(lo, lr);
      hi = std::max(hi, lr);
    };
    const int64_t last = CycleLast(start, length);
    if (last - start + 1 <= kCycleSamples) {
      absl::Status s =
          timeline_.EvaluateRange(start, last - start + 1, StepQuery{},
                                  [&](const StepResult& r) { visit(r.lr); });
      if (!s.ok()) visit(timeline_.At(start).lr);
    } else {
      const double stride = static_cast<double>(last - start) /
                            static_cast<double>(kCycleSamples);
      for (int64_t i = 0; i <= kCycleSamples; ++i) {
        const int64_t t = std::min(
            last, start + static_cast<int64_t>(
                              std::llround(stride * static_cast<double>(i))));
        visit(timeline_.At(t).lr);
      }
    }
    return ranges_[start] = {lo, hi};
  }

 private:
  const Timeline& timeline_;
  absl::flat_hash_map<int64_t, StepResult> at_;
  absl::flat_hash_map<int64_t, std::pair<double, double>> ranges_;
};

// The spec in force at `step`.
const v1::ScheduleSpec& SpecAt(const v1::Schedule& schedule,
                               const Timeline& timeline, int64_t step) {
  const size_t i = timeline.SegmentAt(step);
  if (i < static_cast<size_t>(schedule.timeline_size())) {
    return schedule.timeline(static_cast<int>(i)).spec();
  }
  return schedule.spec();
}

// The latest finite value of `series` with value > 0, as (step, value).
std::optional<std::pair<int64_t, double>> LatestPositive(
    const MetricSeries* series) {
  if (series == nullptr) return std::nullopt;
  for (size_t i = series->size(); i-- > 0;) {
    const double v = series->values[i];
    if (std::isfinite(v) && v > 0) return std::make_pair(series->steps[i], v);
  }
  return std::nullopt;
}

std::string Names(absl::Span<const absl::string_view> names) {
  return absl::StrJoin(names, ", ");
}

// ---- 1. The phase diagnostic ----

struct PhaseRates {
  std::vector<double> high, low;
  std::vector<int64_t> cycles;  // starts of the completed cycles used
};

// Rates (value change per step) between consecutive finite reports of
// `series` inside one completed cycle, sorted by the phase both ends are in.
PhaseRates Rates(const MetricSeries& series, int64_t last_reported,
                 Profile& profile) {
  PhaseRates out;
  for (size_t i = 0; i + 1 < series.size(); ++i) {
    const double a = series.values[i], b = series.values[i + 1];
    if (!std::isfinite(a) || !std::isfinite(b)) continue;
    const int64_t s = series.steps[i], u = series.steps[i + 1];
    const StepResult rs = profile.At(s);
    const StepResult ru = profile.At(u);
    const int64_t start = s - rs.step_in_cycle;
    if (u - ru.step_in_cycle != start || rs.cycle_length <= 0) continue;
    if (CycleLast(start, rs.cycle_length) > last_reported) continue;
    const auto [floor, peak] = profile.Range(start, rs.cycle_length);
    if (!(peak > floor)) continue;  // no phases in a flat cycle
    const double mid = floor + (peak - floor) / 2;
    const double rate = (b - a) / static_cast<double>(u - s);
    if (rs.lr > mid && ru.lr > mid) {
      out.high.push_back(rate);
    } else if (rs.lr < mid && ru.lr < mid) {
      out.low.push_back(rate);
    } else {
      continue;
    }
    if (out.cycles.empty() || out.cycles.back() != start) {
      out.cycles.push_back(start);
    }
  }
  return out;
}

constexpr char kPhaseStatistic[] =
    "Within each completed cycle, an LR above the cycle's mid-range "
    "(floor + (peak - floor)/2) is its high-LR phase and below it its low-LR "
    "phase. For consecutive finite reports with both ends in the same phase "
    "of the same cycle, rate = (v2 - v1)/(step2 - step1); per phase kind, the "
    "mean rate, its standard error (sample sd / sqrt(n)) and t = mean/se. "
    "Overfitting into sharp minima: validation t_high <= -2 (improves at "
    "high LR), t_low >= +2 (degrades at low LR) and training t_low <= -2 "
    "(still falling), from >= 3 differences per phase kind over >= 2 "
    "completed cycles.";

void PhaseFindings(const DiagnosisReports& reports, const std::string& val,
                   const std::string& train, const Timeline& timeline,
                   Profile& profile, std::vector<v1::Finding>* out) {
  const MetricSeries* vs = val.empty() ? nullptr : reports.Find(val);
  if (vs == nullptr) {
    out->push_back(
        FindingBuilder(
            "PHASE_INCONCLUSIVE", v1::Finding::INFO,
            val.empty()
                ? absl::StrCat("No validation loss is reported (looked for ",
                               Names(kValidationDefaults), ").")
                : absl::StrCat("No report has the validation metric \"", val,
                               "\"."))
            .Statistic(kPhaseStatistic)
            .Recommend("Report the validation loss every few steps (e.g. "
                       "val_loss=...), or name it with validation_metric.")
            .Build());
    return;
  }
  const PhaseRates v = Rates(*vs, reports.last_step(), profile);
  const Summary hi = Summarize(v.high), lo = Summarize(v.low);
  const MetricSeries* ts = train.empty() ? nullptr : reports.Find(train);
  Summary tlo;
  if (ts != nullptr)
    tlo = Summarize(Rates(*ts, reports.last_step(), profile).low);
  const auto cycles = static_cast<int64_t>(v.cycles.size());

  auto evidence = [&](FindingBuilder& b) {
    b.Num("completed_cycles", static_cast<double>(cycles))
        .Num("n_high", static_cast<double>(hi.n))
        .Num("val_rate_high", hi.mean)
        .Num("val_se_high", hi.se)
        .Num("t_high", hi.t)
        .Num("n_low", static_cast<double>(lo.n))
        .Num("val_rate_low", lo.mean)
        .Num("val_se_low", lo.se)
        .Num("t_low", lo.t);
    if (ts != nullptr) {
      b.Num("train_n_low", static_cast<double>(tlo.n))
          .Num("train_rate_low", tlo.mean)
          .Num("train_t_low", tlo.t);
    }
    b.Statistic(kPhaseStatistic);
  };

  if (cycles < kPhaseMinCycles || hi.n < kPhaseMinPairs ||
      lo.n < kPhaseMinPairs) {
    FindingBuilder b(
        "PHASE_INCONCLUSIVE", v1::Finding::INFO,
        absl::StrCat("Too few validation reports in completed cycles to "
                     "compare the high- and low-LR phases (",
                     cycles, " cycles, ", hi.n, " high-phase and ", lo.n,
                     " low-phase differences; need ", kPhaseMinCycles, ", ",
                     kPhaseMinPairs, " and ", kPhaseMinPairs, ")."));
    evidence(b);
    b.Recommend(
        "Report the validation loss several times per phase (at least 4 "
        "reports per cycle), and wait for at least two cycles to complete.");
    out->push_back(std::move(b).Build());
    return;
  }
  const bool degrades_low = lo.t >= kPhaseT;
  const bool improves_high = hi.t <= -kPhaseT;
  const bool train_falls =
      ts != nullptr && tlo.n >= kPhaseMinPairs && tlo.t <= -kPhaseT;
  if (degrades_low && improves_high && train_falls) {
    FindingBuilder b(
        "PHASE_SHARP_MINIMA", v1::Finding::WARNING,
        absl::StrCat(
            "Across ", cycles,
            " completed cycles the validation loss improves in the "
            "high-LR phases (t = ",
            EvidenceText(hi.t),
            ") and degrades in the low-LR phases (t = ", EvidenceText(lo.t),
            ") while the training loss keeps falling: the low-LR "
            "phases overfit into sharp minima."));
    evidence(b);
    // The SWA / snapshot steps: the last step of each completed cycle.
    const size_t first = v.cycles.size() > kMaxSnapshotSpans
                             ? v.cycles.size() - kMaxSnapshotSpans
                             : 0;
    std::vector<std::string> steps;
    for (size_t i = first; i < v.cycles.size(); ++i) {
      const int64_t end =
          v.cycles[i] + profile.At(v.cycles[i]).cycle_length - 1;
      b.Span(end, end + 1, "snapshot");
      steps.push_back(absl::StrCat(end));
    }
    b.Recommend(absl::StrCat(
        "Keep the cyclical schedule but discourage the low-LR overfitting: "
        "stronger weight decay, shorter cycles (less time at low LR), or "
        "SWA / a snapshot ensemble over the snapshot steps (the last step of "
        "each cycle, StepResult.snapshot): ",
        absl::StrJoin(steps, ", "), "."));
    out->push_back(std::move(b).Build());
    return;
  }
  if (!degrades_low) {
    FindingBuilder b(
        "PHASE_HEALTHY", v1::Finding::INFO,
        absl::StrCat("The validation loss does not degrade in the low-LR "
                     "phases (t_low = ",
                     EvidenceText(lo.t), " < ", EvidenceText(kPhaseT), " over ",
                     cycles, " completed cycles)."));
    evidence(b);
    out->push_back(std::move(b).Build());
    return;
  }
  std::string why;
  if (!improves_high) {
    why = absl::StrCat("it does not improve in the high-LR phases (t_high = ",
                       EvidenceText(hi.t),
                       "): a general rise, not the "
                       "phase pattern");
  } else if (ts == nullptr) {
    why = "no training loss is reported to tell overfitting from divergence";
  } else {
    why = absl::StrCat(
        "the training loss does not keep falling at low LR "
        "(train_t_low = ",
        EvidenceText(tlo.t), ")");
  }
  FindingBuilder b("PHASE_INCONCLUSIVE", v1::Finding::INFO,
                   absl::StrCat("The validation loss degrades in the low-LR "
                                "phases (t_low = ",
                                EvidenceText(lo.t), "), but ", why, "."));
  evidence(b);
  b.Recommend(
      "Compare with the divergence findings; if the validation loss rises in "
      "every phase, the run overfits regardless of the LR (more "
      "regularization or data, or stop earlier).");
  out->push_back(std::move(b).Build());
}

// ---- 2 and 4. Stability and Robbins-Monro (the engine's analysis) ----

constexpr char kStabilityStatistic[] =
    "Gradient descent on f = L/2 x^2 under the spec in force at the "
    "max_curvature report, as annealctl analyze --max-curvature L computes "
    "it (docs/analysis.md): critical_max_lr is the first peak LR at which "
    "some complete cycle (or the settled tail) ends with |x| grown; "
    "bounded_max_lr the first at which |x| exceeds its cycle-start value "
    "inside a cycle. ratio = max_lr / critical_max_lr.";

// The Robbins-Monro verdict for `compiled`, the spec in force at `step`.
void RobbinsMonroFinding(const Schedule& compiled, int64_t step,
                         const DiagnosisOptions& options,
                         std::vector<v1::Finding>* robbins_monro) {
  AnalysisOptions ao;
  ao.horizon = std::min(DefaultHorizon(compiled), options.max_analysis_horizon);
  absl::StatusOr<v1::Analysis> analysis = Analyze(compiled, ao);
  if (!analysis.ok()) {
    robbins_monro->push_back(
        FindingBuilder("ROBBINS_MONRO", v1::Finding::INFO,
                       absl::StrCat("The schedule could not be analysed: ",
                                    analysis.status().message()))
            .Build());
    return;
  }
  const v1::RobbinsMonro& rm = analysis->robbins_monro();
  {
    std::string verdict;
    if (rm.satisfied()) {
      verdict =
          "satisfies both Robbins-Monro conditions (sum lr = infinity, "
          "sum lr^2 < infinity): SGD under it converges to a critical "
          "point in the limit";
    } else if (!rm.sum_diverges() && !rm.sum_squares_converges()) {
      verdict = "violates both Robbins-Monro conditions";
    } else if (!rm.sum_diverges()) {
      verdict =
          "violates condition 1: sum lr is finite, so SGD can stop "
          "short of a minimum from a distant start";
    } else {
      verdict =
          "violates condition 2: sum lr^2 is infinite, so the "
          "gradient noise is never quelled and the iterates keep "
          "fluctuating around a minimum";
    }
    FindingBuilder b("ROBBINS_MONRO", v1::Finding::INFO,
                     absl::StrCat("The spec in force at step ", step, " ",
                                  verdict, " (", rm.reason(), ")."));
    b.Num("sum_diverges", rm.sum_diverges() ? 1 : 0)
        .Num("sum_squares_converges", rm.sum_squares_converges() ? 1 : 0)
        .Num("horizon", static_cast<double>(analysis->horizon()))
        .Num("horizon_sum", rm.horizon_sum())
        .Num("horizon_sum_squares", rm.horizon_sum_squares())
        .Statistic(
            "The engine's asymptotic verdict from the family's structure "
            "(docs/analysis.md), with the sums measured over the horizon.");
    if (!rm.satisfied()) {
      b.Recommend(
          !rm.sum_diverges()
              ? "Fine for a finite run that ends annealed. For convergence in "
                "the limit, decay more slowly (inverse_time_decay with power "
                "<= 1) or keep a positive floor."
              : "Fine for exploration (cyclical schedules break condition 2 "
                "by design). To converge in the limit, make the peaks decay: "
                "warm_restarts with period_mult m and peak_decay d where "
                "m*d >= 1 > m*d^2, or end with an anneal to min_lr 0.");
    }
    robbins_monro->push_back(std::move(b).Build());
  }
}

void StabilityFindings(const v1::Schedule& schedule, const Timeline& timeline,
                       const DiagnosisReports& reports,
                       const DiagnosisOptions& options,
                       std::vector<v1::Finding>* stability,
                       std::vector<v1::Finding>* robbins_monro,
                       double* critical_lr) {
  // 4. Robbins-Monro: the spec in force at the last report (or the highest
  // step served), whatever the curvature; the verdict needs no curvature,
  // and an analysis with one can fail where the verdict would not.
  int64_t rm_step = reports.last_step();
  if (rm_step < 0) rm_step = std::max<int64_t>(0, schedule.max_step_served());
  rm_step = std::min(rm_step, kMaxStep);
  RobbinsMonroFinding(*timeline.compiled(timeline.SegmentAt(rm_step)), rm_step,
                      options, robbins_monro);

  // 2. Stability, under the spec in force at the curvature report.
  const auto curvature = LatestPositive(reports.Find(kMaxCurvatureMetric));
  if (!curvature) {
    stability->push_back(
        FindingBuilder("STABILITY_INCONCLUSIVE", v1::Finding::INFO,
                       "No positive finite max_curvature is reported, so "
                       "the peak LR cannot be checked against the stability "
                       "bound.")
            .Statistic(kStabilityStatistic)
            .Recommend(
                "Report max_curvature, the largest Hessian eigenvalue L "
                "(e.g. by power iteration on Hessian-vector products), now "
                "and then.")
            .Build());
    return;
  }
  const int64_t step = std::min(curvature->first, kMaxStep);
  const std::shared_ptr<const Schedule>& compiled =
      timeline.compiled(timeline.SegmentAt(step));
  AnalysisOptions ao;
  ao.horizon =
      std::min(DefaultHorizon(*compiled), options.max_analysis_horizon);
  ao.max_curvature = curvature->second;
  absl::StatusOr<v1::Analysis> analysis = Analyze(*compiled, ao);
  if (!analysis.ok()) {
    stability->push_back(
        FindingBuilder("STABILITY_INCONCLUSIVE", v1::Finding::INFO,
                       absl::StrCat("The schedule could not be analysed: ",
                                    analysis.status().message()))
            .Build());
    return;
  }
  const v1::Stability& st = analysis->stability();
  // The peak as served from `step` on: a plateau policy's cuts lower it.
  const double max_lr = LevelAt(schedule, timeline, step);
  const double ratio = Ratio(max_lr, st.critical_max_lr());
  // The bounds are the curve's shape, so they hold as computed; the growth
  // inside a cycle is of the curve as served: lr(t)·s at L is lr(t) at L·s.
  double max_log_growth = st.max_log_growth();
  const double spec_max_lr =
      schedule.timeline(static_cast<int>(timeline.SegmentAt(step)))
          .spec()
          .max_lr();
  if (max_lr != spec_max_lr && spec_max_lr > 0) {
    AnalysisOptions served = ao;
    served.max_curvature = curvature->second * (max_lr / spec_max_lr);
    if (absl::StatusOr<v1::Analysis> a = Analyze(*compiled, served); a.ok()) {
      max_log_growth = a->stability().max_log_growth();
    }
  }
  auto evidence = [&](FindingBuilder& b) {
    b.Num("max_curvature", curvature->second)
        .Num("curvature_step", static_cast<double>(curvature->first))
        .Num("max_lr", max_lr)
        .Num("peak_lr", analysis->peak_lr())
        .Num("critical_max_lr", st.critical_max_lr())
        .Num("critical_max_lr_times_curvature",
             st.critical_max_lr_times_curvature())
        .Num("bounded_max_lr", st.bounded_max_lr())
        .Num("ratio", ratio)
        .Num("max_log_growth", max_log_growth)
        .Statistic(kStabilityStatistic);
  };
  if (st.cycles_checked() == 0 && !st.tail_checked()) {
    FindingBuilder b(
        "STABILITY_INCONCLUSIVE", v1::Finding::INFO,
        absl::StrCat("No complete cycle of the spec ends within "
                     "the analysed ",
                     analysis->horizon(), " steps, so none could be judged."));
    evidence(b);
    stability->push_back(b.Build());
    return;
  }
  if (std::isfinite(st.critical_max_lr())) *critical_lr = st.critical_max_lr();
  // Judged at the served peak, not the spec's (st.stable() is the latter).
  if (!(max_lr <= st.critical_max_lr())) {
    FindingBuilder b(
        "STABILITY_UNSTABLE", v1::Finding::ERROR,
        absl::StrCat(
            "max_lr ", EvidenceText(max_lr), " is ",
            absl::StrFormat("%.3g", ratio), " times the critical peak LR ",
            EvidenceText(st.critical_max_lr()), " (",
            absl::StrFormat("%.4g", st.critical_max_lr_times_curvature()),
            "/L) for the reported max_curvature L = ",
            EvidenceText(curvature->second),
            ": the cycles end with |x| grown, so training "
            "diverges along the sharpest direction."));
    evidence(b);
    b.Suggest(st.critical_max_lr())
        .Recommend(absl::StrCat(
            "Lower max_lr to at most ", EvidenceText(st.critical_max_lr()),
            " (the net-contraction bound); at most ",
            EvidenceText(st.bounded_max_lr()),
            " keeps |x| below its cycle-start value at every step."));
    stability->push_back(std::move(b).Build());
    return;
  }
  const bool close = ratio > kStabilityMargin;
  FindingBuilder b(
      close ? "STABILITY_MARGIN" : "STABILITY_OK",
      close ? v1::Finding::WARNING : v1::Finding::INFO,
      absl::StrCat("max_lr ", EvidenceText(max_lr), " is ",
                   absl::StrFormat("%.3g", ratio), " of the critical peak LR ",
                   EvidenceText(st.critical_max_lr()),
                   " for the reported max_curvature L = ",
                   EvidenceText(curvature->second),
                   close ? ": within 10% of the bound, where curvature "
                           "growth tips it over."
                         : "."));
  evidence(b);
  if (close) {
    // The LR the recommendation names; an OK finding recommends none.
    b.Suggest(kStabilityMargin * st.critical_max_lr());
    b.Recommend(
        absl::StrCat("Keep max_lr below ",
                     EvidenceText(kStabilityMargin * st.critical_max_lr()),
                     " or watch max_curvature as training sharpens."));
  } else if (!(max_lr <= st.bounded_max_lr())) {
    b.Recommend(absl::StrCat(
        "Stable over each cycle, with a transient growth of |x| inside it "
        "(e^",
        absl::StrFormat("%.3g", max_log_growth), " at most); below ",
        EvidenceText(st.bounded_max_lr()), " there is none."));
  }
  stability->push_back(std::move(b).Build());
}

// ---- 3. Batch size ----

constexpr char kBatchStatistic[] =
    "The latest positive finite batch_size report B against the "
    "batch_scaling of the spec in force at its step; with a reported lr at "
    "a step at or after it, that LR against the timeline's reference LR and "
    "its batch-scaled LR (relative difference <= 1e-6 counts as equal). The "
    "linear rule: lr(B) = lr(B_ref) * B / B_ref.";

bool Near(double a, double b) {
  return std::fabs(a - b) <= 1e-6 * std::max(std::fabs(a), std::fabs(b));
}

// The largest batch size Diagnose reasons about (batch_scaling's own
// reference_batch_size is an int64; 2^53 keeps every whole number exact).
constexpr double kMaxReportedBatchSize = 9007199254740992.0;

void BatchFindings(const v1::Schedule& schedule, const Timeline& timeline,
                   const DiagnosisReports& reports, Profile& profile,
                   std::vector<v1::Finding>* out) {
  const MetricSeries* series = reports.Find(kBatchSizeMetric);
  const auto latest = LatestPositive(series);
  if (!latest) {
    out->push_back(
        FindingBuilder("BATCH_SIZE_INCONCLUSIVE", v1::Finding::INFO,
                       "No positive finite batch_size is reported, so the LR "
                       "cannot be checked against the batch size.")
            .Statistic(kBatchStatistic)
            .Recommend("Report batch_size (once is enough, and whenever it "
                       "changes).")
            .Build());
    return;
  }
  const int64_t step = latest->first;
  const double b = latest->second;
  // A batch size is a whole number; advice built on 0.5 or 1e300 would name
  // a reference_batch_size the spec cannot take.
  if (b != std::floor(b) || b > kMaxReportedBatchSize) {
    out->push_back(
        FindingBuilder(
            "BATCH_SIZE_INCONCLUSIVE", v1::Finding::INFO,
            absl::StrCat("The batch_size reported at step ", step, " (",
                         EvidenceText(b), ") is not a whole number in [1, ",
                         FormatNumber(kMaxReportedBatchSize),
                         "], so the LR cannot be checked against it."))
            .Num("batch_size_step", static_cast<double>(step))
            .Statistic(kBatchStatistic)
            .Recommend("Report the number of examples per optimizer step "
                       "(summed over ranks) as batch_size.")
            .Build());
    return;
  }
  double first_b = b;
  for (size_t i = 0; i < series->size(); ++i) {
    const double v = series->values[i];
    if (std::isfinite(v) && v > 0) {
      first_b = v;
      break;
    }
  }
  const v1::ScheduleSpec& spec = SpecAt(schedule, timeline, step);
  const double max_lr = LevelAt(schedule, timeline, step);  // as served
  auto base = [&](FindingBuilder& f) {
    f.Num("batch_size", b).Num("batch_size_step", static_cast<double>(step));
  };
  if (!spec.has_batch_scaling()) {
    const bool changed = first_b != b;
    const double ref = first_b;
    const double linear = max_lr * b / ref;
    FindingBuilder f(
        changed ? "BATCH_SIZE_UNSCALED" : "BATCH_SCALING_ABSENT",
        changed ? v1::Finding::WARNING : v1::Finding::INFO,
        changed ? absl::StrCat("The job's batch size changed from ",
                               EvidenceText(first_b), " to ", EvidenceText(b),
                               " but the spec has no batch_scaling, so max_lr ",
                               EvidenceText(max_lr), " did not follow it.")
                : absl::StrCat("The spec has no batch_scaling: max_lr ",
                               EvidenceText(max_lr),
                               " is used as is at the job's batch size ",
                               EvidenceText(b),
                               ", which is therefore its reference."));
    base(f);
    f.Num("first_batch_size", first_b)
        .Num("max_lr", max_lr)
        .Num("reference_batch_size", ref)
        .Num("linear_max_lr", linear)
        .Statistic(kBatchStatistic);
    if (changed) {
      f.Suggest(linear).Recommend(absl::StrCat(
          "If max_lr was tuned at batch size ", EvidenceText(ref),
          ", add batch_scaling {reference_batch_size: ", EvidenceText(ref),
          ", rule: LINEAR} and pass batch_size in Evaluate: the linear rule "
          "gives max_lr ",
          EvidenceText(linear), " at ", EvidenceText(b), "."));
    } else {
      f.Recommend(absl::StrCat(
          "Add batch_scaling {reference_batch_size: ", EvidenceText(ref),
          ", rule: LINEAR} so that a change of batch size rescales the LR "
          "(the linear rule: max_lr * B / ",
          EvidenceText(ref), ", e.g. ", EvidenceText(2 * max_lr), " at ",
          EvidenceText(2 * ref), ")."));
    }
    out->push_back(std::move(f).Build());
    return;
  }
  const double ref =
      static_cast<double>(spec.batch_scaling().reference_batch_size());
  const bool sqrt_rule = spec.batch_scaling().rule() == v1::BatchScaling::SQRT;
  const double factor = sqrt_rule ? std::sqrt(b / ref) : b / ref;
  if (b == ref) {
    FindingBuilder f("BATCH_SIZE_REFERENCE", v1::Finding::INFO,
                     absl::StrCat("The job's batch size ", EvidenceText(b),
                                  " is the spec's reference_batch_size: "
                                  "its LRs apply unscaled."));
    base(f);
    f.Num("reference_batch_size", ref).Statistic(kBatchStatistic);
    out->push_back(std::move(f).Build());
    return;
  }
  // Did the job pass batch_size? Its reported lr tells.
  const MetricSeries* lrs = reports.Find(kLrMetric);
  std::optional<std::pair<int64_t, double>> served;
  if (lrs != nullptr) {
    for (size_t i = lrs->size(); i-- > 0;) {
      if (lrs->steps[i] < step) break;
      if (std::isfinite(lrs->values[i]) && lrs->values[i] > 0) {
        served = std::make_pair(lrs->steps[i], lrs->values[i]);
        break;
      }
    }
  }
  const double linear = max_lr * b / ref;
  FindingBuilder* f = nullptr;
  std::optional<FindingBuilder> holder;
  if (served) {
    const double reference = profile.At(served->first).lr;
    StepQuery q;
    q.step = served->first;
    q.batch_size = b <= 1e15 ? static_cast<int64_t>(std::llround(b)) : 1;
    // A batch size past any real one is not evaluated (llround's range).
    absl::StatusOr<StepResult> scaled = absl::InvalidArgumentError("");
    if (b <= 1e15) scaled = timeline.Evaluate(q);
    const double scaled_lr = scaled.ok() ? scaled->lr : reference * factor;
    if (Near(served->second, scaled_lr)) {
      holder.emplace("BATCH_SCALING_APPLIED", v1::Finding::INFO,
                     absl::StrCat("The job's reported lr follows the spec's "
                                  "batch_scaling at batch size ",
                                  EvidenceText(b), "."));
    } else if (Near(served->second, reference)) {
      holder.emplace(
          "BATCH_SCALING_NOT_APPLIED", v1::Finding::WARNING,
          absl::StrCat("The job runs at batch size ", EvidenceText(b),
                       ", not the reference ", EvidenceText(ref),
                       ", but its reported lr is the reference LR: it does "
                       "not pass batch_size, so the spec's batch_scaling is "
                       "not in force."));
      holder->Suggest(linear).Recommend(absl::StrCat(
          "Pass batch_size = ", EvidenceText(b),
          " in Evaluate (AnnealLR(batch_size=...)); the linear rule gives "
          "max_lr ",
          EvidenceText(linear), " (", EvidenceText(max_lr), " * ",
          EvidenceText(b), " / ", EvidenceText(ref), ")."));
    } else {
      holder.emplace("BATCH_SCALING_INCONCLUSIVE", v1::Finding::INFO,
                     "The job's reported lr is neither the reference LR nor "
                     "the batch-scaled one (its optimizer changes it?).");
    }
    f = &*holder;
    f->Num("lr_step", static_cast<double>(served->first))
        .Num("reported_lr", served->second)
        .Num("reference_lr", reference)
        .Num("scaled_lr", scaled_lr);
  } else {
    holder.emplace(
        "BATCH_SCALING_UNVERIFIED", v1::Finding::INFO,
        absl::StrCat("The job runs at batch size ", EvidenceText(b),
                     ", not the reference ", EvidenceText(ref),
                     ": the spec's batch_scaling is in force only if the job "
                     "passes batch_size in Evaluate."));
    f = &*holder;
    f->Suggest(linear).Recommend(absl::StrCat(
        "Pass batch_size = ", EvidenceText(b),
        " in Evaluate (the linear rule gives max_lr ", EvidenceText(linear),
        "); report lr too, so that Diagnose can check what was served."));
  }
  base(*f);
  f->Num("reference_batch_size", ref)
      .Num("max_lr", max_lr)
      .Num("linear_max_lr", linear)
      .Statistic(kBatchStatistic);
  out->push_back(std::move(*f).Build());
}

// ---- 5. Divergence ----

constexpr char kRestartStatistic[] =
    "For each restart step r between training reports: up to 5 finite "
    "training reports before r (in the previous cycle) and up to 5 from r "
    "on (in the first half of the new cycle), at least 3 each; Welch's t of "
    "mean(after) - mean(before) and the relative rise (mean(after) - "
    "mean(before)) / |mean(before)|. Flagged when t >= 3 and the rise >= 1 "
    "(the loss at least doubles). Sustained rise: the mean of the last 5 "
    "finite reports against the 5-report window of the lowest mean, by the "
    "same rule.";

struct Window {
  std::vector<double> values;
  int64_t first = -1, last = -1;
};

void DivergenceFindings(const DiagnosisReports& reports, const std::string& val,
                        const std::string& train, Profile& profile,
                        double critical_lr, double max_lr,
                        std::vector<v1::Finding>* out) {
  std::string lower = "Lower max_lr";
  if (critical_lr > 0) {
    absl::StrAppend(&lower, " (to at most ", EvidenceText(critical_lr),
                    ", the stability bound for the reported max_curvature)");
  } else {
    absl::StrAppend(&lower,
                    " (by a factor 3 to 10, or to the LR range "
                    "test's suggestion)");
  }
  absl::StrAppend(&lower,
                  ", or add a warmup in every cycle (warmup {steps: W, "
                  "every_cycle: true}) so that each restart ramps up to its "
                  "peak instead of jumping to it.");
  const double suggest = critical_lr > 0 ? critical_lr : 0;

  bool flagged = false;
  // Non-finite losses.
  for (const std::string& metric : {train, val}) {
    if (metric.empty()) continue;
    const MetricSeries* s = reports.Find(metric);
    if (s == nullptr) continue;
    int64_t bad = 0;
    size_t first_bad = s->size();
    for (size_t i = 0; i < s->size(); ++i) {
      if (!std::isfinite(s->values[i])) {
        ++bad;
        first_bad = std::min(first_bad, i);
      }
    }
    if (bad == 0) continue;
    flagged = true;
    const int64_t at = s->steps[first_bad];
    // Right after a restart (in the first half of the cycle it starts, as
    // for the rises below): the jump to the peak is the likely cause.
    const int64_t cycle_start = profile.CycleStart(at);
    const int64_t cycle_length = profile.At(at).cycle_length;
    const bool after_restart =
        cycle_start > 0 &&
        (cycle_length == 0 ||
         at - cycle_start < std::max<int64_t>(1, cycle_length / 2));
    FindingBuilder b(
        "DIVERGENCE_NONFINITE", v1::Finding::ERROR,
        absl::StrCat(
            metric, " is ", EvidenceText(s->values[first_bad]), " from step ",
            at,
            after_restart
                ? absl::StrCat(", ", at - cycle_start,
                               " steps after the restart at step ", cycle_start)
                : "",
            " (", bad, " of ", s->size(),
            " reports are not finite): training diverged",
            after_restart ? " at the restart's peak LR." : "."));
    if (after_restart) b.Num("restart_step", static_cast<double>(cycle_start));
    b.Num("first_nonfinite_step", static_cast<double>(at))
        .Num("first_nonfinite_value", s->values[first_bad])
        .Num("nonfinite_reports", static_cast<double>(bad))
        .Num("lr_at_first_nonfinite", profile.At(at).lr);
    if (first_bad > 0) {
      b.Num("last_finite_value", s->values[first_bad - 1]);
    }
    b.Num("max_lr", max_lr)
        .Span(at, s->steps.back() + 1, absl::StrCat("non-finite ", metric))
        .Statistic("Any reported value that is NaN or infinite.")
        .Suggest(suggest)
        .Recommend(lower);
    out->push_back(std::move(b).Build());
  }

  const MetricSeries* ts = train.empty() ? nullptr : reports.Find(train);
  if (ts == nullptr) {
    if (!flagged) {
      out->push_back(
          FindingBuilder(
              "DIVERGENCE_INCONCLUSIVE", v1::Finding::INFO,
              absl::StrCat("No training loss is reported (looked for ",
                           train.empty() ? Names(kTrainingDefaults) : train,
                           "), so divergence cannot be checked."))
              .Statistic(kRestartStatistic)
              .Recommend("Report the training loss (loss=...) every step or "
                         "every few steps.")
              .Build());
    }
    return;
  }
  // Finite training reports.
  std::vector<int64_t> steps;
  std::vector<double> values;
  for (size_t i = 0; i < ts->size(); ++i) {
    if (std::isfinite(ts->values[i])) {
      steps.push_back(ts->steps[i]);
      values.push_back(ts->values[i]);
    }
  }
  // Rises right after restarts.
  struct Rise {
    int64_t restart;
    int64_t end;
    Summary before, after;
    double t, rise;
  };
  std::vector<Rise> rises;
  int64_t checked = 0;
  for (size_t j = 1; j < steps.size(); ++j) {
    const int64_t start = profile.CycleStart(steps[j]);
    if (start <= steps[j - 1]) continue;  // no restart between them
    if (profile.CycleStart(steps[j - 1]) == start) continue;
    if (start == 0) continue;
    const int64_t prev_start = profile.CycleStart(steps[j - 1]);
    const int64_t len = profile.At(steps[j]).cycle_length;
    const int64_t half_end = len > 0 ? start + std::max<int64_t>(1, len / 2)
                                     : std::numeric_limits<int64_t>::max();
    std::vector<double> before, after;
    for (size_t i = j; i-- > 0 && static_cast<int>(before.size()) < kWindow;) {
      if (steps[i] < prev_start) break;
      before.push_back(values[i]);
    }
    int64_t end = start;
    for (size_t i = j;
         i < steps.size() && static_cast<int>(after.size()) < kWindow; ++i) {
      if (steps[i] >= half_end || profile.CycleStart(steps[i]) != start) break;
      after.push_back(values[i]);
      end = steps[i] + 1;
    }
    if (static_cast<int>(before.size()) < kMinWindow ||
        static_cast<int>(after.size()) < kMinWindow) {
      continue;
    }
    ++checked;
    Rise r{start, end, Summarize(before), Summarize(after), 0, 0};
    r.t = WelchT(r.after, r.before);
    r.rise = Ratio(r.after.mean - r.before.mean, std::fabs(r.before.mean));
    if (r.t >= kRiseT && r.rise >= kRiseRatio) rises.push_back(r);
  }
  if (!rises.empty()) {
    flagged = true;
    const Rise& worst = *std::max_element(
        rises.begin(), rises.end(),
        [](const Rise& a, const Rise& b) { return a.rise < b.rise; });
    FindingBuilder b(
        "DIVERGENCE_AFTER_RESTART", v1::Finding::WARNING,
        absl::StrCat(train, " rises fast right after ", rises.size(), " of ",
                     checked, " restarts (worst at step ", worst.restart,
                     ": mean ", EvidenceText(worst.before.mean), " -> ",
                     EvidenceText(worst.after.mean),
                     ", t = ", absl::StrFormat("%.3g", worst.t), ")."));
    b.Num("restarts_checked", static_cast<double>(checked))
        .Num("restarts_flagged", static_cast<double>(rises.size()))
        .Num("worst_restart_step", static_cast<double>(worst.restart))
        .Num("mean_before", worst.before.mean)
        .Num("mean_after", worst.after.mean)
        .Num("relative_rise", worst.rise)
        .Num("welch_t", worst.t)
        .Num("lr_at_restart", profile.At(worst.restart).lr);
    for (size_t i = 0; i < rises.size() && i < kMaxSnapshotSpans; ++i) {
      b.Span(rises[i].restart, rises[i].end, "after restart");
    }
    b.Statistic(kRestartStatistic).Suggest(suggest).Recommend(lower);
    out->push_back(std::move(b).Build());
  }
  // A sustained rise: the last window against the best window.
  if (static_cast<int64_t>(values.size()) >= 2 * kWindow) {
    const size_t n = values.size();
    double best = std::numeric_limits<double>::infinity();
    size_t best_at = 0;
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
      sum += values[i];
      if (i >= kWindow) sum -= values[i - kWindow];
      if (i + 1 >= kWindow && sum < best) {
        best = sum;
        best_at = i + 1 - kWindow;
      }
    }
    if (best_at + 2 * kWindow <= n) {
      const Summary low = Summarize(std::vector<double>(
          values.begin() + static_cast<std::ptrdiff_t>(best_at),
          values.begin() + static_cast<std::ptrdiff_t>(best_at + kWindow)));
      const Summary last =
          Summarize(std::vector<double>(values.end() - kWindow, values.end()));
      const double t = WelchT(last, low);
      const double rise = Ratio(last.mean - low.mean, std::fabs(low.mean));
      if (t >= kRiseT && rise >= kRiseRatio) {
        flagged = true;
        FindingBuilder b(
            "DIVERGENCE_RISING", v1::Finding::WARNING,
            absl::StrCat(train, " has risen from ", EvidenceText(low.mean),
                         " (steps ", steps[best_at], "-",
                         steps[best_at + kWindow - 1], ") to ",
                         EvidenceText(last.mean), " (the last ", kWindow,
                         " reports, t = ", absl::StrFormat("%.3g", t), ")."));
        b.Num("best_window_mean", low.mean)
            .Num("best_window_step", static_cast<double>(steps[best_at]))
            .Num("last_window_mean", last.mean)
            .Num("relative_rise", rise)
            .Num("welch_t", t)
            .Span(steps[best_at + kWindow - 1], steps.back() + 1, "rising")
            .Statistic(kRestartStatistic)
            .Suggest(suggest)
            .Recommend(lower);
        out->push_back(std::move(b).Build());
      }
    }
  }
  if (!flagged) {
    FindingBuilder b(
        "DIVERGENCE_NONE", v1::Finding::INFO,
        absl::StrCat("No sign of divergence in ", train, " (", ts->size(),
                     " reports, ", checked, " restarts checked)."));
    b.Num("reports", static_cast<double>(ts->size()))
        .Num("restarts_checked", static_cast<double>(checked))
        .Statistic(kRestartStatistic);
    out->push_back(std::move(b).Build());
  }
}

// ---- 6. The LR range test ----

constexpr char kRangeStatistic[] =
    "Points (lr(step), loss) in step order, cut at the first non-finite "
    "loss. The loss is smoothed by a centred moving average of 2k+1 reports, "
    "k = max(1, n/20) (fewer at the ends). Diverged: the first point whose "
    "smoothed loss exceeds 4 times the lowest smoothed loss before it, or "
    "the first non-finite loss. Slope at point i: (S[i+k] - S[i-k]) / "
    "(ln lr[i+k] - ln lr[i-k]) over the points before divergence; the "
    "suggested max_lr is the LR of the steepest (most negative) slope up to "
    "the lowest smoothed loss.";

void RangeTestFindings(const DiagnosisReports& reports,
                       const std::string& train, const v1::Schedule& schedule,
                       const Timeline& timeline, Profile& profile,
                       std::vector<v1::Finding>* out) {
  const MetricSeries* ts = train.empty() ? nullptr : reports.Find(train);
  auto inconclusive = [&](std::string why) {
    out->push_back(FindingBuilder("LR_RANGE_TEST_INCONCLUSIVE",
                                  v1::Finding::INFO, std::move(why))
                       .Statistic(kRangeStatistic)
                       .Recommend("Report loss at every step of the sweep "
                                  "(the job's training loss).")
                       .Build());
  };
  if (ts == nullptr) {
    return inconclusive(absl::StrCat(
        "No training loss is reported for the LR range test (looked for ",
        train.empty() ? Names(kTrainingDefaults) : train, ")."));
  }
  std::vector<double> lr, loss;
  std::vector<int64_t> steps;
  int64_t nonfinite_step = -1;
  for (size_t i = 0; i < ts->size(); ++i) {
    if (!std::isfinite(ts->values[i])) {
      nonfinite_step = ts->steps[i];
      break;
    }
    const double l = profile.At(ts->steps[i]).lr;
    if (!(l > 0)) continue;
    lr.push_back(l);
    loss.push_back(ts->values[i]);
    steps.push_back(ts->steps[i]);
  }
  const auto n = static_cast<int64_t>(lr.size());
  if (n < kRangeMinPoints) {
    return inconclusive(absl::StrCat(
        "Only ", n, " finite loss reports at a positive LR before ",
        nonfinite_step >= 0 ? "the loss became non-finite" : "now",
        "; the LR range test needs at least ", kRangeMinPoints, "."));
  }
  const int64_t k = std::max<int64_t>(1, n / kSmoothDivisor);
  std::vector<double> smooth(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t a = std::max<int64_t>(0, i - k);
    const int64_t b = std::min<int64_t>(n - 1, i + k);
    double sum = 0;
    for (int64_t j = a; j <= b; ++j) sum += loss[static_cast<size_t>(j)];
    smooth[static_cast<size_t>(i)] = sum / static_cast<double>(b - a + 1);
  }
  // Divergence.
  int64_t end = n;  // points [0, end) are before divergence
  double best = smooth[0];
  for (int64_t i = 1; i < n; ++i) {
    const double s = smooth[static_cast<size_t>(i)];
    if (best > 0 && s > kDivergeFactor * best) {
      end = i;
      break;
    }
    best = std::min(best, s);
  }
  const bool diverged = end < n || nonfinite_step >= 0;
  const int64_t diverge_step =
      end < n ? steps[static_cast<size_t>(end)] : nonfinite_step;
  const double diverge_lr = diverged ? profile.At(diverge_step).lr : 0;
  // The lowest smoothed loss before divergence, and the steepest descent up
  // to it.
  int64_t lowest = 0;
  for (int64_t i = 1; i < end; ++i) {
    if (smooth[static_cast<size_t>(i)] < smooth[static_cast<size_t>(lowest)]) {
      lowest = i;
    }
  }
  double steepest = 0;
  int64_t at = -1;
  for (int64_t i = 0; i <= lowest; ++i) {
    const int64_t a = std::max<int64_t>(0, i - k);
    const int64_t b = std::min<int64_t>(end - 1, i + k);
    const double dx = std::log(lr[static_cast<size_t>(b)]) -
                      std::log(lr[static_cast<size_t>(a)]);
    if (!(dx > 0)) continue;
    const double slope =
        (smooth[static_cast<size_t>(b)] - smooth[static_cast<size_t>(a)]) / dx;
    if (slope < steepest) {
      steepest = slope;
      at = i;
    }
  }
  const double sweep_max = schedule.spec().max_lr();
  if (at < 0) {
    return inconclusive(
        absl::StrCat("The smoothed loss never decreases with the LR over ", n,
                     " reports; the sweep's min_lr may already be too large."));
  }
  const double suggested = lr[static_cast<size_t>(at)];
  const double lowest_lr = lr[static_cast<size_t>(lowest)];
  FindingBuilder b(
      "LR_RANGE_TEST", v1::Finding::INFO,
      absl::StrCat("Suggested max_lr ", EvidenceText(suggested),
                   " (the steepest descent of the smoothed loss against log "
                   "LR, at step ",
                   steps[static_cast<size_t>(at)], "); ",
                   diverged ? absl::StrCat("the loss diverged at lr ",
                                           EvidenceText(diverge_lr), " (step ",
                                           diverge_step, ").")
                            : absl::StrCat("the loss had not diverged by lr ",
                                           EvidenceText(lr.back()), ".")));
  b.Num("suggested_max_lr", suggested)
      .Num("steepest_step", static_cast<double>(steps[static_cast<size_t>(at)]))
      .Num("steepest_slope", steepest)
      .Num("lowest_loss_lr", lowest_lr)
      .Num("lowest_smoothed_loss", smooth[static_cast<size_t>(lowest)])
      .Num("lowest_loss_lr_over_10", lowest_lr / 10)
      .Num("diverged", diverged ? 1 : 0);
  if (diverged) {
    b.Num("divergence_lr", diverge_lr)
        .Num("divergence_step", static_cast<double>(diverge_step))
        .Span(diverge_step,
              steps.back() + 1 > diverge_step
                  ? std::max(steps.back(), diverge_step) + 1
                  : diverge_step + 1,
              "diverged");
  }
  b.Num("points", static_cast<double>(n))
      .Num("smoothing_half_window", static_cast<double>(k))
      .Num("sweep_max_lr", sweep_max)
      .Span(steps.front(), steps[static_cast<size_t>(lowest)] + 1, "descent")
      .Statistic(kRangeStatistic)
      .Suggest(suggested)
      .Recommend(absl::StrCat(
          "Use max_lr ", EvidenceText(suggested),
          " for one-cycle or cosine schedules (annealctl lr-range-test suggest "
          "NAME --write NEW_ID)",
          diverged ? ""
                   : "; the sweep did not reach divergence, so a wider "
                     "sweep (larger --max-lr) may find a larger LR",
          "."));
  (void)timeline;
  out->push_back(std::move(b).Build());
}

}  // namespace

std::string EvidenceText(double value) {
  if (std::isnan(value)) return "NaN";
  return FormatNumber(value);
}

absl::Status ValidateDiagnoseMetric(absl::string_view field,
                                    absl::string_view metric) {
  if (metric.empty()) return absl::OkStatus();  // the defaults
  return ValidateMetricName(field, metric);
}

DiagnosisReports::DiagnosisReports(absl::string_view validation_metric,
                                   absl::string_view training_metric)
    : validation_(validation_metric), training_(training_metric) {}

void DiagnosisReports::Add(const v1::MetricReport& report) {
  ++count_;
  if (first_step_ < 0) first_step_ = report.step();
  last_step_ = report.step();
  auto keep = [&](absl::string_view name) {
    auto it = report.metrics().find(std::string(name));
    if (it == report.metrics().end()) return;
    MetricSeries& s = series_[name];
    s.steps.push_back(report.step());
    s.values.push_back(it->second);
  };
  auto keep_loss = [&](const std::string& given,
                       absl::Span<const absl::string_view> defaults) {
    if (!given.empty()) return keep(given);
    for (absl::string_view d : defaults) keep(d);
  };
  keep_loss(validation_, kValidationDefaults);
  keep_loss(training_, kTrainingDefaults);
  keep(kMaxCurvatureMetric);
  keep(kBatchSizeMetric);
  keep(kLrMetric);
}

const MetricSeries* DiagnosisReports::Find(absl::string_view metric) const {
  auto it = series_.find(metric);
  return it == series_.end() ? nullptr : &it->second;
}

std::string DiagnosisReports::ValidationMetric() const {
  if (!validation_.empty()) return validation_;
  for (absl::string_view d : kValidationDefaults) {
    if (Find(d) != nullptr) return std::string(d);
  }
  return "";
}

std::string DiagnosisReports::TrainingMetric() const {
  if (!training_.empty()) return training_;
  for (absl::string_view d : kTrainingDefaults) {
    if (Find(d) != nullptr) return std::string(d);
  }
  return "";
}

Diagnosis Diagnose(const v1::Schedule& schedule, const Timeline& timeline,
                   const DiagnosisReports& reports,
                   const DiagnosisOptions& options) {
  Diagnosis d;
  d.validation_metric = reports.ValidationMetric();
  d.training_metric = reports.TrainingMetric();
  d.lr_range_test = schedule.labels().contains(std::string(kLrRangeTestLabel));
  Profile profile(timeline);
  std::vector<v1::Finding>& out = d.findings;
  if (d.lr_range_test) {
    RangeTestFindings(reports, d.training_metric, schedule, timeline, profile,
                      &out);
    return d;
  }
  PhaseFindings(reports, d.validation_metric, d.training_metric, timeline,
                profile, &out);
  std::vector<v1::Finding> stability, robbins_monro;
  double critical_lr = 0;
  StabilityFindings(schedule, timeline, reports, options, &stability,
                    &robbins_monro, &critical_lr);
  for (auto& f : stability) out.push_back(std::move(f));
  BatchFindings(schedule, timeline, reports, profile, &out);
  for (auto& f : robbins_monro) out.push_back(std::move(f));
  const int64_t step = std::max<int64_t>(0, reports.last_step());
  DivergenceFindings(reports, d.validation_metric, d.training_metric, profile,
                     critical_lr, LevelAt(schedule, timeline, step), &out);
  std::stable_sort(out.begin(), out.end(),
                   [](const v1::Finding& a, const v1::Finding& b) {
                     return a.severity() > b.severity();
                   });
  return d;
}

absl::StatusOr<v1::ScheduleSpec> LrRangeTestSpec(double min_lr, double max_lr,
                                                 int64_t steps) {
  if (!std::isfinite(min_lr) || min_lr <= 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "min_lr: must be > 0 and finite, got ", FormatNumber(min_lr)));
  }
  if (!std::isfinite(max_lr) || max_lr <= min_lr || max_lr > 1e6) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_lr: must be in (min_lr, 1e6] (min_lr = ", FormatNumber(min_lr),
        "), got ", FormatNumber(max_lr)));
  }
  if (steps < 2 || steps > kMaxAnalysisHorizon) {
    return absl::InvalidArgumentError(absl::StrCat(
        "steps: must be in [2, ", kMaxAnalysisHorizon, "], got ", steps));
  }
  const double gamma =
      std::pow(max_lr / min_lr, 1.0 / static_cast<double>(steps - 1));
  if (!(gamma > 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_lr: must exceed min_lr by more than rounding over ",
                     steps, " steps, got ", FormatNumber(max_lr),
                     " for min_lr ", FormatNumber(min_lr)));
  }
  v1::ScheduleSpec spec;
  spec.set_max_lr(max_lr);
  v1::ExponentialDecay* growth = spec.mutable_exponential_decay();
  growth->set_gamma(gamma);
  growth->set_start_lr(min_lr);
  return spec;
}

}  // namespace anneal
