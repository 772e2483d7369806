// Metric reports sent in the background (see metric_reporter.h).
#include "anneal/client/metric_reporter.h"

#include <algorithm>
#include <cstdio>
#include <deque>
#include <optional>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "anneal/model/metric_report.h"
#include "anneal/model/resource_name.h"

namespace anneal {
namespace {

void LogToStderr(LogLevel level, absl::string_view message) {
  std::fprintf(stderr, "anneal reporter %s: %.*s\n",
               level == LogLevel::kInfo ? "info" : "warning",
               static_cast<int>(message.size()), message.data());
}

}  // namespace

class MetricReporter::Impl {
 public:
  Impl(std::unique_ptr<ScheduleTransport> transport, Options options)
      : transport_(std::move(transport)),
        options_(std::move(options)),
        name_(ScheduleNameOf(options_.schedule)) {
    if (!options_.log) options_.log = LogToStderr;
    sender_ = std::thread([this] { Run(); });
  }

  ~Impl() {
    Flush(options_.close_timeout);
    {
      absl::MutexLock lock(&mu_);
      stopping_ = true;
      stats_.dropped += static_cast<int64_t>(order_.size());
      order_.clear();
      queued_.clear();
    }
    transport_->CancelAll();  // a send waiting on an outage gives up
    sender_.join();
  }

  absl::Status Report(int64_t step,
                      const std::map<std::string, double>& metrics) {
    if (absl::Status s = ValidateReport(step, metrics); !s.ok()) return s;
    std::optional<std::string> warning;
    {
      absl::MutexLock lock(&mu_);
      auto [it, fresh] = queued_.try_emplace(step);
      for (const auto& [metric, value] : metrics) it->second[metric] = value;
      if (fresh) {
        order_.push_back(step);
        ++enqueued_;
        if (static_cast<int64_t>(order_.size()) > options_.max_pending) {
          queued_.erase(order_.front());
          order_.pop_front();
          ++stats_.dropped;
          if (!warned_full_) {
            warned_full_ = true;
            warning = absl::StrCat(
                name_, ": more than ", options_.max_pending,
                " steps waiting to be reported; dropping the oldest");
          }
        }
      }
    }
    if (warning) options_.log(LogLevel::kWarning, *warning);
    return absl::OkStatus();
  }

  bool Flush(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    flush_target_ = std::max(flush_target_, enqueued_);
    return mu_.AwaitWithTimeout(absl::Condition(this, &Impl::Flushed), timeout);
  }

  Stats stats() const {
    absl::MutexLock lock(&mu_);
    Stats s = stats_;
    s.pending = static_cast<int64_t>(order_.size()) + (in_flight_ ? 1 : 0);
    return s;
  }

