// The registry's metric reports (see registry.h): ReportMetrics, a write
// that merges into the step's stored report, and ListMetricReports, a read
// straight from the Store. Reports are not kept in memory: a schedule keeps
// up to metrics_history of them, and reads are rare next to Evaluate.
#include <algorithm>
#include <limits>
#include <optional>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "anneal/engine/field_error.h"
#include "anneal/engine/metric_name.h"
#include "anneal/model/metric_report.h"
#include "anneal/model/plateau_change.h"
#include "anneal/model/schedule_resource.h"
#include "anneal/model/timeline_edit.h"
#include "anneal/server/common/log.h"
#include "anneal/server/registry/list_filter.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/registry/registry_entry.h"
#include "google/protobuf/util/time_util.h"

namespace anneal {
namespace {

static_assert(kMaxMetricsPerReport == kMaxMetricsPerStep,
              "a report fits the step it is merged into");

constexpr int32_t kDefaultReportPageSize = 100;
constexpr int32_t kMaxReportPageSize = 1000;

// What a page token is bound to: the same query must come back with it.
std::string QueryFingerprint(const v1::ListMetricReportsRequest& r) {
  return absl::StrCat(r.name(), "|", r.has_start_step() ? r.start_step() : -1,
                      "|", r.has_end_step() ? r.end_step() : -1, "|",
                      absl::StrJoin(r.metric_names(), ","));
}

// The report cut down to `names` (all of it when empty); false if none of
// them is in it.
bool Select(const google::protobuf::RepeatedPtrField<std::string>& names,
            v1::MetricReport* report) {
  if (names.empty()) return true;
  google::protobuf::Map<std::string, double> kept;
  for (const std::string& n : names) {
    auto it = report->metrics().find(n);
    if (it != report->metrics().end()) kept[n] = it->second;
  }
  if (kept.empty()) return false;
  *report->mutable_metrics() = std::move(kept);
  return true;
}

}  // namespace

void Registry::ReportMetrics(const v1::ReportMetricsRequest& request,
                             Done<v1::MetricReport> done) {
  done = [this, name = request.name(),
          done = std::move(done)](absl::StatusOr<v1::MetricReport> r) mutable {
    if (r.ok()) {
      if (watch_hub_.watched()) {
        if (auto found = Published(name); found.ok()) {
          v1::WatchEvent event;
          event.set_kind(v1::WatchEvent::REPORTED);
          event.set_name(name);
          event.set_revision(r->revision());
          *event.mutable_report() = *r;
          watch_hub_.Publish(event, &found->second->schedule->labels());
        }
      }
    } else {
      options_.telemetry->ReportRejected(static_cast<int>(r.status().code()));
    }
    std::move(done)(std::move(r));
  };
  auto found = Published(request.name());
  if (!found.ok()) return std::move(done)(found.status());
  if (auto s = ValidateReport(request.step(), request.metrics()); !s.ok()) {
    return std::move(done)(s);
  }
  absl::ReaderMutexLock writes(&writes_mu_);
  if (auto s = WriteGate(); !s.ok()) return std::move(done)(s);
  auto [entry, snapshot] = *std::move(found);
  if (auto s = CheckLineage(LineageOf(request), *snapshot->schedule); !s.ok()) {
    return std::move(done)(s);
  }

  v1::MetricReport report;
  report.set_step(request.step());
  *report.mutable_metrics() = request.metrics();
  report.set_revision(snapshot->schedule->revision());
  report.set_lineage(snapshot->schedule->lineage());
  *report.mutable_report_time() = NowTimestamp();
  WriteBatch batch;
  batch.Report(entry->name, report, options_.metrics_history);

  // Submitted under the schedule's mutex so that it is ordered with a
  // Delete: a report accepted before the delete is removed by it, one after
  // it is refused here.
  absl::MutexLock lock(&entry->mu);
  if (auto s = entry->CheckLive(); !s.ok()) return std::move(done)(s);
  // A report the schedule's plateau policy counts is applied to the policy
  // once it is durable (a second write): the counters never count a report
  // that was not stored, and a crash between the two loses nothing the job
  // was told of (it was not answered, so it retries; the step is counted
  // then).
  const v1::ScheduleSpec& spec =
      entry->head->schedule->timeline().rbegin()->spec();
  const int64_t served = entry->max_served.load();
  const bool for_policy = spec.has_plateau() &&
                          report.metrics().contains(spec.plateau().metric()) &&
                          report.step() - std::max<int64_t>(served, 0) <=
                              options_.plateau_max_report_lead;
  store_->Submit(
      std::move(batch),
      [this, target = entry, for_policy, report = std::move(report),
       done = std::move(done)](absl::Status s) mutable {
        // The batch rejected on its own (too many metrics at the step, or a
        // race with a delete) leaves nothing diverged; anything else is the
        // store failing.
        if (!s.ok() && !absl::IsInvalidArgument(s) && !absl::IsNotFound(s)) {
          RecordStoreError(s);
          s = StoreFailure(s);
        }
        if (!s.ok()) return std::move(done)(s);
        options_.telemetry->Reported(
            target->name,
            target->reported.Merge(report, options_.max_reported_names));
        if (!for_policy) return std::move(done)(std::move(report));
        // Not on the store's thread: the policy takes the schedule's lock.
        options_.executor->Run([this, target = std::move(target),
                                report = std::move(report),
                                done = std::move(done)]() mutable {
          ApplyPlateau(target, std::move(report), std::move(done));
        });
      });
}

void Registry::ApplyPlateau(const EntryPtr& entry, v1::MetricReport report,
                            Done<v1::MetricReport> done) {
  absl::ReaderMutexLock writes(&writes_mu_);
  if (auto s = WriteGate(); !s.ok()) return std::move(done)(s);
  absl::MutexLock lock(&entry->mu);
  absl::StatusOr<v1::Schedule> writable = WritableHead(*entry, "");
  if (!writable.ok()) return std::move(done)(writable.status());
  v1::Schedule head = *std::move(writable);
  const PlateauCount count = CountPlateauReport(report, &head);
  // Answered with the report once the policy's state is durable.
  Done<v1::Schedule> answer =
      [report = std::move(report),
       done = std::move(done)](absl::StatusOr<v1::Schedule> r) mutable {
        if (!r.ok()) return std::move(done)(r.status());
        std::move(done)(std::move(report));
      };
  if (!count.counted) return std::move(answer)(std::move(head));
  const std::shared_ptr<const Timeline>& current = entry->head->timeline;
  std::optional<v1::Segment> segment;
  Fence::Lease lease;
  if (count.decision.has_value()) {
    const int64_t last_from = head.timeline().rbegin()->from_step();
    const bool restarts =
        head.spec().plateau().action() == v1::Plateau::RESTART;
    const absl::StatusOr<int64_t> at = ClaimStep(
        *entry, "step", std::nullopt,
        std::max<int64_t>(restarts ? 1 : 0, count.decision->report_step),
        &lease);
    if (!at.ok()) {
      Log("plateau: ", entry->name, ": no step left for the decision of step ",
          count.decision->report_step, ": ", at.status().message());
    } else if (*at < last_from) {
      // A change is scheduled for a later step: an edit from here would
      // replace it, and an operator's change outranks the policy's.
      Log("plateau: ", entry->name, ": the decision of step ",
          count.decision->report_step,
          " is not applied: a change is "
          "scheduled from step ",
          last_from);
      lease.Drop();
    } else {
      segment = PlateauDecisionSegment(head, *current, *at, *count.decision,
                                       ChangeStamp{});
      if (!segment) lease.Drop();  // a cut under eps: nothing changes
    }
  }
  if (!segment.has_value()) {
    return AcceptHead(entry, std::move(head), current, std::move(answer),
                      Fence::Lease());
  }
  v1::Schedule changed = head;
  NextRevision(NowTimestamp(), &changed);
  segment->set_revision(changed.revision());
  segment->set_actor("plateau");
  *segment->mutable_create_time() = changed.update_time();
  const bool restart = segment->kind() == v1::Segment::RESTART;
  std::shared_ptr<const Timeline> timeline = Timeline::Append(
      *current, *segment,
      current->compiled(current->SegmentAt(segment->from_step())));
  ApplySegment(*std::move(segment), &changed);
  // A timeline at its limits (max_timeline_segments, max_schedule_bytes)
  // takes no more decisions, but the counters still count: the report is
  // stored and must be answered.
  if (auto s = CheckHead(changed, *timeline, current->table_bytes()); !s.ok()) {
    Log("plateau: ", entry->name, ": the decision of step ",
        count.decision->report_step, " is not applied: ", s.message());
    lease.Drop();
    return AcceptHead(entry, std::move(head), current, std::move(answer),
                      Fence::Lease());
  }
  answer =
      Observed(entry->name,
               restart ? ScheduleChange::kRestart : ScheduleChange::kPlateau,
               std::move(answer));
  AcceptHead(entry, std::move(changed), std::move(timeline), std::move(answer),
             std::move(lease));
}

absl::StatusOr<v1::ListMetricReportsResponse> Registry::ListMetricReports(
    const v1::ListMetricReportsRequest& request) const {
  auto found = Published(request.name());
  if (!found.ok()) return found.status();
  if (request.page_size() < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size: must be >= 0, got ", request.page_size()));
  }
  const int32_t page_size =
      request.page_size() == 0
          ? kDefaultReportPageSize
          : std::min(request.page_size(), kMaxReportPageSize);
  int64_t from = 0;
  int64_t to = std::numeric_limits<int64_t>::max();
  if (request.has_start_step()) {
    if (auto s = ValidateStepBound("start_step", request.start_step());
        !s.ok()) {
      return s;
    }
    from = request.start_step();
  }
  if (request.has_end_step()) {
    if (request.end_step() < from) {
      return absl::InvalidArgumentError(
          absl::StrCat("end_step: must be >= start_step (", from,
                       request.has_start_step() ? "" : " when not given",
                       "), got ", request.end_step()));
    }
    to = request.end_step();
  }
  for (int i = 0; i < request.metric_names_size(); ++i) {
    auto s = ValidateMetricName(absl::StrCat("metric_names[", i, "]"),
                                request.metric_names(i));
    if (!s.ok()) return s;
  }
  const std::string fingerprint = QueryFingerprint(request);
  if (!request.page_token().empty()) {
    auto last = DecodePageToken(request.page_token(), fingerprint);
    if (!last.ok()) return last.status();
    int64_t last_step = 0;
    if (!absl::SimpleAtoi(*last, &last_step) || last_step < 0 ||
        last_step >= kMaxStep) {
      return absl::InvalidArgumentError(
          "page_token: not a token this server issued");
    }
    from = std::max(from, last_step + 1);
  }

  // Reads a page and one more, so a full page knows whether more follow;
  // with metric_names some rows may be skipped, hence the loop.
  v1::ListMetricReportsResponse response;
  const int chunk = page_size + 1;
  while (from < to) {
    auto rows = store_->ReadReports(request.name(), from, to, chunk);
    if (!rows.ok()) return rows.status();
    if (rows->empty()) break;
    const int64_t last_read = rows->back().step();
    for (v1::MetricReport& row : *rows) {
      if (!Select(request.metric_names(), &row)) continue;
      if (response.reports_size() == page_size) {
        response.set_next_page_token(EncodePageToken(
            fingerprint, absl::StrCat(response.reports(page_size - 1).step())));
        return response;
      }
      *response.add_reports() = std::move(row);
    }
    if (static_cast<int>(rows->size()) < chunk) break;
    from = last_read + 1;
  }
  return response;
}

}  // namespace anneal
