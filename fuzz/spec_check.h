// What every fuzz target checks once it holds a spec: Validate and Compile
// agree, and a compiled spec serves, at steps drawn from the input up to
// 2^62, LRs that are finite and >= 0 (momentum finite when scheduled), with
// EvaluateRange equal bit for bit to Evaluate. A broken invariant aborts
// (under libFuzzer: a crash with the input saved; in the replay test: the
// test fails).
#ifndef ANNEAL_FUZZ_SPEC_CHECK_H_
#define ANNEAL_FUZZ_SPEC_CHECK_H_

#include <cstddef>
#include <cstdint>

#include "anneal/v1/schedule.pb.h"

namespace anneal::fuzz {

// `data` seeds the steps evaluated. Returns normally, or aborts with a
// message on stderr.
void CheckSpec(const v1::ScheduleSpec& spec, const uint8_t* data, size_t size);

}  // namespace anneal::fuzz

#endif  // ANNEAL_FUZZ_SPEC_CHECK_H_
