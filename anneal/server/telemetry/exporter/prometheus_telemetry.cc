// Telemetry in Prometheus' data model (see prometheus_telemetry.h).
#include "anneal/server/telemetry/exporter/prometheus_telemetry.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "anneal/model/resource_name.h"
#include "anneal/server/common/log.h"
#include "anneal/server/telemetry/exporter/exposition.h"
#include "anneal/server/telemetry/exporter/process_metrics.h"

namespace anneal {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;
using Labels = std::vector<ClientMetric::Label>;

// The names grpc-go's and grpc-java's Prometheus interceptors give the
// codes, which existing gRPC dashboards filter on.
constexpr const char* kCodeNames[] = {"OK",
                                      "Canceled",
                                      "Unknown",
                                      "InvalidArgument",
                                      "DeadlineExceeded",
                                      "NotFound",
                                      "AlreadyExists",
                                      "PermissionDenied",
                                      "ResourceExhausted",
                                      "FailedPrecondition",
                                      "Aborted",
                                      "OutOfRange",
                                      "Unimplemented",
                                      "Internal",
                                      "Unavailable",
                                      "DataLoss",
                                      "Unauthenticated"};

MetricFamily Family(std::string name, std::string help, MetricType type) {
  MetricFamily f;
  f.name = std::move(name);
  f.help = std::move(help);
  f.type = type;
  return f;
}

void AddValue(MetricFamily* f, Labels labels, double value) {
  ClientMetric m;
  m.label = std::move(labels);
  if (f->type == MetricType::Counter) {
    m.counter.value = value;
  } else {
    m.gauge.value = value;
  }
  f->metric.push_back(std::move(m));
}

MetricFamily Single(std::string name, std::string help, MetricType type,
                    double value) {
  MetricFamily f = Family(std::move(name), std::move(help), type);
  AddValue(&f, {}, value);
  return f;
}

MetricFamily HistogramFamily(std::string name, std::string help,
                             const AtomicHistogram& h, Labels labels = {}) {
  MetricFamily f =
      Family(std::move(name), std::move(help), MetricType::Histogram);
  ClientMetric m;
  m.label = std::move(labels);
  m.histogram = h.Collect();
  f.metric.push_back(std::move(m));
  return f;
}

double Load(const std::atomic<uint64_t>& a) {
  return static_cast<double>(a.load(std::memory_order_relaxed));
}

// "schedules/run-1" -> "run-1", the series' label.
std::string IdOfName(absl::string_view name) {
  return std::string(ScheduleIdOf(name));
}

}  // namespace

class PrometheusTelemetry::Method final : public RpcTelemetry {
 public:
  Method(absl::string_view service, absl::string_view method,
         absl::string_view type)
      : service_(service), method_(method), type_(type) {}

  void Started() override { started_.fetch_add(1, std::memory_order_relaxed); }
  void Handled(int code, absl::Duration elapsed) override {
    if (code < 0 || code >= kCodes) code = 2;  // UNKNOWN
    handled_[code].fetch_add(1, std::memory_order_relaxed);
    seconds_.Observe(absl::ToDoubleSeconds(elapsed));
  }

  Labels labels() const {
    return {{"grpc_service", service_},
            {"grpc_method", method_},
            {"grpc_type", type_}};
  }
  void Collect(MetricFamily* started, MetricFamily* handled,
               MetricFamily* seconds) const {
    AddValue(started, labels(), Load(started_));
    for (int code = 0; code < kCodes; ++code) {
      const double n = Load(handled_[code]);
      // OK always, so that a rate exists before the first call.
      if (n == 0 && code != 0) continue;
      Labels l = labels();
      l.push_back({"grpc_code", kCodeNames[code]});
      AddValue(handled, std::move(l), n);
    }
    ClientMetric m;
    m.label = labels();
    m.histogram = seconds_.Collect();
    seconds->metric.push_back(std::move(m));
  }

 private:
  const std::string service_, method_, type_;
  std::atomic<uint64_t> started_{0};
  std::array<std::atomic<uint64_t>, kCodes> handled_{};
  AtomicHistogram seconds_{LatencyBounds()};
};

