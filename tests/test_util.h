// Helpers shared by the engine tests: specs written as YAML/JSON text, and
// compiled schedules that fail the test (not crash) when a spec is invalid.
#ifndef ANNEAL_TESTS_TEST_UTIL_H_
#define ANNEAL_TESTS_TEST_UTIL_H_

#include <memory>
#include <string>

#include "anneal/model/spec_text.h"
#include "gtest/gtest.h"
#include "anneal/engine/schedule.h"

namespace anneal {

inline v1::ScheduleSpec SpecFromText(const std::string& text) {
  v1::ScheduleSpec spec;
  absl::Status s = ParseMessageText(text, &spec);
  EXPECT_TRUE(s.ok()) << s << "\nin: " << text;
  return spec;
}

inline std::shared_ptr<const Schedule> CompileText(const std::string& text) {
  auto compiled = Schedule::Compile(SpecFromText(text));
  EXPECT_TRUE(compiled.ok()) << compiled.status() << "\nin: " << text;
  if (!compiled.ok()) return nullptr;
  return *compiled;
}

// The INVALID_ARGUMENT message for an invalid spec ("" if it compiled).
inline std::string CompileError(const std::string& text) {
  v1::ScheduleSpec spec;
  absl::Status parsed = ParseMessageText(text, &spec);
  if (!parsed.ok()) return std::string(parsed.message());
  auto compiled = Schedule::Compile(spec);
  if (compiled.ok()) return "";
  EXPECT_EQ(compiled.status().code(), absl::StatusCode::kInvalidArgument);
  return std::string(compiled.status().message());
}

}  // namespace anneal

#endif  // ANNEAL_TESTS_TEST_UTIL_H_
