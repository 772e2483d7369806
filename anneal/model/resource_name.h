// Schedule resource names (AIP-122): "schedules/{id}" with an RFC-1034 id.
#ifndef ANNEAL_MODEL_RESOURCE_NAME_H_
#define ANNEAL_MODEL_RESOURCE_NAME_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace anneal {

inline constexpr absl::string_view kSchedulesCollection = "schedules/";

// OK if `id` matches ^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$; else INVALID_ARGUMENT
// naming `field`.
absl::Status ValidateScheduleId(absl::string_view field, absl::string_view id);

// OK if `name` is "schedules/{valid id}"; else INVALID_ARGUMENT naming `field`.
absl::Status ValidateScheduleName(absl::string_view field,
                                  absl::string_view name);

std::string ScheduleName(absl::string_view id);

}  // namespace anneal

#endif  // ANNEAL_MODEL_RESOURCE_NAME_H_
