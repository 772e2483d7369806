// Request bytes to a message, with an error that says what is wrong.
//
// gRPC 1.51's callback API answers a request that does not decode with
// UNIMPLEMENTED and no message, which tells the caller nothing. The service
// therefore takes raw bytes and decodes them here: a failure is
// INVALID_ARGUMENT naming the first field at fault and the rule, e.g.
//   schedule.display_name: must be valid UTF-8, got 12 bytes that are not
//   schedule.spec.sequence.phases[0].spec...: must nest at most 64 messages
//   request: must be a serialized anneal.v1.EvaluateRequest, got bytes that
//     end inside a field at byte 17
#ifndef ANNEAL_SERVER_DECODE_H_
#define ANNEAL_SERVER_DECODE_H_

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpcpp/support/byte_buffer.h"

namespace anneal {

// How deep messages may nest in a request. A spec nests sequences at most
// kMaxSequenceDepth deep (3 messages a level), far below this.
inline constexpr int kMaxRequestDepth = 64;

// Parses `bytes` into `*message` (cleared first).
absl::Status DecodeRequest(const grpc::ByteBuffer& bytes,
                           google::protobuf::Message* message);

// The same, from flat bytes (for tests and the fuzzer).
absl::Status DecodeRequest(absl::string_view bytes,
                           google::protobuf::Message* message);

// True if `text` is well-formed UTF-8 (no overlong forms, surrogates or
// code points past U+10FFFF), as protobuf requires of string fields.
bool IsValidUtf8(absl::string_view text);

}  // namespace anneal

#endif  // ANNEAL_SERVER_DECODE_H_
