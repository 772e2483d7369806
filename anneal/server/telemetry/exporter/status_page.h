// The status page on the telemetry port: what an operator opens with
// nothing else installed. "/" lists the schedules (paginated, filtered by a
// ListSchedules label filter) with the service's health, each with its spec
// in words, position, served step, revision, last change and a plot of its
// LR around the current step; "/schedules/ID" shows one schedule's whole
// timeline, its run so far and its Diagnose findings.
//
// Server-rendered HTML with inline SVG (anneal/render), no scripts or
// external assets (and a Content-Security-Policy that forbids them); every
// user string is escaped. Work per page is bounded: a page lists at most
// 100 schedules, a plot evaluates at most `max_plot_steps` steps (sampled
// evenly past that) and reads at most `max_report_points` reports.
#ifndef ANNEAL_SERVER_TELEMETRY_EXPORTER_STATUS_PAGE_H_
#define ANNEAL_SERVER_TELEMETRY_EXPORTER_STATUS_PAGE_H_

#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "anneal/server/registry/registry.h"
#include "anneal/server/store/store.h"
#include "anneal/server/telemetry/exporter/http_server.h"

namespace anneal {

struct StatusPageOptions {
  std::string version;
  std::string store;  // the store URL, shown
  int32_t page_size = 20;
  // Steps on each side of the current step in a list row's plot.
  int64_t window = 500;
  int64_t max_plot_steps = 20'000;
  int max_report_points = 5'000;
  int64_t max_page_bytes = 4 << 20;  // of schedules listed
  // The request limits a ListSchedules call must keep (the gRPC edge's
  // CheckLimits), applied to the page's filter and page token; none if
  // unset.
  std::function<absl::Status(const v1::ListSchedulesRequest&)> check_list;
};

class StatusPage {
 public:
  // `registry` and `store` must outlive it.
  StatusPage(const Registry* registry, Store* store, StatusPageOptions options);

  // "/": ?filter=labels.team%20%3D%20%22x%22&page=TOKEN&page_size=N
  HttpResponse Index(const HttpRequest& request) const;
  // "/schedules/ID": ?metric=NAME picks the reported metric plotted.
  HttpResponse Schedule(const HttpRequest& request) const;

 private:
  std::string Health() const;
  // The plot of `name` over [from, to], with its changes, current step and
  // reported `metric` (the first reported, "loss" if there is one, when
  // empty).
  std::string Plot(const v1::Schedule& schedule, const Timeline& timeline,
                   int64_t from, int64_t to, std::string metric) const;

  const Registry* const registry_;
  Store* const store_;
  const StatusPageOptions options_;
  const absl::Time started_;
};

}  // namespace anneal

#endif  // ANNEAL_SERVER_TELEMETRY_EXPORTER_STATUS_PAGE_H_
