// Reading schedule specs (and other anneal messages) from JSON or YAML text.
//
// The proto is the one schema: text maps onto it with protobuf's own JSON
// mapping (JsonStringToMessage), so snake_case and lowerCamelCase field names
// are accepted and unknown fields are errors. YAML (a superset of JSON) is
// first read with yaml-cpp and re-emitted as JSON guided by the message
// descriptor, which is also where enum names become case-insensitive
// ("cosine" == "COSINE") and YAML's .nan/.inf spellings are mapped. No field
// is parsed by hand.
#ifndef ANNEAL_MODEL_SPEC_TEXT_H_
#define ANNEAL_MODEL_SPEC_TEXT_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "anneal/v1/schedule.pb.h"
#include "google/protobuf/message.h"

namespace anneal {

// Parses JSON or YAML `text` into `message` (cleared first). Errors are
// INVALID_ARGUMENT naming the field where protobuf or yaml-cpp can.
absl::Status ParseMessageText(absl::string_view text,
                              google::protobuf::Message* message);

}  // namespace anneal

#endif  // ANNEAL_MODEL_SPEC_TEXT_H_
