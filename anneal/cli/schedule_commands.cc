// annealctl's schedule commands against a server: create, fork, get, list,
// delete, update, restart and advance. Each parses its flags, makes one call
// (list: one per page) with a deadline, and prints the result for people or,
// with -o json, the response message as JSON.
#include <chrono>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/cli/schedule_view.h"
#include "anneal/cli/server_connection.h"
#include "anneal/model/resource_name.h"
#include "anneal/model/spec_text.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace anneal {
namespace {

// Advance is retried on UNAVAILABLE / DEADLINE_EXCEEDED with the same
// request id, so the server advances at most once.
constexpr int kAdvanceAttempts = 3;
constexpr auto kAdvanceBackoff = std::chrono::milliseconds(250);

// Every server command takes --server.
absl::StatusOr<CliArgs> ParseArgs(const std::vector<std::string>& args,
                                  std::set<std::string> flags,
                                  std::map<std::string, std::string> aliases) {
  flags.insert("server");
  return CliArgs::Parse(args, flags, aliases);
}

// A server command on one schedule: `flags` (and --server, -o/--output)
// parsed, its NAME resolved, and whether it prints JSON.
struct OnSchedule {
  CliArgs args;
  std::string name;
  bool json = false;
};

absl::StatusOr<OnSchedule> ParseOnSchedule(
    const std::vector<std::string>& args, std::set<std::string> flags,
    std::map<std::string, std::string> aliases = {}) {
  flags.insert("output");
  aliases.emplace("o", "output");
  auto parsed = ParseArgs(args, std::move(flags), std::move(aliases));
  if (!parsed.ok()) return parsed.status();
  OnSchedule cmd{*std::move(parsed), "", false};
  auto name = ScheduleNameArg(cmd.args);
  if (!name.ok()) return name.status();
  auto json = JsonOutputArg(cmd.args, "output");
  if (!json.ok()) return json.status();
  cmd.name = *std::move(name);
  cmd.json = *json;
  return cmd;
}

ServerConnection Connect(const CliArgs& a) {
  return ServerConnection(ResolveServerAddress(a.Get("server", "")));
}

// Sends a timeline write (create, update or restart) and prints the schedule
// it returns: JSON, or one summary line saying what was `done`.
template <typename Request>
absl::Status SendWrite(const CliArgs& a, bool json, const char* done,
                       grpc::Status (v1::ScheduleService::Stub::*rpc)(
                           grpc::ClientContext*, const Request&, v1::Schedule*),
                       const Request& request, std::ostream& out) {
  ServerConnection server = Connect(a);
  v1::Schedule schedule;
  grpc::Status status = (server.stub()->*rpc)(
      server.Context(kCallTimeout).get(), request, &schedule);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  if (json) {
    PrintJson(schedule, out);
  } else {
    PrintWriteSummary(done, schedule, out);
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CreateCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto parsed = ParseArgs(
      args, {"file", "display_name", "label", "reason", "actor", "output"},
      {{"f", "file"}, {"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  auto id = ScheduleIdArg(a);
  if (!id.ok()) return id.status();
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();
  auto labels = ParseLabels(a.GetAll("label"));
  if (!labels.ok()) return labels.status();
  auto spec = LoadSpecArg(a);
  if (!spec.ok()) return spec.status();

  v1::CreateScheduleRequest request;
  request.set_schedule_id(*id);
  *request.mutable_schedule()->mutable_spec() = *std::move(spec);
  request.mutable_schedule()->set_display_name(a.Get("display_name", ""));
  request.mutable_schedule()->mutable_labels()->insert(labels->begin(),
                                                       labels->end());
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get("reason", ""));

  return SendWrite(a, *json, "created",
                   &v1::ScheduleService::Stub::CreateSchedule, request, out);
}

absl::Status ForkCommand(const std::vector<std::string>& args,
                         std::ostream& out) {
  auto parsed = ParseArgs(
      args,
      {"at_step", "file", "display_name", "label", "reason", "actor", "output"},
      {{"f", "file"}, {"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  const std::vector<std::string>& positional = a.positional();
  if (positional.size() != 2) {
    return absl::InvalidArgumentError(
        "give SOURCE and NEW_ID (ids or schedules/ID)");
  }
  auto source = ScheduleNameFrom(positional[0]);
  if (!source.ok()) return source.status();
  auto id = ScheduleNameFrom(positional[1]);
  if (!id.ok()) return id.status();
  if (!a.Has("at_step")) {
    return absl::InvalidArgumentError(
        "--at-step is required (the first step that is the fork's own)");
  }
  auto at_step = a.GetInt("at_step", 0);
  if (!at_step.ok()) return at_step.status();
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();
  auto labels = ParseLabels(a.GetAll("label"));
  if (!labels.ok()) return labels.status();

  v1::ForkScheduleRequest request;
  request.set_source(*source);
  request.set_schedule_id(std::string(ScheduleIdOf(*id)));
  request.set_at_step(*at_step);
  if (a.Has("file")) {
    auto spec = LoadSpecArg(a);
    if (!spec.ok()) return spec.status();
    *request.mutable_schedule()->mutable_spec() = *std::move(spec);
  }
  request.mutable_schedule()->set_display_name(a.Get("display_name", ""));
  request.mutable_schedule()->mutable_labels()->insert(labels->begin(),
                                                       labels->end());
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get("reason", ""));

  return SendWrite(a, *json, "forked", &v1::ScheduleService::Stub::ForkSchedule,
                   request, out);
}

absl::Status RewindCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto cmd = ParseOnSchedule(
      args, {"to_step", "file", "reason", "etag", "actor"}, {{"f", "file"}});
  if (!cmd.ok()) return cmd.status();
  const CliArgs& a = cmd->args;
  if (!a.Has("to_step")) {
    return absl::InvalidArgumentError(
        "--to-step is required (the first step the new lineage serves, "
        "one past the checkpoint the job resumes from)");
  }
  auto to_step = a.GetInt("to_step", 0);
  if (!to_step.ok()) return to_step.status();

  v1::RewindScheduleRequest request;
  request.set_name(cmd->name);
  request.set_to_step(*to_step);
  if (a.Has("file")) {
    auto spec = LoadSpecArg(a);
    if (!spec.ok()) return spec.status();
    *request.mutable_spec() = *std::move(spec);
  }
  request.set_etag(a.Get("etag", ""));
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get("reason", ""));

  return SendWrite(a, cmd->json, "rewound",
                   &v1::ScheduleService::Stub::RewindSchedule, request, out);
}

absl::Status GetCommand(const std::vector<std::string>& args,
                        std::ostream& out) {
  auto cmd = ParseOnSchedule(args, {});
  if (!cmd.ok()) return cmd.status();
  const CliArgs& a = cmd->args;

  ServerConnection server = Connect(a);
  v1::GetScheduleRequest request;
  request.set_name(cmd->name);
  v1::Schedule schedule;
  grpc::Status status = server.stub()->GetSchedule(
      server.Context(kCallTimeout).get(), request, &schedule);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  if (cmd->json) {
    PrintJson(schedule, out);
  } else {
    PrintSchedule(schedule, out);
  }
  return absl::OkStatus();
}

absl::Status ListCommand(const std::vector<std::string>& args,
                         std::ostream& out) {
  auto parsed =
      ParseArgs(args, {"filter", "page_size", "output"}, {{"o", "output"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  if (auto s = NoPositionalArgs(a); !s.ok()) return s;
  auto json = JsonOutputArg(a, "output");
  if (!json.ok()) return json.status();
  auto page_size = PageSizeArg(a);
  if (!page_size.ok()) return page_size.status();

  ServerConnection server = Connect(a);
  v1::ListSchedulesRequest request;
  request.set_filter(a.Get("filter", ""));
  request.set_page_size(*page_size);
  v1::ListSchedulesResponse all;
  auto* stub = server.stub();
  absl::Status listed = ForEachPage<v1::ListSchedulesResponse>(
      server, request,
      [stub](auto* context, const auto& r, auto* page) {
        return stub->ListSchedules(context, r, page);
      },
      [&all](v1::ListSchedulesResponse& page) {
        for (v1::Schedule& s : *page.mutable_schedules()) {
          *all.add_schedules() = std::move(s);
        }
      });
  if (!listed.ok()) return listed;

  if (*json) {
    PrintJson(all, out);
  } else {
    PrintScheduleTable({all.schedules().begin(), all.schedules().end()}, out);
  }
  return absl::OkStatus();
}

absl::Status DeleteCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto cmd = ParseOnSchedule(args, {"etag", "reason", "actor"});
  if (!cmd.ok()) return cmd.status();
  const CliArgs& a = cmd->args;

  ServerConnection server = Connect(a);
  v1::DeleteScheduleRequest request;
  request.set_name(cmd->name);
  request.set_etag(a.Get("etag", ""));
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get("reason", ""));
  google::protobuf::Empty empty;
  grpc::Status status = server.stub()->DeleteSchedule(
      server.Context(kCallTimeout).get(), request, &empty);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  if (cmd->json) {
    PrintJson(empty, out);
  } else {
    out << "deleted " << cmd->name << "\n";
  }
  return absl::OkStatus();
}

absl::Status UpdateCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto cmd = ParseOnSchedule(args,
                             {"file", "effective_step", "display_name", "label",
                              "reason", "etag", "actor"},
                             {{"f", "file"}});
  if (!cmd.ok()) return cmd.status();
  const CliArgs& a = cmd->args;
  if (!a.Has("file") && !a.Has("display_name") && !a.Has("label")) {
    return absl::InvalidArgumentError(
        "nothing to update: give -f SPEC, --display-name or --label");
  }
  if (a.Has("effective_step") && !a.Has("file")) {
    return absl::InvalidArgumentError(
        "--effective-step applies to a new spec: give -f SPEC too");
  }

  v1::UpdateScheduleRequest request;
  v1::Schedule* schedule = request.mutable_schedule();
  schedule->set_name(cmd->name);
  if (a.Has("file")) {
    auto spec = LoadSpecArg(a);
    if (!spec.ok()) return spec.status();
    *schedule->mutable_spec() = *std::move(spec);
    request.mutable_update_mask()->add_paths("spec");
  }
  if (a.Has("effective_step")) {
    auto step = a.GetInt("effective_step", 0);
    if (!step.ok()) return step.status();
    request.set_effective_step(*step);
  }
  if (a.Has("display_name")) {
    schedule->set_display_name(a.Get("display_name", ""));
    request.mutable_update_mask()->add_paths("display_name");
  }
  if (a.Has("label")) {
    auto labels = ParseLabels(a.GetAll("label"));
    if (!labels.ok()) return labels.status();
    schedule->mutable_labels()->insert(labels->begin(), labels->end());
    request.mutable_update_mask()->add_paths("labels");
  }
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get("reason", ""));
  schedule->set_etag(a.Get("etag", ""));

  return SendWrite(a, cmd->json, "updated",
                   &v1::ScheduleService::Stub::UpdateSchedule, request, out);
}

absl::Status RestartCommand(const std::vector<std::string>& args,
                            std::ostream& out) {
  auto cmd = ParseOnSchedule(args, {"at", "reason", "etag", "actor"});
  if (!cmd.ok()) return cmd.status();
  const CliArgs& a = cmd->args;

  v1::RestartScheduleRequest request;
  request.set_name(cmd->name);
  if (a.Has("at")) {
    auto at = a.GetInt("at", 0);
    if (!at.ok()) return at.status();
    request.set_at_step(*at);
  }
  request.set_etag(a.Get("etag", ""));
  request.set_actor(ActorArg(a));
  request.set_reason(a.Get("reason", ""));

  return SendWrite(a, cmd->json, "restarted",
                   &v1::ScheduleService::Stub::RestartSchedule, request, out);
}

absl::Status AdvanceCommand(const std::vector<std::string>& args,
                            std::ostream& out) {
  auto cmd = ParseOnSchedule(args, {"expected_position", "request_id"});
  if (!cmd.ok()) return cmd.status();
  const CliArgs& a = cmd->args;

  v1::AdvanceRequest request;
  request.set_name(cmd->name);
  if (a.Has("expected_position")) {
    auto expected = a.GetInt("expected_position", 0);
    if (!expected.ok()) return expected.status();
    request.set_expected_position(*expected);
  }
  request.set_request_id(a.Has("request_id") ? a.Get("request_id", "")
                                             : NewRequestId());

  ServerConnection server = Connect(a);
  v1::AdvanceResponse response;
  for (int attempt = 1;; ++attempt) {
    grpc::Status status = server.stub()->Advance(
        server.Context(kCallTimeout).get(), request, &response);
    if (status.ok()) break;
    const bool retriable =
        status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    if (retriable && attempt < kAdvanceAttempts) {
      std::this_thread::sleep_for(kAdvanceBackoff * attempt);
      continue;
    }
    absl::Status failure = server.Failure(status, kCallTimeout);
    if (!retriable) return failure;
    return absl::Status(
        failure.code(),
        absl::StrCat(failure.message(), " (tried ", kAdvanceAttempts,
                     " times; to retry without advancing twice, pass "
                     "--request-id ",
                     request.request_id(), ")"));
  }
  if (cmd->json) {
    PrintJson(response, out);
  } else {
    PrintAdvance(cmd->name, response, out);
  }
  return absl::OkStatus();
}

absl::Status HealthCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto parsed = ParseArgs(args, {"service"}, {});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  if (auto s = NoPositionalArgs(a); !s.ok()) return s;
  ServerConnection server = Connect(a);
  auto health = grpc::health::v1::Health::NewStub(server.channel());
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(a.Get("service", ""));
  grpc::health::v1::HealthCheckResponse response;
  grpc::Status status =
      health->Check(server.Context(kCallTimeout).get(), request, &response);
  if (!status.ok()) return server.Failure(status, kCallTimeout);
  const std::string& name =
      grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
          response.status());
  out << name << "\n";
  if (response.status() == grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::OkStatus();
  }
  // Draining, or writes stopped by a failing store: see the server's log.
  return absl::UnavailableError(
      absl::StrCat("health: the server at ", server.address(), " is ", name));
}

}  // namespace anneal
