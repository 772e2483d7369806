// anneal.v1.ScheduleService on the raw callback API (see schedule_service.h).
#include "anneal/server/schedule_service.h"

#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "anneal/engine/field_error.h"
#include "anneal/model/resource_name.h"
#include "anneal/server/common/log.h"
#include "anneal/server/decode.h"
#include "anneal/server/grpc_status.h"

namespace anneal {
namespace {

// The service's methods, in the order of ScheduleServiceImpl::Method.
constexpr const char* kMethodNames[] = {
    "CreateSchedule", "GetSchedule",     "ListSchedules", "UpdateSchedule",
    "DeleteSchedule", "Evaluate",        "EvaluateRange", "Simulate",
    "Advance",        "RestartSchedule", "ReportMetrics", "ListMetricReports",
    "WatchSchedules", "Diagnose",        "ForkSchedule",  "RewindSchedule"};

// A range longer than this is computed on the pool.
constexpr int64_t kInlineRangeSteps = 65536;

absl::Status OutOfMemory() {
  return RetryAfter(absl::ResourceExhaustedError(
                        "server: out of memory while handling the request; "
                        "retry later"),
                    absl::Seconds(1));
}

// Answers `call` with the registry's result.
template <typename T>
Registry::Done<T> ReplyWith(CallRef call) {
  return [call = std::move(call)](absl::StatusOr<T> result) {
    if (result.ok()) {
      call->Reply(*result);
    } else {
      call->Finish(result.status());
    }
  };
}

// As ReplyWith, and logs the mutation (`what`) unless `log_accepted` is
// false, and its rejection always.
template <typename T>
Registry::Done<T> ReplyAndLog(CallRef call, std::string what,
                              bool log_accepted = true) {
  return [call = std::move(call), what = std::move(what),
          log_accepted](absl::StatusOr<T> result) {
    if (result.ok()) {
      if (log_accepted) Log(what);
      call->Reply(*result);
    } else {
      Log(what, " rejected: ", result.status().ToString());
      call->Finish(result.status());
    }
  };
}

// Who made a change: the request's actor, else the peer address.
template <typename Request>
void DefaultActor(const UnaryCall& call, Request& request) {
  if (request.actor().empty()) request.set_actor(call.context()->peer());
}

// On a server with tokens, the authenticated caller is the actor; the
// caller's own actor text is kept as a note at the end of the reason.
template <typename Request>
void Identify(const Principal& principal, UnaryCall* call, Request& request) {
  if (!principal.authenticated()) return;
  call->set_identity(principal.name);
  if constexpr (std::is_same_v<Request, v1::CreateScheduleRequest> ||
                std::is_same_v<Request, v1::ForkScheduleRequest> ||
                std::is_same_v<Request, v1::UpdateScheduleRequest> ||
                std::is_same_v<Request, v1::RestartScheduleRequest> ||
                std::is_same_v<Request, v1::RewindScheduleRequest> ||
                std::is_same_v<Request, v1::DeleteScheduleRequest>) {
    const std::string said = request.actor();
    request.set_actor(principal.name);
    if (!said.empty() && said != principal.name) {
      std::string note = absl::StrCat("[caller's actor: ", said, "]");
      request.set_reason(request.reason().empty()
                             ? note
                             : absl::StrCat(request.reason(), " ", note));
    }
  }
}

// Whether an update may change the labels.
bool TouchesLabels(const v1::UpdateScheduleRequest& r) {
  if (r.update_mask().paths_size() == 0) return !r.schedule().labels().empty();
  for (const std::string& path : r.update_mask().paths()) {
    if (path == "labels" || path == "*") return true;
  }
  return false;
}

std::string By(const std::string& actor, const std::string& reason) {
  std::string out = absl::StrCat(" by ", QuoteValue(actor, 128));
  if (!reason.empty()) absl::StrAppend(&out, " reason ", QuoteValue(reason));
  return out;
}

}  // namespace

ScheduleServiceImpl::ScheduleServiceImpl(Registry* registry, WorkPool* pool,
                                         ServiceOptions options)
    : registry_(registry),
      pool_(pool),
      options_(options),
      range_steps_left_(options_.max_inflight_range_steps) {
  static_assert(sizeof(kMethodNames) / sizeof(kMethodNames[0]) == kMethods);
  for (int i = 0; i < kMethods; ++i) {
    rpc_[i] = options_.telemetry->Rpc(
        "anneal.v1.ScheduleService", kMethodNames[i],
        i == static_cast<int>(Method::kWatchSchedules) ? "server_stream"
                                                       : "unary");
  }
}

template <typename Request, typename LaneOf, typename Body>
grpc::ServerUnaryReactor* ScheduleServiceImpl::Handle(
    Method method, Context* context, const Bytes* bytes, Bytes* response,
    LaneOf lane_of, Body body) {
  UnaryCall* call =
      calls_.Start(context, response, rpc_[static_cast<int>(method)]);
  if (call->finished()) return call;  // draining
  try {
    // Who is calling comes first: an unauthenticated caller learns nothing
    // of the request's faults.
    absl::StatusOr<Principal> principal = Authorize(method, context);
    if (!principal.ok()) {
      call->Finish(principal.status());
      return call;
    }
    if (options_.mutation_limiter != nullptr &&
        (method == Method::kCreateSchedule || method == Method::kForkSchedule ||
         method == Method::kUpdateSchedule ||
         method == Method::kRestartSchedule ||
         method == Method::kRewindSchedule ||
         method == Method::kDeleteSchedule)) {
      RateLimiter& limiter = *options_.mutation_limiter;
      const std::string client = principal->authenticated()
                                     ? principal->name
                                     : PeerHost(context->peer());
      if (std::optional<absl::Duration> wait =
              limiter.Take(client, absl::Now())) {
        call->Finish(
            RetryAfter(absl::ResourceExhaustedError(absl::StrCat(
                           kMethodNames[static_cast<int>(method)], ": ", client,
                           " is over its limit of ", limiter.per_second(),
                           " changes per second (burst ", limiter.burst(),
                           "; --mutation_rate, --mutation_burst); retry in ",
                           absl::FormatDuration(*wait))),
                       *wait));
        return call;
      }
    }
    Request request;
    absl::Status s = DecodeRequest(*bytes, &request);
    if (s.ok()) s = CheckLimits(request, options_.limits);
    if (s.ok()) s = Scope(*principal, request);
    if (s.ok()) Identify(*principal, call, request);
    if (!s.ok()) {
      call->Finish(s);
      return call;
    }
    if (lane_of(request) == Lane::kInline) {
      body(CallRef(call), std::move(request));
      return call;
    }
    const bool queued = pool_->TryRun(
        [body, ref = CallRef(call), request = std::move(request)]() mutable {
          try {
            body(ref, std::move(request));
          } catch (const std::bad_alloc&) {
            ref->Finish(OutOfMemory());
          }
        });
    if (!queued) {
      call->Finish(RetryAfter(
          absl::ResourceExhaustedError(
              "server: too much heavy work is queued (max_queued_work); "
              "retry shortly"),
          absl::Milliseconds(200)));
    }
  } catch (const std::bad_alloc&) {
    call->Finish(OutOfMemory());
  }
  return call;
}

absl::StatusOr<Principal> ScheduleServiceImpl::Authorize(
    Method method, Context* context) const {
  if (options_.authorizer == nullptr) {
    // No tokens: a verified client certificate (mutual TLS) names the
    // caller; every caller may do everything.
    Principal open;
    std::shared_ptr<const grpc::AuthContext> auth = context->auth_context();
    if (auth != nullptr && auth->IsPeerAuthenticated()) {
      for (const char* property : {"x509_common_name", "x509_subject"}) {
        std::vector<grpc::string_ref> values =
            auth->FindPropertyValues(property);
        if (!values.empty()) {
          open.name = absl::StrCat(
              "x509:", absl::string_view(values[0].data(), values[0].size()));
          break;
        }
      }
    }
    return open;
  }
  const auto& metadata = context->client_metadata();
  auto it = metadata.find("authorization");
  const bool present = it != metadata.end();
  absl::string_view header;
  if (present) header = absl::string_view(it->second.data(), it->second.size());
  absl::StatusOr<Principal> principal =
      options_.authorizer->Authenticate(present, header);
  if (!principal.ok() || !principal->authenticated()) return principal;
  if (absl::Status s = Authorizer::Permit(
          *principal, kMethodNames[static_cast<int>(method)]);
      !s.ok()) {
    return s;
  }
  return principal;
}

absl::Status ScheduleServiceImpl::NamedInScope(const Principal& principal,
                                               const std::string& name) const {
  auto labels = registry_->Labels(name);
  if (!labels.ok()) return labels.status();
  // NOT_FOUND, worded as for a missing schedule: a scoped token cannot tell
  // another team's schedule from none.
  if (!InScope(principal, *labels)) {
    return absl::NotFoundError(absl::StrCat(name, ": not found"));
  }
  return absl::OkStatus();
}

template <typename Request>
absl::Status ScheduleServiceImpl::Scope(const Principal& principal,
                                        Request& request) const {
  if (!principal.scoped()) return absl::OkStatus();
  if constexpr (std::is_same_v<Request, v1::CreateScheduleRequest>) {
    return CheckLabelsInScope(principal, "schedule.labels",
                              request.schedule().labels());
  } else if constexpr (std::is_same_v<Request, v1::ForkScheduleRequest>) {
    if (absl::Status s = NamedInScope(principal, request.source()); !s.ok()) {
      return s;
    }
    // Empty labels are the source's, in scope already.
    if (request.schedule().labels().empty()) return absl::OkStatus();
    return CheckLabelsInScope(principal, "schedule.labels",
                              request.schedule().labels());
  } else if constexpr (std::is_same_v<Request, v1::ListSchedulesRequest>) {
    request.set_filter(ScopedFilter(principal, request.filter()));
    return absl::OkStatus();
  } else if constexpr (std::is_same_v<Request, v1::UpdateScheduleRequest>) {
    if (absl::Status s = NamedInScope(principal, request.schedule().name());
        !s.ok()) {
      return s;
    }
    if (!TouchesLabels(request)) return absl::OkStatus();
    return CheckLabelsInScope(principal, "schedule.labels",
                              request.schedule().labels());
  } else if constexpr (std::is_same_v<Request, v1::SimulateRequest>) {
    return absl::OkStatus();  // a spec, no schedule
  } else {
    return NamedInScope(principal, request.name());
  }
}

absl::Status ScheduleServiceImpl::CheckWatch(
    const v1::WatchSchedulesRequest& request) const {
  const RequestLimits& limits = options_.limits;
  if (request.filter().size() > static_cast<size_t>(limits.max_filter_bytes)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "filter: must be at most ", limits.max_filter_bytes,
        " bytes (max_filter_bytes), got ", request.filter().size()));
  }
  for (auto [field, count] :
       {std::pair{"names", static_cast<int64_t>(request.names_size())},
        std::pair{"since_revisions",
                  static_cast<int64_t>(request.since_revisions_size())}}) {
    if (count > limits.max_watch_names) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": must be at most ", limits.max_watch_names,
                       " names (max_schedules), got ", count));
    }
  }
  if (request.names_size() > 0 && !request.filter().empty()) {
    return absl::InvalidArgumentError(
        "filter: must be empty when names are given (watch names or a "
        "filter, not both)");
  }
  for (int i = 0; i < request.names_size(); ++i) {
    if (absl::Status s = ValidateScheduleName(absl::StrCat("names[", i, "]"),
                                              request.names(i));
        !s.ok()) {
      return s;
    }
  }
  const absl::flat_hash_set<absl::string_view> names(request.names().begin(),
                                                     request.names().end());
  for (const auto& [name, revision] : request.since_revisions()) {
    if (absl::Status s = ValidateScheduleName("since_revisions", name);
        !s.ok()) {
      return s;
    }
    if (revision < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("since_revisions[", QuoteValue(name),
                       "]: must be >= 0, got ", revision));
    }
    if (!names.empty() && !names.contains(name)) {
      return absl::InvalidArgumentError(
          absl::StrCat("since_revisions[", QuoteValue(name),
                       "]: must be one of names when names are given"));
    }
  }
  return absl::OkStatus();
}

