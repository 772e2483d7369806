// Arguments shared by annealctl's server commands (see command_args.h).
#include "anneal/cli/command_args.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iostream>
#include <random>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "anneal/engine/field_error.h"
#include "anneal/model/resource_name.h"
#include "anneal/model/spec_text.h"

namespace anneal {

namespace {

absl::StatusOr<std::string> IdFrom(absl::string_view arg) {
  absl::string_view id = ScheduleIdOf(arg);
  if (id.empty() || absl::StrContains(id, '/')) {
    return absl::InvalidArgumentError(
        absl::StrCat("NAME: must be an id or ", SchedulesPrefix(), "ID, got ",
                     QuoteValue(arg)));
  }
  return std::string(id);
}

}  // namespace

absl::StatusOr<std::string> ReadFileArg(const std::string& path) {
  std::stringstream buffer;
  if (path == "-") {
    buffer << std::cin.rdbuf();
  } else {
    std::ifstream in(path);
    if (!in) {
      return absl::FailedPreconditionError(absl::StrCat(path, ": cannot open"));
    }
    buffer << in.rdbuf();
  }
  return buffer.str();
}

absl::Status LoadMessageFile(const std::string& path,
                             google::protobuf::Message* message) {
  absl::StatusOr<std::string> text = ReadFileArg(path);
  if (!text.ok()) return text.status();
  if (auto s = ParseMessageText(*text, message); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ScheduleIdArg(const CliArgs& args) {
  const std::vector<std::string>& positional = args.positional();
  if (positional.empty()) {
    return absl::InvalidArgumentError(
        "NAME is required (an id or schedules/ID)");
  }
  if (positional.size() > 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "unexpected argument ", positional[1], " (give one NAME)"));
  }
  return IdFrom(positional[0]);
}

absl::StatusOr<std::string> ScheduleNameFrom(absl::string_view arg) {
  auto id = IdFrom(arg);
  if (!id.ok()) return id.status();
  return ScheduleName(*id);
}

absl::StatusOr<std::string> ScheduleNameArg(const CliArgs& args) {
  auto id = ScheduleIdArg(args);
  if (!id.ok()) return id.status();
  return ScheduleName(*id);
}

absl::StatusOr<v1::ScheduleSpec> LoadSpecArg(const CliArgs& args) {
  auto path = args.Require("file");
  if (!path.ok()) return path.status();
  v1::ScheduleSpec spec;
  if (auto s = LoadMessageFile(*path, &spec); !s.ok()) return s;
  return spec;
}

absl::Status BatchSizeApplies(const CliArgs& args, const v1::ScheduleSpec& spec,
                              const std::string& source) {
  if (!args.Has("batch_size") || spec.has_batch_scaling()) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "--batch-size: ", source,
      " has no batch_scaling, so its LRs do not depend on the batch size; "
      "add batch_scaling {reference_batch_size: B} or leave out "
      "--batch-size"));
}

absl::Status NoPositionalArgs(const CliArgs& args) {
  if (args.positional().empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat("unexpected argument ", args.positional()[0]));
}

absl::StatusOr<int32_t> PageSizeArg(const CliArgs& args) {
  auto page_size = args.GetInt("page_size", 0);
  if (!page_size.ok()) return page_size.status();
  if (*page_size < INT32_MIN || *page_size > INT32_MAX) {
    return absl::InvalidArgumentError(
        absl::StrCat("--page-size: must fit in 32 bits, got ", *page_size));
  }
  return static_cast<int32_t>(*page_size);
}

absl::StatusOr<bool> JsonOutputArg(const CliArgs& args,
                                   const std::string& flag) {
  const std::string value = args.Get(flag, "text");
  if (value == "text") return false;
  if (value == "json") return true;
  return absl::InvalidArgumentError(
      absl::StrCat("-o: must be text or json, got ", value));
}

absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& values) {
  std::map<std::string, std::string> labels;
  for (const std::string& value : values) {
    for (absl::string_view item :
         absl::StrSplit(value, ',', absl::SkipEmpty())) {
      std::pair<std::string, std::string> kv =
          absl::StrSplit(item, absl::MaxSplits('=', 1));
      if (kv.first.empty() || !absl::StrContains(item, '=')) {
        return absl::InvalidArgumentError(
            absl::StrCat("--label: must be KEY=VALUE, got \"", item, "\""));
      }
      labels[kv.first] = kv.second;
    }
  }
  return labels;
}

std::string ActorArg(const CliArgs& args) {
  if (args.Has("actor")) return args.Get("actor", "");
  std::string user;
  if (const char* env = std::getenv("USER"); env != nullptr) user = env;
  if (user.empty()) {
    if (const passwd* pw = getpwuid(getuid()); pw != nullptr) {
      user = pw->pw_name;
    }
  }
  if (user.empty()) return "";
  char host[256] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) host[0] = '\0';
  if (host[0] == '\0') return absl::StrCat(user, " (annealctl)");
  return absl::StrCat(user, "@", host, " (annealctl)");
}

std::string NewRequestId() {
  std::random_device device;
  std::mt19937_64 bits((static_cast<uint64_t>(device()) << 32) ^ device());
  return absl::StrFormat("annealctl-%016x%016x", bits(), bits());
}

}  // namespace anneal
