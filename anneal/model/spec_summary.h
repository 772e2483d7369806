// A spec in one line, for people: what annealctl's tables and the status
// page show beside a schedule. Not parseable (spec_text.h reads specs).
//
//   SpecSummary(spec) ==
//       "warm_restarts(period 10, period_mult 2), lr 0.1 to 1e-04, "
//       "warmup(steps 100)"
#ifndef ANNEAL_MODEL_SPEC_SUMMARY_H_
#define ANNEAL_MODEL_SPEC_SUMMARY_H_

#include <string>

#include "anneal/v1/schedule.pb.h"

namespace anneal {

// The curve family: the name of the spec's `curve` field ("cosine",
// "warm_restarts", ...), or "none" when no curve is set.
std::string SpecFamily(const v1::ScheduleSpec& spec);

// The family with its set fields, the LR range, then every other part of
// the spec that is set, each as name(field value, ...). Numbers are exact.
std::string SpecSummary(const v1::ScheduleSpec& spec);

}  // namespace anneal

#endif  // ANNEAL_MODEL_SPEC_SUMMARY_H_