 private:
  bool HasWork() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || !order_.empty();
  }
  // Everything queued before the last Flush was sent or refused, or
  // nothing is left to send (the rest was dropped).
  bool Flushed() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stopping_ || (order_.empty() && !in_flight_) ||
           finished_ >= flush_target_;
  }

  // The sender thread: the oldest queued step, one call at a time.
  void Run() {
    absl::Duration backoff = options_.initial_backoff;
    bool outage = false;
    while (true) {
      v1::ReportMetricsRequest request;
      {
        absl::MutexLock lock(&mu_);
        mu_.Await(absl::Condition(this, &Impl::HasWork));
        if (stopping_) return;
        const int64_t step = order_.front();
        order_.pop_front();
        auto it = queued_.find(step);
        request.set_name(name_);
        request.set_step(step);
        for (const auto& [metric, value] : it->second) {
          (*request.mutable_metrics())[metric] = value;
        }
        queued_.erase(it);
        in_flight_ = true;
      }
      CallOptions call;
      call.timeout = options_.rpc_timeout;
      // During an outage, wait for the connection (schedule_transport.h).
      call.wait_for_ready = outage;
      absl::StatusOr<v1::MetricReport> answer =
          transport_->ReportMetrics(request, call);
      std::optional<std::string> warning;
      absl::Duration sleep;
      {
        absl::MutexLock lock(&mu_);
        in_flight_ = false;
        if (answer.ok()) {
          ++stats_.sent;
          ++finished_;
          if (outage) warning = absl::StrCat(name_, ": reports flow again");
          outage = false;
          backoff = options_.initial_backoff;
        } else if (IsTransientError(answer.status()) && !stopping_) {
          // Back to the front; a newer report of the same step merges
          // under it (the older values first, the newer win).
          auto [it, fresh] = queued_.try_emplace(request.step());
          for (const auto& [metric, value] : request.metrics()) {
            it->second.try_emplace(metric, value);
          }
          if (fresh) order_.push_front(request.step());
          ++stats_.retries;
          if (!outage) {
            warning = absl::StrCat(name_, ": cannot report (",
                                   answer.status().ToString(),
                                   "); retrying with backoff, reports wait");
          }
          outage = true;
          sleep = backoff;
          backoff = std::min(2 * backoff, options_.max_backoff);
        } else if (stopping_) {
          ++stats_.dropped;  // cut by the close
        } else {
          ++stats_.rejected;
          ++finished_;
          const std::string message(answer.status().message());
          if (rejections_.insert(message).second) {
            warning = absl::StrCat(name_,
                                   ": the server refused a report of "
                                   "step ",
                                   request.step(),
                                   ", dropped: ", answer.status().ToString());
          }
        }
      }
      if (warning) {
        options_.log(answer.ok() ? LogLevel::kInfo : LogLevel::kWarning,
                     *warning);
      }
      if (sleep > absl::ZeroDuration()) {
        absl::MutexLock lock(&mu_);
        mu_.AwaitWithTimeout(absl::Condition(&stopping_), sleep);
      }
    }
  }

  const std::unique_ptr<ScheduleTransport> transport_;
  Options options_;
  const std::string name_;
  mutable absl::Mutex mu_;
  // Steps waiting, in the order first reported, and their merged metrics.
  std::deque<int64_t> order_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<int64_t, std::map<std::string, double>> queued_
      ABSL_GUARDED_BY(mu_);
  bool in_flight_ ABSL_GUARDED_BY(mu_) = false;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  bool warned_full_ ABSL_GUARDED_BY(mu_) = false;
  // Steps ever queued anew, and reports that were sent or refused: Flush
  // waits for the second to reach the first.
  int64_t enqueued_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t finished_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t flush_target_ ABSL_GUARDED_BY(mu_) = 0;
  std::set<std::string> rejections_ ABSL_GUARDED_BY(mu_);
  Stats stats_ ABSL_GUARDED_BY(mu_);
  std::thread sender_;
};

absl::StatusOr<std::unique_ptr<MetricReporter>> MetricReporter::Create(
    std::unique_ptr<ScheduleTransport> transport, Options options) {
  if (absl::Status s =
          ValidateScheduleName("schedule", ScheduleNameOf(options.schedule));
      !s.ok()) {
    return s;
  }
  if (options.max_pending < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_pending: must be >= 1, got ", options.max_pending));
  }
  if (options.initial_backoff <= absl::ZeroDuration() ||
      options.max_backoff < options.initial_backoff) {
    return absl::InvalidArgumentError(
        "initial_backoff, max_backoff: must be > 0 and max >= initial");
  }
  return std::unique_ptr<MetricReporter>(new MetricReporter(
      std::make_unique<Impl>(std::move(transport), std::move(options))));
}

absl::StatusOr<std::unique_ptr<MetricReporter>> MetricReporter::Connect(
    const std::string& server, Options options) {
  auto channel = NewAnnealChannel(server, options.security);
  if (!channel.ok()) return channel.status();
  std::string token = options.security.token;
  return Create(NewGrpcTransport(*std::move(channel), std::move(token)),
                std::move(options));
}

MetricReporter::MetricReporter(std::unique_ptr<Impl> impl)
    : impl_(std::move(impl)) {}

MetricReporter::~MetricReporter() = default;

absl::Status MetricReporter::Report(
    int64_t step, const std::map<std::string, double>& metrics) {
  return impl_->Report(step, metrics);
}

bool MetricReporter::Flush(absl::Duration timeout) {
  return impl_->Flush(timeout);
}

MetricReporter::Stats MetricReporter::stats() const { return impl_->stats(); }

}  // namespace anneal
