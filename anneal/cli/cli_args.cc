// A small argument parser for annealctl subcommands (see cli_args.h).
#include "anneal/cli/cli_args.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace anneal {

absl::StatusOr<CliArgs> CliArgs::Parse(
    const std::vector<std::string>& args, const std::set<std::string>& flags,
    const std::map<std::string, std::string>& aliases) {
  CliArgs out;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      out.positional_.push_back(arg);
      continue;
    }
    std::string name, value, spelled;
    bool has_value = false;
    if (absl::StartsWith(arg, "--")) {
      name = arg.substr(2);
      size_t eq = name.find('=');
      if (eq != std::string::npos) {
        value = name.substr(eq + 1);
        name = name.substr(0, eq);
        has_value = true;
      }
      spelled = absl::StrCat("--", name);
    } else {
      auto alias = aliases.find(arg.substr(1));
      if (alias == aliases.end()) {
        return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
      }
      name = alias->second;
    }
    for (char& c : name) {
      if (c == '-') c = '_';
    }
    if (flags.count(name) == 0) {
      return absl::InvalidArgumentError(absl::StrCat("unknown flag ", arg));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(absl::StrCat(arg, ": needs a value"));
      }
      value = args[++i];
    }
    out.values_[name].push_back(value);
    if (!spelled.empty()) out.spelling_[name] = spelled;
  }
  return out;
}

std::string CliArgs::Spelling(const std::string& name) const {
  auto it = spelling_.find(name);
  return it == spelling_.end() ? absl::StrCat("--", name) : it->second;
}

std::string CliArgs::Get(const std::string& name,
                         const std::string& fallback) const {
  auto it = values_.find(name);
  return it == values_.end() ? fallback : it->second.back();
}

std::vector<std::string> CliArgs::GetAll(const std::string& name) const {
  auto it = values_.find(name);
  return it == values_.end() ? std::vector<std::string>() : it->second;
}

absl::StatusOr<std::string> CliArgs::Require(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    return absl::InvalidArgumentError(absl::StrCat("--", name, " is required"));
  }
  return it->second.back();
}

absl::StatusOr<int64_t> CliArgs::GetInt(const std::string& name,
                                        int64_t fallback) const {
  auto it = values_.find(name);
  if (it == values_.end()) return fallback;
  int64_t v;
  if (!absl::SimpleAtoi(it->second.back(), &v)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Spelling(name), ": must be an integer, got ", it->second.back()));
  }
  return v;
}

absl::StatusOr<std::optional<double>> CliArgs::GetDouble(
    const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::optional<double>();
  double v;
  if (!absl::SimpleAtod(it->second.back(), &v) || !std::isfinite(v)) {
    return absl::InvalidArgumentError(absl::StrCat(
        Spelling(name), ": must be a finite number, got ", it->second.back()));
  }
  return std::optional<double>(v);
}

}  // namespace anneal
