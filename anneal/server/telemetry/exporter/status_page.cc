// The status page (see status_page.h).
#include "anneal/server/telemetry/exporter/status_page.h"

#include <algorithm>
#include <map>
#include <sstream>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "anneal/model/resource_name.h"
#include "anneal/model/spec_summary.h"
#include "anneal/render/render.h"
#include "google/protobuf/util/time_util.h"

namespace anneal {
namespace {

constexpr char kPolicy[] =
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

constexpr char kStyle[] = R"css(
body{font-family:Helvetica,Arial,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #ddd;
vertical-align:top;font-size:13px}
th{background:#f4f4f4}
.plot svg{width:420px;height:auto}
.big svg{width:100%;max-width:1100px;height:auto}
.ok{color:#1a7f37}.bad{color:#cf222e;font-weight:bold}
.warn{color:#9a6700;font-weight:bold}
.muted{color:#777}code{font-size:12px}
)css";

std::string Page(const std::string& title, const std::string& body) {
  return absl::StrCat("<!DOCTYPE html>\n<html lang=\"en\"><head>",
                      "<meta charset=\"utf-8\"><title>", MarkupEscape(title),
                      "</title><style>", kStyle, "</style></head><body>\n",
                      body, "</body></html>\n");
}

HttpResponse Html(int status, std::string body) {
  return {status,
          "text/html; charset=utf-8",
          std::move(body),
          {{"Content-Security-Policy", kPolicy}}};
}

std::string Id(const std::string& name) {
  return std::string(ScheduleIdOf(name));
}

std::string Time(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S UTC",
                          absl::FromUnixSeconds(t.seconds()),
                          absl::UTCTimeZone());
}

const char* KindName(v1::Segment::Kind kind) {
  switch (kind) {
    case v1::Segment::CREATE:
      return "create";
    case v1::Segment::UPDATE:
      return "update";
    case v1::Segment::RESTART:
      return "restart";
    case v1::Segment::PLATEAU:
      return "plateau";
    default:
      return "change";
  }
}

// "kind at step N by ACTOR: REASON, TIME" for a segment.
std::string Stamp(const v1::Segment& s) {
  std::string out =
      absl::StrCat(KindName(s.kind()), " at step ", s.from_step());
  if (!s.actor().empty()) absl::StrAppend(&out, " by ", s.actor());
  if (!s.reason().empty()) absl::StrAppend(&out, ": ", s.reason());
  if (const std::string t = Time(s.create_time()); !t.empty()) {
    absl::StrAppend(&out, ", ", t);
  }
  return MarkupEscape(out);
}

std::string Labels(const v1::Schedule& s) {
  std::vector<std::pair<std::string, std::string>> sorted(s.labels().begin(),
                                                          s.labels().end());
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (const auto& [k, v] : sorted) {
    absl::StrAppend(&out, "<code>", MarkupEscape(k), "=", MarkupEscape(v),
                    "</code> ");
  }
  return out;
}

std::string Query(const std::map<std::string, std::string>& params) {
  std::string out;
  for (const auto& [k, v] : params) {
    if (v.empty()) continue;
    std::string encoded;
    for (unsigned char c : v) {
      if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
        encoded += static_cast<char>(c);
      } else {
        absl::StrAppendFormat(&encoded, "%%%02X", c);
      }
    }
    absl::StrAppend(&out, out.empty() ? "?" : "&", k, "=", encoded);
  }
  return out;
}

// The SVG document without its XML prolog, for inline use.
std::string Inline(const std::string& svg) {
  const size_t start = svg.find("<svg");
  return start == std::string::npos ? svg : svg.substr(start);
}

const char* SeverityClass(v1::Finding::Severity s) {
  switch (s) {
    case v1::Finding::ERROR:
      return "bad";
    case v1::Finding::WARNING:
      return "warn";
    default:
      return "muted";
  }
}

// The "Diagnosis" section: Diagnose's findings (docs/adaptive.md), with the
// default metric names.
std::string Findings(const Registry& registry, const std::string& name) {
  v1::DiagnoseRequest request;
  request.set_name(name);
  auto diagnosed = registry.Diagnose(request);
  std::string out = "<h2>Diagnosis</h2>\n";
  if (!diagnosed.ok()) {
    absl::StrAppend(&out, "<p class=\"bad\">",
                    MarkupEscape(diagnosed.status().ToString()), "</p>\n");
    return out;
  }
  absl::StrAppend(&out, "<p class=\"muted\">", diagnosed->reports_read(),
                  " reports; validation metric ",
                  MarkupEscape(diagnosed->validation_metric().empty()
                                   ? "(none)"
                                   : diagnosed->validation_metric()),
                  ", training metric ",
                  MarkupEscape(diagnosed->training_metric().empty()
                                   ? "(none)"
                                   : diagnosed->training_metric()),
                  " (annealctl diagnose ", MarkupEscape(Id(name)), ")</p>\n",
                  "<table><tr><th>severity</th><th>code</th><th>finding</th>"
                  "<th>evidence</th><th>recommendation</th></tr>\n");
  for (const v1::Finding& f : diagnosed->findings()) {
    std::string evidence;
    for (const auto& e : f.evidence()) {
      absl::StrAppend(&evidence, MarkupEscape(e.name()), "=",
                      MarkupEscape(e.text()), " ");
    }
    for (const auto& sp : f.spans()) {
      absl::StrAppend(&evidence, "<br>steps ", sp.start_step(), "-",
                      sp.end_step() - 1, " ", MarkupEscape(sp.label()));
    }
    absl::StrAppend(&out, "<tr><td class=\"", SeverityClass(f.severity()),
                    "\">", v1::Finding::Severity_Name(f.severity()),
                    "</td><td><code>", MarkupEscape(f.code()),
                    "</code></td><td>", MarkupEscape(f.summary()),
                    "</td><td><code>", evidence, "</code></td><td>",
                    MarkupEscape(f.recommendation()), "</td></tr>\n");
  }
  absl::StrAppend(&out, "</table>\n");
  return out;
}

}  // namespace

StatusPage::StatusPage(const Registry* registry, Store* store,
                       StatusPageOptions options)
    : registry_(registry),
      store_(store),
      options_(std::move(options)),
      started_(absl::Now()) {}

std::string StatusPage::Health() const {
  const StoreStats stats = store_->stats();
  const bool writable = registry_->writable() && !stats.failed;
  return absl::StrCat(
      "<p>",
      writable ? "<span class=\"ok\">serving</span>"
               : "<span class=\"bad\">store failed: writes "
                 "stopped</span>",
      " &middot; ", registry_->size(), " schedules &middot; store <code>",
      MarkupEscape(options_.store), "</code>, ", stats.commits, " commits, ",
      stats.queued, " batches pending &middot; anneal ",
      MarkupEscape(options_.version), ", up ",
      MarkupEscape(absl::FormatDuration(
          absl::Trunc(absl::Now() - started_, absl::Seconds(1)))),
      " &middot; <a href=\"/metrics\">/metrics</a></p>\n");
}

std::string StatusPage::Plot(const v1::Schedule& schedule,
                             const Timeline& timeline, int64_t from, int64_t to,
                             std::string metric) const {
  std::vector<StepResult> steps;
  const int64_t span = to - from + 1;
  if (span <= options_.max_plot_steps) {
    (void)timeline.EvaluateRange(
        from, span, StepQuery(),
        [&](const StepResult& r) { steps.push_back(r); });
  } else {
    const int64_t n = options_.max_plot_steps;
    for (int64_t i = 0; i < n; ++i) {
      steps.push_back(timeline.At(from + span / n * i + (span % n) * i / n));
    }
  }
  SvgMarks marks;
  for (const v1::Segment& s : schedule.timeline()) {
    if (s.kind() != v1::Segment::CREATE) {
      marks.changes.emplace_back(s.from_step(), KindName(s.kind()));
    }
  }
  if (schedule.max_step_served() >= 0) {
    marks.current = schedule.max_step_served();
  }
  auto reports = store_->ReadReports(schedule.name(), from, to + 1,
                                     options_.max_report_points);
  if (reports.ok() && !reports->empty()) {
    if (metric.empty()) {
      for (const v1::MetricReport& r : *reports) {
        if (r.metrics().contains("loss")) metric = "loss";
      }
    }
    if (metric.empty()) {
      std::map<std::string, double> sorted(reports->front().metrics().begin(),
                                           reports->front().metrics().end());
      if (!sorted.empty()) metric = sorted.begin()->first;
    }
    marks.reported_name = metric;
    for (const v1::MetricReport& r : *reports) {
      auto it = r.metrics().find(metric);
      if (it != r.metrics().end()) {
        marks.reported.emplace_back(r.step(), it->second);
      }
    }
  }
  std::ostringstream svg;
  RenderSvg(steps, Id(schedule.name()), marks, svg);
  return Inline(svg.str());
}

HttpResponse StatusPage::Index(const HttpRequest& request) const {
  v1::ListSchedulesRequest list;
  const auto param = [&](const char* key) {
    auto it = request.query.find(key);
    return it == request.query.end() ? std::string() : it->second;
  };
  list.set_filter(param("filter"));
  list.set_page_token(param("page"));
  // Anything but a positive number is the default, as page_size 0 is.
  int32_t page_size = 0;
  if (!absl::SimpleAtoi(param("page_size"), &page_size) || page_size <= 0) {
    page_size = options_.page_size;
  }
  list.set_page_size(std::min(page_size, 100));
  std::string body = absl::StrCat("<h1>anneal</h1>\n", Health());
  absl::StrAppend(
      &body,
      "<form method=\"get\" action=\"/\"><label>Filter <input name=\"filter\" "
      "size=\"50\" placeholder='labels.team = \"vision\"' value=\"",
      MarkupEscape(list.filter()),
      "\"></label> <button>List</button></form>\n");
  const absl::Status checked =
      options_.check_list ? options_.check_list(list) : absl::OkStatus();
  absl::StatusOr<v1::ListSchedulesResponse> page =
      checked.ok() ? registry_->List(list, options_.max_page_bytes)
                   : absl::StatusOr<v1::ListSchedulesResponse>(checked);
  if (!page.ok()) {
    absl::StrAppend(&body, "<p class=\"bad\">",
                    MarkupEscape(page.status().ToString()), "</p>\n");
    return Html(400, Page("anneal", body));
  }
  absl::StrAppend(&body,
                  "<table><tr><th>schedule</th><th>spec</th><th>position / "
                  "served</th><th>revision, last change</th><th>LR around "
                  "the current step</th></tr>\n");
  for (const v1::Schedule& s : page->schedules()) {
    auto inspected = registry_->Inspect(s.name());
    if (!inspected.ok()) continue;  // deleted since
    const auto& [schedule, timeline] = *inspected;
    const std::string id = Id(schedule.name());
    const int64_t at = std::max<int64_t>(schedule.max_step_served(), 0);
    const int64_t from = std::max<int64_t>(0, at - options_.window);
    const v1::Segment& last = schedule.timeline(schedule.timeline_size() - 1);
    absl::StrAppend(
        &body, "<tr><td><a href=\"/schedules/", MarkupEscape(id), "\">",
        MarkupEscape(id), "</a><br>", MarkupEscape(schedule.display_name()),
        "<br>", Labels(schedule), "</td><td>",
        MarkupEscape(SpecSummary(schedule.spec())), "</td><td>",
        schedule.position(), " / ", schedule.max_step_served(), "</td><td>",
        schedule.revision(), "<br>", Stamp(last), "</td><td class=\"plot\">",
        Plot(schedule, *timeline, from, at + options_.window, ""),
        "</td></tr>\n");
  }
  absl::StrAppend(&body, "</table>\n");
  if (page->schedules_size() == 0) {
    absl::StrAppend(&body, "<p class=\"muted\">no schedules",
                    list.filter().empty() ? "" : " match", "</p>\n");
  }
  if (!page->next_page_token().empty()) {
    absl::StrAppend(
        &body, "<p><a href=\"/",
        MarkupEscape(Query({{"filter", list.filter()},
                            {"page", page->next_page_token()},
                            {"page_size", absl::StrCat(list.page_size())}})),
        "\">next page</a></p>\n");
  }
  return Html(200, Page("anneal", body));
}

HttpResponse StatusPage::Schedule(const HttpRequest& request) const {
  absl::string_view id = request.path;
  absl::ConsumePrefix(&id, "/schedules/");
  auto inspected = registry_->Inspect(absl::StrCat(SchedulesPrefix(), id));
  if (!inspected.ok()) {
    return Html(
        404,
        Page("anneal", absl::StrCat("<p class=\"bad\">",
                                    MarkupEscape(inspected.status().ToString()),
                                    "</p><p><a href=\"/\">all "
                                    "schedules</a></p>")));
  }
  const auto& [schedule, timeline] = *inspected;
  const std::string name = Id(schedule.name());
  int64_t horizon = std::max<int64_t>(schedule.max_step_served(), 0);
  for (const v1::Segment& s : schedule.timeline()) {
    horizon = std::max(horizon, s.from_step());
  }
  horizon = std::max<int64_t>(1000, horizon + horizon / 4);
  auto metric = request.query.find("metric");
  std::string body = absl::StrCat(
      "<p><a href=\"/\">all schedules</a></p><h1>", MarkupEscape(name), "</h1>",
      Health(), "<p>", MarkupEscape(schedule.display_name()), " ",
      Labels(schedule),
      "</p><p>spec in force: ", MarkupEscape(SpecSummary(schedule.spec())),
      "<br>position ", schedule.position(), ", max step served ",
      schedule.max_step_served(), ", revision ", schedule.revision(),
      ", etag <code>", MarkupEscape(schedule.etag()), "</code>, created ",
      MarkupEscape(Time(schedule.create_time())), ", updated ",
      MarkupEscape(Time(schedule.update_time())), "</p>\n<div class=\"big\">",
      Plot(schedule, *timeline, 0, horizon,
           metric == request.query.end() ? "" : metric->second),
      "</div>\n<h2>Timeline</h2>\n<table><tr><th>from step</th><th>kind</th>"
      "<th>revision</th><th>spec</th><th>clock origin, cycle offset</th>"
      "<th>by</th><th>reason</th><th>when</th></tr>\n");
  for (const v1::Segment& s : schedule.timeline()) {
    absl::StrAppend(&body, "<tr><td>", s.from_step(), "</td><td>",
                    KindName(s.kind()), "</td><td>", s.revision(), "</td><td>",
                    MarkupEscape(SpecSummary(s.spec())), "</td><td>",
                    s.time_origin(), ", ", s.cycle_offset(), "</td><td>",
                    MarkupEscape(s.actor()), "</td><td>",
                    MarkupEscape(s.reason()), "</td><td>",
                    MarkupEscape(Time(s.create_time())), "</td></tr>\n");
  }
  absl::StrAppend(&body, "</table>\n");
  if (schedule.superseded_size() > 0) {
    // The rest of the history: who changed what, even if no step of it ran.
    absl::StrAppend(
        &body,
        "<h3>Replaced before they were served</h3>\n<table><tr><th>from "
        "step</th><th>kind</th><th>revision</th><th>replaced by "
        "revision</th><th>by</th><th>reason</th><th>when</th></tr>\n");
    for (const v1::Segment& s : schedule.superseded()) {
      absl::StrAppend(&body, "<tr><td>", s.from_step(), "</td><td>",
                      KindName(s.kind()), "</td><td>", s.revision(),
                      "</td><td>", s.replaced_by_revision(), "</td><td>",
                      MarkupEscape(s.actor()), "</td><td>",
                      MarkupEscape(s.reason()), "</td><td>",
                      MarkupEscape(Time(s.create_time())), "</td></tr>\n");
    }
    absl::StrAppend(&body, "</table>\n");
  }
  absl::StrAppend(&body, Findings(*registry_, schedule.name()));
  return Html(200, Page(absl::StrCat("anneal: ", name), body));
}

}  // namespace anneal
