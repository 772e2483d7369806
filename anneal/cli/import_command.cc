// annealctl import: a library's scheduler config, translated into the anneal
// spec that serves the same LRs (anneal/importers), printed as JSON for
// `create -f` or `preview -f`.
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "anneal/cli/cli_args.h"
#include "anneal/cli/command_args.h"
#include "anneal/cli/commands.h"
#include "anneal/importers/importer.h"
#include "google/protobuf/util/json_util.h"

namespace anneal {
namespace {

// Protobuf's JSON writes int64 fields as strings ("period": "100"); a spec
// file reads better with numbers, and ParseMessageText takes both. In a spec
// every string value that is all digits is such a field: metric names
// cannot start with a digit and enum values are names.
std::string UnquoteIntegers(const std::string& json) {
  std::string out;
  out.reserve(json.size());
  for (size_t i = 0; i < json.size(); ++i) {
    if (json.compare(i, 3, ": \"") == 0) {
      size_t j = i + 3;
      if (j < json.size() && json[j] == '-') ++j;
      const size_t digits = j;
      while (j < json.size() && json[j] >= '0' && json[j] <= '9') ++j;
      if (j > digits && j < json.size() && json[j] == '"') {
        out.append(": ");
        out.append(json, i + 3, j - (i + 3));
        i = j;
        continue;
      }
    }
    out.push_back(json[i]);
  }
  return out;
}

}  // namespace

absl::Status ImportCommand(const std::vector<std::string>& args,
                           std::ostream& out) {
  auto parsed = CliArgs::Parse(args, {"from", "file"}, {{"f", "file"}});
  if (!parsed.ok()) return parsed.status();
  const CliArgs& a = *parsed;
  if (auto s = NoPositionalArgs(a); !s.ok()) return s;
  if (!a.Has("from")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--from is required: one of ", absl::StrJoin(ImportSources(), ", ")));
  }
  if (!a.Has("file")) {
    return absl::InvalidArgumentError(
        "-f CONFIG is required (a JSON or YAML file, - for stdin)");
  }
  const std::string path = a.Get("file", "");
  absl::StatusOr<std::string> text = ReadFileArg(path);
  if (!text.ok()) return text.status();
  absl::StatusOr<ImportResult> imported =
      ImportSchedule(a.Get("from", ""), *text);
  if (!imported.ok()) {
    return absl::Status(imported.status().code(),
                        absl::StrCat(path, ": ", imported.status().message()));
  }
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.add_whitespace = true;
  std::string json;
  // Printing a valid message cannot fail.
  (void)google::protobuf::util::MessageToJsonString(imported->spec, &json,
                                                    options);
  out << UnquoteIntegers(json);
  // Notes go to stderr, so that stdout stays a spec file.
  for (const std::string& note : imported->notes) {
    std::cerr << "note: " << note << "\n";
  }
  return absl::OkStatus();
}

}  // namespace anneal