absl::Status ScheduleServiceImpl::ReserveRange(UnaryCall* call, int64_t count) {
  const int64_t want = std::max<int64_t>(count, 1);
  // Long ranges (plots, exports) may take three quarters of the budget; the
  // rest is kept for the short ones training jobs prefetch.
  const int64_t keep =
      count > kInlineRangeSteps ? options_.max_inflight_range_steps / 4 : 0;
  const int64_t left = range_steps_left_.fetch_sub(want) - want;
  if (left < keep) {
    range_steps_left_.fetch_add(want);
    return RetryAfter(
        absl::ResourceExhaustedError(
            absl::StrCat("count: the server is serving its limit of ",
                         options_.max_inflight_range_steps,
                         " range steps at once (max_inflight_range_steps), so ",
                         count, " more must wait; retry shortly")),
        absl::Milliseconds(200));
  }
  call->Hold(BudgetLease(&range_steps_left_, want));
  return absl::OkStatus();
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::CreateSchedule(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::CreateScheduleRequest>(
      Method::kCreateSchedule, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::CreateScheduleRequest r) {
        DefaultActor(*call, r);
        std::string what = absl::StrCat("create schedules/", r.schedule_id(),
                                        By(r.actor(), r.reason()));
        registry_->Create(
            r, ReplyAndLog<v1::Schedule>(std::move(call), std::move(what)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ForkSchedule(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::ForkScheduleRequest>(
      Method::kForkSchedule, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::ForkScheduleRequest r) {
        DefaultActor(*call, r);
        std::string what =
            absl::StrCat("fork schedules/", r.schedule_id(), " from ",
                         QuoteValue(r.source(), 128), " at step ", r.at_step(),
                         By(r.actor(), r.reason()));
        registry_->Fork(
            r, ReplyAndLog<v1::Schedule>(std::move(call), std::move(what)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::GetSchedule(Context* context,
                                                           const Bytes* request,
                                                           Bytes* response) {
  return Handle<v1::GetScheduleRequest>(
      Method::kGetSchedule, context, request, response, Fixed<Lane::kInline>(),
      [this](CallRef call, v1::GetScheduleRequest r) {
        ReplyWith<v1::Schedule>(std::move(call))(registry_->Get(r));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ListSchedules(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::ListSchedulesRequest>(
      Method::kListSchedules, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::ListSchedulesRequest r) {
        ReplyWith<v1::ListSchedulesResponse>(std::move(call))(
            registry_->List(r, options_.max_list_page_bytes));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::UpdateSchedule(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::UpdateScheduleRequest>(
      Method::kUpdateSchedule, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::UpdateScheduleRequest r) {
        DefaultActor(*call, r);
        std::string what = absl::StrCat("update ", r.schedule().name(),
                                        By(r.actor(), r.reason()));
        registry_->Update(
            r, ReplyAndLog<v1::Schedule>(std::move(call), std::move(what)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::DeleteSchedule(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::DeleteScheduleRequest>(
      Method::kDeleteSchedule, context, request, response,
      Fixed<Lane::kInline>(),
      [this](CallRef call, v1::DeleteScheduleRequest r) {
        DefaultActor(*call, r);
        std::string what =
            absl::StrCat("delete ", r.name(), By(r.actor(), r.reason()));
        registry_->Delete(r, ReplyAndLog<google::protobuf::Empty>(
                                 std::move(call), std::move(what)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Evaluate(Context* context,
                                                        const Bytes* request,
                                                        Bytes* response) {
  return Handle<v1::EvaluateRequest>(
      Method::kEvaluate, context, request, response, Fixed<Lane::kInline>(),
      [this](CallRef call, v1::EvaluateRequest r) {
        registry_->Evaluate(r,
                            ReplyWith<v1::EvaluateResponse>(std::move(call)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::EvaluateRange(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::EvaluateRangeRequest>(
      Method::kEvaluateRange, context, request, response,
      [](const v1::EvaluateRangeRequest& r) {
        return r.count() > kInlineRangeSteps ? Lane::kPool : Lane::kInline;
      },
      [this](CallRef call, v1::EvaluateRangeRequest r) {
        if (auto s = ReserveRange(call.get(), r.count()); !s.ok()) {
          call->Finish(s);
          return;
        }
        auto out = std::make_unique<v1::EvaluateRangeResponse>();
        v1::EvaluateRangeResponse* raw = out.get();
        registry_->EvaluateRange(r, raw,
                                 [call, out = std::move(out)](absl::Status s) {
                                   if (s.ok()) {
                                     call->Reply(*out);
                                   } else {
                                     call->Finish(s);
                                   }
                                 });
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Simulate(Context* context,
                                                        const Bytes* request,
                                                        Bytes* response) {
  return Handle<v1::SimulateRequest>(
      Method::kSimulate, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::SimulateRequest r) {
        if (auto s = ReserveRange(call.get(), r.count()); !s.ok()) {
          call->Finish(s);
          return;
        }
        v1::EvaluateRangeResponse out;
        absl::Status s = registry_->Simulate(r, &out);
        if (s.ok()) {
          call->Reply(out);
        } else {
          call->Finish(s);
        }
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Advance(Context* context,
                                                       const Bytes* request,
                                                       Bytes* response) {
  return Handle<v1::AdvanceRequest>(
      Method::kAdvance, context, request, response, Fixed<Lane::kInline>(),
      [this](CallRef call, v1::AdvanceRequest r) {
        std::string what = absl::StrCat("advance ", r.name(), " request_id ",
                                        QuoteValue(r.request_id()));
        registry_->Advance(
            r, ReplyAndLog<v1::AdvanceResponse>(
                   std::move(call), std::move(what), options_.log_advances));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::RestartSchedule(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::RestartScheduleRequest>(
      Method::kRestartSchedule, context, request, response,
      Fixed<Lane::kInline>(),
      [this](CallRef call, v1::RestartScheduleRequest r) {
        DefaultActor(*call, r);
        std::string what =
            absl::StrCat("restart ", r.name(), By(r.actor(), r.reason()));
        registry_->Restart(
            r, ReplyAndLog<v1::Schedule>(std::move(call), std::move(what)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::RewindSchedule(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::RewindScheduleRequest>(
      Method::kRewindSchedule, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::RewindScheduleRequest r) {
        DefaultActor(*call, r);
        std::string what = absl::StrCat("rewind ", r.name(), " to step ",
                                        r.to_step(), By(r.actor(), r.reason()));
        registry_->Rewind(
            r, ReplyAndLog<v1::Schedule>(std::move(call), std::move(what)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ReportMetrics(
    Context* context, const Bytes* request, Bytes* response) {
  // Not logged: a job may report every step, and the report itself is the
  // record (ListMetricReports).
  return Handle<v1::ReportMetricsRequest>(
      Method::kReportMetrics, context, request, response,
      Fixed<Lane::kInline>(), [this](CallRef call, v1::ReportMetricsRequest r) {
        registry_->ReportMetrics(r,
                                 ReplyWith<v1::MetricReport>(std::move(call)));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::ListMetricReports(
    Context* context, const Bytes* request, Bytes* response) {
  return Handle<v1::ListMetricReportsRequest>(
      Method::kListMetricReports, context, request, response,
      Fixed<Lane::kPool>(),
      [this](CallRef call, v1::ListMetricReportsRequest r) {
        ReplyWith<v1::ListMetricReportsResponse>(std::move(call))(
            registry_->ListMetricReports(r));
      });
}

grpc::ServerUnaryReactor* ScheduleServiceImpl::Diagnose(Context* context,
                                                        const Bytes* request,
                                                        Bytes* response) {
  // On the pool: it reads up to --metrics_history reports and may analyse
  // up to 10^6 steps of the spec.
  return Handle<v1::DiagnoseRequest>(
      Method::kDiagnose, context, request, response, Fixed<Lane::kPool>(),
      [this](CallRef call, v1::DiagnoseRequest r) {
        ReplyWith<v1::DiagnoseResponse>(std::move(call))(
            registry_->Diagnose(r));
      });
}

grpc::ServerWriteReactor<v1::WatchEvent>* ScheduleServiceImpl::WatchSchedules(
    Context* context, const v1::WatchSchedulesRequest* request) {
  RpcTelemetry* rpc = rpc_[static_cast<int>(Method::kWatchSchedules)];
  absl::StatusOr<Principal> principal =
      Authorize(Method::kWatchSchedules, context);
  if (!principal.ok()) {
    return WatchCall::Start(registry_, *request, principal.status(), rpc,
                            WatchCall::Access{});
  }
  WatchCall::Access access;
  if (principal->authenticated() && options_.authorizer != nullptr) {
    access = {options_.authorizer, *principal, &watch_roster_};
  }
  absl::Status checked = CheckWatch(*request);
  if (!checked.ok() || !principal->scoped()) {
    return WatchCall::Start(registry_, *request, checked, rpc,
                            std::move(access));
  }
  // A scoped token watches only its scope: named schedules must be in it
  // (when the watch starts), a filter is narrowed to it.
  v1::WatchSchedulesRequest scoped = *request;
  for (const std::string& name : scoped.names()) {
    checked = NamedInScope(*principal, name);
    if (!checked.ok()) break;
  }
  if (scoped.names_size() == 0) {
    scoped.set_filter(ScopedFilter(*principal, scoped.filter()));
  }
  return WatchCall::Start(registry_, scoped, checked, rpc, std::move(access));
}

}  // namespace anneal
