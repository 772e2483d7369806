// Schedule resource names (see resource_name.h).
#include "anneal/model/resource_name.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "anneal/engine/field_error.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

absl::Status ValidateScheduleId(absl::string_view field, absl::string_view id) {
  auto lower = [](char c) { return c >= 'a' && c <= 'z'; };
  auto digit = [](char c) { return c >= '0' && c <= '9'; };
  bool ok = !id.empty() && id.size() <= 63 && lower(id.front()) &&
            (lower(id.back()) || digit(id.back()));
  for (char c : id) ok = ok && (lower(c) || digit(c) || c == '-');
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(
      absl::StrCat(field,
                   ": must match ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$ (lower-case "
                   "letters, digits and '-', at most 63), got ",
                   QuoteValue(id)));
}

absl::string_view SchedulesPrefix() {
  static const std::string* prefix = [] {
    const std::string& pattern =
        v1::Schedule::descriptor()->options().GetExtension(
            v1::resource_pattern);  // "schedules/{schedule}"
    return new std::string(pattern.substr(0, pattern.find('{')));
  }();
  return *prefix;
}

absl::Status ValidateScheduleName(absl::string_view field,
                                  absl::string_view name) {
  if (!absl::StartsWith(name, SchedulesPrefix())) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": must be ", SchedulesPrefix(), "{id}, got ",
                     QuoteValue(name)));
  }
  return ValidateScheduleId(field, name.substr(SchedulesPrefix().size()));
}

std::string ScheduleName(absl::string_view id) {
  return absl::StrCat(SchedulesPrefix(), id);
}

std::string ScheduleNameOf(absl::string_view id_or_name) {
  return absl::StartsWith(id_or_name, SchedulesPrefix())
             ? std::string(id_or_name)
             : ScheduleName(id_or_name);
}

absl::string_view ScheduleIdOf(absl::string_view name) {
  absl::ConsumePrefix(&name, SchedulesPrefix());
  return name;
}

}  // namespace anneal
