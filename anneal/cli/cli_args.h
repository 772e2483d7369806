// A small argument parser for annealctl subcommands: `--name value`,
// `--name=value`, short aliases (-f, -o) and positional arguments. Each
// subcommand declares the flags it takes, so a typo is an error, not ignored.
// A flag given twice keeps its last value for Get; GetAll returns every one
// (repeatable flags such as --label).
#ifndef ANNEAL_CLI_CLI_ARGS_H_
#define ANNEAL_CLI_CLI_ARGS_H_

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace anneal {

class CliArgs {
 public:
  // `flags`: long names the subcommand accepts ("file", "steps", ...);
  // `aliases`: short forms ("f" -> "file"). Errors name the bad argument.
  static absl::StatusOr<CliArgs> Parse(
      const std::vector<std::string>& args, const std::set<std::string>& flags,
      const std::map<std::string, std::string>& aliases);

  bool Has(const std::string& name) const { return values_.count(name) > 0; }
  std::string Get(const std::string& name, const std::string& fallback) const;
  // Every value given for `name`, in order (empty when absent).
  std::vector<std::string> GetAll(const std::string& name) const;
  absl::StatusOr<std::string> Require(const std::string& name) const;
  // Integer / number flags; errors read "--steps: must be an integer, got x".
  absl::StatusOr<int64_t> GetInt(const std::string& name,
                                 int64_t fallback) const;
  absl::StatusOr<std::optional<double>> GetDouble(
      const std::string& name) const;
  const std::vector<std::string>& positional() const { return positional_; }
  // The flag as the user spelled it ("--min-lr" or "--min_lr"), for errors;
  // "--" + name when it was not given.
  std::string Spelling(const std::string& name) const;

 private:
  std::map<std::string, std::vector<std::string>> values_;
  std::map<std::string, std::string> spelling_;
  std::vector<std::string> positional_;
};

}  // namespace anneal

#endif  // ANNEAL_CLI_CLI_ARGS_H_
