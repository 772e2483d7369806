// ConfigMap: typed, path-named reads of one mapping of a library's scheduler
// config (JSON or YAML), for the importers.
//
// Each read names the key it takes; Finish() then refuses every key that no
// read took, so an option an importer does not know is an error naming it,
// never silently dropped. A key whose value is null (JSON null, Python's
// None) counts as absent. Errors are INVALID_ARGUMENT
// "<path>.<key>: <rule>, got <value>", the value cut short.
#ifndef ANNEAL_IMPORTERS_CONFIG_MAP_H_
#define ANNEAL_IMPORTERS_CONFIG_MAP_H_

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "yaml-cpp/yaml.h"

namespace anneal {

class ConfigMap {
 public:
  // Parses JSON or YAML `text`, whose top level must be a mapping.
  static absl::StatusOr<ConfigMap> Parse(absl::string_view text);
  // `node` must be a mapping or null (an empty one); `path` prefixes errors.
  static absl::StatusOr<ConfigMap> Of(const YAML::Node& node, std::string path);

  bool Has(absl::string_view key) const;
  // The mapping's keys, in file order (for mappings keyed by values, such as
  // optax's boundaries_and_scales).
  std::vector<std::string> Keys() const;
  // "<path>.<key>" (or "<key>" at the top).
  std::string PathOf(absl::string_view key) const;
  // INVALID_ARGUMENT "<path>.<key>: <rule>".
  absl::Status Error(absl::string_view key, absl::string_view rule) const;
  // Marks `key` as taken without reading it (options with no effect).
  void Ignore(absl::string_view key);

  // A finite number. Absent: `fallback`, or an error if there is none.
  absl::StatusOr<double> Number(absl::string_view key,
                                std::optional<double> fallback = {});
  // An integer in int64 (1e3 and 1000.0 are accepted; 2.5 is not).
  absl::StatusOr<int64_t> Integer(absl::string_view key,
                                  std::optional<int64_t> fallback = {});
  absl::StatusOr<bool> Bool(absl::string_view key, bool fallback);
  absl::StatusOr<std::string> String(absl::string_view key,
                                     std::optional<std::string> fallback = {});
  absl::StatusOr<std::vector<int64_t>> Integers(absl::string_view key);
  absl::StatusOr<std::vector<double>> Numbers(absl::string_view key);
  // A nested mapping (absent or null: an empty one).
  absl::StatusOr<ConfigMap> Map(absl::string_view key);
  // A list of mappings.
  absl::StatusOr<std::vector<ConfigMap>> Maps(absl::string_view key);

  // OK if every key was taken; else the first one left, with `owner` (e.g.
  // "StepLR") named as what does not have that option.
  absl::Status Finish(absl::string_view owner) const;

 private:
  ConfigMap(YAML::Node node, std::string path)
      : node_(std::move(node)), path_(std::move(path)) {}
  // The value of `key`, marked as taken; a null node if absent or null.
  YAML::Node Take(absl::string_view key);
  absl::Status Invalid(absl::string_view key, absl::string_view rule,
                       const YAML::Node& value) const;

  YAML::Node node_;
  std::string path_;
  std::set<std::string> taken_;
};

}  // namespace anneal

#endif  // ANNEAL_IMPORTERS_CONFIG_MAP_H_
