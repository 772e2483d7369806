// Fuzz target: spec text (JSON or YAML) -> ParseMessageText -> Validate ->
// Compile -> Evaluate at steps up to 2^62 (fuzz/spec_check.h).
#include <cstddef>
#include <cstdint>

#include "absl/strings/string_view.h"
#include "anneal/model/spec_text.h"
#include "anneal/v1/schedule.pb.h"
#include "fuzz/spec_check.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  anneal::v1::ScheduleSpec spec;
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  if (!anneal::ParseMessageText(text, &spec).ok()) return 0;
  anneal::fuzz::CheckSpec(spec, data, size);
  return 0;
}
