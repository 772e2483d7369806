// The registry's Diagnose (see registry.h): the published snapshot's
// timeline and the schedule's kept reports, read from the Store in pages
// and cut down to the metrics the diagnosis uses (DiagnosisReports), handed
// to the pure diagnosis (anneal/model/diagnosis.h). Reads only: it never
// serves a step and takes no lock but the map's, to find the schedule.
#include <algorithm>
#include <cstdint>
#include <limits>

#include "anneal/model/diagnosis.h"
#include "anneal/server/registry/registry.h"

namespace anneal {
namespace {

// Reports read from the store per call (of at most metrics_history).
constexpr int kReportChunk = 1000;

}  // namespace

absl::StatusOr<v1::DiagnoseResponse> Registry::Diagnose(
    const v1::DiagnoseRequest& request) const {
  if (auto s = ValidateDiagnoseMetric("validation_metric",
                                      request.validation_metric());
      !s.ok()) {
    return s;
  }
  if (auto s =
          ValidateDiagnoseMetric("training_metric", request.training_metric());
      !s.ok()) {
    return s;
  }
  auto inspected = Inspect(request.name());
  if (!inspected.ok()) return inspected.status();
  const auto& [schedule, timeline] = *inspected;

  // The kept reports, lowest step first, at most metrics_history of them
  // (what the store keeps).
  DiagnosisReports reports(request.validation_metric(),
                           request.training_metric());
  int64_t from = 0;
  int64_t left = std::max<int64_t>(0, options_.metrics_history);
  while (left > 0) {
    const int chunk = static_cast<int>(std::min<int64_t>(left, kReportChunk));
    auto rows = store_->ReadReports(request.name(), from,
                                    std::numeric_limits<int64_t>::max(), chunk);
    if (!rows.ok()) return rows.status();
    for (const v1::MetricReport& row : *rows) reports.Add(row);
    left -= static_cast<int64_t>(rows->size());
    if (static_cast<int>(rows->size()) < chunk) break;
    from = rows->back().step() + 1;
  }

  Diagnosis diagnosis = anneal::Diagnose(schedule, *timeline, reports);
  v1::DiagnoseResponse response;
  response.set_name(schedule.name());
  response.set_revision(schedule.revision());
  response.set_validation_metric(diagnosis.validation_metric);
  response.set_training_metric(diagnosis.training_metric);
  response.set_reports_read(reports.count());
  response.set_first_step(reports.first_step());
  response.set_last_step(reports.last_step());
  response.set_lr_range_test(diagnosis.lr_range_test);
  for (v1::Finding& f : diagnosis.findings) {
    *response.add_findings() = std::move(f);
  }
  return response;
}

}  // namespace anneal
