// The wire form of a range of steps, StepRange (packed arrays): packing for
// the server's EvaluateRange and Simulate, unpacking for clients. Flags:
// bit 0 restart, bit 1 snapshot, bit 2 momentum scheduled, bits 8..15 the
// Phase.
#ifndef ANNEAL_MODEL_STEP_RANGE_H_
#define ANNEAL_MODEL_STEP_RANGE_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "anneal/v1/service.pb.h"
#include "anneal/engine/step.h"

namespace anneal {

inline constexpr uint32_t kFlagRestart = 1u << 0;
inline constexpr uint32_t kFlagSnapshot = 1u << 1;
inline constexpr uint32_t kFlagHasMomentum = 1u << 2;
inline constexpr int kFlagPhaseShift = 8;

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

// The steps of `range` as StepResult values (no thermostat noise: ranges
// carry none). INTERNAL if the arrays disagree in length.
absl::StatusOr<std::vector<StepResult>> UnpackStepRange(
    const v1::StepRange& range);

}  // namespace anneal

#endif  // ANNEAL_MODEL_STEP_RANGE_H_