PrometheusTelemetry::PrometheusTelemetry(PrometheusTelemetryOptions options)
    : options_(std::move(options)) {}

PrometheusTelemetry::~PrometheusTelemetry() = default;

void PrometheusTelemetry::Observe(const Registry* registry,
                                  const Store* store) {
  absl::MutexLock lock(&sources_mu_);
  registry_ = registry;
  store_ = store;
}

RpcTelemetry* PrometheusTelemetry::Rpc(absl::string_view service,
                                       absl::string_view method,
                                       absl::string_view type) {
  absl::MutexLock lock(&methods_mu_);
  methods_.push_back(std::make_unique<Method>(service, method, type));
  return methods_.back().get();
}

void PrometheusTelemetry::Evaluated() {
  evaluated_.fetch_add(1, std::memory_order_relaxed);
}

void PrometheusTelemetry::RangeServed(int64_t steps) {
  range_steps_.fetch_add(static_cast<uint64_t>(steps),
                         std::memory_order_relaxed);
  range_sizes_.Observe(static_cast<double>(steps));
}

void PrometheusTelemetry::Advanced(bool deduplicated) {
  (deduplicated ? advance_retries_ : advances_)
      .fetch_add(1, std::memory_order_relaxed);
}

void PrometheusTelemetry::ReadWaited(ReadWait why) {
  read_waits_[static_cast<int>(why)].fetch_add(1, std::memory_order_relaxed);
}

void PrometheusTelemetry::Changed(absl::string_view /*schedule*/,
                                  ScheduleChange kind) {
  changes_[static_cast<int>(kind)].fetch_add(1, std::memory_order_relaxed);
}

void PrometheusTelemetry::Reported(absl::string_view schedule,
                                   int names_not_kept) {
  reports_.fetch_add(1, std::memory_order_relaxed);
  if (names_not_kept == 0) return;
  reported_names_dropped_.fetch_add(static_cast<uint64_t>(names_not_kept),
                                    std::memory_order_relaxed);
  if (!warned_reports_.exchange(true)) {
    Log("telemetry: ", schedule,
        " reports more metric names than --metrics_max_reported_names; the "
        "rest have no series");
  }
}

void PrometheusTelemetry::ReportRejected(int code) {
  if (code < 0 || code >= kCodes) code = 2;
  report_rejections_[code].fetch_add(1, std::memory_order_relaxed);
}

