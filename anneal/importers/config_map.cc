// ConfigMap (see config_map.h).
#include "anneal/importers/config_map.h"

#include <cmath>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "anneal/engine/field_error.h"

namespace anneal {
namespace {

bool IsAbsent(const YAML::Node& node) {
  return !node.IsDefined() || node.IsNull();
}

// A plain (unquoted) scalar: JSON's "1000" is text, not a number.
bool IsPlainScalar(const YAML::Node& node) {
  return node.IsScalar() && node.Tag() != "!";
}

std::string Shown(const YAML::Node& node) {
  if (node.IsScalar()) return QuoteValue(node.Scalar(), 40);
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a mapping";
  return "null";
}

std::optional<double> ScalarNumber(const YAML::Node& node) {
  if (!IsPlainScalar(node)) return std::nullopt;
  double v = 0;
  if (!absl::SimpleAtod(node.Scalar(), &v) || !std::isfinite(v)) {
    return std::nullopt;
  }
  return v;
}

std::optional<int64_t> ScalarInteger(const YAML::Node& node) {
  if (!IsPlainScalar(node)) return std::nullopt;
  int64_t i = 0;
  if (absl::SimpleAtoi(node.Scalar(), &i)) return i;
  std::optional<double> d = ScalarNumber(node);
  // 1e3 and 1000.0 are integers; 2^63 and above are not int64.
  if (!d || std::floor(*d) != *d || std::fabs(*d) >= 9.2233720368547758e18) {
    return std::nullopt;
  }
  return static_cast<int64_t>(*d);
}

}  // namespace

absl::StatusOr<ConfigMap> ConfigMap::Parse(absl::string_view text) {
  YAML::Node root;
  try {
    root = YAML::Load(std::string(text));
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("the config does not parse as JSON or YAML: line ",
                     e.mark.line + 1, ": ", e.msg));
  }
  if (!root.IsMap()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the config must be a mapping (a JSON object), got ", Shown(root)));
  }
  return ConfigMap(root, "");
}

absl::StatusOr<ConfigMap> ConfigMap::Of(const YAML::Node& node,
                                        std::string path) {
  if (IsAbsent(node)) return ConfigMap(YAML::Node(YAML::NodeType::Map), path);
  if (!node.IsMap()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path, ": must be a mapping, got ", Shown(node)));
  }
  return ConfigMap(node, std::move(path));
}

bool ConfigMap::Has(absl::string_view key) const {
  return !IsAbsent(node_[std::string(key)]);
}

std::vector<std::string> ConfigMap::Keys() const {
  std::vector<std::string> keys;
  for (const auto& entry : node_) keys.push_back(entry.first.Scalar());
  return keys;
}

std::string ConfigMap::PathOf(absl::string_view key) const {
  return path_.empty() ? std::string(key) : absl::StrCat(path_, ".", key);
}

absl::Status ConfigMap::Error(absl::string_view key,
                              absl::string_view rule) const {
  return absl::InvalidArgumentError(absl::StrCat(PathOf(key), ": ", rule));
}

void ConfigMap::Ignore(absl::string_view key) { taken_.emplace(key); }

YAML::Node ConfigMap::Take(absl::string_view key) {
  taken_.emplace(key);
  YAML::Node value = node_[std::string(key)];
  return IsAbsent(value) ? YAML::Node() : value;
}

absl::Status ConfigMap::Invalid(absl::string_view key, absl::string_view rule,
                                const YAML::Node& value) const {
  return Error(key, absl::StrCat(rule, ", got ", Shown(value)));
}

absl::StatusOr<double> ConfigMap::Number(absl::string_view key,
                                         std::optional<double> fallback) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) {
    if (fallback) return *fallback;
    return Error(key, "is required (a number)");
  }
  std::optional<double> v = ScalarNumber(value);
  if (!v) return Invalid(key, "must be a finite number", value);
  return *v;
}

absl::StatusOr<int64_t> ConfigMap::Integer(absl::string_view key,
                                           std::optional<int64_t> fallback) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) {
    if (fallback) return *fallback;
    return Error(key, "is required (an integer)");
  }
  std::optional<int64_t> v = ScalarInteger(value);
  if (!v) return Invalid(key, "must be an integer", value);
  return *v;
}

absl::StatusOr<bool> ConfigMap::Bool(absl::string_view key, bool fallback) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) return fallback;
  bool b = false;
  if (!IsPlainScalar(value) || !YAML::convert<bool>::decode(value, b)) {
    return Invalid(key, "must be true or false", value);
  }
  return b;
}

absl::StatusOr<std::string> ConfigMap::String(
    absl::string_view key, std::optional<std::string> fallback) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) {
    if (fallback) return *fallback;
    return Error(key, "is required (a string)");
  }
  if (!value.IsScalar()) return Invalid(key, "must be a string", value);
  return value.Scalar();
}

absl::StatusOr<std::vector<int64_t>> ConfigMap::Integers(
    absl::string_view key) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) return Error(key, "is required (a list of integers)");
  if (!value.IsSequence()) {
    return Invalid(key, "must be a list of integers", value);
  }
  std::vector<int64_t> out;
  for (size_t i = 0; i < value.size(); ++i) {
    std::optional<int64_t> v = ScalarInteger(value[i]);
    if (!v) {
      return Invalid(absl::StrCat(key, "[", i, "]"), "must be an integer",
                     value[i]);
    }
    out.push_back(*v);
  }
  return out;
}

absl::StatusOr<std::vector<double>> ConfigMap::Numbers(absl::string_view key) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) return Error(key, "is required (a list of numbers)");
  if (!value.IsSequence()) {
    return Invalid(key, "must be a list of numbers", value);
  }
  std::vector<double> out;
  for (size_t i = 0; i < value.size(); ++i) {
    std::optional<double> v = ScalarNumber(value[i]);
    if (!v) {
      return Invalid(absl::StrCat(key, "[", i, "]"), "must be a finite number",
                     value[i]);
    }
    out.push_back(*v);
  }
  return out;
}

absl::StatusOr<ConfigMap> ConfigMap::Map(absl::string_view key) {
  return Of(Take(key), PathOf(key));
}

absl::StatusOr<std::vector<ConfigMap>> ConfigMap::Maps(absl::string_view key) {
  YAML::Node value = Take(key);
  if (IsAbsent(value)) return Error(key, "is required (a list of mappings)");
  if (!value.IsSequence()) {
    return Invalid(key, "must be a list of mappings", value);
  }
  std::vector<ConfigMap> out;
  for (size_t i = 0; i < value.size(); ++i) {
    absl::StatusOr<ConfigMap> m =
        Of(value[i], absl::StrCat(PathOf(key), "[", i, "]"));
    if (!m.ok()) return m.status();
    out.push_back(*std::move(m));
  }
  return out;
}

absl::Status ConfigMap::Finish(absl::string_view owner) const {
  for (const auto& entry : node_) {
    const std::string key = entry.first.Scalar();
    if (taken_.count(key) == 0) {
      return Error(key, absl::StrCat("is not an option of ", owner,
                                     " that anneal can import"));
    }
  }
  return absl::OkStatus();
}

}  // namespace anneal
