// Schedule resource names (AIP-122): "schedules/{id}" with an RFC-1034 id.
// The collection is spelled once, in the resource_pattern option of
// v1::Schedule (proto/anneal/v1/resources.proto); C++ and Python read it
// from there.
#ifndef ANNEAL_MODEL_RESOURCE_NAME_H_
#define ANNEAL_MODEL_RESOURCE_NAME_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anneal {

// "schedules/", from v1::Schedule's resource_pattern.
absl::string_view SchedulesPrefix();

// OK if `id` matches ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$; else INVALID_ARGUMENT
// naming `field`.
absl::Status ValidateScheduleId(absl::string_view field, absl::string_view id);

// OK if `name` is "schedules/{valid id}"; else INVALID_ARGUMENT naming `field`.
absl::Status ValidateScheduleName(absl::string_view field,
                                  absl::string_view name);

// "schedules/{id}".
std::string ScheduleName(absl::string_view id);

// What users type, an id ("run-1") or a name ("schedules/run-1"), as a
// name. Not validated.
std::string ScheduleNameOf(absl::string_view id_or_name);

// The id of `name` ("schedules/run-1" -> "run-1"); the text itself if it
// has no prefix.
absl::string_view ScheduleIdOf(absl::string_view name);

}  // namespace anneal

#endif  // ANNEAL_MODEL_RESOURCE_NAME_H_