void PrometheusTelemetry::StoreWritten(int64_t ops, absl::Duration waited,
                                       bool ok) {
  store_write_seconds_.Observe(absl::ToDoubleSeconds(waited));
  store_write_ops_.fetch_add(static_cast<uint64_t>(ops),
                             std::memory_order_relaxed);
  if (!ok) store_write_failures_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<MetricFamily> PrometheusTelemetry::Collect() const {
  std::vector<MetricFamily> out;
  {
    MetricFamily started =
        Family("grpc_server_started_total", "RPCs started on the server.",
               MetricType::Counter);
    MetricFamily handled = Family(
        "grpc_server_handled_total",
        "RPCs completed on the server, by status code.", MetricType::Counter);
    MetricFamily seconds =
        Family("grpc_server_handling_seconds",
               "Time from a call's arrival to its answer, in seconds.",
               MetricType::Histogram);
    absl::MutexLock lock(&methods_mu_);
    for (const auto& m : methods_) m->Collect(&started, &handled, &seconds);
    out.push_back(std::move(started));
    out.push_back(std::move(handled));
    out.push_back(std::move(seconds));
  }

  MetricFamily steps = Family("anneal_steps_served_total",
                              "Steps answered, by the method that served "
                              "them.",
                              MetricType::Counter);
  AddValue(&steps, {{"method", "Evaluate"}}, Load(evaluated_));
  AddValue(&steps, {{"method", "EvaluateRange"}}, Load(range_steps_));
  AddValue(&steps, {{"method", "Advance"}}, Load(advances_));
  out.push_back(std::move(steps));
  out.push_back(HistogramFamily(
      "anneal_range_steps", "Steps per EvaluateRange answered.", range_sizes_));
  out.push_back(Single("anneal_advances_total",
                       "Advances applied (each moved a position by one).",
                       MetricType::Counter, Load(advances_)));
  out.push_back(Single("anneal_advance_retries_total",
                       "Advances answered from the request_id window "
                       "instead of moving the position again.",
                       MetricType::Counter, Load(advance_retries_)));
  MetricFamily waits = Family(
      "anneal_read_waits_total",
      "Reads that waited before their answer: for a pending change (fence) "
      "or for the durable served mark (served_mark).",
      MetricType::Counter);
  AddValue(&waits, {{"reason", "fence"}}, Load(read_waits_[0]));
  AddValue(&waits, {{"reason", "served_mark"}}, Load(read_waits_[1]));
  out.push_back(std::move(waits));
  MetricFamily changes =
      Family("anneal_schedule_changes_total",
             "Durable schedule changes, by kind.", MetricType::Counter);
  const char* kinds[] = {"create", "update",  "restart",
                         "delete", "plateau", "rewind"};
  static_assert(sizeof(kinds) / sizeof(kinds[0]) ==
                static_cast<int>(ScheduleChange::kRewind) + 1);
  for (int k = 0; k < 6; ++k) {
    AddValue(&changes, {{"kind", kinds[k]}}, Load(changes_[k]));
  }
  out.push_back(std::move(changes));
  out.push_back(Single("anneal_training_reports_total",
                       "Training reports (ReportMetrics) made durable.",
                       MetricType::Counter, Load(reports_)));
  MetricFamily rejected =
      Family("anneal_training_report_rejections_total",
             "Training reports refused, by status code.", MetricType::Counter);
  for (int code = 1; code < kCodes; ++code) {
    if (const double n = Load(report_rejections_[code]); n > 0) {
      AddValue(&rejected, {{"code", kCodeNames[code]}}, n);
    }
  }
  out.push_back(std::move(rejected));
  out.push_back(HistogramFamily(
      "anneal_store_write_seconds",
      "From a write batch's submission to its durability (queueing and "
      "group commit), in seconds.",
      store_write_seconds_));
  out.push_back(Single("anneal_store_write_ops_total",
                       "Ops in the write batches submitted to the store.",
                       MetricType::Counter, Load(store_write_ops_)));
  out.push_back(Single("anneal_store_write_failures_total",
                       "Write batches the store failed.", MetricType::Counter,
                       Load(store_write_failures_)));
  {
    absl::MutexLock lock(&sources_mu_);
    if (store_ != nullptr) {
      const StoreStats s = store_->stats();
      out.push_back(Single("anneal_store_commits_total",
                           "Transactions committed (one fsync each).",
                           MetricType::Counter, s.commits));
      out.push_back(Single("anneal_store_batches_total",
                           "Write batches made durable; per commit, the "
                           "mean group size.",
                           MetricType::Counter, s.batches));
      out.push_back(Single("anneal_store_failed_commits_total",
                           "Commit groups rolled back by a storage failure.",
                           MetricType::Counter, s.failed_commits));
      out.push_back(Single("anneal_store_largest_group_batches",
                           "The most batches one commit has held.",
                           MetricType::Gauge, s.largest_group));
      out.push_back(Single("anneal_store_pending_batches",
                           "Write batches waiting for a commit now.",
                           MetricType::Gauge, s.queued));
      out.push_back(Single("anneal_store_failed",
                           "1 while the store is failed and writes stop.",
                           MetricType::Gauge, s.failed ? 1 : 0));
    }
  }
  MetricFamily info =
      Family("anneal_build_info", "Always 1; the labels say what is running.",
             MetricType::Gauge);
  AddValue(&info,
           {{"store", options_.store_kind}, {"version", options_.version}}, 1);
  out.push_back(std::move(info));
  CollectSchedules(&out);
  for (MetricFamily& f : ProcessFamilies()) out.push_back(std::move(f));
  return out;
}

std::string PrometheusTelemetry::Text() const {
  return ExpositionText(Collect());
}

void PrometheusTelemetry::CollectSchedules(
    std::vector<MetricFamily>* out) const {
  MetricFamily lr = Family("anneal_schedule_lr",
                           "The LR at the schedule's highest step served.",
                           MetricType::Gauge);
  MetricFamily momentum = Family(
      "anneal_schedule_momentum",
      "The momentum (or beta1) at the highest step served, when scheduled.",
      MetricType::Gauge);
  MetricFamily served =
      Family("anneal_schedule_max_step_served",
             "The highest step served (-1: none yet).", MetricType::Gauge);
  MetricFamily cycle = Family("anneal_schedule_cycle",
                              "The cycle of the highest step served (the "
                              "number of warm restarts before it).",
                              MetricType::Gauge);
  MetricFamily cycle_start =
      Family("anneal_schedule_cycle_start_step",
             "The step at which the cycle of the highest step served began.",
             MetricType::Gauge);
  MetricFamily position =
      Family("anneal_schedule_position", "The counter Advance moves.",
             MetricType::Gauge);
  MetricFamily revision = Family(
      "anneal_schedule_revision",
      "Increments with every change to the schedule.", MetricType::Gauge);
  MetricFamily progressed = Family(
      "anneal_schedule_last_progress_timestamp_seconds",
      "When the highest step served last rose (unix time); absent until it "
      "does after a server start.",
      MetricType::Gauge);
  MetricFamily reported =
      Family("anneal_schedule_reported",
             "The last reported value of each training metric (ReportMetrics).",
             MetricType::Gauge);
  MetricFamily reported_step =
      Family("anneal_schedule_reported_step",
             "The highest step of a training report.", MetricType::Gauge);
  int64_t total = 0;
  int64_t shown = 0;
  {
    absl::MutexLock lock(&sources_mu_);
    if (registry_ != nullptr) {
      total = registry_->Observe(
          options_.max_schedules, [&](const ScheduleObservation& o) {
            ++shown;
            const Labels l = {{"schedule", IdOfName(o.name)}};
            AddValue(&served, l, static_cast<double>(o.max_step_served));
            AddValue(&position, l, static_cast<double>(o.position));
            AddValue(&revision, l, static_cast<double>(o.revision));
            if (o.max_step_served >= 0) {
              const StepResult& r = o.at_served;
              AddValue(&lr, l, r.lr);
              if (r.has_momentum) AddValue(&momentum, l, r.momentum);
              AddValue(&cycle, l, static_cast<double>(r.cycle));
              AddValue(&cycle_start, l,
                       static_cast<double>(r.step - r.step_in_cycle));
            }
            if (o.progressed != absl::InfinitePast()) {
              AddValue(&progressed, l,
                       absl::ToDoubleSeconds(o.progressed - absl::UnixEpoch()));
            }
            if (o.reported.step >= 0) {
              AddValue(&reported_step, l, static_cast<double>(o.reported.step));
            }
            for (const auto& [metric, v] : o.reported.values) {
              AddValue(&reported,
                       {{"metric", metric}, {"schedule", l[0].value}}, v);
            }
          });
    }
  }
  out->push_back(Single("anneal_schedules", "Schedules the server holds.",
                        MetricType::Gauge, static_cast<double>(total)));
  if (total > shown && !warned_schedules_.exchange(true)) {
    Log("telemetry: ", total, " schedules, per-schedule series for the first ",
        shown, " by name (--metrics_max_schedules)");
  }
  out->push_back(Single("anneal_telemetry_schedules_over_cap",
                        "Schedules without per-schedule series at this "
                        "scrape (--metrics_max_schedules).",
                        MetricType::Gauge, static_cast<double>(total - shown)));
  for (MetricFamily* f :
       {&lr, &momentum, &served, &cycle, &cycle_start, &position, &revision,
        &progressed, &reported, &reported_step}) {
    out->push_back(std::move(*f));
  }
  out->push_back(
      Single("anneal_telemetry_reported_names_dropped_total",
             "Reported metric names past --metrics_max_reported_names of their "
             "schedule, not kept as series (counted per report).",
             MetricType::Counter,
             static_cast<double>(
                 reported_names_dropped_.load(std::memory_order_relaxed))));
}

}  // namespace anneal
