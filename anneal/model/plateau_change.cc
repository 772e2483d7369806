// A plateau policy's reports and decisions (see plateau_change.h).
#include "anneal/model/plateau_change.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

PlateauCounters CountersOf(const v1::PlateauState& state, bool fresh_state) {
  PlateauCounters c;
  if (fresh_state) return c;
  if (state.has_best()) c.best = state.best();
  c.bad_reports = state.bad_reports();
  c.cooldown_left = state.cooldown_left();
  c.last_step = state.last_step();
  c.reports = state.reports();
  c.decisions = state.decisions();
  c.bad_values.assign(state.bad_values().begin(), state.bad_values().end());
  c.first_bad_step = state.first_bad_step();
  return c;
}

void StoreCounters(const PlateauCounters& c, v1::PlateauState* state) {
  state->Clear();
  if (c.best.has_value()) state->set_best(*c.best);
  state->set_bad_reports(c.bad_reports);
  state->set_cooldown_left(c.cooldown_left);
  state->set_last_step(c.last_step);
  state->set_reports(c.reports);
  state->set_decisions(c.decisions);
  for (double v : c.bad_values) state->add_bad_values(v);
  state->set_first_bad_step(c.first_bad_step);
}

// A number in a reason: six significant digits, for people (the exact
// values are in `plateau`).
std::string Short(double v) { return absl::StrFormat("%.6g", v); }

// The reason text of a decision, with the evidence: the best value, the bad
// reports' steps and their newest values (at most 8).
std::string ReasonOf(const v1::Plateau& policy, const v1::PlateauDecision& d,
                     bool restart) {
  constexpr int kShownValues = 8;
  const int n = d.bad_values_size();
  std::string values = n > kShownValues ? "..., " : "";
  for (int i = std::max(0, n - kShownValues); i < n; ++i) {
    absl::StrAppend(&values, i > std::max(0, n - kShownValues) ? ", " : "",
                    Short(d.bad_values(i)));
  }
  return absl::StrCat(
      "plateau: ", policy.metric(), " did not improve on ", Short(d.best()),
      " for ", d.bad_reports(), " reports (steps ", d.first_bad_step(), " to ",
      d.report_step(), n > 0 ? absl::StrCat(": ", values) : "", ") > patience ",
      policy.has_patience() ? policy.patience() : 10,
      restart ? "; warm restart"
              : absl::StrCat("; peak LR ", Short(d.old_level()), " -> ",
                             Short(d.new_level())));
}

}  // namespace

PlateauCount CountPlateauReport(const v1::MetricReport& report,
                                v1::Schedule* head) {
  PlateauCount out;
  const v1::ScheduleSpec& spec = head->spec();
  if (!spec.has_plateau()) return out;
  auto value = report.metrics().find(spec.plateau().metric());
  if (value == report.metrics().end()) return out;
  // The spec was validated when it was stored.
  absl::StatusOr<PlateauPolicy> policy =
      PlateauPolicy::Build(spec.plateau(), spec.max_lr());
  if (!policy.ok()) return out;
  // A state with no report counted yet reads as fresh (last_step -1).
  const bool fresh = !head->has_plateau_state();
  PlateauCounters counters = CountersOf(head->plateau_state(), fresh);
  const int64_t before = counters.reports;
  out.decision = policy->Count(report.step(), value->second, &counters);
  if (counters.reports == before) return out;  // a step already counted
  out.counted = true;
  StoreCounters(counters, head->mutable_plateau_state());
  return out;
}

double LevelAt(const v1::Schedule& head, const Timeline& current,
               int64_t step) {
  const v1::Segment& in_force =
      head.timeline(static_cast<int>(current.SegmentAt(step)));
  return in_force.lr_level() > 0 ? in_force.lr_level()
                                 : in_force.spec().max_lr();
}

std::optional<v1::Segment> PlateauDecisionSegment(
    const v1::Schedule& head, const Timeline& current, int64_t at,
    const PlateauEvidence& decision, const ChangeStamp& stamp) {
  const v1::Plateau& spec = head.spec().plateau();
  absl::StatusOr<PlateauPolicy> policy =
      PlateauPolicy::Build(spec, head.spec().max_lr());
  if (!policy.ok()) return std::nullopt;
  const double old_level = LevelAt(head, current, at);
  v1::PlateauDecision why;
  why.set_metric(spec.metric());
  why.set_report_step(decision.report_step);
  why.set_best(decision.best);
  why.set_bad_reports(decision.bad_reports);
  why.set_first_bad_step(decision.first_bad_step);
  for (double v : decision.bad_values) why.add_bad_values(v);
  why.set_old_level(old_level);
  ChangeStamp stamped = stamp;
  v1::Segment segment;
  if (policy->restarts()) {
    why.set_new_level(old_level);
    stamped.reason = ReasonOf(spec, why, /*restart=*/true);
    segment = RestartSegment(head, current, at, stamped);
  } else {
    const std::optional<double> level = policy->Cut(old_level);
    if (!level.has_value()) return std::nullopt;
    why.set_new_level(*level);
    stamped.reason = ReasonOf(spec, why, /*restart=*/false);
    segment = ScaledSegment(head, current, at, *level, stamped);
  }
  *segment.mutable_plateau() = std::move(why);
  return segment;
}

}  // namespace anneal
