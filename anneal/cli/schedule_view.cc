// How annealctl shows schedules (see schedule_view.h).
#include "anneal/cli/schedule_view.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "anneal/cli/text_table.h"
#include "anneal/engine/field_error.h"
#include "anneal/model/spec_summary.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/util/json_util.h"
#include "google/protobuf/util/time_util.h"

namespace anneal {
namespace {

using google::protobuf::util::TimeUtil;

std::string OrDash(const std::string& s) { return s.empty() ? "-" : s; }

std::string FormatTime(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return TimeUtil::ToString(t);
}

// The metric names of `reports`, sorted: the columns of both report views.
std::vector<std::string> MetricColumns(
    const std::vector<v1::MetricReport>& reports) {
  std::vector<std::string> names;
  for (const v1::MetricReport& r : reports) {
    for (const auto& [name, value] : r.metrics()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  names.erase(std::unique(names.begin(), names.end()), names.end());
  return names;
}

std::string FormatServed(int64_t max_step_served) {
  return max_step_served < 0 ? "none" : absl::StrCat(max_step_served);
}

}  // namespace

std::string FormatLabels(
    const google::protobuf::Map<std::string, std::string>& labels) {
  std::vector<std::pair<std::string, std::string>> sorted(labels.begin(),
                                                          labels.end());
  std::sort(sorted.begin(), sorted.end());
  return absl::StrJoin(sorted, ",", absl::PairFormatter("="));
}

std::string CompactJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  std::string json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

void PrintJson(const google::protobuf::Message& message, std::ostream& out) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  options.add_whitespace = true;
  std::string json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  out << json;
  if (json.empty() || json.back() != '\n') out << "\n";
}

namespace {

// "val_loss MIN: best 0.41, 2 bad reports (patience 3), cooldown 0, ..."
std::string FormatPlateau(const v1::Schedule& s) {
  const v1::Plateau& p = s.spec().plateau();
  const v1::PlateauState& st = s.plateau_state();
  std::string text = absl::StrCat(
      p.metric(), " ", p.mode() == v1::Plateau::MAX ? "MAX" : "MIN", ": ");
  if (!s.has_plateau_state()) return absl::StrCat(text, "no report counted");
  return absl::StrCat(
      text, "best ", st.has_best() ? FormatNumber(st.best()) : "-", ", ",
      st.bad_reports(), " bad reports (patience ",
      p.has_patience() ? p.patience() : 10, "), cooldown ", st.cooldown_left(),
      ", ", st.reports(), " reports to step ", st.last_step(), ", ",
      st.decisions(), " decisions");
}

}  // namespace

void PrintSchedule(const v1::Schedule& s, std::ostream& out) {
  auto field = [&out](const char* key, const std::string& value) {
    out << absl::StrFormat("%-17s%s\n", key, value);
  };
  field("name", s.name());
  field("display name", OrDash(s.display_name()));
  field("labels", OrDash(FormatLabels(s.labels())));
  field("state", v1::Schedule::State_Name(s.state()));
  field("revision", absl::StrCat(s.revision()));
  field("etag", s.etag());
  field("position", absl::StrCat(s.position()));
  field("max step served", FormatServed(s.max_step_served()));
  field("created", FormatTime(s.create_time()));
  field("updated", FormatTime(s.update_time()));
  if (s.has_forked_from()) {
    field("forked from",
          absl::StrCat(s.forked_from().source(), " at step ",
                       s.forked_from().at_step(), " (its revision ",
                       s.forked_from().source_revision(), ")"));
  }
  if (s.lineage() > 0) field("lineage", absl::StrCat(s.lineage()));
  field("family", SpecFamily(s.spec()));
  field("spec", CompactJson(s.spec()));
  if (s.spec().has_plateau()) field("plateau", FormatPlateau(s));
  out << "timeline:\n";
  TextTable timeline({"FROM_STEP", "KIND", "REVISION", "FAMILY", "TIME_ORIGIN",
                      "CYCLE_OFFSET", "LR_LEVEL", "ACTOR", "REASON"});
  for (const v1::Segment& seg : s.timeline()) {
    timeline.AddRow(
        {absl::StrCat(seg.from_step()), v1::Segment::Kind_Name(seg.kind()),
         absl::StrCat(seg.revision()), SpecFamily(seg.spec()),
         absl::StrCat(seg.time_origin()), absl::StrCat(seg.cycle_offset()),
         seg.lr_level() > 0 ? FormatNumber(seg.lr_level()) : "-",
         OrDash(seg.actor()), seg.reason()});
  }
  timeline.Print(out, "  ");
  if (s.rewinds_size() > 0) {
    out << "rewinds (each began a lineage; the old one's steps from TO_STEP "
           "to SERVED_TO were served by its ABANDONED segments):\n";
    TextTable rewinds({"LINEAGE", "TO_STEP", "SERVED_TO", "REVISION",
                       "ABANDONED", "ACTOR", "REASON"});
    for (const v1::Rewind& r : s.rewinds()) {
      rewinds.AddRow({absl::StrCat(r.lineage()), absl::StrCat(r.to_step()),
                      FormatServed(r.abandoned_max_step_served()),
                      absl::StrCat(r.revision()),
                      absl::StrCat(r.abandoned_size()), OrDash(r.actor()),
                      r.reason()});
    }
    rewinds.Print(out, "  ");
  }
  if (s.superseded_size() == 0) return;
  out << "replaced before they were served:\n";
  TextTable replaced(
      {"FROM_STEP", "KIND", "REVISION", "REPLACED_BY", "ACTOR", "REASON"});
  for (const v1::Segment& seg : s.superseded()) {
    replaced.AddRow(
        {absl::StrCat(seg.from_step()), v1::Segment::Kind_Name(seg.kind()),
         absl::StrCat(seg.revision()), absl::StrCat(seg.replaced_by_revision()),
         OrDash(seg.actor()), seg.reason()});
  }
  replaced.Print(out, "  ");
}

void PrintWriteSummary(const std::string& verb, const v1::Schedule& s,
                       std::ostream& out) {
  out << verb << " " << s.name() << " (revision " << s.revision() << ", etag "
      << s.etag() << ", family " << SpecFamily(s.spec());
  if (s.lineage() > 0) {
    out << ", lineage " << s.lineage() << " from step "
        << s.rewinds().rbegin()->to_step();
  }
  if (!s.timeline().empty()) {
    const v1::Segment& last = *s.timeline().rbegin();
    out << ", latest segment " << v1::Segment::Kind_Name(last.kind())
        << " from step " << last.from_step();
  }
  out << ")\n";
}

void PrintScheduleTable(const std::vector<v1::Schedule>& schedules,
                        std::ostream& out) {
  TextTable table(
      {"NAME", "REVISION", "POSITION", "MAX_SERVED", "FAMILY", "LABELS"});
  for (const v1::Schedule& s : schedules) {
    table.AddRow(
        {s.name(), absl::StrCat(s.revision()), absl::StrCat(s.position()),
         s.max_step_served() < 0 ? "-" : absl::StrCat(s.max_step_served()),
         SpecFamily(s.spec()), OrDash(FormatLabels(s.labels()))});
  }
  table.Print(out);
}

void PrintAdvance(const std::string& name, const v1::AdvanceResponse& response,
                  std::ostream& out) {
  const v1::StepResult& r = response.result();
  out << absl::StrFormat("%s: position %d, lr %.9g", name, response.position(),
                         r.lr());
  if (r.has_momentum()) out << absl::StrFormat(", momentum %.9g", r.momentum());
  out << ", cycle " << r.cycle() << ", step_in_cycle " << r.step_in_cycle();
  if (r.cycle_length() > 0) out << " of " << r.cycle_length();
  out << ", phase " << v1::Phase_Name(r.phase());
  if (r.restart()) out << ", restart";
  if (r.snapshot()) out << ", snapshot";
  out << " (revision " << response.revision() << ")\n";
}

void PrintReportTable(const std::vector<v1::MetricReport>& reports,
                      std::ostream& out) {
  const std::vector<std::string> metrics = MetricColumns(reports);
  std::vector<std::string> header = {"STEP", "REVISION", "TIME"};
  header.insert(header.end(), metrics.begin(), metrics.end());
  TextTable table(std::move(header));
  for (const v1::MetricReport& r : reports) {
    std::vector<std::string> row = {absl::StrCat(r.step()),
                                    absl::StrCat(r.revision()),
                                    FormatTime(r.report_time())};
    for (const std::string& m : metrics) {
      auto it = r.metrics().find(m);
      row.push_back(
          it == r.metrics().end() ? "" : absl::StrFormat("%.6g", it->second));
    }
    table.AddRow(std::move(row));
  }
  table.Print(out);
}

void PrintReportCsv(const std::vector<v1::MetricReport>& reports,
                    std::ostream& out) {
  const std::vector<std::string> metrics = MetricColumns(reports);
  out << "step,revision,report_time";
  for (const std::string& m : metrics) out << "," << m;
  out << "\n";
  for (const v1::MetricReport& r : reports) {
    out << r.step() << "," << r.revision() << ","
        << TimeUtil::ToString(r.report_time());
    for (const std::string& m : metrics) {
      auto it = r.metrics().find(m);
      out << ",";
      if (it != r.metrics().end()) out << absl::StrFormat("%.17g", it->second);
    }
    out << "\n";
  }
}

}  // namespace anneal
