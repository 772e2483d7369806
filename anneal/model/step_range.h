// The wire form of a range of steps, StepRange (packed arrays): packing for
// the server's EvaluateRange and Simulate, unpacking for clients. The flag
// bits are v1::StepFlag (resources.proto), the one definition C++ and
// Python share.
#ifndef ANNEAL_MODEL_STEP_RANGE_H_
#define ANNEAL_MODEL_STEP_RANGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/engine/step.h"
#include "anneal/v1/resources.pb.h"

namespace anneal {

// INVALID_ARGUMENT unless 0 <= count <= limit (RESOURCE_EXHAUSTED above it).
absl::Status CheckRangeCount(int64_t count, int64_t limit);

class StepRangeBuilder {
 public:
  // Reserves room for `count` steps in `out`.
  StepRangeBuilder(int64_t start, int64_t count, v1::StepRange* out);
  void Add(const StepResult& r);

 private:
  v1::StepRange* out_;
  int64_t count_;
  bool momentum_ = false;  // the momentum arrays have started
};

uint32_t PackFlags(const StepResult& r);

// Moves the range's repeated arrays into its *_raw bytes fields
// (little-endian), as a request with raw_arrays asks.
void MoveToRawArrays(v1::StepRange* range);

// The same, but with cycle, step_in_cycle, cycle_length and flags as runs
// (runs_raw) when those are fewer bytes, as a request with compact asks.
void MoveToCompactArrays(v1::StepRange* range);

// The steps of `range`, in either encoding, as StepResult values (no
// thermostat noise: ranges carry none). INTERNAL if the arrays disagree in
// length.
absl::StatusOr<std::vector<StepResult>> UnpackStepRange(
    const v1::StepRange& range);

}  // namespace anneal

#endif  // ANNEAL_MODEL_STEP_RANGE_H_
