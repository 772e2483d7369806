// Field-path error messages for spec validation.
//
// Every invalid spec is rejected with INVALID_ARGUMENT and a message that
// names the field path and the rule, for example
//
//   warm_restarts.period: must be >= 1, got 0
//
// These helpers build such messages, so every family words them the same way.
#ifndef ANNEAL_ENGINE_FIELD_ERROR_H_
#define ANNEAL_ENGINE_FIELD_ERROR_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anneal {

// Shortest decimal text that reads back as the same double ("0.1", "-2",
// "nan", "inf").
std::string FormatNumber(double value);

// `value` in double quotes for a message: quotes, backslashes and control
// characters escaped, and cut after `max` bytes with the full size added
// ("\"abcd...\" (15728640 bytes)"), so that no message (or log line)
// carries a whole hostile input or can forge a line break.
std::string QuoteValue(absl::string_view value, size_t max = 64);

// A dotted path to a field of a ScheduleSpec, e.g. "sequence.phases[1].spec".
class FieldPath {
 public:
  FieldPath() = default;
  explicit FieldPath(std::string prefix) : path_(std::move(prefix)) {}

  // Path of a child field: FieldPath("cosine").Child("period") is
  // "cosine.period"; an empty path yields "period".
  FieldPath Child(absl::string_view name) const;
  // Path of a repeated element: "milestones" -> "milestones[2]".
  FieldPath Index(int64_t i) const;

  const std::string& str() const { return path_; }

  // INVALID_ARGUMENT "<path>: <rule>".
  absl::Status Error(absl::string_view rule) const;

 private:
  std::string path_;
};

// Common rules. Each returns OK or the INVALID_ARGUMENT error for `path`.
absl::Status RequireFinite(const FieldPath& path, double v);
absl::Status RequireAtLeast(const FieldPath& path, double v, double lo);
absl::Status RequireAbove(const FieldPath& path, double v, double lo);
absl::Status RequireInRange(const FieldPath& path, double v, double lo,
                            double hi);  // closed [lo, hi]
absl::Status RequireAtLeast(const FieldPath& path, int64_t v, int64_t lo);
absl::Status RequireAtMost(const FieldPath& path, int64_t v, int64_t hi);

}  // namespace anneal

#endif  // ANNEAL_ENGINE_FIELD_ERROR_H_
