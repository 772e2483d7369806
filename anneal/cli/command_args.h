// Arguments shared by annealctl's commands: the spec file (-f SPEC), and for
// the server commands the schedule NAME (bare id
// or full resource name), -o text|json, --label k=v lists, the actor recorded
// with a change, and request ids for safe retries.
#ifndef ANNEAL_CLI_COMMAND_ARGS_H_
#define ANNEAL_CLI_COMMAND_ARGS_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "anneal/cli/cli_args.h"
#include "anneal/v1/schedule.pb.h"
#include "google/protobuf/message.h"

namespace anneal {

// The one positional argument NAME: "run-1" or "schedules/run-1", returned
// as "schedules/run-1". The id itself is checked by the server.
absl::StatusOr<std::string> ScheduleNameArg(const CliArgs& args);

// The same for a NAME given some other way (report's first positional).
absl::StatusOr<std::string> ScheduleNameFrom(absl::string_view arg);

// NAME as the id alone ("run-1"), for CreateSchedule.
absl::StatusOr<std::string> ScheduleIdArg(const CliArgs& args);

// The whole text of a file ("-": standard input). A file that cannot be
// opened is FAILED_PRECONDITION.
absl::StatusOr<std::string> ReadFileArg(const std::string& path);

// Reads a JSON or YAML file ("-": standard input) into `message`. A file
// that cannot be opened is FAILED_PRECONDITION (exit 1; NOT_FOUND, exit 3,
// is kept for schedules the server does not have); text that does not parse
// is INVALID_ARGUMENT naming the file and the field.
absl::Status LoadMessageFile(const std::string& path,
                             google::protobuf::Message* message);

// -f SPEC, loaded.
absl::StatusOr<v1::ScheduleSpec> LoadSpecArg(const CliArgs& args);

// OK unless --batch-size was given for `spec` (read from `source`), whose
// LRs it would not change: a spec without batch_scaling.
absl::Status BatchSizeApplies(const CliArgs& args, const v1::ScheduleSpec& spec,
                              const std::string& source);

// No positional arguments (list).
absl::Status NoPositionalArgs(const CliArgs& args);

// --page-size N (default 0: the server's default); it must fit in 32 bits.
absl::StatusOr<int32_t> PageSizeArg(const CliArgs& args);

// -o / --output_format: false for text (the default), true for json.
absl::StatusOr<bool> JsonOutputArg(const CliArgs& args,
                                   const std::string& flag);

// --label values: each "k=v" or a comma-separated list of them; an empty
// value adds nothing (so `--label ''` means no labels).
absl::StatusOr<std::map<std::string, std::string>> ParseLabels(
    const std::vector<std::string>& values);

// The actor recorded with a change: --actor, else "USER@HOST (annealctl)"
// ($USER, else the login name of the uid), else empty (the server then
// records the peer address).
std::string ActorArg(const CliArgs& args);

// A random request id ("annealctl-" and 32 hex digits).
std::string NewRequestId();

}  // namespace anneal

#endif  // ANNEAL_CLI_COMMAND_ARGS_H_
