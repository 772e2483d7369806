// Diagnose: findings about a schedule and the training reports of its job
// (docs/adaptive.md, "Diagnose"). A pure function of the schedule resource,
// its compiled timeline and the reports: no gRPC, no locking, no I/O. The
// registry reads the reports from the store into a DiagnosisReports and
// calls Diagnose; tests build both by hand.
//
// Every finding has a stable code, a severity, its evidence (numbers, each
// also as text so that a non-finite reported value is shown as "NaN" or
// "inf" and never reaches JSON as a number), step spans, the statistic it
// rests on, and a recommendation. Missing or insufficient data gives an
// INFO finding saying what is missing, never an error: the only errors are
// bad metric names in the request.
#ifndef ANNEAL_MODEL_DIAGNOSIS_H_
#define ANNEAL_MODEL_DIAGNOSIS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "anneal/engine/analysis.h"
#include "anneal/model/timeline.h"
#include "anneal/v1/diagnosis.pb.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

// The metrics Diagnose reads besides the two losses.
inline constexpr absl::string_view kMaxCurvatureMetric = "max_curvature";
inline constexpr absl::string_view kBatchSizeMetric = "batch_size";
inline constexpr absl::string_view kLrMetric = "lr";
// The defaults of the two losses, in the order they are looked for.
inline constexpr absl::string_view kValidationDefaults[] = {
    "val_loss", "eval_loss", "validation_loss"};
inline constexpr absl::string_view kTrainingDefaults[] = {"train_loss", "loss",
                                                          "training_loss"};
// The label that marks a schedule as an LR range test (annealctl
// lr-range-test create sets it).
inline constexpr absl::string_view kLrRangeTestLabel =
    "anneal.dev/lr-range-test";

// OK if `metric` is empty (use the defaults) or matches the metric-name rule
// ^[A-Za-z_][A-Za-z0-9_./-]{0,63}$; else INVALID_ARGUMENT naming `field`,
// the rule and the value.
absl::Status ValidateDiagnoseMetric(absl::string_view field,
                                    absl::string_view metric);

// One metric over steps, ascending.
struct MetricSeries {
  std::vector<int64_t> steps;
  std::vector<double> values;
  size_t size() const { return steps.size(); }
};

// The reports a diagnosis reads, cut down to the metrics it uses: the given
// validation and training metrics (or all their defaults), max_curvature,
// batch_size and lr. So its memory is a few doubles per report, whatever the
// reports hold.
class DiagnosisReports {
 public:
  // Empty names: collect every default.
  DiagnosisReports(absl::string_view validation_metric,
                   absl::string_view training_metric);

  // Reports must come in increasing step order (Store::ReadReports').
  void Add(const v1::MetricReport& report);

  int64_t count() const { return count_; }
  int64_t first_step() const { return first_step_; }  // -1 when none
  int64_t last_step() const { return last_step_; }    // -1 when none
  // The metric's series, or null when no report has it.
  const MetricSeries* Find(absl::string_view metric) const;
  // The given name, else the first default some report has; "" if none.
  std::string ValidationMetric() const;
  std::string TrainingMetric() const;

 private:
  std::string validation_;
  std::string training_;
  absl::flat_hash_map<std::string, MetricSeries> series_;
  int64_t count_ = 0;
  int64_t first_step_ = -1;
  int64_t last_step_ = -1;
};

struct DiagnosisOptions {
  // The stability and Robbins-Monro analysis covers at most this many steps
  // of the spec in force (Analyze's default horizon, cut to this).
  int64_t max_analysis_horizon = kDefaultAnalysisHorizon;
};

struct Diagnosis {
  std::string validation_metric;  // used; "" when none
  std::string training_metric;
  bool lr_range_test = false;
  // Most severe first; within a severity, in the order of docs/adaptive.md.
  std::vector<v1::Finding> findings;
};

// The findings for `schedule` (its labels and timeline segments), compiled
// as `timeline`, with its job's `reports`.
Diagnosis Diagnose(const v1::Schedule& schedule, const Timeline& timeline,
                   const DiagnosisReports& reports,
                   const DiagnosisOptions& options = {});

// The LR range test's sweep: lr(t) = min_lr * g^t with g =
// (max_lr/min_lr)^(1/(steps-1)), so lr(0) = min_lr and lr(steps-1) =
// max_lr, held there after (exponential_decay with gamma > 1 and start_lr).
// INVALID_ARGUMENT naming `min_lr`, `max_lr` or `steps` and the rule.
absl::StatusOr<v1::ScheduleSpec> LrRangeTestSpec(double min_lr, double max_lr,
                                                 int64_t steps);

// A number as Evidence.text: the shortest decimal that reads back exactly
// (FormatNumber, field_error.h), or "NaN", "inf", "-inf".
std::string EvidenceText(double value);

}  // namespace anneal

#endif  // ANNEAL_MODEL_DIAGNOSIS_H_
