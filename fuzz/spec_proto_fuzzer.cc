// Fuzz target: ScheduleSpec protobuf bytes (what the server decodes from a
// request) -> Validate -> Compile -> Evaluate at steps up to 2^62
// (fuzz/spec_check.h).
#include <cstddef>
#include <cstdint>

#include "anneal/v1/schedule.pb.h"
#include "fuzz/spec_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anneal::v1::ScheduleSpec spec;
  if (!spec.ParseFromArray(data, static_cast<int>(size))) return 0;
  anneal::fuzz::CheckSpec(spec, data, size);
  return 0;
}
